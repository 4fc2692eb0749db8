//! The daemon's configuration file (default /etc/monitor/monitor.yaml). Unknown keys and wrong
//! types are errors with file:line:column: the daemon never starts half-configured.

mod overrides;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use overrides::{Override, TOP_LEVEL_KEYS};

use crate::alert::Priority;
use crate::alert::RateLimit;

pub const DEFAULT_PATH: &str = "/etc/monitor/monitor.yaml";
pub const DEFAULT_RULES_DIR: &str = "/etc/monitor/rules.d";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Falco's JSON alert shape, one object per line.
    #[default]
    Json,
    /// One line of text per alert.
    Text,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMatching {
    /// Every matching rule raises its alert.
    #[default]
    All,
    /// Only the first matching rule in load order (Falco's default).
    First,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Rules files and directories, loaded in order; `bundled` is the rules built into the binary.
    /// None: the defaults (see [`Config::rule_paths`]).
    pub rules: Option<Vec<PathBuf>>,
    /// Alert formats and sinks.
    pub output: crate::output::OutputsConfig,
    /// Per-rule token bucket.
    pub rate_limit: RateLimit,
    pub rule_matching: RuleMatching,
    /// Alerts below this priority are not raised.
    pub min_priority: String,
    /// Dismiss in the kernel the opens, connects and sends no loaded rule can match.
    pub kernel_filter: bool,
    /// Entries of the in-kernel filter's sets (fixed when the programs load).
    pub kernel_filter_sets: crate::sensor::filter::SetSizes,
    pub ring_buffer_bytes: u32,
    pub max_processes: usize,
    pub container_runtime: ContainerRuntimeConfig,
    /// Where the running daemon keeps state other commands read (`monitor containers`).
    pub state_dir: PathBuf,
    /// State kept across restarts (when the daemon last stopped).
    pub data_dir: PathBuf,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub self_alerts: SelfAlertsConfig,
    pub reload: ReloadConfig,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where /metrics (Prometheus) and /healthz are served; None: not served.
    pub address: Option<SocketAddr>,
    /// /healthz fails when the event loop has not turned for this long.
    pub max_stall_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { address: Some(SocketAddr::from(([127, 0, 0, 1], 9376))), max_stall_ms: 5000 }
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// text on a terminal, json otherwise
    #[default]
    Auto,
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing's filter syntax: `info`, `debug`, `info,monitor::output=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: LogFormat::Auto }
    }
}

/// Alerts about the monitor itself, through the same sinks as every alert, so a SIEM can tell a
/// quiet node from a dead, restarted or overloaded monitor.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfAlertsConfig {
    /// "Monitor started" and "Monitor stopped".
    pub lifecycle: bool,
    /// Seconds between "Monitor heartbeat" alerts; 0: none.
    pub heartbeat_interval_s: u64,
    /// "Events dropped" when the kernel dropped events, at most once per this many seconds.
    pub drops_interval_s: u64,
}

impl Default for SelfAlertsConfig {
    fn default() -> Self {
        Self { lifecycle: true, heartbeat_interval_s: 300, drops_interval_s: 60 }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Reload when the config file or a rules file changes on disk (SIGHUP always reloads).
    pub watch: bool,
    /// Changes closer together than this are one reload (editors write files in several steps).
    pub debounce_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self { watch: true, debounce_ms: 500 }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerRuntimeConfig {
    /// Docker Engine API sockets (docker, podman's compatible socket), tried in order; None:
    /// the usual paths.
    pub docker_sockets: Option<Vec<PathBuf>>,
    /// CRI sockets (containerd, CRI-O), tried in order; None: the usual paths.
    pub cri_sockets: Option<Vec<PathBuf>>,
    /// How long an alert about a container seen for the first time waits for its metadata.
    pub metadata_wait_ms: u64,
}

impl Default for ContainerRuntimeConfig {
    fn default() -> Self {
        Self { docker_sockets: None, cri_sockets: None, metadata_wait_ms: 500 }
    }
}

impl ContainerRuntimeConfig {
    pub fn sources(&self) -> crate::container::Sources {
        crate::container::Sources {
            docker_sockets: self.docker_sockets(),
            cri_sockets: self.cri_sockets.clone().unwrap_or_else(crate::container::cri::default_sockets),
        }
    }

    pub fn docker_sockets(&self) -> Vec<PathBuf> {
        match &self.docker_sockets {
            Some(s) => s.clone(),
            None => crate::container::DEFAULT_DOCKER_SOCKETS.iter().map(PathBuf::from).collect(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rules: None,
            output: crate::output::OutputsConfig::default(),
            rate_limit: RateLimit::default(),
            rule_matching: RuleMatching::default(),
            min_priority: "debug".to_owned(),
            kernel_filter: true,
            kernel_filter_sets: Default::default(),
            ring_buffer_bytes: monitor_common::DEFAULT_RING_BYTES,
            max_processes: crate::process::table_default_max(),
            container_runtime: ContainerRuntimeConfig::default(),
            state_dir: PathBuf::from("/run/monitor"),
            data_dir: PathBuf::from("/var/lib/monitor"),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            self_alerts: SelfAlertsConfig::default(),
            reload: ReloadConfig::default(),
        }
    }
}

/// Where a config comes from: the file (or the defaults) and the keys set outside it. Kept by
/// the daemon so a reload reads the same sources again.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The file given, or None for the default path when it exists.
    pub path: Option<PathBuf>,
    /// From the environment, then from `--set`, applied in that order.
    pub overrides: Vec<Override>,
    /// MONITOR_* variables that name no key, warned about once logging is set up.
    pub ignored_env: Vec<String>,
}

impl ConfigSource {
    /// The given file and `--set` arguments, and the `MONITOR_*` variables of this process's
    /// environment (names that look like keys but are not are logged and ignored).
    pub fn new(path: Option<PathBuf>, sets: &[String]) -> anyhow::Result<Self> {
        let vars =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let (mut overrides, ignored_env) = Override::from_env(vars).map_err(anyhow::Error::msg)?;
        for arg in sets {
            overrides.push(Override::from_set(arg).map_err(anyhow::Error::msg)?);
        }
        Ok(Self { path, overrides, ignored_env })
    }

    pub fn warn_ignored_env(&self) {
        for name in &self.ignored_env {
            tracing::warn!(
                "environment variable {name} is not a config key (ignored); keys are MONITOR_ and the key path in \
                 capitals with __ between levels, e.g. MONITOR_RATE_LIMIT__BURST"
            );
        }
    }

    /// The file actually read, if any.
    pub fn file(&self) -> Option<PathBuf> {
        match &self.path {
            Some(p) => Some(p.clone()),
            None if Path::new(DEFAULT_PATH).exists() => Some(PathBuf::from(DEFAULT_PATH)),
            None => None,
        }
    }

    pub fn load(&self) -> anyhow::Result<Config> {
        let (name, text) = match self.file() {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("{}: cannot read the config file: {e}", path.display()))?;
                (path.display().to_string(), text)
            }
            None => ("(defaults)".to_owned(), String::new()),
        };
        Config::parse_with(&name, &text, &self.overrides).map_err(anyhow::Error::msg)
    }
}

impl Config {
    /// The file given, or the default path when it exists, or the defaults; no overrides.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        ConfigSource { path: path.map(Path::to_owned), ..ConfigSource::default() }.load()
    }

    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        Self::parse_with(name, text, &[])
    }

    /// The file's text with `overrides` applied over it. Errors in the file carry its
    /// file:line:column; errors an override causes name the override.
    pub fn parse_with(name: &str, text: &str, overrides: &[Override]) -> Result<Self, String> {
        let located = |e: serde_saphyr::Error| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid configuration").to_owned();
            match e.location() {
                Some(l) => format!("{name}:{}:{}: {first}", l.line(), l.column()),
                None => format!("{name}: {first}"),
            }
        };
        let empty = text.trim().is_empty();
        let config: Self =
            if empty { Self::default() } else { serde_saphyr::from_str(text).map_err(located)? };
        config.validate(name)?;
        if overrides.is_empty() {
            return Ok(config);
        }
        // The file is valid on its own; each override is applied and checked in turn, so an
        // error names the one that caused it.
        let mut doc: serde_json::Value =
            if empty { serde_json::Value::Null } else { serde_saphyr::from_str(text).map_err(located)? };
        let mut config = config;
        for o in overrides {
            o.apply(&mut doc)?;
            config = serde_json::from_value(doc.clone()).map_err(|e| format!("{}: {e}", o.origin))?;
            config.validate(&o.origin)?;
        }
        Ok(config)
    }

    fn validate(&self, name: &str) -> Result<(), String> {
        self.min_priority().ok_or_else(|| {
            format!(
                "{name}: min_priority: unknown priority `{}` (expected one of {})",
                self.min_priority,
                Priority::NAMES
            )
        })?;
        crate::sensor::check_ring_bytes(self.ring_buffer_bytes)
            .map_err(|e| format!("{name}: ring_buffer_bytes: {e}"))?;
        crate::sensor::check_set_sizes(&self.kernel_filter_sets).map_err(|e| format!("{name}: {e}"))?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("{name}: log.level: `{}` is not a log filter: {e}", self.log.level))?;
        Ok(())
    }

    /// The rules paths to load. Given paths must exist; of the defaults (the bundled rules, then
    /// /etc/monitor/rules.d), a missing directory is skipped.
    pub fn rule_paths(&self) -> Vec<PathBuf> {
        match &self.rules {
            Some(paths) => paths.clone(),
            None => [PathBuf::from(crate::rules::BUNDLED), PathBuf::from(DEFAULT_RULES_DIR)]
                .into_iter()
                .filter(|p| p.as_os_str() == crate::rules::BUNDLED || p.exists())
                .collect(),
        }
    }

    pub fn min_priority(&self) -> Option<Priority> {
        Priority::parse(&self.min_priority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c =
            Config::parse("c.yaml", "rules: [bundled, /x]\nrate_limit: {per_second: 1, burst: 5}\n").unwrap();
        assert_eq!(c.rule_paths(), [PathBuf::from("bundled"), PathBuf::from("/x")]);
        assert_eq!(c.rate_limit, RateLimit { per_second: 1.0, burst: 5.0 });
        assert_eq!(c.output.format, OutputFormat::Json);
        assert_eq!(Config::parse("c.yaml", "").unwrap().rule_paths()[0], PathBuf::from("bundled"));
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let c = Config::parse("deploy/monitor.yaml", include_str!("../../../deploy/monitor.yaml")).unwrap();
        let d = Config::default();
        assert_eq!(c.rules.unwrap(), [PathBuf::from("bundled"), PathBuf::from(DEFAULT_RULES_DIR)]);
        assert_eq!(d.rule_paths()[0], PathBuf::from("bundled"));
        assert_eq!(c.output.format, d.output.format);
        assert!(c.output.sinks.is_empty());
        assert_eq!(c.output.spool_dir, d.output.spool_dir);
        assert_eq!(c.output.shutdown_timeout_ms, d.output.shutdown_timeout_ms);
        assert_eq!(c.rate_limit, d.rate_limit);
        assert_eq!(c.rule_matching, d.rule_matching);
        assert_eq!(c.min_priority, d.min_priority);
        assert_eq!(c.ring_buffer_bytes, d.ring_buffer_bytes);
        assert_eq!(c.max_processes, d.max_processes);
        assert_eq!(c.state_dir, d.state_dir);
        assert_eq!(c.container_runtime.docker_sockets(), d.container_runtime.docker_sockets());
        assert_eq!(c.container_runtime.metadata_wait_ms, d.container_runtime.metadata_wait_ms);
        assert_eq!(c.data_dir, d.data_dir);
        assert_eq!(c.metrics, d.metrics);
        assert_eq!(c.log, d.log);
        assert_eq!(c.self_alerts, d.self_alerts);
        assert_eq!(c.reload, d.reload);
    }

    #[test]
    fn every_top_level_key_is_documented_and_settable() {
        let doc = include_str!("../../../deploy/monitor.yaml");
        let documented: Vec<&str> = doc
            .lines()
            .filter(|l| !l.starts_with([' ', '#', '-']) && l.contains(':'))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(documented, TOP_LEVEL_KEYS);
    }

    #[test]
    fn overrides_apply_over_the_file_and_are_named_in_errors() {
        let o = |s: &str| Override::from_set(s).unwrap();
        let c = Config::parse_with(
            "c.yaml",
            "rate_limit: {burst: 5}\n",
            &[o("rate_limit.per_second=2"), o("metrics.address="), o("self_alerts.heartbeat_interval_s=1")],
        )
        .unwrap();
        assert_eq!(c.rate_limit, RateLimit { per_second: 2.0, burst: 5.0 });
        assert_eq!(c.metrics.address, None);
        assert_eq!(c.self_alerts.heartbeat_interval_s, 1);
        let e = Config::parse_with("c.yaml", "", &[o("ring_buffer_bytes=1000")]).unwrap_err();
        assert!(e.starts_with("--set ring_buffer_bytes=1000: ring_buffer_bytes:"), "{e}");
        let e = Config::parse_with("c.yaml", "", &[o("rate_limit.burts=1")]).unwrap_err();
        assert!(e.contains("--set rate_limit.burts=1") && e.contains("burts"), "{e}");
    }

    #[test]
    fn the_sink_examples_parse() {
        let sinks: crate::output::OutputsConfig =
            serde_saphyr::from_str(include_str!("../../../deploy/sinks.yaml")).expect("deploy/sinks.yaml");
        let kinds: Vec<&str> = sinks.sinks.iter().map(|s| s.kind()).collect();
        assert_eq!(kinds, ["stdout", "file", "syslog", "http", "http", "http", "nats"]);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_located() {
        let e = Config::parse("c.yaml", "output:\n  format: json\nrulez: []\n").unwrap_err();
        assert!(e.starts_with("c.yaml:3:1"), "{e}");
        assert!(e.contains("rulez"), "{e}");
        let e = Config::parse("c.yaml", "rate_limit:\n  per_second: fast\n").unwrap_err();
        assert!(e.starts_with("c.yaml:2:"), "{e}");
        let e = Config::parse("c.yaml", "min_priority: loud\n").unwrap_err();
        assert!(e.contains("unknown priority `loud`"), "{e}");
    }
}
