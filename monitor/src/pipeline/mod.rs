//! The daemon's event loop, shared by `monitor events` and `monitor run`: load the sensors,
//! read the ring buffer, decode and enrich each record, hand the event to a [`Stage`] that
//! renders what it produces (events or alerts), and write that from a thread of its own.
//!
//! Where an event goes after decode: [`Pipeline::handle`] (enrich, feed the kernel filter's
//! directory verdicts, count) -> the stage ([`daemon`]'s alert stage, or [`stream`]'s event
//! stream) -> the output thread -> stdout or the sinks.

pub mod alerter;
pub mod daemon;
mod stage;
pub mod stream;

pub use stage::{Progress, Reload, Stage};

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use monitor_common::EventType;
use tokio::signal::unix::{SignalKind, signal};

use crate::event::{Enricher, Event, FieldContext};
use crate::process::ProcessTable;
use crate::sensor::filter::{KernelFilter, SetSizes};
use crate::sensor::{KernelDrops, RawEvent, Reader, Sensor, SensorConfig, decode::decode};

const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

pub struct PipelineOptions {
    pub ring_bytes: u32,
    pub filter_sets: SetSizes,
    pub max_processes: usize,
    /// Container metadata from the runtimes, for stages that render it.
    pub containers: Option<crate::container::ContainerDirectory>,
    /// The addresses of the host names the rules name (`fd.sip.name`).
    pub host_names: crate::event::HostNames,
    /// Where the daemon's view of containers is written for `monitor containers`.
    pub state_dir: Option<std::path::PathBuf>,
    /// Where the stage's records go.
    pub output: OutputTarget,
    /// Health and metrics, published about once a second.
    pub telemetry: Option<Arc<crate::service::Telemetry>>,
}

pub enum OutputTarget {
    /// Written to stdout as they are (events).
    Stdout,
    /// Alerts, one JSON object per line, handed to the sinks.
    Sinks(Arc<crate::output::Router>),
}

struct Counters {
    events: u64,
    by_type: [u64; EventType::ALL.len()],
    decode_errors: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self { events: 0, by_type: [0; EventType::ALL.len()], decode_errors: 0 }
    }
}

impl Counters {
    fn metrics(
        &self,
        drops: &KernelDrops,
        e: &Enricher,
        f: &KernelFilter,
    ) -> crate::service::PipelineMetrics {
        let s = e.stats();
        crate::service::PipelineMetrics {
            events: EventType::ALL.into_iter().zip(self.by_type).collect(),
            decode_errors: self.decode_errors,
            kernel_drops: drops.clone(),
            kernel_filtered: f.filtered().unwrap_or_default(),
            directory_verdicts: f.stats.made,
            kernel_filter_widened: f.widened().iter().map(|w| w.set).collect(),
            processes: s.processes.live + s.processes.exited,
            process_evictions: s.processes.evictions,
            cgroups: s.cgroups.entries,
            cgroups_unresolved: s.cgroups.unresolved,
            io_uring: s.completions,
        }
    }
}

/// Output runs on a thread of its own, so a consumer that stops reading (a paused terminal, a
/// full pipe) stalls only the output: signals are still handled, and records the kernel then
/// cannot queue are counted as drops.
struct Output {
    tx: tokio::sync::mpsc::Sender<(Vec<u8>, u64)>,
    written: Arc<AtomicU64>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Output {
    fn start(target: &OutputTarget) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<u8>, u64)>(4);
        let written = Arc::new(AtomicU64::new(0));
        let (done_tx, done) = std::sync::mpsc::channel();
        let w = written.clone();
        let router = match target {
            OutputTarget::Stdout => None,
            OutputTarget::Sinks(r) => Some(r.clone()),
        };
        std::thread::spawn(move || {
            // Locked only when written here: the stdout sink writes it otherwise.
            let mut stdout = router.is_none().then(|| std::io::stdout().lock());
            while let Some((batch, events)) = rx.blocking_recv() {
                match &router {
                    // The sinks' buffers take alerts without waiting for any receiver.
                    Some(r) => {
                        r.dispatch(&batch);
                    }
                    None => {
                        let out = stdout.as_mut().expect("locked without sinks");
                        if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
                            break;
                        }
                    }
                }
                w.fetch_add(events, Ordering::Relaxed);
            }
            let _ = done_tx.send(());
        });
        Self { tx, written, done }
    }
}

fn report(drops: &KernelDrops, c: &Counters, stage: String, e: &Enricher, f: &KernelFilter) -> String {
    let s = e.stats();
    let filtered = f.filtered().unwrap_or_default();
    let kinds: Vec<String> = filtered.per_kind().iter().map(|(k, n)| format!("{k}={n}")).collect();
    format!(
        "{drops}; events: {} read, {}; filtered in the kernel: {} ({}; {} directory verdicts); decode errors: {}; \
         process table: {} entries, {} evictions; cgroups: {} known, {} unresolved; io_uring results unknown: {}, \
         late: {}",
        c.events,
        stage,
        filtered.total(),
        if f.active() { kinds.join(", ") } else { "no filter in force".to_owned() },
        f.stats.made,
        c.decode_errors,
        s.processes.live + s.processes.exited,
        s.processes.evictions,
        s.cgroups.entries,
        s.cgroups.unresolved,
        s.completions.unanswered,
        s.completions.late
    )
}

/// What the loop keeps between records: the enricher (process table, cgroups), the kernel
/// filter it feeds with directory verdicts, the counters, and the batch of records the stage
/// produced that the output thread has not taken yet.
struct Pipeline {
    enricher: Enricher,
    filter: KernelFilter,
    counters: Counters,
    cx: FieldContext,
    batch: Vec<u8>,
    /// Records (lines) in `batch`.
    batch_records: u64,
}

impl Pipeline {
    /// Decodes and enriches one record and hands the event to the stage.
    fn handle(&mut self, bytes: &[u8], stage: &mut impl Stage) {
        match decode(bytes) {
            Ok(raw) => {
                let Some(ev) = self.enricher.enrich(&raw) else { return };
                if let (RawEvent::Open { ev: open, .. }, crate::event::Detail::Open(info)) =
                    (&raw, &ev.detail)
                {
                    self.filter.observe_open(open, &info.path);
                }
                self.emit(&ev, stage);
            }
            Err(e) => {
                if self.counters.decode_errors == 0 {
                    tracing::warn!("skipping malformed record: {e} (further ones are only counted)");
                }
                self.counters.decode_errors += 1;
            }
        }
    }

    fn emit(&mut self, ev: &Event, stage: &mut impl Stage) {
        self.counters.events += 1;
        self.counters.by_type[ev.evt_type.index()] += 1;
        self.batch_records += stage.on_event(ev, &self.cx, &mut self.batch);
    }

    /// Hands on the io_uring events whose completion did not come in time (all at shutdown).
    fn flush_unanswered(&mut self, stage: &mut impl Stage, all: bool) {
        let mut out = Vec::new();
        self.enricher.unanswered(Instant::now(), all, &mut out);
        for ev in &out {
            self.emit(ev, stage);
        }
    }

    fn report(&self, drops: &KernelDrops, stage: String) -> String {
        report(drops, &self.counters, stage, &self.enricher, &self.filter)
    }

    /// Puts a reloaded set in force: widen, let the old rules see everything the old filter
    /// let through, then install the new filter and swap, so no event either set needs is
    /// dismissed during the change. A kernel that refuses the new filter keeps the old set.
    fn reload(&mut self, reader: &mut Reader, stage: &mut impl Stage) -> Result<()> {
        let Some(next) = stage.reload().and_then(Reload::pending) else { return Ok(()) };
        let mut outcome = self.filter.widen();
        if outcome.is_ok() {
            reader.drain_ready(usize::MAX, &mut |b| self.handle(b, stage));
            if let Some(p) = &next {
                tracing::info!(filter = %p.describe(), "in-kernel filter recompiled");
            }
            outcome = self.filter.install(next);
        }
        let Some(reload) = stage.reload() else { return Ok(()) };
        match outcome {
            Ok(()) => reload.apply(),
            Err(e) => {
                reload.reject(&e);
                if let Err(e) = self.filter.install(stage.filter()) {
                    tracing::error!(
                        "cannot reinstall the in-kernel filter ({e:#}); every event reaches the daemon"
                    );
                }
            }
        }
        Ok(())
    }
}

/// An unchanged container view is rewritten this often, to show it is live.
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(10);

/// How often held-back output (alerts waiting for container metadata) is looked at.
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// Records handled per drain; bounds the batch handed to the output thread.
const DRAIN_BATCH: usize = 2048;
/// How long shutdown waits for the output to take what was read.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

pub async fn run(opts: &PipelineOptions, stage: &mut impl Stage) -> Result<()> {
    // Before anything is announced: a SIGTERM right after "sensors attached" (or READY=1) must
    // stop the daemon cleanly, not kill it.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sensor =
        Sensor::load(&SensorConfig { ring_bytes: opts.ring_bytes, filter_sets: opts.filter_sets })?;
    let drop_counters = sensor.take_drops()?;
    let mut filter = sensor.take_filter()?;
    let plan = stage.filter();
    if let Some(p) = &plan {
        tracing::info!(filter = %p.describe(), "in-kernel filter compiled from the rules");
    }
    if let Err(e) = filter.install(plan) {
        // Widened is safe: the rules see every event, at the cost of copying them all.
        tracing::error!("cannot install the in-kernel filter ({e:#}); every event reaches the daemon");
    }
    let mut reader = Reader::new(sensor.take_ring()?)?;
    let mut table = ProcessTable::new(opts.max_processes);
    table.seed_from_proc();
    let mut p = Pipeline {
        enricher: Enricher::new(table),
        filter,
        counters: Counters::default(),
        cx: FieldContext {
            containers: opts.containers.clone(),
            host_names: opts.host_names.clone(),
            ..FieldContext::default()
        },
        batch: Vec::with_capacity(256 * 1024),
        batch_records: 0,
    };
    tracing::info!(
        attachments = sensor.attached(),
        ring_buffer_bytes = opts.ring_bytes,
        processes = p.enricher.stats().processes.live,
        "sensors attached"
    );
    // systemd (Type=notify) learns the daemon is up only once the probes are attached and the
    // rules loaded (they are loaded before the pipeline starts).
    if let Err(e) = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("sensors attached"),
    ]) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
    let mut watchdog = crate::service::Watchdog::from_env();
    if let Some(t) = &opts.telemetry {
        t.health.set_attached();
    }

    let output = Output::start(&opts.output);
    p.batch_records = stage.started(&Progress { events: 0, drops: &drop_counters.read()? }, &mut p.batch);
    let mut upkeep = tokio::time::interval(Duration::from_secs(1));
    let mut last_report = Instant::now();
    let mut last_drops = KernelDrops::default();
    let mut resynced_at = 0u64;
    let mut snapshot = Snapshot::default();
    let mut reload_check = tokio::time::interval(FLUSH_INTERVAL);
    reload_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush_timer = tokio::time::interval(FLUSH_INTERVAL);
    flush_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => match stage.reload() {
                Some(r) => r.request(),
                None => tracing::info!("SIGHUP: nothing to reload"),
            },
            _ = reload_check.tick(), if p.batch.is_empty() => p.reload(&mut reader, stage)?,
            // A full batch waits for the output before more is read from the ring.
            permit = output.tx.reserve(), if !p.batch.is_empty() => match permit {
                Ok(permit) => {
                    permit.send((std::mem::replace(&mut p.batch, Vec::with_capacity(256 * 1024)), p.batch_records));
                    p.batch_records = 0;
                }
                Err(_) => {
                    tracing::info!("output closed; stopping");
                    break;
                }
            },
            r = reader.drain(DRAIN_BATCH, |b| p.handle(b, stage)), if p.batch.is_empty() => {
                r?;
            }
            _ = flush_timer.tick(), if p.batch.is_empty() => {
                p.flush_unanswered(stage, false);
                p.batch_records += stage.flush(&p.cx, &mut p.batch, false);
            }
            _ = upkeep.tick() => {
                let now = Instant::now();
                p.enricher.tick(now);
                let drops = drop_counters.read()?;
                p.batch_records += stage.tick(&Progress { events: p.counters.events, drops: &drops }, &mut p.batch);
                if let Err(e) = p.filter.refresh_identities() {
                    tracing::warn!("cannot update the in-kernel filter's file identities: {e:#}");
                }
                if let Some(t) = &opts.telemetry {
                    t.health.turned();
                    watchdog.ping_if_due(&t.health);
                    t.publish_pipeline(p.counters.metrics(&drops, &p.enricher, &p.filter));
                }
                if let (Some(dir), Some(state)) = (&p.cx.containers, &opts.state_dir) {
                    snapshot.refresh(dir, state, now);
                }
                if drops.lifecycle() > resynced_at {
                    resynced_at = drops.lifecycle();
                    let (added, retired) = p.enricher.processes.resync_from_proc(now);
                    tracing::warn!(added, retired, "process records were lost; process table resynced from /proc");
                }
                if last_report.elapsed() >= DROP_REPORT_INTERVAL && drops != last_drops {
                    last_report = now;
                    eprintln!("monitor: {}", p.report(&drops, stage.report(output.written.load(Ordering::Relaxed))));
                    last_drops = drops;
                }
            }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(t) = &opts.telemetry {
        t.health.set_stopping();
    }
    // Detach first, then hand what was read to the output, within a deadline; what does not
    // make it shows as the difference between events read and written.
    drop(sensor);
    let _ = tokio::time::timeout(Duration::from_millis(50), reader.drain(usize::MAX, |b| p.handle(b, stage)))
        .await;
    p.flush_unanswered(stage, true);
    p.batch_records += stage.flush(&p.cx, &mut p.batch, true);
    // The probes are detached: these are the final counts.
    let drops = drop_counters.read()?;
    p.batch_records += stage.stopping(&Progress { events: p.counters.events, drops: &drops }, &mut p.batch);
    if !p.batch.is_empty() {
        let batch = std::mem::take(&mut p.batch);
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, output.tx.send((batch, p.batch_records))).await;
    }
    drop(output.tx);
    let _ = output.done.recv_timeout(SHUTDOWN_FLUSH);
    eprintln!("monitor: {}", p.report(&drops, stage.report(output.written.load(Ordering::Relaxed))));
    Ok(())
}

/// The daemon's view of containers in its state directory, for `monitor containers`: rewritten
/// when it changed, and often enough that readers see it is live.
#[derive(Default)]
struct Snapshot {
    written: Option<(u64, Instant)>,
    failed: bool,
}

impl Snapshot {
    fn refresh(&mut self, dir: &crate::container::ContainerDirectory, state: &std::path::Path, now: Instant) {
        let generation = dir.generation();
        if self.written.is_some_and(|(g, at)| g == generation && at.elapsed() < SNAPSHOT_REFRESH) {
            return;
        }
        match crate::container::write_snapshot(dir, state) {
            Ok(()) => self.written = Some((generation, now)),
            Err(e) if !self.failed => {
                self.failed = true;
                tracing::warn!("cannot write the container view to {}: {e}", state.display());
            }
            Err(_) => {}
        }
    }
}
