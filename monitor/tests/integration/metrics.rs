//! /metrics and /healthz on a running daemon: real events, rules and sinks counted; health
//! and the systemd watchdog follow the event loop.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::common::{self, Daemon, Markers, open_markers};

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
