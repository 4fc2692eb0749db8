//! `monitor run`'s pipeline: the alert stage (rules evaluated, alerts raised and handed to the
//! sinks, alerts about the monitor itself, live reload) and everything it runs beside the
//! event loop (sinks, container metadata, metrics and health).

use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::alerter::{Alerter, AlerterOptions};
use super::{OutputTarget, PipelineOptions, Progress, Reload, Stage};
use crate::config::{Config, ConfigSource, OutputFormat};
use crate::event::{Event, FieldContext};
use crate::output::Router;
use crate::rules::Ruleset;
use crate::sensor::filter::FilterPlan;
use crate::service::reload::prefilter_for;
use crate::service::self_alerts::{self, SelfAlerts};
use crate::service::{Health, Reloaded, Reloader, RuleMetrics, Telemetry};

pub fn alerter_options(config: &Config, format: Option<OutputFormat>) -> AlerterOptions {
    AlerterOptions {
        format: format.unwrap_or(config.output.format),
        rate_limit: config.rate_limit,
        matching: config.rule_matching,
        min_priority: config.min_priority().unwrap_or(crate::alert::Priority::Debug),
        metadata_wait: std::time::Duration::from_millis(config.container_runtime.metadata_wait_ms),
    }
}

pub fn alerter(config: &Config, ruleset: Ruleset, format: Option<OutputFormat>) -> Alerter {
    Alerter::new(ruleset, alerter_options(config, format))
}

/// What the daemon is started with besides its config: the loaded rules, and the command
/// line's sizes and stdout format.
pub struct DaemonOptions {
    pub ruleset: Ruleset,
    pub format: Option<OutputFormat>,
    pub ring_bytes: u32,
    pub max_processes: usize,
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
    host_names: crate::event::HostNames,
    /// A loaded set waiting for the pipeline to put it in force.
    pending: Option<Reloaded>,
    filter: Option<Arc<FilterPlan>>,
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

    fn flush(&mut self, cx: &FieldContext, out: &mut Vec<u8>, all: bool) -> u64 {
        self.alerter.flush(cx, out, all)
    }

    fn filter(&self) -> Option<Arc<FilterPlan>> {
        self.filter.clone()
    }

    fn reload(&mut self) -> Option<&mut dyn Reload> {
        Some(self)
    }
}

impl Reload for AlertStage {
    fn request(&mut self) {
        match &self.reloader {
            Some(r) => {
                tracing::info!("SIGHUP: reloading the rules and config");
                r.request();
            }
            None => tracing::warn!("SIGHUP: live reload is not available (see the start-up log)"),
        }
    }

    fn pending(&mut self) -> Option<Option<Arc<FilterPlan>>> {
        if self.pending.is_none() {
            self.pending = self.reloader.as_ref().and_then(Reloader::take);
        }
        self.pending.as_ref().map(|r| r.prefilter.clone())
    }

    fn reject(&mut self, why: &anyhow::Error) {
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

    fn apply(&mut self) {
        let Some(Reloaded { config, ruleset, prefilter }) = self.pending.take() else {
            return;
        };
        self.filter = prefilter;
        ruleset.follow_identities();
        self.host_names.watch(ruleset.host_names());
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

/// Runs the daemon until SIGTERM: the sinks, container metadata, metrics and live reload, and
/// the event loop with the alert stage.
pub async fn run(config: Config, source: ConfigSource, opts: DaemonOptions) -> Result<()> {
    let _data_dir = self_alerts::lock_data_dir(&config.data_dir)?;
    let DaemonOptions { ruleset, format, ring_bytes, max_processes } = opts;
    ruleset.follow_identities();
    let router = Arc::new(Router::start(&config.output, format)?);
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
    let host_names = crate::event::HostNames::default();
    host_names.watch(ruleset.host_names());
    host_names
        .start_resolver(crate::event::host_names::REFRESH_EVERY)
        .context("starting the thread that resolves the rules' host names")?;
    let opts = PipelineOptions {
        host_names: host_names.clone(),
        output: OutputTarget::Sinks(router.clone()),
        ring_bytes,
        filter_sets: config.kernel_filter_sets,
        max_processes,
        containers: Some(containers.clone()),
        state_dir: Some(config.state_dir.clone()),
        telemetry: Some(telemetry.clone()),
    };
    let self_alerts =
        SelfAlerts::new(config.self_alerts.clone(), &config.data_dir, crate::event::nix_hostname());
    let mut stage = AlertStage {
        filter: prefilter_for(&config, &ruleset),
        pending: None,
        // Sinks render their own formats from the JSON alert.
        alerter: alerter(&config, ruleset, Some(OutputFormat::Json)),
        containers,
        router: router.clone(),
        telemetry,
        self_alerts,
        reloader,
        host_names,
    };
    let result = super::run(&opts, &mut stage).await;
    // The event path has stopped; the sinks get their deadline to deliver or spool what is left.
    router.shutdown();
    eprintln!("monitor: {}", router.summary());
    result
}
