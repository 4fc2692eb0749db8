//! Container metadata from real runtimes: podman through its Docker-compatible API, and a
//! runtime socket that never answers.

mod common;

use std::io::Read as _;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Daemon, FakeContainer, Options, field, rule};
use serde_json::Value;

const SENSITIVE_READ: &str = "Sensitive file read by an unexpected program";
const IMAGE: &str = "localhost/monitor-test:latest";

/// `podman run` with what containers need on this host: no network, rlimits no higher than ours.
fn podman_run() -> Command {
    let mut c = podman();
    c.args(["run", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]);
    c
}

/// podman as it runs on this kind of host: cgroupfs manager and runc (crun refuses hybrid
/// cgroup layouts), file events (no systemd journal), rlimits no higher than ours.
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--cgroup-manager=cgroupfs", "--events-backend=file", "--runtime", "runc"]);
    c
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

macro_rules! require_podman {
    () => {
        if !have("podman") || !have("runc") || !Path::new("/bin/busybox").exists() {
            eprintln!(
                "SKIPPED {}: needs podman, runc and busybox-static (`cargo xtask test` installs them as root)",
                module_path!()
            );
            return;
        }
    };
}

/// A tiny image built here from busybox-static (no registry is reachable), once per run.
fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "id", "sleep", "true"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let tar = dir.path().join("rootfs.tar");
        let ok = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status().unwrap();
        assert!(ok.success());
        let out = podman().arg("import").arg(&tar).arg(IMAGE).output().unwrap();
        assert!(out.status.success(), "podman import: {}", String::from_utf8_lossy(&out.stderr));
    });
    IMAGE
}

/// `podman system service` on a socket of the test's own, stopped on drop.
struct PodmanApi {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl PodmanApi {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        let child = podman()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "podman's API socket did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, socket, _dir: dir }
    }
}

impl Drop for PodmanApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_with_sockets(dir: &Path, sockets: &[&Path], wait_ms: u64) -> PathBuf {
    let config = dir.join("monitor.yaml");
    let list = sockets.iter().map(|s| format!("\"{}\"", s.display())).collect::<Vec<_>>().join(", ");
    std::fs::write(
        &config,
        format!(
            "rules: [bundled]\nrate_limit: {{per_second: 0, burst: 0}}\n\
             container_runtime:\n  docker_sockets: [{list}]\n  metadata_wait_ms: {wait_ms}\n"
        ),
    )
    .unwrap();
    config
}

fn start_daemon(config: &Path) -> Daemon {
    Daemon::start_with(Options {
        command: &["run", "--format", "json"],
        args: &["--config", config.to_str().unwrap()],
        ..Default::default()
    })
}

/// The counts the daemon reports on exit: (container alerts, of which without metadata).
fn metadata_counts(stderr: &[String]) -> (u64, u64) {
    let report = stderr.iter().rev().find(|l| l.contains("container alerts:")).expect("final report");
    let after = report.split("container alerts: ").nth(1).unwrap();
    let mut nums =
        after.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|n| n.parse().unwrap());
    (nums.next().unwrap(), nums.next().unwrap())
}

#[test]
fn podman_container_alert_names_the_container_and_image_from_the_docker_api() {
    require_root!();
    require_podman!();
    let image = test_image();
    let api = PodmanApi::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_sockets(dir.path(), &[&api.socket], 2000);
    let d = start_daemon(&config);
    let name = format!("monitor-test-{}", std::process::id());
    let cidfile = dir.path().join("cid");
    let out = podman_run()
        .arg("--rm")
        .arg("--name")
        .arg(&name)
        .arg("--cidfile")
        .arg(&cidfile)
        .args([image, "sh", "-c", "cat /etc/shadow"])
        .output()
        .unwrap();
    assert!(out.status.success(), "podman run: {}", String::from_utf8_lossy(&out.stderr));
    let mut full_id = String::new();
    std::fs::File::open(&cidfile).unwrap().read_to_string(&mut full_id).unwrap();
    let short = full_id.trim()[..12].to_owned();
    let a = d.wait_for(&format!("`{SENSITIVE_READ}` in container {short}"), |v| {
        rule(v) == SENSITIVE_READ && field(v, "container.id") == &Value::from(short.as_str())
    });
    let stderr = d.stop();
    // The container was new to the daemon: the alert waited for its metadata.
    let log = stderr.join("\n");
    assert_eq!(field(&a, "container.name"), &Value::from(name.as_str()), "{a}\n{log}");
    assert_eq!(field(&a, "container.image.repository"), &Value::from("localhost/monitor-test"), "{a}");
    assert_eq!(field(&a, "fd.name"), &Value::from("/etc/shadow"), "{a}");
    let (alerts, without) = metadata_counts(&stderr);
    eprintln!("container alerts: {alerts}, {without} without container metadata");
    assert!(alerts >= 1, "{stderr:?}");
}

#[test]
fn a_runtime_that_never_answers_does_not_hold_up_alerts() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never says a word.
    let socket = dir.path().join("stalled.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let _acceptor = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let config = config_with_sockets(dir.path(), &[&socket], 300);
    let d = start_daemon(&config);
    // Several new containers in a row, each a metadata lookup that hangs: every alert still
    // comes out (after at most the bound), with the metadata null, and host alerts flow too.
    let mut pids = Vec::new();
    for _ in 0..3 {
        let c = FakeContainer::new();
        let mut child = Command::new("sh")
            .args(["-c", &c.enter("exec cat /etc/shadow")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let a = d.wait_for(&format!("`{SENSITIVE_READ}` for pid {pid}"), |v| {
            rule(v) == SENSITIVE_READ && field(v, "proc.pid") == &Value::from(pid)
        });
        assert_eq!(field(&a, "container.id"), &Value::from(c.short_id()), "{a}");
        assert_eq!(field(&a, "container.name"), &Value::Null, "{a}");
        pids.push(pid);
    }
    let mut host = Command::new("cat").arg("/etc/shadow").stdout(Stdio::null()).spawn().unwrap();
    let host_pid = host.id();
    host.wait().unwrap();
    d.wait_for("host alert", |v| rule(v) == SENSITIVE_READ && field(v, "proc.pid") == &Value::from(host_pid));
    let stderr = d.stop();
    let (alerts, without) = metadata_counts(&stderr);
    eprintln!("container alerts: {alerts}, {without} without container metadata (runtime stalled)");
    assert!(alerts >= 3 && without >= 3, "{stderr:?}");
}

#[test]
fn monitor_containers_lists_running_containers_with_name_and_image() {
    require_root!();
    require_podman!();
    let image = test_image();
    let api = PodmanApi::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_sockets(dir.path(), &[&api.socket], 500);
    let name = format!("monitor-list-{}", std::process::id());
    let out = podman_run().arg("-d").arg("--name").arg(&name).args([image, "sleep", "30"]).output().unwrap();
    assert!(out.status.success(), "podman run: {}", String::from_utf8_lossy(&out.stderr));
    let full_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = podman().args(["rm", "-f", "-t", "0", &self.0]).output();
        }
    }
    let _remove = Remove(full_id.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["containers", "--json", "--config", config.to_str().unwrap()])
        .env("MONITOR_LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let row = rows
        .iter()
        .find(|r| r["container.full_id"] == full_id.as_str())
        .unwrap_or_else(|| panic!("{full_id} not listed: {rows:?}"));
    assert_eq!(row["container.id"], &full_id[..12]);
    assert_eq!(row["container.name"], name.as_str());
    assert_eq!(row["container.image.repository"], "localhost/monitor-test");
    assert_eq!(row["container.image.tag"], "latest");
}
