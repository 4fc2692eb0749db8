//! The highest sustained event rate with no kernel drop: open+close paced at a target rate by two
//! threads (one per core) for a few seconds, under a fresh daemon per step, whose final report
//! gives the events it read and the records the kernel dropped. Two series: `monitor events`
//! (unfiltered, every open delivered) on /etc/hostname, and `monitor run` with the bundled rules
//! on /etc/shadow, a file the rules want to see (so the in-kernel filters let the opens through;
//! they raise rate-limited "sensitive file read" alerts, to /dev/null).

use std::ffi::CStr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::bench;

const RATES: [u64; 6] = [25_000, 50_000, 100_000, 200_000, 400_000, 800_000];
const THREADS: u64 = 2;

struct Step {
    target: u64,
    achieved: f64,
    opens: u64,
    report: bench::DaemonReport,
    cpu_ns: u64,
    wall: Duration,
}

/// Opens and closes `path` at `rate` per second in total, over `THREADS` threads, for `duration`;
/// returns the opens done and the time they took.
fn paced_opens(path: &'static CStr, rate: u64, duration: Duration) -> (u64, Duration) {
    let per_thread = rate as f64 / THREADS as f64;
    // About one sleep per millisecond of work.
    let batch = ((per_thread / 1_000.0) as usize).max(1);
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut done = 0u64;
                while start.elapsed() < duration {
                    crate::bench_syscalls::open_close_path(path, batch);
                    done += batch as u64;
                    let due = start + Duration::from_secs_f64(done as f64 / per_thread);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                done
            })
        })
        .collect();
    let done = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    (done, start.elapsed())
}

pub fn run(bin: &Path, scale: f64) -> Result<()> {
    let duration = Duration::from_secs_f64((3.0 * scale).max(0.5));
    let series: [(&str, &[&str], &'static CStr); 2] = [
        ("monitor events --json, opens of /etc/hostname", &["events", "--json"], c"/etc/hostname"),
        (
            "monitor run (bundled rules), opens of /etc/shadow",
            &["run", "--config", "/dev/null", "--rules", "bundled"],
            c"/etc/shadow",
        ),
    ];
    let mut results = Vec::new();
    for (label, args, path) in series {
        let mut rows = Vec::new();
        for rate in RATES {
            eprintln!("xtask bench: sweep: {label}: {rate}/s");
            let d = bench::start_daemon(bin, args, Path::new("/dev/null"))?;
            let pid = d.pid();
            let cpu0 = bench::proc_cpu_ns(pid);
            let t0 = Instant::now();
            let (opens, took) = paced_opens(path, rate, duration);
            bench::settle(pid);
            let cpu = bench::proc_cpu_ns(pid).saturating_sub(cpu0);
            let wall = t0.elapsed();
            let report = bench::stop_daemon(d)?;
            rows.push(Step {
                target: rate,
                achieved: opens as f64 / took.as_secs_f64(),
                opens,
                report,
                cpu_ns: cpu,
                wall,
            });
        }
        results.push((label, rows));
    }
    println!();
    println!(
        "sustained rate: open+close paced by {THREADS} threads for {:.1} s per step, a fresh daemon per step",
        duration.as_secs_f64()
    );
    println!("(events read and drops from the daemon's final report; they include other processes' events)");
    for (label, rows) in &results {
        println!();
        println!("{label}");
        println!(
            "{:>10} {:>12} {:>10} {:>12} {:>13} {:>12} {:>18}",
            "target/s",
            "achieved/s",
            "opens",
            "events read",
            "kernel drops",
            "daemon CPU",
            "CPU ms/10k events"
        );
        for Step { target: rate, achieved, opens, report, cpu_ns: cpu, wall } in rows {
            let short =
                if *achieved < 0.9 * *rate as f64 { "  (the load fell short of the target)" } else { "" };
            println!(
                "{:>10} {:>12.0} {:>10} {:>12} {:>13} {:>11.1}% {:>18.2}{short}",
                rate,
                achieved,
                opens,
                report.events,
                report.drops,
                100.0 * *cpu as f64 / wall.as_nanos().max(1) as f64,
                *cpu as f64 / 1e6 / report.events.max(1) as f64 * 10_000.0,
            );
        }
        // The steps up to the first that dropped anything, and the highest rate among them.
        let clean = rows.iter().take_while(|s| s.report.drops == 0).count();
        let best = rows[..clean].iter().max_by(|a, b| a.achieved.total_cmp(&b.achieved));
        match best {
            None => println!("highest rate with 0 drops: none (the lowest step already dropped)"),
            Some(Step { target: rate, achieved, .. }) if clean == rows.len() => println!(
                "highest rate with 0 drops: {achieved:.0}/s (target {rate}/s); no step dropped anything{}",
                if *achieved < 0.9 * *rate as f64 {
                    ": the paced loop, sharing the cores with the daemon, could go no faster"
                } else {
                    ""
                }
            ),
            Some(Step { target: rate, achieved, .. }) => println!(
                "highest rate with 0 drops: {achieved:.0}/s (target {rate}/s); drops from the {}/s step on",
                rows[clean].target
            ),
        }
    }
    Ok(())
}
