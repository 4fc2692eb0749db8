//! Running as a systemd service: the unit file verifies, the daemon tells systemd it is ready
//! only once its probes are attached (Type=notify) and that it is stopping, and the unit's
//! capability set is enough.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, SystemTime};

use crate::common::{self, Daemon, Markers, open_markers};

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
