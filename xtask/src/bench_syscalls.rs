//! Syscall micro-benchmarks under each configuration, side by side in one run: no monitor (the
//! floor), `monitor run` with the bundled rules, `monitor events` unfiltered, and bpftrace on the
//! same tracepoints as the naive baseline. Rounds alternate the configurations (in an order that
//! rotates each round) so all see the same machine state; each ratio is taken against the same
//! round's floor, and its median is printed with the min..max over the rounds, so a difference
//! can be told from noise.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::bench::{self, BenchArgs, median, ratio_with_spread};
use crate::bench_bpftrace::Bpftrace;

pub struct Workload {
    pub name: &'static str,
    pub iterations: usize,
    pub run: fn(usize),
}

pub fn open_close(n: usize) {
    open_close_path(c"/etc/hostname", n);
}

pub fn open_close_path(path: &std::ffi::CStr, n: usize) {
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

pub fn open_missing(n: usize) {
    let path = c"/nonexistent/monitor-bench";
    for _ in 0..n {
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    }
}

pub fn fork_exec(n: usize) {
    for _ in 0..n {
        let _ = Command::new("/bin/true").status();
    }
}

pub fn tcp_connect(n: usize) {
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

/// sendto of a small datagram from an unconnected UDP socket to a bound loopback socket. The
/// receiver is non-blocking and drained every 64 datagrams, in the same thread, so its queue never
/// fills (and a full one would only drop datagrams: loopback UDP never blocks the sender).
pub fn udp_sendto(n: usize) {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    receiver.set_nonblocking(true).expect("non-blocking");
    let addr = receiver.local_addr().expect("local addr");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let payload = [0x55u8; 32];
    let mut buf = [0u8; 64];
    for i in 0..n {
        let _ = sender.send_to(&payload, addr);
        if i % 64 == 63 {
            while receiver.recv(&mut buf).is_ok() {}
        }
    }
}

/// A syscall no sensor watches: what every process on the host pays for the programs that run
/// at every syscall's exit (the ia32 one, which returns at once for a native syscall).
pub fn getppid(n: usize) {
    for _ in 0..n {
        // SAFETY: no preconditions.
        unsafe { libc::getppid() };
    }
}

/// Runs one io_uring request at a time to completion; returns its result.
fn iou_run(ring: &mut io_uring::IoUring, sqe: &io_uring::squeue::Entry) -> i32 {
    // SAFETY: what the entry points at (paths, addresses) outlives the wait below.
    if unsafe { ring.submission().push(sqe) }.is_err() {
        return -libc::EBUSY;
    }
    if ring.submit_and_wait(1).is_err() {
        return -libc::EIO;
    }
    ring.completion().next().map_or(-libc::EIO, |c| c.result())
}

fn iou_ring() -> io_uring::IoUring {
    io_uring::IoUring::new(8).expect("io_uring_setup (kernel.io_uring_disabled?)")
}

/// io_uring requests no sensor reports: what every request pays for the submission and
/// completion programs.
pub fn iou_nop(n: usize) {
    let mut ring = iou_ring();
    let nop = io_uring::opcode::Nop::new().build();
    for _ in 0..n {
        iou_run(&mut ring, &nop);
    }
}

/// open+close /etc/hostname as io_uring requests.
pub fn iou_open_close(n: usize) {
    use io_uring::{opcode, types};
    let mut ring = iou_ring();
    let path = c"/etc/hostname";
    let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).build();
    for _ in 0..n {
        let fd = iou_run(&mut ring, &open);
        if fd >= 0 {
            iou_run(&mut ring, &opcode::Close::new(types::Fd(fd)).build());
        }
    }
}

/// A TCP connect to a loopback listener as an io_uring request, then close with a reset.
pub fn iou_connect(n: usize) {
    use io_uring::{opcode, types};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    // SAFETY: as in tcp_connect.
    unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 4096) };
    let std::net::SocketAddr::V4(addr) = listener.local_addr().expect("local addr") else {
        unreachable!("bound to an IPv4 address")
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acceptor_done = done.clone();
    let acceptor = std::thread::spawn(move || {
        while !acceptor_done.load(std::sync::atomic::Ordering::Acquire) {
            let _ = listener.accept();
        }
    });
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.ip().octets()) },
        sin_zero: [0; 8],
    };
    let mut ring = iou_ring();
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    for _ in 0..n {
        // SAFETY: a new socket, set to close with a reset and closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        if fd < 0 {
            continue;
        }
        let connect = opcode::Connect::new(
            types::Fd(fd),
            (&raw const sa).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
        .build();
        iou_run(&mut ring, &connect);
        // SAFETY: valid fd and option struct.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as u32,
            );
            libc::close(fd);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    drop(TcpStream::connect(addr));
    let _ = acceptor.join();
}

pub fn workloads(scale: f64) -> Vec<Workload> {
    let n = |base: f64| ((base * scale) as usize).max(10);
    vec![
        Workload { name: "open+close /etc/hostname", iterations: n(200_000.0), run: open_close },
        Workload { name: "open missing file", iterations: n(200_000.0), run: open_missing },
        Workload { name: "fork+exec /bin/true", iterations: n(1_000.0), run: fork_exec },
        Workload { name: "tcp connect+close loopback", iterations: n(5_000.0), run: tcp_connect },
        Workload { name: "udp sendto loopback", iterations: n(200_000.0), run: udp_sendto },
        Workload { name: "getppid (unwatched)", iterations: n(2_000_000.0), run: getppid },
        Workload { name: "io_uring nop (unwatched)", iterations: n(200_000.0), run: iou_nop },
        Workload { name: "io_uring open+close", iterations: n(100_000.0), run: iou_open_close },
        Workload { name: "io_uring tcp connect", iterations: n(5_000.0), run: iou_connect },
    ]
}

fn time_per_op(w: &Workload) -> f64 {
    // A short warm-up keeps first-touch costs out of the measurement.
    (w.run)(w.iterations / 20 + 1);
    let start = Instant::now();
    (w.run)(w.iterations);
    start.elapsed().as_nanos() as f64 / w.iterations as f64
}

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Floor,
    Run,
    /// `monitor run` with `kernel_filter: false`: what the in-kernel filter saves.
    RunUnfiltered,
    /// `monitor run` with Falco's three stock rules files: what a Falco user's setup costs.
    RunFalco,
    Events,
    Bpftrace,
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Config::Floor => "no monitor",
            Config::Run => "monitor run",
            Config::RunUnfiltered => "run, no kfilter",
            Config::RunFalco => "run, Falco rules",
            Config::Events => "monitor events",
            Config::Bpftrace => "bpftrace",
        }
    }
}

enum Attached {
    Daemon(bench::Daemon),
    Bpftrace(Bpftrace),
}

impl Attached {
    fn pid(&self) -> u32 {
        match self {
            Attached::Daemon(d) => d.pid(),
            Attached::Bpftrace(b) => b.pid(),
        }
    }

    fn stop(self) -> Result<bench::DaemonReport> {
        match self {
            Attached::Daemon(d) => bench::stop_daemon(d),
            Attached::Bpftrace(b) => b.stop(),
        }
    }
}

fn attach(bin: &Path, config: Config) -> Result<Option<Attached>> {
    let null = Path::new("/dev/null");
    Ok(match config {
        Config::Floor => None,
        Config::Run => Some(Attached::Daemon(bench::start_daemon(
            bin,
            &["run", "--config", "/dev/null", "--rules", "bundled"],
            null,
        )?)),
        Config::RunUnfiltered => Some(Attached::Daemon(bench::start_daemon(
            bin,
            &["run", "--config", "/dev/null", "--rules", "bundled", "--set", "kernel_filter=false"],
            null,
        )?)),
        Config::RunFalco => {
            let files = bench::falco_rules().context("Falco's stock rules are not beside the project")?;
            let mut args = vec!["run".to_owned(), "--config".into(), "/dev/null".into()];
            for f in &files {
                args.extend(["--rules".to_owned(), f.display().to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Some(Attached::Daemon(bench::start_daemon(bin, &args, null)?))
        }
        Config::Events => Some(Attached::Daemon(bench::start_daemon(bin, &["events", "--json"], null)?)),
        Config::Bpftrace => Some(Attached::Bpftrace(Bpftrace::start()?)),
    })
}

/// Totals of one configuration over the rounds.
#[derive(Default)]
struct Usage {
    cpu_ns: u64,
    wall_ns: u64,
    hwm_kib: u64,
    events: u64,
    drops: u64,
}

/// The configurations `--configs` names, beside the floor every run has.
const CONFIGS: [(&str, Config); 5] = [
    ("run", Config::Run),
    ("run-unfiltered", Config::RunUnfiltered),
    ("run-falco", Config::RunFalco),
    ("events", Config::Events),
    ("bpftrace", Config::Bpftrace),
];

/// The names `--configs` takes.
pub fn config_names() -> impl Iterator<Item = &'static str> {
    CONFIGS.iter().map(|(name, _)| *name)
}

pub fn run(bin: &Path, args: &BenchArgs) -> Result<()> {
    let ws = workloads(args.scale);
    let mut configs = vec![Config::Floor];
    for (name, c) in CONFIGS {
        if args.configs.iter().any(|a| a == name) {
            configs.push(c);
        }
    }
    if configs.contains(&Config::Bpftrace) && !crate::bench_bpftrace::ensure_installed() {
        configs.retain(|c| *c != Config::Bpftrace);
    }
    let rounds = args.rounds.max(1);
    // times[round][config][workload], ns per operation.
    let mut times = vec![vec![vec![f64::NAN; ws.len()]; configs.len()]; rounds];
    let mut usage: Vec<Usage> = configs.iter().map(|_| Usage::default()).collect();
    let mut skipped = vec![false; configs.len()];
    let started = Instant::now();
    for (round, round_times) in times.iter_mut().enumerate() {
        for k in 0..configs.len() {
            let c = (k + round) % configs.len();
            if skipped[c] {
                continue;
            }
            let config = configs[c];
            eprintln!("xtask bench: round {} of {rounds}: {}", round + 1, config.label());
            let attached = match attach(bin, config) {
                Ok(a) => a,
                Err(e) if config == Config::Bpftrace => {
                    crate::bench_bpftrace::loud_skip(&format!("bpftrace did not start: {e:#}"));
                    skipped[c] = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let pid = attached.as_ref().map(Attached::pid);
            let cpu0 = pid.map(bench::proc_cpu_ns).unwrap_or(0);
            let t0 = Instant::now();
            for (i, w) in ws.iter().enumerate() {
                round_times[c][i] = time_per_op(w);
            }
            if let (Some(pid), Some(a)) = (pid, attached) {
                // The reader may still be behind the workload: its CPU counts until it caught up.
                bench::settle(pid);
                let u = &mut usage[c];
                u.cpu_ns += bench::proc_cpu_ns(pid).saturating_sub(cpu0);
                u.wall_ns += t0.elapsed().as_nanos() as u64;
                u.hwm_kib = u.hwm_kib.max(bench::proc_hwm_kib(pid));
                let report = a.stop()?;
                u.events += report.events;
                u.drops += report.drops;
            }
        }
    }
    eprintln!("xtask bench: syscall part took {:.0} s", started.elapsed().as_secs_f64());
    let shown: Vec<usize> = (0..configs.len()).filter(|c| !skipped[*c]).collect();

    println!();
    println!("syscall cost, ns per operation (median of {rounds} rounds):");
    print!("{:<28}", "workload");
    for &c in &shown {
        print!(" {:>15}", configs[c].label());
    }
    println!();
    for (i, w) in ws.iter().enumerate() {
        print!("{:<28}", w.name);
        for &c in &shown {
            let per_round: Vec<f64> = times.iter().map(|t| t[c][i]).collect();
            print!(" {:>15.0}", median(&per_round));
        }
        println!();
    }

    println!();
    println!("ratio to no monitor: median [min..max] of the per-round ratios:");
    print!("{:<28}", "workload");
    for &c in shown.iter().skip(1) {
        print!(" {:>22}", configs[c].label());
    }
    println!();
    for (i, w) in ws.iter().enumerate() {
        print!("{:<28}", w.name);
        for &c in shown.iter().skip(1) {
            let ratios: Vec<f64> = times.iter().map(|t| t[c][i] / t[0][i]).collect();
            print!(" {:>22}", ratio_with_spread(&ratios));
        }
        println!();
    }

    println!();
    println!(
        "reader process, totals over {rounds} rounds (CPU from attach until it caught up; events as it \
         counted them):"
    );
    println!(
        "{:<16} {:>9} {:>12} {:>14} {:>14} {:>13} {:>20}",
        "configuration",
        "CPU s",
        "% of a core",
        "peak RSS MiB",
        "events",
        "kernel drops",
        "CPU ms/10k events"
    );
    for &c in shown.iter().skip(1) {
        let u = &usage[c];
        println!(
            "{:<16} {:>9.2} {:>11.1}% {:>14.1} {:>14} {:>13} {:>20.2}",
            configs[c].label(),
            u.cpu_ns as f64 / 1e9,
            100.0 * u.cpu_ns as f64 / u.wall_ns.max(1) as f64,
            u.hwm_kib as f64 / 1024.0,
            u.events,
            u.drops,
            u.cpu_ns as f64 / 1e6 / u.events.max(1) as f64 * 10_000.0
        );
    }
    if configs.contains(&Config::Bpftrace) {
        println!(
            "(bpftrace: events are the lines it printed, drops the events it reported lost from its \
             perf buffers)"
        );
    }
    Ok(())
}
