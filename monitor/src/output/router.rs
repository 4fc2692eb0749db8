//! The router: builds the configured sinks, hands every alert to each sink's buffer (never
//! waiting for a receiver), and runs the sinks' delivery tasks on a runtime of their own, so
//! no sink can slow the event path or another sink.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::sync::watch;
use tokio::time::Instant;

use super::buffer::Buffer;
use super::config::{OutputsConfig, SinkConfig, StdoutConfig};
use super::delivery::{self, DeliveryOptions, SinkStats, SinkStatsSnapshot};
use super::spool::Spool;
use super::{Sink, console, file, http, nats, syslog};
use crate::config::OutputFormat;

struct Handle {
    name: String,
    kind: &'static str,
    buffer: Arc<Buffer>,
    stats: Arc<SinkStats>,
    /// For a spool: the queue to its writer thread (appends and fsyncs stay off the event path).
    intake: std::sync::Mutex<Option<Intake>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Where a spool's writer thread takes batches of alerts from.
type Intake = std::sync::mpsc::SyncSender<Arc<Vec<Arc<[u8]>>>>;

/// Batches a spool writer may fall behind by before alerts are dropped (and counted): a disk
/// stalled for this long.
const INTAKE_BATCHES: usize = 1024;

pub struct Router {
    sinks: Vec<Handle>,
    stop: watch::Sender<Option<Instant>>,
    done: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    shutdown_timeout: Duration,
}

/// One sink's counters and how many alerts wait in its buffer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RouterReport {
    pub name: String,
    pub kind: &'static str,
    pub queued: u64,
    /// Bytes of the sink's spool on disk.
    pub spool_bytes: u64,
    #[serde(flatten)]
    pub stats: SinkStatsSnapshot,
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Router {
    /// Builds every sink (errors name the sink) and starts delivering. `stdout_format`
    /// (`--format`) applies to the stdout sink used when none are configured.
    pub fn start(config: &OutputsConfig, stdout_format: Option<OutputFormat>) -> Result<Router> {
        let default_stdout;
        let sinks: &[SinkConfig] = if config.sinks.is_empty() {
            default_stdout = [SinkConfig::Stdout(StdoutConfig {
                format: Some(stdout_format.unwrap_or(config.format)),
                ..Default::default()
            })];
            &default_stdout
        } else {
            &config.sinks
        };
        let (stop, stop_rx) = watch::channel(None);
        let mut handles = Vec::new();
        let mut tasks: Vec<Task> = Vec::new();
        for (i, sc) in sinks.iter().enumerate() {
            // A name names the spool directory too, so it must not depend on the sinks' order.
            let name = match sc.name() {
                Some(n) => n.to_owned(),
                None if sinks.iter().filter(|s| s.kind() == sc.kind()).count() == 1 => sc.kind().to_owned(),
                None => bail!(
                    "output.sinks[{i}]: there are several {} sinks: give each a `name` (it also names its spool)",
                    sc.kind()
                ),
            };
            let what = format!("output.sinks[{i}] ({name})");
            if !valid_name(&name) {
                bail!("{what}: a sink name may hold only letters, digits, `-`, `_` and `.`");
            }
            if handles.iter().any(|h: &Handle| h.name == name) {
                bail!("{what}: two sinks are named `{name}`; give each its own `name`");
            }
            let (handle, task) = Self::build(&name, sc, config, stdout_format, stop_rx.clone())
                .with_context(|| what.clone())?;
            tracing::info!(sink = %name, kind = sc.kind(), spool = handle.buffer.is_spool(), queued = handle.buffer.len(), "sink ready");
            handles.push(handle);
            tasks.push(task);
        }
        warn_about_orphaned_spools(&config.spool_dir, &handles);
        let buffers: Vec<Arc<Buffer>> = handles.iter().map(|h| h.buffer.clone()).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("monitor-sink")
            .enable_all()
            .build()
            .context("cannot start the sinks' runtime")?;
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("monitor-output".into()).spawn(move || {
            runtime.block_on(async move {
                let upkeep = tokio::spawn(async move {
                    let mut t = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        t.tick().await;
                        for b in &buffers {
                            b.tick();
                        }
                    }
                });
                let running: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
                for t in running {
                    if let Err(e) = t.await {
                        tracing::error!("a sink's delivery task ended abnormally: {e}");
                    }
                }
                upkeep.abort();
            });
            let _ = done_tx.send(());
        })?;
        Ok(Router {
            sinks: handles,
            stop,
            done: std::sync::Mutex::new(Some(done)),
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
        })
    }

    fn build(
        name: &str,
        sc: &SinkConfig,
        config: &OutputsConfig,
        stdout_format: Option<OutputFormat>,
        stop: watch::Receiver<Option<Instant>>,
    ) -> Result<(Handle, Task)> {
        let d = sc.delivery();
        let (batch_max, batch_wait) = sc.default_batch();
        let opts = DeliveryOptions {
            batch_max: d.batch.max_alerts.unwrap_or(batch_max).clamp(1, 100_000),
            batch_wait: Duration::from_millis(d.batch.max_wait_ms.unwrap_or(batch_wait)),
            initial_backoff: Duration::from_millis(d.retry.initial_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(d.retry.max_backoff_ms.max(d.retry.initial_backoff_ms.max(1))),
            timeout: Duration::from_millis(d.retry.timeout_ms.max(1)),
        };
        let stats = Arc::new(SinkStats::default());
        let dir = config.spool_dir.join(name);
        let buffer = Arc::new(if d.spool.enabled.unwrap_or(sc.acknowledges()) {
            let (spool, recovered) = Spool::open(&dir, d.spool.max_bytes, d.spool.fsync)
                .with_context(|| format!("cannot open the spool {}", dir.display()))?;
            if recovered.torn_bytes > 0 {
                tracing::warn!(sink = %name, bytes = recovered.torn_bytes, "cut off a torn tail of the spool (a crash mid-write)");
            }
            if recovered.damaged_bytes > 0 {
                tracing::error!(sink = %name, bytes = recovered.damaged_bytes, "skipped damaged records in the middle of the spool; the intact ones after them are sent");
            }
            if recovered.lost > 0 {
                stats.dropped.fetch_add(recovered.lost, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(sink = %name, lost = recovered.lost, "alerts in a damaged part of the spool are lost (counted as dropped)");
            }
            if recovered.pending > 0 {
                tracing::info!(sink = %name, alerts = recovered.pending, "alerts spooled before the restart will be sent first");
            }
            Buffer::spool(name, spool)
        } else {
            let max = d.queue_max_alerts.unwrap_or(100_000);
            match Buffer::memory_with_saved(name, max, &dir) {
                Ok((b, saved)) => {
                    if saved > 0 {
                        stats.restored.fetch_add(saved, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(sink = %name, alerts = saved, "alerts saved at the last shutdown will be sent first");
                    }
                    b
                }
                Err(e) => {
                    tracing::warn!(sink = %name, "cannot read the alerts saved at the last shutdown in {}: {e}", dir.display());
                    Buffer::memory(name, max)
                }
            }
        });
        let task: Task = {
            let parts = delivery::DeliveryTask {
                name: name.to_owned(),
                sink: (),
                buffer: buffer.clone(),
                stats: stats.clone(),
                opts,
                stop,
                spill: dir,
            };
            fn boxed<S: Sink>(parts: delivery::DeliveryTask<()>, sink: S) -> Task {
                Box::pin(parts.with(sink).run())
            }
            match sc {
                SinkConfig::Stdout(c) => {
                    let format = c.format.or(stdout_format).unwrap_or(config.format);
                    boxed(parts, console::StdoutSink::new(format))
                }
                SinkConfig::File(c) => boxed(parts, file::FileSink::new(c)?),
                SinkConfig::Syslog(c) => boxed(parts, syslog::build(c)?),
                SinkConfig::Http(c) => boxed(parts, http::HttpSink::new(c, buffer.instance(), opts.timeout)?),
                SinkConfig::Nats(c) => boxed(parts, nats::NatsSink::new(c, buffer.instance(), opts.timeout)?),
            }
        };
        let (intake, writer) = if buffer.is_spool() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Vec<Arc<[u8]>>>>(INTAKE_BATCHES);
            let (b, st) = (buffer.clone(), stats.clone());
            let writer = std::thread::Builder::new().name(format!("spool-{name}")).spawn(move || {
                for batch in rx {
                    b.push(&batch, &st);
                }
            })?;
            (Some(tx), Some(writer))
        } else {
            (None, None)
        };
        let handle = Handle {
            name: name.to_owned(),
            kind: sc.kind(),
            buffer,
            stats,
            intake: std::sync::Mutex::new(intake),
            writer: std::sync::Mutex::new(writer),
        };
        Ok((handle, task))
    }

    /// Hands a batch of alerts (JSON objects, one per line) to every sink without waiting:
    /// memory buffers take it at once, spools through their own writer thread.
    pub fn dispatch(&self, lines: &[u8]) -> u64 {
        let records: Arc<Vec<Arc<[u8]>>> =
            Arc::new(lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(Arc::from).collect());
        for h in &self.sinks {
            match &*h.intake.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
                Some(writer) => {
                    if let Err(e) = writer.try_send(records.clone()) {
                        let n = records.len() as u64;
                        let total = h.stats.dropped.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                        let why = match e {
                            std::sync::mpsc::TrySendError::Full(_) => "the disk cannot keep up",
                            std::sync::mpsc::TrySendError::Disconnected(_) => "its writer stopped",
                        };
                        tracing::error!(sink = %h.name, dropped = n, total, "alerts could not be spooled ({why}); they are dropped and counted");
                    }
                }
                None => h.buffer.push(&records, &h.stats),
            }
        }
        records.len() as u64
    }

    pub fn report(&self) -> Vec<RouterReport> {
        self.sinks
            .iter()
            .map(|h| RouterReport {
                name: h.name.clone(),
                kind: h.kind,
                queued: h.buffer.len(),
                spool_bytes: h.buffer.spool_bytes(),
                stats: h.stats.snapshot(),
            })
            .collect()
    }

    /// One line for the periodic report.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .report()
            .iter()
            .map(|r| {
                let s = &r.stats;
                format!(
                    "{}: {} sent, {} queued, {} failed attempts, {} retried, {} spooled, {} dropped, {} rejected{}{}",
                    r.name,
                    s.sent,
                    r.queued,
                    s.failed,
                    s.retried,
                    s.spooled,
                    s.dropped,
                    s.rejected,
                    if s.restored > 0 { format!(", {} restored from the last shutdown", s.restored) } else { String::new() },
                    if s.saved > 0 { format!(", {} saved for the next start", s.saved) } else { String::new() },
                )
            })
            .collect();
        format!("sinks: {}", parts.join("; "))
    }

    /// Lets each sink deliver what it holds (within the shutdown timeout), then stops them; what
    /// a sink without a spool could not deliver is saved for the next start (counted as saved),
    /// or counted as dropped when it cannot be saved.
    pub fn shutdown(&self) {
        let Some(done) = self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
            return;
        };
        // Everything dispatched is in the spools before the deadline starts.
        for h in &self.sinks {
            drop(h.intake.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
            if let Some(w) = h.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                let _ = w.join();
            }
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        let _ = self.stop.send(Some(deadline));
        // Each task also gets a second to close its connection.
        if done.recv_timeout(self.shutdown_timeout + Duration::from_secs(2)).is_err() {
            tracing::error!("sinks did not stop within the shutdown timeout");
        }
    }
}

/// Spool directories no sink uses any more (a sink renamed or removed) that still hold alerts.
fn warn_about_orphaned_spools(spool_dir: &std::path::Path, sinks: &[Handle]) {
    let Ok(entries) = std::fs::read_dir(spool_dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if sinks.iter().any(|h| h.name == name) {
            continue;
        }
        let segments = std::fs::read_dir(e.path())
            .map(|d| d.flatten().filter(|f| f.path().extension().is_some_and(|x| x == "seg")).count())
            .unwrap_or(0);
        if segments > 0 {
            tracing::warn!(
                dir = %e.path().display(),
                "a spool no configured sink uses still holds alerts: name a sink `{name}` to send them, or remove the directory"
            );
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_to_a_file_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let yaml = format!(
            "sinks:\n  - type: file\n    path: {}\nspool_dir: {}\n",
            path.display(),
            dir.path().display()
        );
        let config: OutputsConfig = serde_saphyr::from_str(&yaml).unwrap();
        let router = Router::start(&config, None).unwrap();
        assert_eq!(router.dispatch(b"{\"n\":1}\n{\"n\":2}\n"), 2);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap_or_default().lines().count() < 2 {
            assert!(std::time::Instant::now() < deadline, "not delivered: {}", router.summary());
            std::thread::sleep(Duration::from_millis(10));
        }
        router.shutdown();
        assert_eq!(router.report()[0].stats.sent, 2);
    }
}
