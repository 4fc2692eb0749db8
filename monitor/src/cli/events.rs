//! `monitor events`: the enriched event stream, for seeing what the sensors see.

use std::io::Write as _;
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
    write_errors: u64,
}

fn report(drops: &KernelDrops, c: &Counters, e: &Enricher) -> String {
    let s = e.stats();
    format!(
        "{drops}; events: {}; decode errors: {}; process table: {} entries, {} evictions",
        c.events, c.decode_errors, s.processes.live + s.processes.exited, s.processes.evictions
    )
}

pub async fn run(args: EventsArgs) -> Result<()> {
    let mut sensor = Sensor::load(&SensorConfig { ring_bytes: args.ring_buffer_bytes })?;
    let drop_counters = sensor.take_drops()?;
    let mut reader = Reader::new(sensor.take_ring()?)?;
    let mut table = ProcessTable::new(args.max_processes);
    table.seed_from_proc();
    let mut enricher = Enricher::new(table);
    tracing::info!(
        programs = sensor.attached(),
        ring_buffer_bytes = args.ring_buffer_bytes,
        processes = enricher.stats().processes.live,
        "sensors attached"
    );

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut counters = Counters::default();
    let mut upkeep = tokio::time::interval(Duration::from_secs(1));
    let mut last_report = Instant::now();
    let mut last_drops = KernelDrops::default();
    let json = args.json;

    let mut renderer = JsonRenderer::default();
    let mut handle = |bytes: &[u8], counters: &mut Counters, enricher: &mut Enricher, out: &mut dyn std::io::Write| {
        match decode(bytes) {
            Ok(raw) => {
                counters.events += 1;
                let ev = enricher.enrich(&raw);
                let written = if json {
                    renderer.write(&ev, &mut *out).and_then(|()| out.write_all(b"\n"))
                } else {
                    writeln!(out, "{}", ev.to_text())
                };
                if written.is_err() {
                    counters.write_errors += 1;
                }
            }
            Err(e) => {
                if counters.decode_errors == 0 {
                    tracing::warn!("skipping malformed record: {e} (further ones are only counted)");
                }
                counters.decode_errors += 1;
            }
        }
    };

    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            r = reader.drain(|b| handle(b, &mut counters, &mut enricher, &mut out)) => {
                r?;
                if out.flush().is_err() {
                    counters.write_errors += 1;
                }
                if counters.write_errors > 0 {
                    tracing::info!("output closed; stopping");
                    break;
                }
            }
            _ = upkeep.tick() => {
                enricher.tick(Instant::now());
                if last_report.elapsed() >= DROP_REPORT_INTERVAL {
                    last_report = Instant::now();
                    let drops = drop_counters.read()?;
                    if drops != last_drops {
                        eprintln!("monitor: {}", report(&drops, &counters, &enricher));
                        last_drops = drops;
                    }
                }
            }
        }
    }
    // What is already in the ring still goes out.
    if counters.write_errors == 0 {
        let mut ring = reader;
        let _ = tokio::time::timeout(Duration::from_millis(50), ring.drain(|b| handle(b, &mut counters, &mut enricher, &mut out))).await;
        let _ = out.flush();
    }
    drop(sensor);
    eprintln!("monitor: {}", report(&drop_counters.read()?, &counters, &enricher));
    Ok(())
}
