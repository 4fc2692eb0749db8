//! Running as a systemd service: the unit file verifies, and the daemon tells systemd it is
//! ready only once its probes are attached (Type=notify), and that it is stopping.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, SystemTime};

use common::Daemon;

#[test]
fn the_unit_file_verifies() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/systemd/monitor.service"))
            .unwrap();
    assert!(unit.contains("Type=notify"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("monitor.service");
    // Verified against the binary just built, where the package installs /usr/bin/monitor.
    std::fs::write(&path, unit.replace("/usr/bin/monitor", env!("CARGO_BIN_EXE_monitor"))).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) must be installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify:\n{stderr}");
}

/// The time in a text log line (`2026-11-23T09:30:06.015086Z  INFO ...`).
fn logged_at(line: &str) -> SystemTime {
    let ts: jiff::Timestamp = line.split_whitespace().next().unwrap().parse().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ts.as_nanosecond() as u64)
}

#[test]
fn ready_is_notified_after_the_probes_are_attached_and_stopping_at_sigterm() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let stopping = msg.contains("STOPPING=1");
            got.push((SystemTime::now(), msg));
            if stopping {
                break;
            }
        }
        got
    });
    let d = Daemon::start_with(common::Options {
        command: &["run", "--format", "json"],
        env: &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
        ..Default::default()
    });
    let attached = logged_at(&d.wait_for_log("sensors attached"));
    d.stop();
    let got = receiver.join().unwrap();
    let (ready_at, ready) = got.iter().find(|(_, m)| m.contains("READY=1")).expect("READY=1 was sent");
    assert!(*ready_at >= attached, "READY=1 came before the probes were attached: {ready}");
    assert!(got.last().is_some_and(|(_, m)| m.contains("STOPPING=1")), "{got:?}");
}

/// A test's own directory, with a marker directory whose opens its rules fire on.
struct Markers {
    dir: tempfile::TempDir,
    markers: std::path::PathBuf,
}

impl Markers {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let markers = dir.path().join("markers");
        std::fs::create_dir(&markers).unwrap();
        Self { dir, markers }
    }

    /// Writes (or replaces) the rules file `relative` to the test's directory: one rule, `name`,
    /// that fires on opens of markers.
    fn write_rule(&self, relative: &str, name: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let rule = format!(
            "- rule: {name}\n  desc: service test rule\n  condition: evt.type in (open, openat, openat2) and \
             fd.name startswith {}/\n  output: \"{name} %fd.name\"\n  priority: WARNING\n",
            self.markers.display()
        );
        std::fs::write(&path, rule).unwrap();
        path
    }
}

fn open_markers(dir: &std::path::Path, from: u64, to: u64) {
    for i in from..to {
        let _ = std::fs::File::open(dir.join(format!("m{i}")));
    }
}

#[test]
fn metrics_report_real_events_rules_and_sinks() {
    require_root!();
    let m = Markers::new();
    let rules = m.write_rule("rules.yaml", "Metrics test marker opened");
    let d = Daemon::start_run(&["--rules", rules.to_str().unwrap(), "--set", "rate_limit.per_second=0"]);
    let digest_line = d.wait_for_log("rules loaded");
    open_markers(&m.markers, 0, 25);
    let marker = |v: &serde_json::Value| common::rule(v) == "Metrics test marker opened";
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while d.matching(marker).len() < 25 {
        assert!(std::time::Instant::now() < deadline, "25 opens did not raise 25 alerts");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Published about once a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, body) = d.http_get("/metrics");
        assert_eq!(status, 200);
        let matches =
            common::metric(&body, "monitor_rule_matches_total{rule=\"Metrics test marker opened\"}");
        if matches.is_some_and(|m| m >= 25.0) || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let m =
        |sample: &str| common::metric(&text, sample).unwrap_or_else(|| panic!("no `{sample}` in:\n{text}"));
    assert!(m("monitor_events_total{type=\"openat\"}") >= 25.0);
    assert!(m("monitor_rule_evaluations_total{rule=\"Metrics test marker opened\"}") >= 25.0);
    assert!(m("monitor_alerts_total{rule=\"Metrics test marker opened\",priority=\"Warning\"}") >= 25.0);
    assert_eq!(m("monitor_alerts_suppressed_total{rule=\"Metrics test marker opened\"}"), 0.0);
    assert!(m("monitor_sink_sent_total{sink=\"stdout\",kind=\"stdout\"}") >= 25.0);
    assert_eq!(m("monitor_sink_dropped_total{sink=\"stdout\",kind=\"stdout\"}"), 0.0);
    assert!(m("monitor_kernel_drops_total{cpu=\"0\"}") >= 0.0);
    assert_eq!(m("monitor_decode_errors_total"), 0.0);
    assert!(m("monitor_process_table_entries") > 0.0);
    assert!(m("monitor_container_cache_entries{state=\"known\"}") >= 0.0);
    assert_eq!(m("monitor_rules_enabled"), 1.0);
    assert_eq!(m("monitor_self_alerts_total{rule=\"Monitor started\"}"), 1.0);
    assert_eq!(m("monitor_rule_reloads_total{result=\"success\"}"), 0.0);
    assert_eq!(m("monitor_healthy"), 1.0);
    assert!(m("process_resident_memory_bytes") > 1e6);
    assert!(m("process_cpu_seconds_total") > 0.0);
    let digest = digest_line.split("digest=").nth(1).unwrap().split_whitespace().next().unwrap();
    assert_eq!(m(&format!("monitor_ruleset_info{{digest=\"{digest}\"}}")), 1.0);
    assert!(text.trim_end().ends_with("# EOF"));
    assert_eq!(d.http_get("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(d.http_get("/nothing").0, 404);
    d.stop();
}

/// Stops one thread of another process (ptrace), leaving its other threads running.
struct ThreadStop(i32);

impl ThreadStop {
    fn new(tid: i32) -> Self {
        // SAFETY: ptrace on a process we started; the thread is detached in drop.
        unsafe {
            assert_eq!(
                libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0),
                0,
                "PTRACE_SEIZE: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0), 0, "PTRACE_INTERRUPT");
            let mut status = 0;
            assert_eq!(libc::waitpid(tid, &mut status, libc::__WALL), tid, "waitpid on the stopped thread");
        }
        Self(tid)
    }
}

impl Drop for ThreadStop {
    fn drop(&mut self) {
        // SAFETY: detaching the thread attached in new().
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0) };
    }
}

fn wait_health(d: &Daemon, want: u16) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = d.http_get("/healthz");
        if status == want {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/healthz stayed {status} ({body}), expected {want}; the daemon logged:\n{}",
            d.stderr().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn health_fails_while_the_event_loop_is_stopped_and_the_watchdog_goes_quiet() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let d = Daemon::start_with(common::Options {
        command: &["run", "--format", "json"],
        args: &["--set", "metrics.max_stall_ms=1500"],
        // systemd's WatchdogSec=2s: a ping at least every second while healthy.
        env: &[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "2000000")],
        ..Default::default()
    });
    let pings = |socket: &UnixDatagram, for_how_long: Duration| {
        let end = std::time::Instant::now() + for_how_long;
        let mut buf = [0u8; 4096];
        let mut n = 0;
        while std::time::Instant::now() < end {
            if let Ok(len) = socket.recv(&mut buf) {
                n += String::from_utf8_lossy(&buf[..len]).matches("WATCHDOG=1").count();
            }
        }
        n
    };
    assert_eq!(wait_health(&d, 200), "ok\n");
    assert!(pings(&socket, Duration::from_secs(3)) >= 2, "no watchdog pings while healthy");
    // The event loop runs on the main thread; the metrics server on its own.
    let stop = ThreadStop::new(d.pid() as i32);
    let body = wait_health(&d, 503);
    assert!(body.contains("has not drained the ring buffer"), "{body}");
    let (_, metrics) = d.http_get("/metrics");
    assert_eq!(common::metric(&metrics, "monitor_healthy"), Some(0.0));
    let _ = pings(&socket, Duration::from_millis(500));
    assert_eq!(pings(&socket, Duration::from_secs(2)), 0, "watchdog pinged while the loop was stopped");
    drop(stop);
    assert_eq!(wait_health(&d, 200), "ok\n");
    d.stop();
}

#[test]
fn reload_keeps_the_old_rules_on_error_and_swaps_atomically_under_load() {
    require_root!();
    let m = Markers::new();
    let rules = m.write_rule("rules.d/test.yaml", "Reload test old rule");
    let rules_dir = rules.parent().unwrap();
    let config = m.dir.path().join("monitor.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [{}]\nrate_limit: {{per_second: 0}}\nreload: {{debounce_ms: 200}}\n",
            rules_dir.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_run(&["--config", config.to_str().unwrap()]);
    // A steady load: one marker open every 2 ms, numbered, for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load = {
        let (stop, opened, markers) = (stop.clone(), opened.clone(), m.markers.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = opened.load(std::sync::atomic::Ordering::Relaxed);
                open_markers(&markers, i, i + 1);
                opened.store(i + 1, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let count = |rule: &str| d.matching(|v| common::rule(v) == rule).len();
    d.wait_for("old rule fires", |v| common::rule(v) == "Reload test old rule");

    // A broken file: the reload fails with its location, and the old rule keeps firing.
    std::fs::write(
        &rules,
        "- rule: Broken\n  condition: evt.type = open and (\n  output: x\n  priority: WARNING\n  desc: x\n",
    )
    .unwrap();
    let failed = d.wait_for_log("reload (changed");
    let located = d.wait_for_log(&format!("{}:2:", rules.display()));
    assert!(failed.contains("failed"), "{failed}");
    assert!(!located.is_empty());
    let before = count("Reload test old rule");
    std::thread::sleep(Duration::from_millis(500));
    assert!(count("Reload test old rule") > before, "the old rule stopped firing after a failed reload");

    // A good file: the new rule fires, the old one stops.
    m.write_rule("rules.d/test.yaml", "Reload test new rule");
    d.wait_for_log("rules reloaded: the new set is in force");
    let swapped_at = opened.load(std::sync::atomic::Ordering::Relaxed);
    d.wait_for("new rule fires", |v| common::rule(v) == "Reload test new rule");
    std::thread::sleep(Duration::from_millis(300));

    // SIGHUP reloads too.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    d.wait_for_log("SIGHUP: reloading");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let total = opened.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));

    // Every open raised exactly one alert, from one rule or the other: none lost in the swaps.
    let mut seen = vec![0u32; total as usize];
    let mut old_after_swap = Vec::new();
    for v in d.matching(|v| common::rule(v).starts_with("Reload test")) {
        let name = common::field(&v, "fd.name").as_str().unwrap().to_owned();
        let i: usize = name.rsplit('m').next().unwrap().parse().unwrap();
        seen[i] += 1;
        if common::rule(&v) == "Reload test old rule" && i as u64 > swapped_at {
            old_after_swap.push(i);
        }
    }
    let missing: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let doubled: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    assert!(missing.is_empty(), "{} of {total} opens raised no alert: {missing:?}", missing.len());
    assert!(doubled.is_empty(), "opens that raised two alerts: {doubled:?}");
    assert!(old_after_swap.is_empty(), "the removed rule fired after the swap: {old_after_swap:?}");
    let (_, metrics) = d.http_get("/metrics");
    assert_eq!(
        common::metric(&metrics, "monitor_rule_reloads_total{result=\"failure\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        common::metric(&metrics, "monitor_rule_reloads_total{result=\"success\"}"),
        Some(2.0),
        "{metrics}"
    );
    d.stop();
}

#[test]
fn lifecycle_alerts_tell_clean_stops_from_crashes_and_heartbeats_run() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_env = data.to_str().unwrap().to_owned();
    let start = || {
        Daemon::start_with(common::Options {
            command: &["run", "--format", "json"],
            args: &["--set", "self_alerts.heartbeat_interval_s=1"],
            env: &[("MONITOR_DATA_DIR", &data_env)],
            ..Default::default()
        })
    };
    let own = |pid: u32| {
        move |v: &serde_json::Value| v["source"] == "internal" && common::field(v, "monitor.pid") == pid
    };
    let d = start();
    let pid = d.pid();
    let started = d.wait_for("Monitor started", |v| own(pid)(v) && common::rule(v) == "Monitor started");
    assert!(started["output"].as_str().unwrap().contains("no previous run"), "{started}");
    let beat = d.wait_for("a heartbeat", |v| own(pid)(v) && common::rule(v) == "Monitor heartbeat");
    assert_eq!(beat["priority"], "Informational");
    assert!(common::field(&beat, "monitor.events").as_u64().is_some(), "{beat}");
    // SIGTERM: "Monitor stopped" goes out through the sinks before the daemon exits.
    let printed = d.stop_and_collect();
    assert!(
        printed.iter().any(|v| own(pid)(v) && common::rule(v) == "Monitor stopped"),
        "no Monitor stopped"
    );

    let d = start();
    let pid = d.pid();
    let started = d.wait_for("Monitor started", |v| own(pid)(v) && common::rule(v) == "Monitor started");
    assert_eq!(started["priority"], "Notice");
    assert_eq!(common::field(&started, "monitor.previous_stop_clean"), true);
    d.kill();

    let d = start();
    let pid = d.pid();
    let started = d.wait_for("Monitor started", |v| own(pid)(v) && common::rule(v) == "Monitor started");
    assert_eq!(started["priority"], "Warning", "{started}");
    assert_eq!(common::field(&started, "monitor.previous_stop_clean"), false);
    assert!(started["output"].as_str().unwrap().contains("did not stop cleanly"), "{started}");
    d.stop();
}

#[test]
fn kernel_drops_raise_an_events_dropped_alert() {
    require_root!();
    let d = Daemon::start_run(&["--ring-buffer-bytes", "4096"]);
    let pid = d.pid();
    d.pause();
    let status = std::process::Command::new("sh")
        .args(["-c", "i=0; while [ $i -lt 3000 ]; do : < /etc/hostname; i=$((i+1)); done"])
        .status()
        .unwrap();
    assert!(status.success());
    d.cont();
    let alert = d.wait_for("Events dropped", |v| {
        v["source"] == "internal"
            && common::field(v, "monitor.pid") == pid
            && common::rule(v) == "Events dropped"
    });
    assert_eq!(alert["priority"], "Warning");
    assert!(common::field(&alert, "monitor.drops").as_u64().unwrap() > 0, "{alert}");
    assert!(alert["output"].as_str().unwrap().contains("detections may have been missed"));
    d.stop();
}

#[test]
fn config_errors_name_the_file_position_or_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.yaml");
    std::fs::write(&config, "rate_limit:\n  burst: 5\nmetrics:\n  adress: 127.0.0.1:1\n").unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_monitor"))
            .arg("run")
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with a bad config");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--config", config.to_str().unwrap()], &[]);
    assert!(err.contains(&format!("{}:4:3", config.display())) && err.contains("adress"), "{err}");
    let err = run(&["--set", "rate_limit.burst=lots"], &[]);
    assert!(err.contains("--set rate_limit.burst=lots"), "{err}");
    let err = run(&[], &[("MONITOR_METRICS__ADDRESS", "nowhere")]);
    assert!(err.contains("MONITOR_METRICS__ADDRESS"), "{err}");
    let err = run(&["--set", "ratelimit.burst=1"], &[]);
    assert!(err.contains("unknown key `ratelimit`"), "{err}");
    let err = run(&["--set", "min_priority=loud"], &[]);
    assert!(err.contains("unknown priority `loud`"), "{err}");
}

#[test]
fn the_units_capability_set_is_enough() {
    require_root!();
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/systemd/monitor.service"))
            .unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit narrows its capabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let set = format!("-all,{}", caps.join(","));
    let (inh, amb, bound) =
        (format!("--inh-caps={set}"), format!("--ambient-caps={set}"), format!("--bounding-set={set}"));
    let m = Markers::new();
    let rules = m.write_rule("rules.yaml", "Capability test marker opened");
    let d = Daemon::start_with(common::Options {
        command: &["run", "--format", "json"],
        args: &["--rules", rules.to_str().unwrap()],
        wrapper: &["setpriv", &inh, &amb, &bound, "--"],
        ..Default::default()
    });
    // The daemon holds exactly the unit's set, and says nothing is missing.
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    assert_eq!(u64::from_str_radix(eff, 16).unwrap().count_ones() as usize, caps.len(), "{status}");
    assert!(!d.stderr().iter().any(|l| l.contains("lacks CAP_")), "{:?}", d.stderr());
    // The test process started before the daemon: its executable is still resolved.
    open_markers(&m.markers, 0, 1);
    let alert = d.wait_for("marker alert", |v| common::rule(v) == "Capability test marker opened");
    assert!(common::field(&alert, "proc.exepath").as_str().is_some_and(|p| p.starts_with('/')), "{alert}");
    d.stop();
}

#[test]
fn a_data_dir_holds_one_daemon_and_a_crash_is_reported_with_a_recent_last_seen() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_env = data.to_str().unwrap().to_owned();
    let start = || {
        Daemon::start_with(common::Options {
            command: &["run", "--format", "json"],
            args: &["--set", "self_alerts.heartbeat_interval_s=0"],
            env: &[("MONITOR_DATA_DIR", &data_env)],
            ..Default::default()
        })
    };
    let first = start();
    let started = first.wait_for("Monitor started", |v| {
        common::rule(v) == "Monitor started" && common::field(v, "monitor.pid") == first.pid()
    });
    let first_start: jiff::Timestamp = started["time"].as_str().unwrap().parse().unwrap();

    // A second daemon on the same data_dir refuses to start, naming the one that holds it.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["run", "--set", "metrics.address=127.0.0.1:0"])
        .env("MONITOR_DATA_DIR", &data_env)
        .env("MONITOR_LOG_FORMAT", "text")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second daemon started on the same data_dir:\n{err}");
    assert!(
        err.contains("is in use by another monitor process") && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );

    // Killed 5 s after it started: the next start reports it last seen alive within a few
    // seconds of the kill, not at some older time.
    std::thread::sleep(Duration::from_secs(5));
    let killed_at = jiff::Timestamp::now();
    first.kill();
    let d = start();
    let started = d.wait_for("Monitor started", |v| {
        common::rule(v) == "Monitor started" && common::field(v, "monitor.pid") == d.pid()
    });
    assert_eq!(common::field(&started, "monitor.previous_stop_clean"), false, "{started}");
    let last_seen: jiff::Timestamp =
        common::field(&started, "monitor.previous_stop").as_str().unwrap().parse().unwrap();
    assert!(last_seen >= first_start, "last seen {last_seen} before the crashed run started {first_start}");
    let gap = killed_at.duration_since(last_seen);
    assert!(
        gap <= jiff::SignedDuration::from_secs(3),
        "last seen {last_seen}, {gap:?} before the kill at {killed_at}"
    );
    d.stop();
}
