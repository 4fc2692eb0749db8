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

fn start_daemon(bin: &Path) -> Result<Daemon> {
    let mut child = Command::new(bin)
        .args(["events", "--json"])
        .env("MONITOR_LOG_FORMAT", "text")
        .stdout(Stdio::from(std::fs::File::create("/dev/null")?))
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
    let ws = workloads(args.scale);
    let mut without: Vec<Vec<f64>> = vec![Vec::new(); ws.len()];
    let mut with: Vec<Vec<f64>> = vec![Vec::new(); ws.len()];
    let (mut cpu_ns, mut wall_ns, mut hwm, mut drops, mut events) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for round in 0..args.rounds.max(1) {
        eprintln!("xtask bench: round {} of {}", round + 1, args.rounds);
        for (i, w) in ws.iter().enumerate() {
            without[i].push(time_per_op(w));
        }
        let d = start_daemon(bin)?;
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
