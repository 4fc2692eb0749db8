//! The naive baseline: a bpftrace script on the tracepoints the monitor uses, printing one line
//! per event, the way someone would watch opens, connects, sends and process lifecycle without
//! the monitor. Its output goes to a file on tmpfs (/dev/shm), about as cheap as /dev/null, so
//! the lines it printed and the events it reported lost can be counted afterwards.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::bench::{Daemon, DaemonReport, bench_dir};

/// For bpftrace 0.17 (Debian 12): `args->field`; the opened path is kept per thread at entry and
/// printed at exit with the result. BEGIN runs once every probe is attached; it creates the
/// marker file that tells the benchmark so.
const SCRIPT: &str = r#"
BEGIN { system("touch %READY%"); }
tracepoint:syscalls:sys_enter_open, tracepoint:syscalls:sys_enter_openat, tracepoint:syscalls:sys_enter_openat2
{ @path[tid] = str(args->filename); }
tracepoint:syscalls:sys_enter_creat { @path[tid] = str(args->pathname); }
tracepoint:syscalls:sys_exit_open, tracepoint:syscalls:sys_exit_openat, tracepoint:syscalls:sys_exit_openat2,
tracepoint:syscalls:sys_exit_creat
{ printf("%d %s open %s %d\n", pid, comm, @path[tid], args->ret); delete(@path[tid]); }
tracepoint:syscalls:sys_exit_connect { printf("%d %s connect %d\n", pid, comm, args->ret); }
tracepoint:syscalls:sys_exit_sendto { printf("%d %s sendto %d\n", pid, comm, args->ret); }
tracepoint:sched:sched_process_exec { printf("%d %s exec %s\n", pid, comm, str(args->filename)); }
tracepoint:sched:sched_process_fork { printf("%d %s fork %d\n", pid, comm, args->child_pid); }
tracepoint:sched:sched_process_exit { printf("%d %s exit\n", pid, comm); }
END { clear(@path); }
"#;

pub fn loud_skip(why: &str) {
    eprintln!();
    eprintln!("xtask bench: ************************************************************");
    eprintln!("xtask bench: WARNING: {why}");
    eprintln!("xtask bench: the bpftrace column is SKIPPED");
    eprintln!("xtask bench: ************************************************************");
    eprintln!();
}

fn installed() -> bool {
    Command::new("which")
        .arg("bpftrace")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when bpftrace is there or could be installed with apt-get; says loudly when not.
pub fn ensure_installed() -> bool {
    if installed() {
        return true;
    }
    eprintln!("xtask bench: bpftrace is missing; apt-get install -y bpftrace");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "bpftrace"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !installed() {
        loud_skip("`apt-get install -y bpftrace` failed");
        return false;
    }
    true
}

pub struct Bpftrace {
    process: Daemon,
    output: PathBuf,
}

impl Bpftrace {
    /// Starts the script and returns once all its probes are attached.
    pub fn start() -> Result<Bpftrace> {
        let dir = bench_dir()?;
        let ready = dir.join("bpftrace.ready");
        let _ = std::fs::remove_file(&ready);
        let script = dir.join("naive.bt");
        std::fs::write(&script, SCRIPT.replace("%READY%", &ready.display().to_string()))?;
        let shm = PathBuf::from("/dev/shm");
        let output = if shm.is_dir() { shm } else { dir }.join("monitor-bench-bpftrace.out");
        let mut child = Command::new("bpftrace")
            // --unsafe for system() in BEGIN, the readiness marker.
            .arg("--unsafe")
            .arg("-o")
            .arg(&output)
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting bpftrace")?;
        let stderr = child.stderr.take().expect("piped");
        let reader =
            std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            let exited = child.try_wait()?;
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let lines: Vec<String> = reader.join().unwrap_or_default();
                bail!("bpftrace did not attach ({exited:?}):\n{}", lines.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Bpftrace { process: Daemon { child, stderr: reader }, output })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops bpftrace (SIGINT, as Ctrl-C) and counts the lines it printed and the events it
    /// reported lost.
    pub fn stop(self) -> Result<DaemonReport> {
        let mut child = self.process.child;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait()?;
        let _ = self.process.stderr.join();
        let file = std::fs::File::open(&self.output).context("bpftrace's output")?;
        let mut report = DaemonReport::default();
        for line in BufReader::new(file).split(b'\n').map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(b"Lost ") {
                let n = String::from_utf8_lossy(rest);
                report.drops += n.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            } else if !line.starts_with(b"Attaching ") && !line.is_empty() {
                report.events += 1;
            }
        }
        let _ = std::fs::remove_file(&self.output);
        Ok(report)
    }
}
