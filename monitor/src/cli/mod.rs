//! The command line: parses arguments and the config, then calls the pipeline (`run`,
//! `events`), the rules engine (`rules`, `replay`) or the container directory (`containers`).

mod containers;
mod events;
mod replay;
mod rules;
mod run;

use clap::{Parser, Subcommand};

pub use crate::config::LogFormat;

#[derive(Parser, Debug)]
#[command(name = "monitor", version, about = "Runtime security monitor for Linux (eBPF)")]
pub struct Cli {
    /// Log format on stderr: text for terminals, json for log collectors (default: the config's
    /// log.format, auto).
    #[arg(long, value_enum, env = "MONITOR_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
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

/// Logs go to stderr: text on a terminal, JSON lines for collectors. Under systemd (stderr is
/// the journal) text lines carry no timestamp or colours, since the journal adds its own.
/// MONITOR_LOG, when set, replaces `level`.
pub fn init_logging(format: LogFormat, level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MONITOR_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let journal = std::env::var_os("JOURNAL_STREAM").is_some() && !terminal;
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(terminal);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text if journal => builder.without_time().init(),
        LogFormat::Text => builder.init(),
        LogFormat::Auto if terminal => builder.init(),
        LogFormat::Auto => builder.json().init(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // `run` logs as its config says; the config is read before anything is logged.
    let config = match &cli.command {
        Command::Run(args) => Some(args.rules.source().and_then(|s| Ok((s.load()?, s)))),
        _ => None,
    };
    let (format, level) = match &config {
        Some(Ok((c, _))) => (c.log.format, c.log.level.clone()),
        _ => (LogFormat::Auto, "info".to_owned()),
    };
    init_logging(cli.log_format.unwrap_or(format), &level);
    match cli.command {
        Command::Events(args) => events::run(args).await,
        Command::Run(args) => {
            let (config, source) = config.expect("read above")?;
            run::run(args, config, source).await
        }
        Command::Replay(args) => replay::run(args),
        Command::Containers(args) => containers::run(args).await,
        Command::Rules(cmd) => rules::run(cmd),
    }
}
