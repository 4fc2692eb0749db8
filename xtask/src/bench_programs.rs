//! What each kernel program costs per run: `monitor run` with the bundled rules attached while
//! the syscall workloads run once, with the kernel's BPF run-time statistics on (they cost a
//! clock read per run, so this part is not timed with the others), then every program of the
//! daemon's with its runs and nanoseconds per run.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::bench::{self, BenchArgs};

/// The ids of the BPF programs process `pid` holds, from its fds' fdinfo.
fn program_ids(pid: u32) -> Vec<u32> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return Vec::new() };
    fds.filter_map(|fd| std::fs::read_to_string(fd.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines().find_map(|l| l.strip_prefix("prog_id:").and_then(|v| v.trim().parse().ok()))
        })
        .collect()
}

pub fn run(bin: &Path, args: &BenchArgs) -> Result<()> {
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("enabling the kernel's BPF run-time statistics (BPF_ENABLE_STATS)")?;
    let daemon = bench::start_daemon(
        bin,
        &["run", "--config", "/dev/null", "--rules", "bundled"],
        Path::new("/dev/null"),
    )?;
    let ids = program_ids(daemon.pid());
    for w in crate::bench_syscalls::workloads(args.scale) {
        (w.run)(w.iterations);
    }
    bench::settle(daemon.pid());
    let mut rows: Vec<(String, u64, f64)> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| ids.contains(&p.id()))
        .map(|p| {
            let runs = p.run_count();
            let ns = p.run_time().as_nanos() as f64;
            (p.name_as_str().unwrap_or("?").to_owned(), runs, if runs == 0 { 0.0 } else { ns / runs as f64 })
        })
        .collect();
    bench::stop_daemon(daemon)?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    println!();
    println!(
        "kernel programs under `monitor run` (bundled rules), the syscall workloads run once with \
         BPF statistics on:"
    );
    println!("{:<18} {:>14} {:>12} {:>14}", "program", "runs", "ns per run", "total ms");
    for (name, runs, per_run) in rows {
        println!("{name:<18} {runs:>14} {per_run:>12.0} {:>14.1}", per_run * runs as f64 / 1e6);
    }
    println!("(names are cut at 15 characters by the kernel)");
    Ok(())
}
