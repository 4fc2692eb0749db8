//! The daemon's configuration file (default /etc/monitor/monitor.yaml). Unknown keys and wrong
//! types are errors with file:line:column: the daemon never starts half-configured.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::alert::RateLimit;
use crate::rules::Priority;

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

#[derive(Clone, Debug, Deserialize)]
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
    pub ring_buffer_bytes: u32,
    pub max_processes: usize,
    pub container_runtime: ContainerRuntimeConfig,
    /// Where the running daemon keeps state other commands read (`monitor containers`).
    pub state_dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
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
            ring_buffer_bytes: monitor_common::DEFAULT_RING_BYTES,
            max_processes: crate::process::table_default_max(),
            container_runtime: ContainerRuntimeConfig::default(),
            state_dir: PathBuf::from("/run/monitor"),
        }
    }
}

impl Config {
    /// The file given, or the default path when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = match path {
            Some(p) => p.to_owned(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read the config file: {e}", path.display()))?;
        Self::parse(&path.display().to_string(), &text).map_err(anyhow::Error::msg)
    }

    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = serde_saphyr::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid configuration");
            match e.location() {
                Some(l) => format!("{name}:{}:{}: {first}", l.line(), l.column()),
                None => format!("{name}: {first}"),
            }
        })?;
        config.min_priority().ok_or_else(|| {
            format!(
                "{name}: min_priority: unknown priority `{}` (expected one of {})",
                config.min_priority,
                Priority::NAMES
            )
        })?;
        crate::sensor::check_ring_bytes(config.ring_buffer_bytes)
            .map_err(|e| format!("{name}: ring_buffer_bytes: {e}"))?;
        Ok(config)
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
