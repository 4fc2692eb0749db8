//! The task behind each sink: takes batches from the sink's buffer in order, hands them to the
//! sink, and removes them only when the sink reports them done; failures back off
//! exponentially with jitter and retry the same alerts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Sink;
use super::buffer::Buffer;

/// Per-sink counters, shared with the metrics and the periodic report.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Alerts handed to this sink.
    pub accepted: AtomicU64,
    /// Alerts the receiver acknowledged (or, for sinks without acknowledgement, that were written).
    pub sent: AtomicU64,
    /// Delivery attempts that failed (each is retried).
    pub failed: AtomicU64,
    /// Alerts sent again after a failed attempt.
    pub retried: AtomicU64,
    /// Alerts written to the on-disk spool.
    pub spooled: AtomicU64,
    /// Alerts lost: the buffer was full, the spool unwritable, or shutdown came first with no spool.
    pub dropped: AtomicU64,
    /// Alerts the receiver refused as malformed, for good (never accepted by retrying).
    pub rejected: AtomicU64,
    /// A sink without a spool at shutdown: alerts not delivered by the deadline, saved to its
    /// directory under the spool_dir for the next start.
    pub saved: AtomicU64,
    /// Alerts a previous run saved at its shutdown, taken into this run's queue at start.
    pub restored: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkStatsSnapshot {
    pub accepted: u64,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub spooled: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub saved: u64,
    pub restored: u64,
}

impl SinkStats {
    pub fn snapshot(&self) -> SinkStatsSnapshot {
        SinkStatsSnapshot {
            accepted: self.accepted.load(Relaxed),
            sent: self.sent.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            spooled: self.spooled.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            saved: self.saved.load(Relaxed),
            restored: self.restored.load(Relaxed),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct DeliveryOptions {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
}

/// Half to all of `backoff`, so many daemons that lost one receiver do not retry in step.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Waits until the shutdown deadline (which may be set while waiting) has passed.
async fn deadline_passed(mut stop: watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *stop.borrow_and_update();
        match deadline {
            Some(d) => return tokio::time::sleep_until(d).await,
            None => {
                if stop.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Spool reads, acknowledgements and file writes block: they run where the runtime can move
/// other sinks' tasks away meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// One sink's delivery: its receiver, its buffer and counters, how it batches and retries.
pub struct DeliveryTask<S> {
    pub name: String,
    pub sink: S,
    pub buffer: Arc<Buffer>,
    pub stats: Arc<SinkStats>,
    pub opts: DeliveryOptions,
    /// Carries the shutdown deadline once shutdown starts.
    pub stop: watch::Receiver<Option<Instant>>,
    /// Where a sink without a spool saves what it could not deliver by the deadline, for the
    /// next start.
    pub spill: std::path::PathBuf,
}

impl DeliveryTask<()> {
    /// The task with its receiver.
    pub fn with<S: Sink>(self, sink: S) -> DeliveryTask<S> {
        let Self { name, buffer, stats, opts, stop, spill, .. } = self;
        DeliveryTask { name, sink, buffer, stats, opts, stop, spill }
    }
}

impl<S: Sink> DeliveryTask<S> {
    /// Delivers until told to stop, then until the buffer is empty or the deadline passed.
    pub async fn run(self) {
        let Self { name, mut sink, buffer, stats, opts, mut stop, spill } = self;
        deliver(&name, &mut sink, &buffer, &stats, opts, &mut stop).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
        blocking(|| finish(&name, &buffer, &stats, &spill));
    }
}

async fn deliver<S: Sink>(
    name: &str,
    sink: &mut S,
    buffer: &Buffer,
    stats: &SinkStats,
    opts: DeliveryOptions,
    stop: &mut watch::Receiver<Option<Instant>>,
) {
    let mut backoff = opts.initial_backoff;
    let mut failing_since: Option<Instant> = None;
    let mut partial_since: Option<Instant> = None;
    loop {
        let deadline = *stop.borrow_and_update();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let batch = match blocking(|| buffer.peek(opts.batch_max)) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(sink = %name, "cannot read the spool: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            if deadline.is_some() {
                break;
            }
            tokio::select! {
                _ = buffer.arrived.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // A partial batch waits (bounded) for more, unless shutting down.
        if batch.len() < opts.batch_max && !opts.batch_wait.is_zero() && deadline.is_none() {
            let since = *partial_since.get_or_insert_with(Instant::now);
            if since.elapsed() < opts.batch_wait {
                tokio::select! {
                    _ = buffer.arrived.notified() => {}
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep_until(since + opts.batch_wait) => {}
                }
                continue;
            }
        }
        // A panic in a sink is a failed attempt, not the end of the sink.
        let attempt = std::panic::AssertUnwindSafe(tokio::time::timeout(opts.timeout, sink.deliver(&batch)));
        let outcome = tokio::select! {
            r = futures_util::FutureExt::catch_unwind(attempt) => match r {
                Ok(Ok(Ok(p))) if p.done > 0 => Ok(p),
                Ok(Ok(Ok(_))) => Err(anyhow::anyhow!("the receiver accepted nothing")),
                Ok(Ok(Err(e))) => Err(e),
                Ok(Err(_)) => Err(anyhow::anyhow!("no answer within {} ms", opts.timeout.as_millis())),
                Err(_) => Err(anyhow::anyhow!("the sink panicked (a bug: please report it)")),
            },
            // Shutdown bounds an attempt already under way.
            _ = deadline_passed(stop.clone()) => Err(anyhow::anyhow!("the shutdown deadline passed")),
        };
        match outcome {
            Ok(p) => {
                let done = p.done.min(batch.len());
                if let Err(e) = blocking(|| buffer.ack_through(batch[done - 1].seq)) {
                    tracing::error!(sink = %name, "cannot record the acknowledgement in the spool (alerts may be sent again): {e}");
                }
                let rejected = p.rejected.min(done);
                stats.sent.fetch_add((done - rejected) as u64, Relaxed);
                if rejected > 0 {
                    stats.rejected.fetch_add(rejected as u64, Relaxed);
                    tracing::error!(sink = %name, rejected, "the receiver refused alerts as malformed; they are dropped and counted");
                }
                if let Some(since) = failing_since.take() {
                    tracing::info!(sink = %name, after_s = since.elapsed().as_secs(), "the receiver takes alerts again");
                }
                backoff = opts.initial_backoff;
                partial_since = None;
            }
            Err(e) => {
                stats.failed.fetch_add(1, Relaxed);
                stats.retried.fetch_add(batch.len() as u64, Relaxed);
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::warn!(
                        sink = %name,
                        waiting = buffer.len(),
                        "cannot deliver alerts: {e:#}; retrying with backoff (they wait in the {})",
                        if buffer.is_spool() { "spool" } else { "memory queue" }
                    );
                } else {
                    tracing::debug!(sink = %name, "delivery failed again: {e:#}");
                }
                let pause = jittered(backoff);
                backoff = (backoff * 2).min(opts.max_backoff);
                let deadline = *stop.borrow();
                let wake = match deadline {
                    Some(d) => (Instant::now() + pause).min(d),
                    None => Instant::now() + pause,
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {}
                    // A shutdown cuts the pause short: its deadline bounds the retries.
                    _ = stop.changed(), if deadline.is_none() => {}
                }
            }
        }
    }
}

/// At shutdown: the spool is made durable; a memory queue's leftovers are saved to `spill` for
/// the next start, or counted as dropped when that fails.
fn finish(name: &str, buffer: &Buffer, stats: &SinkStats, spill: &std::path::Path) {
    if buffer.is_spool() {
        if let Err(e) = buffer.close() {
            tracing::error!(sink = %name, "cannot sync the spool: {e}");
        }
        let left = buffer.len();
        if left > 0 {
            tracing::warn!(sink = %name, left, "alerts not yet delivered stay in the spool and are sent after the next start");
        }
        return;
    }
    match buffer.spill(spill) {
        Ok(0) => {}
        Ok(saved) => {
            stats.saved.fetch_add(saved, Relaxed);
            tracing::warn!(
                sink = %name,
                saved,
                dir = %spill.display(),
                "alerts not delivered before the shutdown deadline were saved; they are sent first after the next start"
            );
        }
        Err((lost, e)) => {
            stats.dropped.fetch_add(lost, Relaxed);
            tracing::error!(sink = %name, lost, "alerts not delivered before the shutdown deadline are lost: cannot save them in {}: {e}", spill.display());
        }
    }
}
