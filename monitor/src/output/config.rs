//! The `output:` section of the config file: the sinks and how each delivers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::OutputFormat;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// Format of the stdout sink used when no sinks are configured.
    pub format: OutputFormat,
    /// Where alerts go; none: stdout.
    pub sinks: Vec<SinkConfig>,
    /// Each sink's spool is a directory under this one, named after the sink.
    pub spool_dir: PathBuf,
    /// On SIGTERM, how long the sinks may take to hand their queues to the receivers (what is
    /// not spooled and not delivered by then is counted as dropped).
    pub shutdown_timeout_ms: u64,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        Self {
            format: OutputFormat::Json,
            sinks: Vec::new(),
            spool_dir: PathBuf::from("/var/lib/monitor/spool"),
            shutdown_timeout_ms: 5000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    Stdout(StdoutConfig),
    File(FileConfig),
    Syslog(SyslogConfig),
    Http(HttpConfig),
    Nats(NatsConfig),
}

impl SinkConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Stdout(_) => "stdout",
            Self::File(_) => "file",
            Self::Syslog(_) => "syslog",
            Self::Http(_) => "http",
            Self::Nats(_) => "nats",
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Stdout(c) => c.name.as_deref(),
            Self::File(c) => c.name.as_deref(),
            Self::Syslog(c) => c.name.as_deref(),
            Self::Http(c) => c.name.as_deref(),
            Self::Nats(c) => c.name.as_deref(),
        }
    }

    pub fn delivery(&self) -> &DeliveryConfig {
        match self {
            Self::Stdout(c) => &c.delivery,
            Self::File(c) => &c.delivery,
            Self::Syslog(c) => &c.delivery,
            Self::Http(c) => &c.delivery,
            Self::Nats(c) => &c.delivery,
        }
    }

    /// Whether the receiver acknowledges alerts, so a spool is worth having by default.
    pub fn acknowledges(&self) -> bool {
        match self {
            Self::Stdout(_) | Self::File(_) => false,
            Self::Syslog(c) => {
                matches!(c.transport, SyslogTransport::Tcp | SyslogTransport::Tls | SyslogTransport::Relp)
            }
            Self::Http(_) | Self::Nats(_) => true,
        }
    }

    /// Batch size and wait when the config does not say: HTTP requests are worth filling,
    /// streams are sent as soon as something is there.
    pub fn default_batch(&self) -> (usize, u64) {
        match self {
            Self::Http(_) => (500, 1000),
            Self::Nats(_) => (256, 0),
            Self::Syslog(_) => (256, 0),
            Self::Stdout(_) | Self::File(_) => (1024, 0),
        }
    }
}

/// How a sink buffers, batches and retries; every sink has one (`delivery:`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Alerts kept in memory for this sink when it has no spool; beyond it the oldest are
    /// dropped and counted.
    pub queue_max_alerts: Option<usize>,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub spool: SpoolConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most alerts per request or write.
    pub max_alerts: Option<usize>,
    /// How long a partial batch waits for more alerts.
    pub max_wait_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Backoff after the first failure; it doubles (with jitter) up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// One delivery attempt (connect, send, acknowledgement) may take this long.
    pub timeout_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { initial_backoff_ms: 200, max_backoff_ms: 30_000, timeout_ms: 10_000 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Write-ahead spool on disk; default: on for sinks whose receiver acknowledges (HTTP, NATS,
    /// syslog over TCP, TLS or RELP), off for stdout, file and UDP/local syslog.
    pub enabled: Option<bool>,
    /// Most bytes on disk; when full, the oldest alerts are dropped, counted and logged.
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self { enabled: None, max_bytes: 1 << 30, fsync: FsyncPolicy::Batch }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// After every batch written: survives power loss.
    #[default]
    Batch,
    /// At most once a second: a power loss may lose the last second; kill -9 loses nothing.
    Interval,
    /// Left to the kernel's writeback.
    Never,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutConfig {
    pub name: Option<String>,
    pub format: Option<OutputFormat>,
    pub delivery: DeliveryConfig,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub name: Option<String>,
    pub path: PathBuf,
    #[serde(default)]
    pub format: OutputFormat,
    /// Rotate when the file would exceed this many bytes (0: never); keep `keep` old files
    /// (path.1 is the newest).
    #[serde(default = "FileConfig::default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default = "FileConfig::default_keep")]
    pub keep: u32,
    #[serde(default)]
    pub fsync: FsyncPolicy,
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

impl FileConfig {
    fn default_max_bytes() -> u64 {
        100 << 20
    }
    fn default_keep() -> u32 {
        5
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// Fire and forget: an alert counts as sent when the datagram left.
    Udp,
    /// RFC 6587 octet counting; an alert counts as sent when written to the socket.
    #[default]
    Tcp,
    /// TCP inside TLS (RFC 5425); as TCP, written means sent.
    Tls,
    /// rsyslog's RELP: every alert is acknowledged by the receiver (guaranteed delivery).
    Relp,
    /// The local syslog socket (datagram, /dev/log by default).
    Unix,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub name: Option<String>,
    #[serde(default)]
    pub transport: SyslogTransport,
    /// host:port, or the socket path for `unix` (default /dev/log).
    pub address: Option<String>,
    /// RFC 5424 facility name (kern, user, daemon, auth, authpriv, local0..local7...).
    #[serde(default = "SyslogConfig::default_facility")]
    pub facility: String,
    #[serde(default = "SyslogConfig::default_app_name")]
    pub app_name: String,
    /// The message: the JSON alert (default) or its text line.
    #[serde(default)]
    pub format: OutputFormat,
    /// For `tls`, and for `relp` when given (RELP over TLS).
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

impl SyslogConfig {
    fn default_facility() -> String {
        "local0".to_owned()
    }
    fn default_app_name() -> String {
        "monitor".to_owned()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpPreset {
    /// Falco's alert JSON, which falcosidekick and webhooks take.
    #[default]
    Webhook,
    /// Splunk's HTTP Event Collector (/services/collector/event).
    Splunk,
    /// Elasticsearch's _bulk API, documents in Elastic Common Schema.
    Elasticsearch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookBody {
    /// One alert per request, as Falco's http_output sends (falcosidekick takes only this).
    Single,
    /// A JSON array of alerts per request.
    Array,
    /// Newline-delimited JSON alerts per request.
    Ndjson,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub name: Option<String>,
    pub url: String,
    #[serde(default)]
    pub preset: HttpPreset,
    /// Webhook only; default `single`.
    pub body: Option<WebhookBody>,
    /// Requests of one batch in flight at once when each carries one alert (`body: single`):
    /// a receiver across a WAN answers in 50-300 ms, and one at a time is a few alerts a second.
    /// Alerts are acknowledged in order whatever order the answers come in.
    #[serde(default = "HttpConfig::default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default)]
    pub gzip: bool,
    /// Plain headers (shown in logs and `monitor rules` output never; still, no secrets here).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose values are secrets: read from a file or the environment, never logged.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, SecretSource>,
    /// Splunk HEC token (sent as `Authorization: Splunk <token>`).
    pub token: Option<SecretSource>,
    /// Elasticsearch: the index (or data stream) written to.
    #[serde(default = "HttpConfig::default_index")]
    pub index: String,
    /// Splunk: sourcetype and index of the events.
    #[serde(default = "HttpConfig::default_sourcetype")]
    pub sourcetype: String,
    pub splunk_index: Option<String>,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

impl HttpConfig {
    fn default_max_in_flight() -> usize {
        64
    }
    fn default_index() -> String {
        "monitor-alerts".to_owned()
    }
    fn default_sourcetype() -> String {
        "falco".to_owned()
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub name: Option<String>,
    /// nats://host:port (tls://host:port for TLS); several separated by commas.
    pub url: String,
    /// Subject of each alert; `{priority}` and `{rule}` are replaced (rule names with spaces and
    /// dots made subject-safe).
    #[serde(default = "NatsConfig::default_subject")]
    pub subject: String,
    /// JetStream stream that must capture the subjects; created (file storage) when missing.
    pub stream: Option<String>,
    /// A .creds file (JWT + nkey seed).
    pub credentials_file: Option<PathBuf>,
    pub token: Option<SecretSource>,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

impl NatsConfig {
    fn default_subject() -> String {
        "monitor.alerts.{priority}.{rule}".to_owned()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM CA certificates the server must chain to; default: the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name checked against the server's certificate; default: the host of the address.
    pub server_name: Option<String>,
}

/// A secret: exactly one of `file` (trailing newline removed), `env`, or `value` (discouraged:
/// the config file is often world-readable). Never printed.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretSource {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
    pub value: Option<String>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, &self.env) {
            (Some(p), _) => write!(f, "secret from file {}", p.display()),
            (None, Some(e)) => write!(f, "secret from ${e}"),
            _ => f.write_str("secret (redacted)"),
        }
    }
}

impl SecretSource {
    pub fn read(&self) -> anyhow::Result<String> {
        match (&self.file, &self.env, &self.value) {
            (Some(p), None, None) => Ok(std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read the secret file {}: {e}", p.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned()),
            (None, Some(e), None) => std::env::var(e)
                .map_err(|_| anyhow::anyhow!("the environment variable {e} (a secret) is not set")),
            (None, None, Some(v)) => Ok(v.clone()),
            _ => anyhow::bail!("a secret takes exactly one of `file`, `env` or `value`"),
        }
    }
}
