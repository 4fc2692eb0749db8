//! `monitor events`: the enriched event stream, for seeing what the sensors see.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::pipeline::{OutputTarget, PipelineOptions};

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// One JSON object per line (Falco field names) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show only the events the rules' in-kernel filter lets through (what `monitor run`
    /// receives), instead of every event.
    #[arg(long)]
    pub filter: bool,
    /// Rules files or directories whose filter `--filter` applies (`bundled` for the built-in
    /// rules); default: the rules `monitor run` loads with its default config.
    #[arg(long, requires = "filter")]
    pub rules: Vec<PathBuf>,
    #[command(flatten)]
    pub sensor: SensorArgs,
}

/// Sensor and process-table sizes; `monitor run` takes them from its config file as well.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SensorArgs {
    /// Ring buffer size in bytes (a power of two, at least 4096).
    #[arg(long, env = "MONITOR_RING_BUFFER_BYTES")]
    pub ring_buffer_bytes: Option<u32>,
    /// Most processes the process table holds; beyond it, entries are evicted and counted.
    #[arg(long, env = "MONITOR_MAX_PROCESSES")]
    pub max_processes: Option<usize>,
}

pub async fn run(args: EventsArgs) -> Result<()> {
    let defaults = crate::config::Config::default();
    let opts = PipelineOptions {
        ring_bytes: args.sensor.ring_buffer_bytes.unwrap_or(defaults.ring_buffer_bytes),
        filter_sets: defaults.kernel_filter_sets,
        max_processes: args.sensor.max_processes.unwrap_or(defaults.max_processes),
        containers: None,
        // The events stream carries addresses, not the names rules would give them.
        host_names: crate::event::HostNames::default(),
        state_dir: None,
        output: OutputTarget::Stdout,
        telemetry: None,
    };
    let filter = if args.filter {
        let mut config = defaults.clone();
        if !args.rules.is_empty() {
            config.rules = Some(args.rules.clone());
        }
        let ruleset = super::run::load_rules(&config)?;
        ruleset.follow_identities();
        Some(Arc::new(crate::rules::prefilter::plan(&ruleset)))
    } else {
        None
    };
    crate::pipeline::stream::run(args.json, filter, opts).await
}
