//! `monitor run`: the daemon. Sensors and rules raise alerts, which go to the sinks; metrics,
//! health, live reload and alerts about the monitor itself run beside them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};

use super::events::SensorArgs;
use super::pipeline::{self, OutputTarget, PipelineOptions, Progress, Stage};
use crate::alert::{Alerter, AlerterOptions};
use crate::config::{Config, ConfigSource, OutputFormat, Override};
use crate::event::{Event, FieldContext};
use crate::output::Router;
use crate::rules::{Loaded, Prefilter, Ruleset};
use crate::service::reload::prefilter_for;
use crate::service::self_alerts::{self, SelfAlerts};
use crate::service::{Health, Reloaded, Reloader, RuleMetrics, Telemetry};

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
    /// Sets a config key over the file and the environment: `--set rate_limit.burst=50`,
    /// `--set 'rules=[bundled, /etc/extra.yaml]'` (values are YAML). Repeatable. Every key can
    /// also come from the environment: MONITOR_RATE_LIMIT__BURST=50.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl RulesArgs {
    /// Where the config comes from: the file, the environment, `--set`, and `--rules`.
    pub fn source(&self) -> Result<ConfigSource> {
        let mut source = ConfigSource::new(self.config.clone(), &self.set)?;
        if !self.rules.is_empty() {
            let paths = self
                .rules
                .iter()
                .map(|p| serde_json::Value::from(p.to_string_lossy().into_owned()))
                .collect();
            source.overrides.push(Override {
                origin: "--rules".to_owned(),
                path: vec!["rules".to_owned()],
                value: serde_json::Value::Array(paths),
            });
        }
        Ok(source)
    }

    pub fn config(&self) -> Result<Config> {
        self.source()?.load()
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

pub fn alerter_options(config: &Config, format: Option<OutputFormat>) -> AlerterOptions {
    AlerterOptions {
        format: format.unwrap_or(config.output.format),
        rate_limit: config.rate_limit,
        matching: config.rule_matching,
        min_priority: config.min_priority().unwrap_or(crate::rules::Priority::Debug),
        metadata_wait: std::time::Duration::from_millis(config.container_runtime.metadata_wait_ms),
    }
}

pub fn alerter(config: &Config, ruleset: Ruleset, format: Option<OutputFormat>) -> Alerter {
    Alerter::new(ruleset, alerter_options(config, format))
}

/// The alerter, the alerts about the monitor itself, live reload, and the container directory
/// and sinks whose state the report shows.
struct AlertStage {
    alerter: Alerter,
    containers: crate::container::ContainerDirectory,
    router: Arc<Router>,
    telemetry: Arc<Telemetry>,
    self_alerts: SelfAlerts,
    reloader: Option<Reloader>,
    /// A loaded set waiting for the pipeline to put it in force.
    pending: Option<Reloaded>,
    prefilter: Option<Arc<Prefilter>>,
}

/// What the self-alerts report, borrowed from the alerter alone (the self-alerts are borrowed
/// mutably beside it).
fn status<'a>(alerter: &'a Alerter, p: &'a Progress) -> self_alerts::Status<'a> {
    let ruleset = alerter.ruleset();
    self_alerts::Status {
        events: p.events,
        drops: p.drops,
        alerts: alerter.stats.alerts,
        rules_digest: &ruleset.digest,
        rules_enabled: ruleset.enabled_count(),
    }
}

impl AlertStage {
    fn publish(&self) {
        let ruleset = self.alerter.ruleset();
        self.telemetry.publish_rules(RuleMetrics {
            digest: ruleset.digest.clone(),
            enabled: ruleset.enabled_count(),
            rules: self.alerter.rule_counters(),
            self_alerts: self.self_alerts.counts().to_vec(),
        });
    }
}

impl Stage for AlertStage {
    fn on_event(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64 {
        self.alerter.process(ev, cx, out)
    }

    fn report(&self, written: u64) -> String {
        let c = self.containers.stats();
        format!(
            "{}; {written} alerts handed to the sinks; {}; containers: {} known, {} being looked up, {} unknown to \
             the runtimes ({} lookups, {} failed)",
            self.alerter.report(),
            self.router.summary(),
            c.known,
            c.pending,
            c.failed,
            c.lookups,
            c.lookup_failures
        )
    }

    fn started(&mut self, p: &Progress, out: &mut Vec<u8>) -> u64 {
        self.publish();
        self.self_alerts.started(&status(&self.alerter, p), out)
    }

    fn tick(&mut self, p: &Progress, out: &mut Vec<u8>) -> u64 {
        let n = self.self_alerts.tick(&status(&self.alerter, p), out);
        self.publish();
        n
    }

    fn stopping(&mut self, p: &Progress, out: &mut Vec<u8>) -> u64 {
        self.self_alerts.stopped(&status(&self.alerter, p), out)
    }

    fn reload(&mut self) {
        match &self.reloader {
            Some(r) => {
                tracing::info!("SIGHUP: reloading the rules and config");
                r.request();
            }
            None => tracing::warn!("SIGHUP: live reload is not available (see the start-up log)"),
        }
    }

    fn holds_back(&self) -> bool {
        true
    }

    fn flush(&mut self, cx: &FieldContext, out: &mut Vec<u8>, all: bool) -> u64 {
        self.alerter.flush(cx, out, all)
    }

    fn prefilter(&self) -> Option<Arc<Prefilter>> {
        self.prefilter.clone()
    }

    fn reload_pending(&mut self) -> Option<Option<Arc<Prefilter>>> {
        if self.pending.is_none() {
            self.pending = self.reloader.as_ref().and_then(Reloader::take);
        }
        self.pending.as_ref().map(|r| r.prefilter.clone())
    }

    fn reject_reload(&mut self, why: &anyhow::Error) {
        if let Some(r) = self.pending.take() {
            tracing::error!(
                "reload failed: the kernel refused the new rules' filter ({why:#}); the rules in force stay (ruleset {}, \
                 not {})",
                self.alerter.ruleset().digest,
                r.ruleset.digest
            );
            self.telemetry.reload_failed();
        }
    }

    fn apply_reload(&mut self) {
        let Some(Reloaded { config, ruleset, prefilter }) = self.pending.take() else {
            return;
        };
        self.prefilter = prefilter;
        ruleset.follow_identities();
        self.alerter.replace(ruleset, alerter_options(&config, Some(OutputFormat::Json)));
        self.self_alerts.set_config(config.self_alerts.clone());
        self.telemetry.reload_succeeded();
        tracing::info!(
            enabled = self.alerter.ruleset().enabled_count(),
            digest = %self.alerter.ruleset().digest,
            "rules reloaded: the new set is in force"
        );
        self.publish();
    }
}

pub async fn run(args: RunArgs, config: Config, source: ConfigSource) -> Result<()> {
    source.warn_ignored_env();
    let _data_dir = self_alerts::lock_data_dir(&config.data_dir)?;
    let ruleset = load_rules(&config)?;
    ruleset.follow_identities();
    let router = Arc::new(Router::start(&config.output, args.format)?);
    let containers = crate::container::ContainerDirectory::start(config.container_runtime.sources());
    let health = Health::new(std::time::Duration::from_millis(config.metrics.max_stall_ms));
    let telemetry = Arc::new(Telemetry::new(health, Some(router.clone()), Some(containers.clone())));
    if let Some(address) = config.metrics.address {
        crate::service::http::serve(address, telemetry.clone())?;
    }
    let reloader = match Reloader::start(source, config.clone(), ruleset.digest.clone(), telemetry.clone()) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("cannot start live reload ({e}): rules and config changes need a restart");
            None
        }
    };
    let opts = PipelineOptions {
        output: OutputTarget::Sinks(router.clone()),
        ring_bytes: args.sensor.ring_buffer_bytes.unwrap_or(config.ring_buffer_bytes),
        filter_sets: config.kernel_filter_sets,
        max_processes: args.sensor.max_processes.unwrap_or(config.max_processes),
        containers: Some(containers.clone()),
        state_dir: Some(config.state_dir.clone()),
        telemetry: Some(telemetry.clone()),
    };
    let self_alerts =
        SelfAlerts::new(config.self_alerts.clone(), &config.data_dir, crate::event::nix_hostname());
    // Sinks render their own formats from the JSON alert.
    let prefilter = prefilter_for(&config, &ruleset);
    let mut stage = AlertStage {
        prefilter,
        pending: None,
        alerter: alerter(&config, ruleset, Some(OutputFormat::Json)),
        containers,
        router: router.clone(),
        telemetry,
        self_alerts,
        reloader,
    };
    let result = pipeline::run(&opts, &mut stage).await;
    // The event path has stopped; the sinks get their deadline to deliver or spool what is left.
    router.shutdown();
    eprintln!("monitor: {}", router.summary());
    result
}
