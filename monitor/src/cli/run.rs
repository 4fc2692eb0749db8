//! `monitor run`: the daemon. Sensors and rules raise alerts, which go to the sinks; metrics,
//! health, live reload and alerts about the monitor itself run beside them.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::events::SensorArgs;
use crate::config::{Config, ConfigSource, OutputFormat, Override};
use crate::pipeline::daemon::DaemonOptions;
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

pub async fn run(args: RunArgs, config: Config, source: ConfigSource) -> Result<()> {
    source.warn_ignored_env();
    let opts = DaemonOptions {
        ruleset: load_rules(&config)?,
        format: args.format,
        ring_bytes: args.sensor.ring_buffer_bytes.unwrap_or(config.ring_buffer_bytes),
        max_processes: args.sensor.max_processes.unwrap_or(config.max_processes),
    };
    crate::pipeline::daemon::run(config, source, opts).await
}
