//! Alerts about the monitor itself: start and stop (and a crash before), heartbeats, kernel
//! drops; one daemon per data_dir.

use std::time::Duration;

use crate::common::{self, Daemon};

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
