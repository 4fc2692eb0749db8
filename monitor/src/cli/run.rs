//! `monitor run`: sensors + rules -> alerts on stdout.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};

use super::events::SensorArgs;
use super::pipeline::{self, OutputTarget, PipelineOptions, Stage};
use crate::alert::{Alerter, AlerterOptions};
use crate::config::{Config, OutputFormat};
use crate::event::{Event, FieldContext};
use crate::output::Router;
use crate::rules::{Loaded, Ruleset};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Alert format of the stdout sink (default: the sink's or output.format, else json).
    #[arg(long, value_enum, env = "MONITOR_FORMAT")]
    pub format: Option<OutputFormat>,
    #[command(flatten)]
    pub sensor: SensorArgs,
}

/// Where rules and the config come from; shared by run, replay and rules.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RulesArgs {
    /// The config file (default /etc/monitor/monitor.yaml when it exists).
    #[arg(long, env = "MONITOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// A rules file or directory; repeat for several, loaded in order (later ones modify
    /// earlier ones). `bundled` names the rules built into monitor. Replaces the config's list.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
}

impl RulesArgs {
    pub fn config(&self) -> Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if !self.rules.is_empty() {
            config.rules = Some(self.rules.clone());
        }
        Ok(config)
    }
}

/// Loads the configured rules; any error is fatal, warnings (skipped rules) are logged.
pub fn load_rules(config: &Config) -> Result<Ruleset> {
    let paths = config.rule_paths();
    let Loaded { ruleset, diagnostics } = Ruleset::load(&paths);
    let mut errors = 0;
    for d in &diagnostics {
        match d.severity {
            crate::rules::Severity::Error => {
                errors += 1;
                eprintln!("{}", d.render());
            }
            crate::rules::Severity::Warning => tracing::warn!("{}", d.headline()),
        }
    }
    if errors > 0 {
        bail!("{errors} error(s) in the rules; nothing was started (check them with `monitor rules check`)");
    }
    if ruleset.enabled_count() == 0 {
        tracing::warn!(paths = ?paths, "no enabled rules were loaded: no alerts will be raised");
    }
    tracing::info!(
        enabled = ruleset.enabled_count(),
        skipped = ruleset.skipped.len(),
        digest = %ruleset.digest,
        "rules loaded"
    );
    Ok(ruleset)
}

pub fn alerter(config: &Config, ruleset: Ruleset, format: Option<OutputFormat>) -> Alerter {
    Alerter::new(
        ruleset,
        AlerterOptions {
            format: format.unwrap_or(config.output.format),
            rate_limit: config.rate_limit,
            matching: config.rule_matching,
            min_priority: config.min_priority().unwrap_or(crate::rules::Priority::Debug),
            metadata_wait: std::time::Duration::from_millis(config.container_runtime.metadata_wait_ms),
        },
    )
}

/// The alerter, and the container directory and sinks whose state the report shows.
struct AlertStage(Alerter, crate::container::ContainerDirectory, Arc<Router>);

impl Stage for AlertStage {
    fn on_event(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64 {
        self.0.process(ev, cx, out)
    }

    fn report(&self, written: u64) -> String {
        let c = self.1.stats();
        format!(
            "{}; {written} alerts handed to the sinks; {}; containers: {} known, {} being looked up, {} unknown to \
             the runtimes ({} lookups, {} failed)",
            self.0.report(),
            self.2.summary(),
            c.known,
            c.pending,
            c.failed,
            c.lookups,
            c.lookup_failures
        )
    }

    fn tick(&mut self) {
        self.0.tick();
    }

    fn holds_back(&self) -> bool {
        true
    }

    fn flush(&mut self, cx: &FieldContext, out: &mut Vec<u8>, all: bool) -> u64 {
        self.0.flush(cx, out, all)
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    let config = args.rules.config()?;
    let ruleset = load_rules(&config)?;
    let router = Arc::new(Router::start(&config.output, args.format)?);
    let containers = crate::container::ContainerDirectory::start(config.container_runtime.sources());
    let opts = PipelineOptions {
        output: OutputTarget::Sinks(router.clone()),
        ring_bytes: args.sensor.ring_buffer_bytes.unwrap_or(config.ring_buffer_bytes),
        max_processes: args.sensor.max_processes.unwrap_or(config.max_processes),
        containers: Some(containers.clone()),
        state_dir: Some(config.state_dir.clone()),
    };
    // Sinks render their own formats from the JSON alert.
    let alerter = alerter(&config, ruleset, Some(OutputFormat::Json));
    let result = pipeline::run(&opts, &mut AlertStage(alerter, containers, router.clone())).await;
    // The event path has stopped; the sinks get their deadline to deliver or spool what is left.
    router.shutdown();
    eprintln!("monitor: {}", router.summary());
    result
}
