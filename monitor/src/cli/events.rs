//! `monitor events`: the enriched event stream, for seeing what the sensors see.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

use crate::event::{Enricher, JsonRenderer};
use crate::process::ProcessTable;
use crate::sensor::{KernelDrops, Reader, Sensor, SensorConfig, decode::decode};

const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// One JSON object per line (Falco field names) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Ring buffer size in bytes (a power of two, at least 4096).
    #[arg(long, default_value_t = monitor_common::DEFAULT_RING_BYTES, env = "MONITOR_RING_BUFFER_BYTES")]
    pub ring_buffer_bytes: u32,
    /// Most processes the process table holds; beyond it, entries are evicted and counted.
    #[arg(long, default_value_t = crate::process::table_default_max(), env = "MONITOR_MAX_PROCESSES")]
    pub max_processes: usize,
}

#[derive(Default)]
struct Counters {
    events: u64,
    decode_errors: u64,
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
    fn start() -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<u8>, u64)>(4);
        let written = Arc::new(AtomicU64::new(0));
        let (done_tx, done) = std::sync::mpsc::channel();
        let w = written.clone();
        std::thread::spawn(move || {
            let mut stdout = std::io::stdout().lock();
            while let Some((batch, events)) = rx.blocking_recv() {
                if stdout.write_all(&batch).and_then(|()| stdout.flush()).is_err() {
                    break;
                }
                w.fetch_add(events, Ordering::Relaxed);
            }
            let _ = done_tx.send(());
        });
        Self { tx, written, done }
    }
}

fn report(drops: &KernelDrops, c: &Counters, written: u64, e: &Enricher) -> String {
    let s = e.stats();
    format!(
        "{drops}; events: {} read, {} written; decode errors: {}; process table: {} entries, {} evictions; \
         cgroups: {} known, {} unresolved",
        c.events,
        written,
        c.decode_errors,
        s.processes.live + s.processes.exited,
        s.processes.evictions,
        s.cgroups.entries,
        s.cgroups.unresolved
    )
}

/// Records handled per drain; bounds the batch handed to the output thread.
const DRAIN_BATCH: usize = 2048;
/// How long shutdown waits for the output to take what was read.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

pub async fn run(args: EventsArgs) -> Result<()> {
    let mut sensor = Sensor::load(&SensorConfig { ring_bytes: args.ring_buffer_bytes })?;
    let drop_counters = sensor.take_drops()?;
    let mut reader = Reader::new(sensor.take_ring()?)?;
    let mut table = ProcessTable::new(args.max_processes);
    table.seed_from_proc();
    let mut enricher = Enricher::new(table);
    tracing::info!(
        attachments = sensor.attached(),
        ring_buffer_bytes = args.ring_buffer_bytes,
        processes = enricher.stats().processes.live,
        "sensors attached"
    );

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let output = Output::start();
    let mut batch: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut batch_events = 0u64;
    let mut counters = Counters::default();
    let mut upkeep = tokio::time::interval(Duration::from_secs(1));
    let mut last_report = Instant::now();
    let mut last_drops = KernelDrops::default();
    let mut resynced_at = 0u64;
    let json = args.json;

    let mut renderer = JsonRenderer::default();
    let mut handle =
        |bytes: &[u8], counters: &mut Counters, enricher: &mut Enricher, out: &mut Vec<u8>| -> bool {
            match decode(bytes) {
                Ok(raw) => {
                    let Some(ev) = enricher.enrich(&raw) else { return false };
                    counters.events += 1;
                    // Writing into a Vec cannot fail.
                    let _ = if json {
                        renderer.write(&ev, &mut *out).and_then(|()| out.write_all(b"\n"))
                    } else {
                        writeln!(out, "{}", ev.to_text())
                    };
                    true
                }
                Err(e) => {
                    if counters.decode_errors == 0 {
                        tracing::warn!("skipping malformed record: {e} (further ones are only counted)");
                    }
                    counters.decode_errors += 1;
                    false
                }
            }
        };

    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            // A full batch waits for the output before more is read from the ring.
            permit = output.tx.reserve(), if batch_events > 0 => match permit {
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
                if handle(b, &mut counters, &mut enricher, &mut batch) {
                    batch_events += 1;
                }
            }), if batch_events == 0 => {
                r?;
            }
            _ = upkeep.tick() => {
                let now = Instant::now();
                enricher.tick(now);
                let drops = drop_counters.read()?;
                if drops.lifecycle() > resynced_at {
                    resynced_at = drops.lifecycle();
                    let (added, retired) = enricher.processes.resync_from_proc(now);
                    tracing::warn!(added, retired, "process records were lost; process table resynced from /proc");
                }
                if last_report.elapsed() >= DROP_REPORT_INTERVAL && drops != last_drops {
                    last_report = now;
                    eprintln!("monitor: {}", report(&drops, &counters, output.written.load(Ordering::Relaxed), &enricher));
                    last_drops = drops;
                }
            }
        }
    }
    // Detach first, then hand what was read to the output, within a deadline; what does not
    // make it shows as the difference between events read and written.
    drop(sensor);
    let _ = tokio::time::timeout(
        Duration::from_millis(50),
        reader.drain(usize::MAX, |b| {
            if handle(b, &mut counters, &mut enricher, &mut batch) {
                batch_events += 1;
            }
        }),
    )
    .await;
    if batch_events > 0 {
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, output.tx.send((batch, batch_events))).await;
    }
    drop(output.tx);
    let _ = output.done.recv_timeout(SHUTDOWN_FLUSH);
    eprintln!(
        "monitor: {}",
        report(&drop_counters.read()?, &counters, output.written.load(Ordering::Relaxed), &enricher)
    );
    Ok(())
}
