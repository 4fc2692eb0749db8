//! Syscall micro-benchmarks, each run without the daemon and with `monitor events` attached
//! (its output to /dev/null), alternating, so both sides see the same machine state. Prints cost
//! per operation, the with/without ratio, and the daemon's CPU time, peak RSS and drops. No
//! thresholds: the figures are for people to read and compare.

use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Alternating rounds (each: all workloads without, then with the daemon).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Scale the iteration counts (1.0 = defaults).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// What the daemon runs during the syscall benchmarks: `run` (rules, alerts) or `events`
    /// (every event rendered as JSON).
    #[arg(long, default_value = "run")]
    daemon: String,
    /// Run only one part: syscalls, rules or sinks (sinks reuse the events recorded by an
    /// earlier rules run when there are some).
    #[arg(long)]
    only: Option<String>,
}

struct Workload {
    name: &'static str,
    iterations: usize,
    run: fn(usize),
}

fn open_close(n: usize) {
    let path = c"/etc/hostname";
    for _ in 0..n {
        // SAFETY: valid NUL-terminated path; the fd is closed right away.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }
}

fn open_missing(n: usize) {
    let path = c"/nonexistent/monitor-bench";
    for _ in 0..n {
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    }
}

fn fork_exec(n: usize) {
    for _ in 0..n {
        let _ = Command::new("/bin/true").status();
    }
}

fn tcp_connect(n: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    // A deep backlog: a full one drops SYNs, and the client's 1 s retransmit would swamp the
    // measurement whenever the acceptor thread gets less CPU than the client.
    // SAFETY: listen on our own listening socket only changes its backlog.
    unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 4096) };
    let addr = listener.local_addr().expect("local addr");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acceptor_done = done.clone();
    // Accepts until told to stop, not a fixed count: a connection reset before it is accepted
    // may never be handed out.
    let acceptor = std::thread::spawn(move || {
        while !acceptor_done.load(std::sync::atomic::Ordering::Acquire) {
            let _ = listener.accept();
        }
    });
    for _ in 0..n {
        if let Ok(stream) = TcpStream::connect(addr) {
            // Close with a reset: thousands of TIME_WAIT sockets would exhaust the ephemeral
            // ports and make later runs measure the port search instead of the connect.
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: valid socket fd and option struct.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&stream),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    size_of::<libc::linger>() as u32,
                );
            }
        }
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    // Wakes the acceptor, which then sees the flag.
    drop(TcpStream::connect(addr));
    let _ = acceptor.join();
}

fn workloads(scale: f64) -> Vec<Workload> {
    let n = |base: f64| ((base * scale) as usize).max(10);
    vec![
        Workload { name: "open+close /etc/hostname", iterations: n(200_000.0), run: open_close },
        Workload { name: "open missing file", iterations: n(200_000.0), run: open_missing },
        Workload { name: "fork+exec /bin/true", iterations: n(1_000.0), run: fork_exec },
        Workload { name: "tcp connect+close loopback", iterations: n(5_000.0), run: tcp_connect },
    ]
}

fn time_per_op(w: &Workload) -> f64 {
    // A short warm-up keeps first-touch costs out of the measurement.
    (w.run)(w.iterations / 20 + 1);
    let start = Instant::now();
    (w.run)(w.iterations);
    start.elapsed().as_nanos() as f64 / w.iterations as f64
}

struct Daemon {
    child: Child,
    stderr: std::thread::JoinHandle<Vec<String>>,
}

fn start_daemon(bin: &Path, args: &[&str], stdout: &Path) -> Result<Daemon> {
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
        let lines = reader.join().unwrap_or_default();
        bail!("the daemon did not attach its sensors:\n{}", lines.join("\n"));
    }
    Ok(Daemon { child, stderr: reader })
}

fn proc_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

fn proc_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Stops the daemon with SIGTERM and returns (kernel drops, events) from its final report.
fn stop_daemon(d: Daemon) -> Result<(u64, u64)> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    let mut child = d.child;
    child.wait()?;
    let lines = d.stderr.join().unwrap_or_default();
    let report = lines.iter().rev().find(|l| l.contains("kernel drops:")).cloned().unwrap_or_default();
    let number_after = |key: &str| -> u64 {
        report
            .split(key)
            .nth(1)
            .and_then(|r| r.trim_start().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok((number_after("kernel drops:"), number_after("events:")))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(bin: &Path, args: &BenchArgs) -> Result<()> {
    if !crate::is_root() {
        bail!(
            "the benchmark attaches the daemon's kernel programs and needs root: `sudo -E cargo xtask bench`"
        );
    }
    match args.only.as_deref() {
        None | Some("syscalls") => syscalls_bench(bin, args)?,
        Some("rules" | "sinks") => {}
        Some(other) => bail!("--only takes syscalls, rules or sinks, not `{other}`"),
    }
    if matches!(args.only.as_deref(), None | Some("rules")) {
        rules_bench(bin, args)?;
    }
    if matches!(args.only.as_deref(), None | Some("sinks")) {
        let events = crate::bench_sinks::recorded_events();
        if !events.exists() {
            record_events(bin, &events)?;
        }
        crate::bench_sinks::run(bin, &events, args.rounds.max(1), args.scale)?;
    }
    Ok(())
}

fn syscalls_bench(bin: &Path, args: &BenchArgs) -> Result<()> {
    let ws = workloads(args.scale);
    let mut without: Vec<Vec<f64>> = vec![Vec::new(); ws.len()];
    let mut with: Vec<Vec<f64>> = vec![Vec::new(); ws.len()];
    let (mut cpu_ns, mut wall_ns, mut hwm, mut drops, mut events) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for round in 0..args.rounds.max(1) {
        eprintln!("xtask bench: round {} of {}", round + 1, args.rounds);
        for (i, w) in ws.iter().enumerate() {
            without[i].push(time_per_op(w));
        }
        let daemon_args: &[&str] = match args.daemon.as_str() {
            "events" => &["events", "--json"],
            _ => &["run", "--config", "/dev/null", "--rules", "bundled"],
        };
        let d = start_daemon(bin, daemon_args, Path::new("/dev/null"))?;
        let pid = d.child.id();
        let cpu0 = proc_cpu_ns(pid);
        let t0 = Instant::now();
        for (i, w) in ws.iter().enumerate() {
            with[i].push(time_per_op(w));
        }
        // Let the reader catch up before reading its CPU time.
        std::thread::sleep(Duration::from_millis(200));
        cpu_ns += proc_cpu_ns(pid) - cpu0;
        wall_ns += t0.elapsed().as_nanos() as u64;
        hwm = hwm.max(proc_hwm_kib(pid));
        let (d_drops, d_events) = stop_daemon(d)?;
        drops += d_drops;
        events += d_events;
    }
    println!();
    println!("{:<30} {:>14} {:>14} {:>8}", "workload", "without ns/op", "with ns/op", "ratio");
    for (i, w) in ws.iter().enumerate() {
        let a = median(&mut without[i]);
        let b = median(&mut with[i]);
        println!("{:<30} {:>14.0} {:>14.0} {:>7.2}x", w.name, a, b, b / a);
    }
    println!();
    println!(
        "daemon: CPU {:.2} s over {:.2} s of workloads ({:.1}% of one core), {} events, {:.0} ns CPU per event",
        cpu_ns as f64 / 1e9,
        wall_ns as f64 / 1e9,
        100.0 * cpu_ns as f64 / wall_ns.max(1) as f64,
        events,
        cpu_ns as f64 / events.max(1) as f64
    );
    println!("daemon: peak RSS {:.1} MiB; kernel drops {drops}", hwm as f64 / 1024.0);
    Ok(())
}

/// Falco's stock rules beside the project, if present.
fn falco_rules() -> Option<Vec<std::path::PathBuf>> {
    let dirs =
        [crate::workspace_root().join("../shared/falco"), std::path::PathBuf::from("/work/shared/falco")];
    let dir = dirs.into_iter().find(|d| d.join("falco_rules.yaml").is_file())?;
    Some(
        ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]
            .iter()
            .map(|f| dir.join(f))
            .collect(),
    )
}

/// Events of a mixed workload recorded with `monitor events --json`, for the engine benchmark.
fn record_events(bin: &Path, out: &Path) -> Result<()> {
    let d = start_daemon(bin, &["events", "--json"], out)?;
    for _ in 0..3 {
        open_close(2_000);
        open_missing(500);
        fork_exec(50);
        tcp_connect(100);
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

/// Rule evaluation throughput on recorded events: an empty ruleset (the replay's own cost, the
/// baseline), the bundled rules, and Falco's stock rules, in one run.
fn rules_bench(bin: &Path, args: &BenchArgs) -> Result<()> {
    let dir = crate::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let events = crate::bench_sinks::recorded_events();
    record_events(bin, &events)?;
    let n = std::fs::read_to_string(&events)?.lines().count();
    let empty = dir.join("empty_rules.yaml");
    std::fs::write(&empty, "[]\n")?;
    let repeat = ((200_000.0 * args.scale) as usize / n.max(1)).max(1) as u32;
    let bundled = Path::new("bundled");
    let mut sets: Vec<(&str, Vec<&Path>)> =
        vec![("no rules (baseline)", vec![&empty]), ("bundled rules", vec![bundled])];
    let falco = falco_rules();
    if let Some(f) = &falco {
        sets.push(("Falco stock rules (3 files)", f.iter().map(|p| p.as_path()).collect()));
    } else {
        eprintln!("xtask bench: Falco's stock rules not found beside the project; skipping that ruleset");
    }
    println!();
    println!(
        "rule engine on {n} recorded events x{repeat} (monitor replay, median of {} runs):",
        args.rounds.max(1)
    );
    println!(
        "{:<30} {:>14} {:>12} {:>18} {:>8}",
        "ruleset", "events/s", "ns/event", "evaluations/s", "ratio"
    );
    let mut base_ns = 0.0;
    for (name, rules) in sets {
        let mut rates = Vec::new();
        let mut evals = Vec::new();
        let mut alerts = 0;
        for _ in 0..args.rounds.max(1) {
            let (r, e, a) = replay_rate(bin, &events, &rules, repeat)?;
            rates.push(r);
            evals.push(e);
            alerts = a;
        }
        let rate = median(&mut rates);
        let ns = 1e9 / rate.max(1.0);
        if base_ns == 0.0 {
            base_ns = ns;
        }
        println!(
            "{:<30} {:>14.0} {:>12.0} {:>18.0} {:>7.2}x  ({alerts} alerts)",
            name,
            rate,
            ns,
            median(&mut evals),
            ns / base_ns
        );
    }
    Ok(())
}
