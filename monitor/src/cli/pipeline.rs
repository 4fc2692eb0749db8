//! The daemon's main loop, shared by `monitor events` and `monitor run`: load the sensors, read
//! the ring buffer, enrich, hand each event to a stage that renders what it produces (events or
//! alerts), and write that from a thread of its own.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

use crate::event::{Enricher, Event, FieldContext};
use crate::process::ProcessTable;
use crate::rules::Prefilter;
use crate::rules::{EVENT_TYPES, TypeSet};
use crate::sensor::filter::KernelFilter;
use crate::sensor::{KernelDrops, RawEvent, Reader, Sensor, SensorConfig, decode::decode};

const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

pub struct PipelineOptions {
    pub ring_bytes: u32,
    pub filter_sets: crate::rules::prefilter::SetSizes,
    pub max_processes: usize,
    /// Container metadata from the runtimes, for stages that render it.
    pub containers: Option<crate::container::ContainerDirectory>,
    /// Where the daemon's view of containers is written for `monitor containers`.
    pub state_dir: Option<std::path::PathBuf>,
    /// Where the stage's records go.
    pub output: OutputTarget,
    /// Health and metrics, published about once a second.
    pub telemetry: Option<Arc<crate::service::Telemetry>>,
}

/// How far the pipeline has got, for the stage's periodic work.
pub struct Progress<'a> {
    pub events: u64,
    pub drops: &'a KernelDrops,
}

pub enum OutputTarget {
    /// Written to stdout as they are (events).
    Stdout,
    /// Alerts, one JSON object per line, handed to the sinks.
    Sinks(Arc<crate::output::Router>),
}

/// What the pipeline does with each enriched event.
pub trait Stage {
    /// Appends what `ev` produces to `out` and returns how many records (lines) that is.
    fn on_event(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64;
    /// This stage's part of the periodic report, given how many of its records were written.
    fn report(&self, written: u64) -> String;
    /// Called once the probes are attached, before any event.
    fn started(&mut self, _progress: &Progress, _out: &mut Vec<u8>) -> u64 {
        0
    }
    /// Called about once a second; returns the records it wrote.
    fn tick(&mut self, _progress: &Progress, _out: &mut Vec<u8>) -> u64 {
        0
    }
    /// Called at shutdown, after the last events were handled.
    fn stopping(&mut self, _progress: &Progress, _out: &mut Vec<u8>) -> u64 {
        0
    }
    /// SIGHUP.
    fn reload(&mut self) {
        tracing::info!("SIGHUP: nothing to reload");
    }
    /// What the kernel may dismiss for the rules in force; None: every event is wanted.
    fn prefilter(&self) -> Option<Arc<Prefilter>> {
        None
    }
    /// When a reloaded set waits to be put in force, the kernel filter it needs (then the
    /// pipeline widens the kernel's filter, drains the ring, installs the new filter, and calls
    /// `apply_reload`, or `reject_reload` when the kernel refused the filter).
    fn reload_pending(&mut self) -> Option<Option<Arc<Prefilter>>> {
        None
    }
    /// Puts the pending set in force, between two events.
    fn apply_reload(&mut self) {}
    /// Drops the pending set: the set in force stays.
    fn reject_reload(&mut self, _why: &anyhow::Error) {}
    /// Whether the stage holds output back (then `flush` is called every few milliseconds).
    fn holds_back(&self) -> bool {
        false
    }
    /// Called every few milliseconds and at shutdown (`all`): output the stage held back.
    fn flush(&mut self, _cx: &FieldContext, _out: &mut Vec<u8>, _all: bool) -> u64 {
        0
    }
}

#[derive(Default)]
struct Counters {
    events: u64,
    /// Per index into EVENT_TYPES; the last slot counts types no rule knows.
    by_type: [u64; EVENT_TYPES.len() + 1],
    decode_errors: u64,
}

impl Counters {
    fn metrics(
        &self,
        drops: &KernelDrops,
        e: &Enricher,
        f: &KernelFilter,
    ) -> crate::service::PipelineMetrics {
        let s = e.stats();
        let names = EVENT_TYPES.iter().copied().chain(std::iter::once("other"));
        crate::service::PipelineMetrics {
            events: names.zip(self.by_type).collect(),
            decode_errors: self.decode_errors,
            kernel_drops: drops.clone(),
            kernel_filtered: f.filtered().unwrap_or_default(),
            directory_verdicts: f.stats.made,
            kernel_filter_widened: f.widened().iter().map(|w| w.set).collect(),
            processes: s.processes.live + s.processes.exited,
            process_evictions: s.processes.evictions,
            cgroups: s.cgroups.entries,
            cgroups_unresolved: s.cgroups.unresolved,
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
    let kinds: Vec<String> = filtered.per_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
    format!(
        "{drops}; events: {} read, {}; filtered in the kernel: {} ({}; {} directory verdicts); decode errors: {}; \
         process table: {} entries, {} evictions; cgroups: {} known, {} unresolved",
        c.events,
        stage,
        filtered.total(),
        if f.active() { kinds.join(", ") } else { "no filter in force".to_owned() },
        f.stats.made,
        c.decode_errors,
        s.processes.live + s.processes.exited,
        s.processes.evictions,
        s.cgroups.entries,
        s.cgroups.unresolved
    )
}

/// Decodes and enriches one record and hands the event to the stage; returns the records the
/// stage wrote.
#[allow(clippy::too_many_arguments)]
fn handle(
    bytes: &[u8],
    counters: &mut Counters,
    enricher: &mut Enricher,
    filter: &mut KernelFilter,
    stage: &mut impl Stage,
    cx: &FieldContext,
    out: &mut Vec<u8>,
) -> u64 {
    match decode(bytes) {
        Ok(raw) => {
            let Some(ev) = enricher.enrich(&raw) else { return 0 };
            if let (RawEvent::Open { ev: open, .. }, crate::event::Detail::Open(info)) = (&raw, &ev.detail) {
                filter.observe_open(open, &info.path);
            }
            counters.events += 1;
            counters.by_type[TypeSet::index_of(ev.evt_type).unwrap_or(EVENT_TYPES.len())] += 1;
            stage.on_event(&ev, cx, out)
        }
        Err(e) => {
            if counters.decode_errors == 0 {
                tracing::warn!("skipping malformed record: {e} (further ones are only counted)");
            }
            counters.decode_errors += 1;
            0
        }
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
    let prefilter = stage.prefilter();
    if let Some(p) = &prefilter {
        tracing::info!(filter = %p.describe(), "in-kernel filter compiled from the rules");
    }
    if let Err(e) = filter.install(prefilter) {
        // Widened is safe: the rules see every event, at the cost of copying them all.
        tracing::error!("cannot install the in-kernel filter ({e:#}); every event reaches the daemon");
    }
    let mut reader = Reader::new(sensor.take_ring()?)?;
    let mut table = ProcessTable::new(opts.max_processes);
    table.seed_from_proc();
    let mut enricher = Enricher::new(table);
    tracing::info!(
        attachments = sensor.attached(),
        ring_buffer_bytes = opts.ring_bytes,
        processes = enricher.stats().processes.live,
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
    let mut batch: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut counters = Counters::default();
    let mut batch_events = stage.started(&Progress { events: 0, drops: &drop_counters.read()? }, &mut batch);
    let mut upkeep = tokio::time::interval(Duration::from_secs(1));
    let mut last_report = Instant::now();
    let mut last_drops = KernelDrops::default();
    let mut resynced_at = 0u64;
    let mut snapshot_failed = false;
    let mut snapshot_at: Option<(u64, Instant)> = None;
    let cx = FieldContext { containers: opts.containers.clone(), ..FieldContext::default() };
    let holds_back = stage.holds_back();
    let mut reload_check = tokio::time::interval(FLUSH_INTERVAL);
    reload_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush_timer = tokio::time::interval(FLUSH_INTERVAL);
    flush_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => stage.reload(),
            _ = reload_check.tick(), if batch.is_empty() => {
                if let Some(next) = stage.reload_pending() {
                    // Widen, let the old rules see everything the old filter let through, then
                    // install the new filter and swap: no event either set needs is dismissed
                    // during the change. A kernel that refuses the new filter keeps the old set.
                    let mut outcome = filter.widen();
                    if outcome.is_ok() {
                        reader.drain_ready(usize::MAX, &mut |b| {
                            batch_events += handle(b, &mut counters, &mut enricher, &mut filter, stage, &cx, &mut batch);
                        });
                        if let Some(p) = &next {
                            tracing::info!(filter = %p.describe(), "in-kernel filter recompiled");
                        }
                        outcome = filter.install(next);
                    }
                    match outcome {
                        Ok(()) => stage.apply_reload(),
                        Err(e) => {
                            stage.reject_reload(&e);
                            if let Err(e) = filter.install(stage.prefilter()) {
                                tracing::error!("cannot reinstall the in-kernel filter ({e:#}); every event reaches the daemon");
                            }
                        }
                    }
                }
            }
            // A full batch waits for the output before more is read from the ring.
            permit = output.tx.reserve(), if !batch.is_empty() => match permit {
                Ok(p) => {
                    p.send((std::mem::replace(&mut batch, Vec::with_capacity(256 * 1024)), batch_events));
                    batch_events = 0;
                }
                Err(_) => {
                    tracing::info!("output closed; stopping");
                    break;
                }
            },
            r = reader.drain(DRAIN_BATCH, |b| {
                batch_events += handle(b, &mut counters, &mut enricher, &mut filter, stage, &cx, &mut batch);
            }), if batch.is_empty() => {
                r?;
            }
            _ = flush_timer.tick(), if holds_back && batch.is_empty() => {
                batch_events += stage.flush(&cx, &mut batch, false);
            }
            _ = upkeep.tick() => {
                let now = Instant::now();
                enricher.tick(now);
                let drops = drop_counters.read()?;
                batch_events += stage.tick(&Progress { events: counters.events, drops: &drops }, &mut batch);
                if let Err(e) = filter.refresh_identities() {
                    tracing::warn!("cannot update the in-kernel filter's file identities: {e:#}");
                }
                if let Some(t) = &opts.telemetry {
                    t.health.turned();
                    watchdog.ping_if_due(&t.health);
                    t.publish_pipeline(counters.metrics(&drops, &enricher, &filter));
                }
                // Rewritten when the view changed, and often enough that readers see it is live.
                if let (Some(dir), Some(state)) = (&cx.containers, &opts.state_dir)
                    && (snapshot_at.is_none_or(|(g, at): (u64, Instant)| {
                        g != dir.generation() || at.elapsed() >= SNAPSHOT_REFRESH
                    }))
                {
                    let generation = dir.generation();
                    match super::containers::write_snapshot(dir, state) {
                        Ok(()) => snapshot_at = Some((generation, now)),
                        Err(e) if !snapshot_failed => {
                            snapshot_failed = true;
                            tracing::warn!("cannot write the container view to {}: {e}", state.display());
                        }
                        Err(_) => {}
                    }
                }
                if drops.lifecycle() > resynced_at {
                    resynced_at = drops.lifecycle();
                    let (added, retired) = enricher.processes.resync_from_proc(now);
                    tracing::warn!(added, retired, "process records were lost; process table resynced from /proc");
                }
                if last_report.elapsed() >= DROP_REPORT_INTERVAL && drops != last_drops {
                    last_report = now;
                    eprintln!("monitor: {}", report(&drops, &counters, stage.report(output.written.load(Ordering::Relaxed)), &enricher, &filter));
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
    let _ = tokio::time::timeout(
        Duration::from_millis(50),
        reader.drain(usize::MAX, |b| {
            batch_events += handle(b, &mut counters, &mut enricher, &mut filter, stage, &cx, &mut batch);
        }),
    )
    .await;
    batch_events += stage.flush(&cx, &mut batch, true);
    // The probes are detached: these are the final counts.
    let drops = drop_counters.read()?;
    batch_events += stage.stopping(&Progress { events: counters.events, drops: &drops }, &mut batch);
    if !batch.is_empty() {
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, output.tx.send((batch, batch_events))).await;
    }
    drop(output.tx);
    let _ = output.done.recv_timeout(SHUTDOWN_FLUSH);
    eprintln!(
        "monitor: {}",
        report(&drops, &counters, stage.report(output.written.load(Ordering::Relaxed)), &enricher, &filter)
    );
    Ok(())
}
