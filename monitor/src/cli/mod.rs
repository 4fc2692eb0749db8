//! Command line: `monitor events` and friends.

mod containers;
mod events;
mod pipeline;
mod replay;
mod rules;
mod run;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "monitor", version, about = "Runtime security monitor for Linux (eBPF)")]
pub struct Cli {
    /// Log format on stderr: text for terminals, json for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, env = "MONITOR_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    /// text on a terminal, json otherwise
    Auto,
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Stream what the sensors see, one enriched event per line.
    Events(events::EventsArgs),
    /// Load the sensors and the rules; write alerts to stdout.
    Run(run::RunArgs),
    /// Evaluate events recorded with `monitor events --json` against rules (no root needed).
    Replay(replay::ReplayArgs),
    /// List the containers the runtimes describe (id, name, image, pod, namespace).
    Containers(containers::ContainersArgs),
    /// Validate and list rules.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
}

pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MONITOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Events(args) => events::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Replay(args) => replay::run(args),
        Command::Containers(args) => containers::run(args).await,
        Command::Rules(cmd) => rules::run(cmd),
    }
}
