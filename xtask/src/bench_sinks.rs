//! Alert delivery throughput: the recorded events replayed with a rule that fires on every one
//! (`monitor replay --to-sinks`), delivered through one sink at a time to a real receiver on
//! loopback (rsyslog, nats-server with JetStream, an HTTP endpoint here), with the sinks'
//! default batching and spooling. Prints alerts per second until the last one was acknowledged,
//! and the process's CPU per 10,000 alerts against a baseline that raises the same alerts and
//! writes them to /dev/null without any sink.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

const RULE: &str = "- rule: Every event\n  desc: fires on every event, to load the sinks\n  \
                    condition: proc.pid > 0\n  output: bench %evt.type %proc.name %fd.name\n  priority: WARNING\n";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A child process killed when the benchmark ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rsyslog(dir: &Path, tcp: u16, relp: u16) -> Result<Server> {
    let work = dir.join("rsyslog");
    std::fs::create_dir_all(&work)?;
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{w}\" maxMessageSize=\"64k\" processInternalMessages=\"on\")\n\
             module(load=\"imtcp\")\nmodule(load=\"imrelp\")\n\
             ruleset(name=\"bench\") {{ action(type=\"omfile\" file=\"{w}/received.log\") }}\n\
             input(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\" ruleset=\"bench\")\n\
             input(type=\"imrelp\" port=\"{relp}\" address=\"127.0.0.1\" ruleset=\"bench\" maxDataSize=\"64k\")\n",
            w = work.display()
        ),
    )?;
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(work.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start rsyslogd (cargo xtask bench installs it)")?;
    let server = Server(child);
    wait_listening(tcp, "rsyslogd (imtcp)")?;
    wait_listening(relp, "rsyslogd (imrelp)")?;
    Ok(server)
}

fn nats(dir: &Path, port: u16) -> Result<Server> {
    let store = dir.join("nats");
    let _ = std::fs::remove_dir_all(&store);
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start nats-server (cargo xtask bench installs it)")?;
    let server = Server(child);
    wait_listening(port, "nats-server")?;
    Ok(server)
}

/// An HTTP/1.1 endpoint that answers every POST with 200 (`_bulk`: no item errors), keep-alive,
/// `latency` after the request arrived (a SIEM across a WAN).
fn http_endpoint(latency: Duration) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve_http(conn, latency));
        }
    });
    Ok(port)
}

fn serve_http(conn: TcpStream, latency: Duration) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut writer = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(latency);
        let answer = if request_line.contains("/_bulk") { r#"{"errors":false,"items":[]}"# } else { "{}" };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A UDP port that takes datagrams and drops them.
fn udp_drain() -> Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let port = socket.local_addr()?.port();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while socket.recv(&mut buf).is_ok() {}
    });
    Ok(port)
}

/// Wall time and CPU time (user + system) of a command run to its end.
fn run_measured(cmd: &mut Command) -> Result<(Duration, Duration, String)> {
    let start = Instant::now();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = String::new();
    let mut pipe = child.stderr.expect("piped");
    pipe.read_to_string(&mut stderr)?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let wall = start.elapsed();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("monitor replay failed:\n{stderr}");
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((wall, tv(usage.ru_utime) + tv(usage.ru_stime), stderr))
}

/// Sent and dropped alerts of the one sink, from the replay's summary.
fn sink_counts(stderr: &str) -> (u64, u64) {
    let line = stderr.lines().find(|l| l.contains("monitor: sinks:")).unwrap_or("");
    let before = |key: &str| -> u64 {
        line.split(key).next().and_then(|h| h.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    (before(" sent"), before(" dropped"))
}

pub fn run(bin: &Path, events: &Path, rounds: usize, scale: f64) -> Result<()> {
    let dir = crate::workspace_root().join("target/bench/sinks");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let rules = dir.join("every_event.yaml");
    std::fs::write(&rules, RULE)?;
    let n_events = std::fs::read_to_string(events)?.lines().count().max(1);
    let repeat = ((100_000.0 * scale) as usize / n_events).max(1);
    let alerts = (n_events * repeat) as u64;

    let (tcp, relp, nats_port) = (free_port()?, free_port()?, free_port()?);
    let _rsyslog = rsyslog(&dir, tcp, relp)?;
    let _nats = nats(&dir, nats_port)?;
    let http = http_endpoint(Duration::ZERO)?;
    let udp = udp_drain()?;

    let delivery = "      delivery: {queue_max_alerts: 10000000}\n";
    let sinks: Vec<(&str, String)> = vec![
        ("stdout (/dev/null)", format!("    - type: stdout\n{delivery}")),
        (
            "file",
            format!(
                "    - type: file\n      path: {}\n      fsync: batch\n{delivery}",
                dir.join("alerts.json").display()
            ),
        ),
        (
            "syslog udp",
            format!("    - type: syslog\n      transport: udp\n      address: 127.0.0.1:{udp}\n{delivery}"),
        ),
        (
            "syslog tcp (rsyslog)",
            format!("    - type: syslog\n      transport: tcp\n      address: 127.0.0.1:{tcp}\n"),
        ),
        (
            "syslog relp (rsyslog)",
            format!("    - type: syslog\n      transport: relp\n      address: 127.0.0.1:{relp}\n"),
        ),
        (
            "http webhook ndjson",
            format!("    - type: http\n      url: http://127.0.0.1:{http}/\n      body: ndjson\n"),
        ),
        (
            "http webhook ndjson, no spool",
            format!(
                "    - type: http\n      url: http://127.0.0.1:{http}/\n      body: ndjson\n      \
                 delivery: {{queue_max_alerts: 10000000, spool: {{enabled: false}}}}\n"
            ),
        ),
        (
            "http webhook gzip",
            format!(
                "    - type: http\n      url: http://127.0.0.1:{http}/\n      body: ndjson\n      gzip: true\n"
            ),
        ),
        (
            "http splunk",
            format!(
                "    - type: http\n      preset: splunk\n      url: http://127.0.0.1:{http}/services/collector/event\n      token: {{value: bench}}\n"
            ),
        ),
        (
            "http elasticsearch (ECS)",
            format!("    - type: http\n      preset: elasticsearch\n      url: http://127.0.0.1:{http}\n"),
        ),
        (
            "nats jetstream",
            format!("    - type: nats\n      url: nats://127.0.0.1:{nats_port}\n      stream: BENCH\n"),
        ),
    ];

    let replay = |config: Option<&Path>| -> Result<(Duration, Duration, String)> {
        let mut cmd = Command::new(bin);
        cmd.arg("replay").arg(events).arg("--rules").arg(&rules).args(["--repeat", &repeat.to_string()]);
        match config {
            Some(c) => cmd.arg("--config").arg(c).arg("--to-sinks"),
            None => cmd.args(["--config", "/dev/null"]),
        };
        run_measured(cmd.env("MONITOR_LOG_FORMAT", "text"))
    };

    println!();
    println!(
        "alert delivery: {alerts} alerts ({n_events} recorded events x{repeat}, a rule firing on each), one sink at a time, \
         loopback receivers, default batching and spooling (median of {rounds} runs):"
    );
    println!(
        "{:<32} {:>12} {:>10} {:>16} {:>8} {:>8}",
        "sink", "alerts/s", "wall s", "CPU ms/10k alerts", "ratio", "dropped"
    );
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let mut base = Vec::new();
    let mut base_wall = Vec::new();
    for _ in 0..rounds {
        let (wall, cpu, _) = replay(None)?;
        base.push(cpu.as_secs_f64() * 1e3 * 10_000.0 / alerts as f64);
        base_wall.push(wall.as_secs_f64());
    }
    let base_cpu = median(base);
    let wall = median(base_wall);
    println!(
        "{:<32} {:>12.0} {:>10.2} {:>16.1} {:>7.2}x {:>8}",
        "no sink: JSON to /dev/null (baseline)",
        alerts as f64 / wall,
        wall,
        base_cpu,
        1.0,
        "-"
    );
    let measure = |i: usize, name: &str, sink: &str, alerts: u64, replay: &Replay<'_>| -> Result<()> {
        let config = dir.join(format!("sink-{i}.yaml"));
        let mut cpus = Vec::new();
        let mut walls = Vec::new();
        let mut dropped = 0;
        for round in 0..rounds {
            // A fresh spool each run, so every run sends the same alerts.
            let spool = dir.join(format!("spool-{i}-{round}"));
            std::fs::write(
                &config,
                format!(
                    "rate_limit: {{per_second: 0}}\noutput:\n  spool_dir: {}\n  shutdown_timeout_ms: 600000\n  sinks:\n{sink}",
                    spool.display()
                ),
            )?;
            let (wall, cpu, stderr) = replay(&config)?;
            let (sent, d) = sink_counts(&stderr);
            if sent < alerts {
                bail!("{name}: {sent} of {alerts} alerts delivered:\n{stderr}");
            }
            dropped += d;
            cpus.push(cpu.as_secs_f64() * 1e3 * 10_000.0 / alerts as f64);
            walls.push(wall.as_secs_f64());
            let _ = std::fs::remove_dir_all(&spool);
        }
        let cpu = median(cpus);
        let wall = median(walls);
        println!(
            "{:<32} {:>12.0} {:>10.2} {:>16.1} {:>7.2}x {:>8}",
            name,
            alerts as f64 / wall,
            wall,
            cpu,
            cpu / base_cpu,
            dropped
        );
        Ok(())
    };
    for (i, (name, sink)) in sinks.iter().enumerate() {
        measure(i, name, sink, alerts, &|c| replay(Some(c)))?;
    }

    // A receiver that answers each request in 100 ms: one alert per request, as falcosidekick
    // takes them, is as fast as the requests in flight allow.
    let slow = http_endpoint(Duration::from_millis(100))?;
    let burst_repeat = 3000_usize.div_ceil(n_events);
    let burst = (n_events * burst_repeat) as u64;
    let replay_burst = |c: &Path| -> Result<(Duration, Duration, String)> {
        let mut cmd = Command::new(bin);
        cmd.arg("replay")
            .arg(events)
            .arg("--rules")
            .arg(&rules)
            .args(["--repeat", &burst_repeat.to_string()]);
        cmd.arg("--config").arg(c).arg("--to-sinks");
        run_measured(cmd.env("MONITOR_LOG_FORMAT", "text"))
    };
    println!();
    println!(
        "a burst of {burst} alerts to an HTTP receiver answering in 100 ms (CPU ratio to the baseline above):"
    );
    let slow_sinks: [(&str, String); 3] = [
        ("webhook single, 64 in flight", format!("    - type: http\n      url: http://127.0.0.1:{slow}/\n")),
        (
            "webhook single, 8 in flight",
            format!("    - type: http\n      url: http://127.0.0.1:{slow}/\n      max_in_flight: 8\n"),
        ),
        (
            "webhook ndjson",
            format!("    - type: http\n      url: http://127.0.0.1:{slow}/\n      body: ndjson\n"),
        ),
    ];
    for (i, (name, sink)) in slow_sinks.iter().enumerate() {
        measure(100 + i, name, sink, burst, &replay_burst)?;
    }
    let _ = std::fs::remove_file(dir.join("alerts.json"));
    Ok(())
}

/// Runs `monitor replay` with a config: (wall time, CPU time, stderr).
type Replay<'a> = dyn Fn(&Path) -> Result<(Duration, Duration, String)> + 'a;

/// Where the recorded events are (written by the rule engine benchmark).
pub fn recorded_events() -> PathBuf {
    crate::workspace_root().join("target/bench/recorded_events.jsonl")
}
