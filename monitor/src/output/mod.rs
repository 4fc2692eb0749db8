//! Alert delivery: a router hands every alert to each configured sink; each sink owns a buffer
//! (in memory, or a write-ahead spool on disk) and a task that delivers from it in order and
//! removes an alert only once the receiver acknowledged it.
//!
//! The canonical record is the alert in Falco's JSON shape, one object without a newline: what
//! the spool stores and what every sink renders its own format from, so a spooled alert can be
//! sent after a restart by whatever sink configuration is then in place.

mod alert_view;
mod buffer;
mod config;
mod console;
mod delivery;
mod file;
mod http;
mod nats;
mod relp;
mod router;
mod spool;
mod syslog;
mod tls;

pub use alert_view::{AlertHeader, AlertView};
pub use config::{
    BatchConfig, DeliveryConfig, FileConfig, FsyncPolicy, HttpConfig, HttpPreset, NatsConfig, OutputsConfig,
    RetryConfig, SecretSource, SinkConfig, SpoolConfig, StdoutConfig, SyslogConfig, SyslogTransport,
    TlsConfig,
};
pub use delivery::{SinkStats, SinkStatsSnapshot};
pub use router::{Router, RouterReport};
pub use spool::lock_exclusive;

use std::sync::Arc;

/// One alert in a sink's buffer. `seq` is the sink's own sequence number: it orders delivery
/// and, with the spool's instance id, names the alert for receivers that de-duplicate.
#[derive(Clone, Debug)]
pub struct Record {
    pub seq: u64,
    pub data: Arc<[u8]>,
}

/// What a delivery attempt achieved: the first `done` records of the batch are finished with
/// (acknowledged, or rejected for good), of which `rejected` were refused by the receiver as
/// malformed and will never be accepted (counted and logged, not retried forever).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub rejected: usize,
}

impl Progress {
    pub fn all(n: usize) -> Self {
        Self { done: n, rejected: 0 }
    }
}

/// A receiver of alerts. `deliver` is retried with backoff on error, with the same records
/// first, so order holds per sink; a sink that returns progress for a prefix gets the rest again.
pub trait Sink: Send + 'static {
    fn deliver(&mut self, batch: &[Record]) -> impl Future<Output = anyhow::Result<Progress>> + Send;

    /// Finishes cleanly (RELP close, file sync); called once at shutdown.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
