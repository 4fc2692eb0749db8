//! What makes the daemon a service a platform team can operate: health (for /healthz and
//! systemd's watchdog), Prometheus metrics and their server, live reload of rules and config,
//! and alerts about the monitor itself.

pub mod health;
pub mod http;
pub mod metrics;
pub mod reload;
pub mod self_alerts;

pub use health::{Health, Watchdog};
pub use metrics::{PipelineMetrics, RuleCounters, RuleMetrics, Telemetry};
pub use reload::{Reloaded, Reloader};
pub use self_alerts::SelfAlerts;
