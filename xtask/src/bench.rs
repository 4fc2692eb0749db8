//! `cargo xtask bench`: what the monitor costs the host, side by side with no monitor and with a
//! naive bpftrace script, and where its limits are. No thresholds and no assertions: the figures
//! are for people to read and compare. The parts, in the order they run:
//!
//! - `syscalls` (bench_syscalls.rs): syscall loops under each configuration, alternating, with
//!   medians and the spread of the per-round ratios;
//! - `programs` (bench_programs.rs): each kernel program's runs and nanoseconds per run over the
//!   same loops, from the kernel's BPF statistics;
//! - `sweep` (bench_sweep.rs): the highest paced event rate the daemon takes with no kernel drop;
//! - `rules`: the rule engine on recorded events (`monitor replay`) with no rules, the bundled
//!   rules and Falco's stock rules;
//! - `rule-count`: the engine's cost per event with 10, 100 and 1,000 generated rules, of the
//!   events' own types or mostly of another type;
//! - `sinks` (bench_sinks.rs): alert delivery through each sink to a real receiver.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

const PARTS: [&str; 6] = ["syscalls", "programs", "sweep", "rules", "rule-count", "sinks"];

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Rounds: in each, every configuration runs all syscall workloads once, in an order that
    /// rotates from round to round; the ruleset and sink benchmarks repeat this many times too.
    /// Medians are reported, with the min..max of the per-round ratios beside them.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Scale the iteration counts and the sweep's step duration (1.0 = defaults; at 1.0 with 5
    /// rounds the syscall part takes about three minutes on two cores).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Configurations compared with no monitor in the syscall part, comma-separated: `run`
    /// (`monitor run --config /dev/null --rules bundled`, alerts to /dev/null), `events`
    /// (`monitor events --json`, every event to /dev/null) and `bpftrace` (a naive bpftrace
    /// script on the same tracepoints printing one line per event, to a file on tmpfs where its lines
    /// and lost events are counted; installed with apt-get when missing, and its column skipped,
    /// loudly, when that fails).
    /// `run-unfiltered` is `monitor run` with `kernel_filter: false`, to show what the in-kernel
    /// filter saves; `run-falco` is `monitor run` with Falco's three stock rules files (from
    /// ../shared/falco), the cost of a Falco user's setup.
    #[arg(long, default_value = "run,run-unfiltered,run-falco,events,bpftrace", value_delimiter = ',')]
    pub configs: Vec<String>,
    /// Run only these parts, comma-separated: `syscalls`, `programs` (each kernel program's cost
    /// per run, from the kernel's BPF statistics), `sweep` (highest event rate with no
    /// kernel drop, for `monitor events` on /etc/hostname opens and `monitor run` on /etc/shadow
    /// opens), `rules` (rulesets on recorded events), `rule-count` (10, 100 and 1,000 generated
    /// rules) and `sinks` (`rules` records events afresh; `rule-count` and `sinks` reuse the
    /// recording of an earlier run when there is one). Default: all of them, in that order.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

pub fn run(bin: &Path, args: &BenchArgs) -> Result<()> {
    if !crate::is_root() {
        bail!(
            "the benchmark attaches the daemon's kernel programs and needs root: `sudo -E cargo xtask bench`"
        );
    }
    for part in &args.only {
        if !PARTS.contains(&part.as_str()) {
            bail!("--only takes {}, not `{part}`", PARTS.join(", "));
        }
    }
    for c in &args.configs {
        if !crate::bench_syscalls::config_names().any(|n| n == c) {
            let names: Vec<&str> = crate::bench_syscalls::config_names().collect();
            bail!("--configs takes {}, not `{c}`", names.join(", "));
        }
    }
    let wanted = |part: &str| args.only.is_empty() || args.only.iter().any(|p| p == part);
    if wanted("syscalls") {
        crate::bench_syscalls::run(bin, args)?;
    }
    if wanted("programs") {
        crate::bench_programs::run(bin, args)?;
    }
    if wanted("sweep") {
        crate::bench_sweep::run(bin, args.scale)?;
    }
    let events = crate::bench_sinks::recorded_events();
    if wanted("rules") {
        // A fresh recording, so the engine sees this build's events.
        record_events(bin, &events)?;
        rules_bench(bin, args, &events)?;
    }
    if wanted("rule-count") {
        if !events.exists() {
            record_events(bin, &events)?;
        }
        rule_count_bench(bin, args, &events)?;
    }
    if wanted("sinks") {
        if !events.exists() {
            record_events(bin, &events)?;
        }
        crate::bench_sinks::run(bin, &events, args.rounds.max(1), args.scale)?;
    }
    Ok(())
}

pub fn bench_dir() -> Result<PathBuf> {
    let dir = crate::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A daemon (or bpftrace) attached for a measurement, its stderr collected by a thread.
pub struct Daemon {
    pub child: Child,
    pub stderr: std::thread::JoinHandle<Vec<String>>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// What a daemon said in its final report on stderr.
#[derive(Clone, Copy, Default)]
pub struct DaemonReport {
    pub drops: u64,
    pub events: u64,
}

/// Starts `bin args`, stdout to `stdout`, and waits until it says its sensors are attached.
pub fn start_daemon(bin: &Path, args: &[&str], stdout: &Path) -> Result<Daemon> {
    let mut child = Command::new(bin)
        .args(args)
        .env("MONITOR_LOG_FORMAT", "text")
        .stdout(Stdio::from(std::fs::File::create(stdout)?))
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("sensors attached") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        let lines = reader.join().unwrap_or_default();
        bail!("the daemon ({}) did not attach its sensors:\n{}", args.join(" "), lines.join("\n"));
    }
    Ok(Daemon { child, stderr: reader })
}

/// Stops the daemon with SIGTERM and returns kernel drops and events read from its final report
/// (`kernel drops: N total, ...; events: N read, ...`).
pub fn stop_daemon(d: Daemon) -> Result<DaemonReport> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    let mut child = d.child;
    child.wait()?;
    let lines = d.stderr.join().unwrap_or_default();
    let Some(report) = lines.iter().rev().find(|l| l.contains("kernel drops:")) else {
        bail!("the daemon printed no final report:\n{}", lines.join("\n"));
    };
    let number_after = |key: &str| -> u64 {
        report
            .split(key)
            .nth(1)
            .and_then(|r| r.trim_start().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(DaemonReport { drops: number_after("kernel drops:"), events: number_after("events:") })
}

/// User plus system CPU time of a process, all its threads.
pub fn proc_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// Peak resident set (VmHWM) of a process.
pub fn proc_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until a reader has caught up with what the workload produced: until its CPU time stops
/// growing (less than 2 ms in 100 ms), at most 5 s.
pub fn settle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = proc_cpu_ns(pid);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = proc_cpu_ns(pid);
        if now.saturating_sub(last) < 2_000_000 {
            return;
        }
        last = now;
    }
}

/// The middle value; the mean of the two middle ones for an even count.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `1.23x [1.10..1.40]`: the median of per-round ratios and their range.
pub fn ratio_with_spread(ratios: &[f64]) -> String {
    if ratios.is_empty() {
        return "-".to_owned();
    }
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.2}x [{min:.2}..{max:.2}]", median(ratios))
}

/// Falco's stock rules beside the project, if present.
pub fn falco_rules() -> Option<Vec<PathBuf>> {
    let dirs = [crate::workspace_root().join("../shared/falco"), PathBuf::from("/work/shared/falco")];
    let dir = dirs.into_iter().find(|d| d.join("falco_rules.yaml").is_file())?;
    Some(
        ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]
            .iter()
            .map(|f| dir.join(f))
            .collect(),
    )
}

/// Events of a mixed workload recorded with `monitor events --json`, for the engine benchmarks.
fn record_events(bin: &Path, out: &Path) -> Result<()> {
    use crate::bench_syscalls::{fork_exec, open_close, open_missing, tcp_connect, udp_sendto};
    bench_dir()?;
    let d = start_daemon(bin, &["events", "--json"], out)?;
    for _ in 0..3 {
        open_close(2_000);
        open_missing(500);
        fork_exec(50);
        tcp_connect(100);
        udp_sendto(200);
        let _ = Command::new("sh")
            .args(["-c", "cat /etc/hostname | tr a-z A-Z | wc -l; id; ls /etc > /dev/null; uname -a"])
            .stdout(Stdio::null())
            .status();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop_daemon(d)?;
    Ok(())
}

/// (events/s, rule evaluations/s, alerts) of `monitor replay` over the recording.
fn replay_rate(bin: &Path, events: &Path, rules: &[&Path], repeat: u32) -> Result<(f64, f64, u64)> {
    let mut cmd = Command::new(bin);
    cmd.arg("replay").arg(events).args(["--config", "/dev/null", "--repeat", &repeat.to_string()]);
    for r in rules {
        cmd.arg("--rules").arg(r);
    }
    let out = cmd.env("MONITOR_LOG_FORMAT", "text").stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("monitor replay failed:\n{stderr}");
    }
    let line = stderr.lines().find(|l| l.contains("rule evaluations/s")).context("no replay summary")?;
    let before = |key: &str| -> f64 {
        line.split(key)
            .next()
            .and_then(|h| h.rsplit(|c: char| !(c.is_ascii_digit() || c == '.')).find(|s| !s.is_empty()))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    };
    let alerts = line
        .split("alerts: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok((before(" events/s"), before(" rule evaluations/s"), alerts))
}

/// How many times to replay the recording for about `200_000 * scale` events.
fn replay_repeat(events: &Path, scale: f64) -> Result<(usize, u32)> {
    let n = std::fs::read_to_string(events)?.lines().count();
    Ok((n, ((200_000.0 * scale) as usize / n.max(1)).max(1) as u32))
}

fn empty_rules() -> Result<PathBuf> {
    let empty = bench_dir()?.join("empty_rules.yaml");
    std::fs::write(&empty, "[]\n")?;
    Ok(empty)
}

/// Rule evaluation throughput on recorded events: an empty ruleset (the replay's own cost, the
/// baseline), the bundled rules, and Falco's stock rules, in one run.
fn rules_bench(bin: &Path, args: &BenchArgs, events: &Path) -> Result<()> {
    let (n, repeat) = replay_repeat(events, args.scale)?;
    let empty = empty_rules()?;
    let bundled = Path::new("bundled");
    let mut sets: Vec<(String, Vec<&Path>)> =
        vec![("no rules (baseline)".into(), vec![&empty]), ("bundled rules".into(), vec![bundled])];
    let falco = falco_rules();
    if let Some(f) = &falco {
        sets.push(("Falco stock rules (3 files)".into(), f.iter().map(|p| p.as_path()).collect()));
    } else {
        eprintln!("xtask bench: Falco's stock rules not found beside the project; skipping that ruleset");
    }
    println!();
    println!(
        "rule engine on {n} recorded events x{repeat} (monitor replay, median of {} runs):",
        args.rounds.max(1)
    );
    replay_table(bin, events, &sets, repeat, args.rounds)
}

/// Replays each ruleset `rounds` times, alternating between sets, and prints events/s, ns per
/// event and the ratio to the first set, with the spread of that ratio over the rounds.
fn replay_table(
    bin: &Path,
    events: &Path,
    sets: &[(String, Vec<&Path>)],
    repeat: u32,
    rounds: usize,
) -> Result<()> {
    let mut rates = vec![Vec::new(); sets.len()];
    let mut evals = vec![Vec::new(); sets.len()];
    let mut alerts = vec![0u64; sets.len()];
    for _ in 0..rounds.max(1) {
        for (i, (_, rules)) in sets.iter().enumerate() {
            let (r, e, a) = replay_rate(bin, events, rules, repeat)?;
            rates[i].push(r);
            evals[i].push(e);
            alerts[i] = a;
        }
    }
    let ns = |rate: f64| 1e9 / rate.max(1.0);
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>16} {:>22} {:>8}",
        "ruleset", "events/s", "ns/event", "+ns/event", "evaluations/s", "ratio [min..max]", "alerts"
    );
    let base = median(&rates[0]);
    for (i, (name, _)) in sets.iter().enumerate() {
        let rate = median(&rates[i]);
        // Per-round ratios: each round's rate against the same round's baseline.
        let ratios: Vec<f64> = rates[i].iter().zip(&rates[0]).map(|(r, b)| ns(*r) / ns(*b)).collect();
        println!(
            "{:<34} {:>12.0} {:>10.0} {:>10.0} {:>16.0} {:>22} {:>8}",
            name,
            rate,
            ns(rate),
            ns(rate) - ns(base),
            median(&evals[i]),
            ratio_with_spread(&ratios),
            alerts[i]
        );
    }
    Ok(())
}

/// Writes `n` generated rules; with `other_types`, nine in ten are exec rules, of a type the
/// open events never have, so they should cost an open event nothing.
fn generated_rules(n: usize, other_types: bool) -> Result<PathBuf> {
    let mut yaml = String::new();
    for i in 0..n {
        let condition = if other_types && i % 10 != 0 {
            format!("evt.type = execve and proc.name = gen{i}")
        } else {
            format!("evt.type in (open, openat) and fd.name = /nonexistent/gen/{i} and proc.name = gen{i}")
        };
        yaml.push_str(&format!(
            "- rule: gen_rule_{i}\n  desc: generated\n  condition: {condition}\n  \
             output: \"x %fd.name\"\n  priority: WARNING\n\n"
        ));
    }
    let path =
        bench_dir()?.join(format!("gen_rules_{n}{}.yaml", if other_types { "_mostly_exec" } else { "" }));
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// The engine's cost per event as the ruleset grows: 10, 100 and 1,000 generated open rules that
/// never match, and the same counts with 90% exec rules.
fn rule_count_bench(bin: &Path, args: &BenchArgs, events: &Path) -> Result<()> {
    let (n, repeat) = replay_repeat(events, args.scale)?;
    let empty = empty_rules()?;
    let mut files = Vec::new();
    for other in [false, true] {
        for count in [10, 100, 1_000] {
            let label =
                if other { format!("{count} rules, 90% exec") } else { format!("{count} open rules") };
            files.push((label, generated_rules(count, other)?));
        }
    }
    let mut sets: Vec<(String, Vec<&Path>)> = vec![("no rules (baseline)".into(), vec![&empty])];
    sets.extend(files.iter().map(|(label, path)| (label.clone(), vec![path.as_path()])));
    println!();
    println!(
        "rule evaluation cost by rule count, on {n} recorded events x{repeat} (monitor replay, median of {} \
         runs; +ns/event is above the empty ruleset):",
        args.rounds.max(1)
    );
    replay_table(bin, events, &sets, repeat, args.rounds)
}
