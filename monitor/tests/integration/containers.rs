//! Container metadata from real runtimes: podman through its Docker-compatible API, and a
//! runtime socket that never answers.

use crate::common;

use std::io::Read as _;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Daemon, FakeContainer, field, rule};
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

macro_rules! require_podman {
    () => {
        if common::tool("podman").is_none()
            || common::tool("runc").is_none()
            || !Path::new("/bin/busybox").exists()
        {
            common::skip(
                &common::test_name(),
                "needs podman, runc and busybox-static (`cargo xtask test` installs them as root)",
            );
            return;
        }
    };
}

/// A tiny image built here from busybox-static (no registry is reachable), once per run, and
/// the pause image containerd's pods start from.
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
        // The same files as containerd's pod sandbox ("pause") image: it only has to stay up.
        let out = podman()
            .args(["import", "--change", "CMD [\"/bin/sleep\", \"3600\"]"])
            .arg(&tar)
            .arg(PAUSE_IMAGE)
            .output()
            .unwrap();
        assert!(out.status.success(), "podman import pause: {}", String::from_utf8_lossy(&out.stderr));
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
            "rules: [bundled]\nrate_limit: {{per_second: 0, burst: 0}}\nstate_dir: \"{}\"\n\
             container_runtime:\n  docker_sockets: [{list}]\n  cri_sockets: []\n  metadata_wait_ms: {wait_ms}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    config
}

fn start_daemon(config: &Path) -> Daemon {
    Daemon::start_run(&["--config", config.to_str().unwrap()])
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
    let list = || -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
            .args(["containers", "--json", "--config", config.to_str().unwrap()])
            .env("MONITOR_LOG_FORMAT", "text")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let find = |rows: &[Value]| -> Option<Value> {
        rows.iter().find(|r| r["container.full_id"] == full_id.as_str()).cloned()
    };
    // No daemon running: the runtime is asked directly.
    let rows = list();
    let row = find(&rows).unwrap_or_else(|| panic!("{full_id} not listed: {rows:?}"));
    assert_eq!(row["container.name"], name.as_str());
    // A running daemon's own view, from its state directory.
    let d = start_daemon(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    let row = loop {
        let written = dir.path().join("state/containers.json").exists();
        if written && let Some(row) = find(&list()) {
            break row;
        }
        assert!(Instant::now() < deadline, "the daemon's view never listed {full_id}");
        std::thread::sleep(Duration::from_millis(200));
    };
    d.stop();
    assert_eq!(row["container.image.tag"], "latest");
}

/// containerd with its CRI plugin, on a socket and state of the test's own, stopped on drop.
/// Images come from podman (no registry is reachable): a pause image that sleeps, and the test
/// image.
struct Containerd {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

const PAUSE_IMAGE: &str = "localhost/monitor-pause:latest";

impl Containerd {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let default = Command::new("containerd").args(["config", "default"]).output().unwrap();
        let config = String::from_utf8_lossy(&default.stdout)
            .replace(
                "sandbox_image = \"registry.k8s.io/pause:3.6\"",
                &format!("sandbox_image = \"{PAUSE_IMAGE}\""),
            )
            // Root here lacks CAP_SYS_RESOURCE: containers may not get a lower OOM score than
            // containerd's own.
            .replace("restrict_oom_score_adj = false", "restrict_oom_score_adj = true");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let socket = dir.path().join("containerd.sock");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start containerd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "containerd's socket did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        let c = Self { child, socket, dir };
        for image in [PAUSE_IMAGE, test_image()] {
            let archive = c.dir.path().join("image.tar");
            let _ = std::fs::remove_file(&archive);
            let out = podman()
                .args(["save", "--format", "oci-archive", "-o"])
                .arg(&archive)
                .arg(image)
                .output()
                .unwrap();
            assert!(out.status.success(), "podman save {image}: {}", String::from_utf8_lossy(&out.stderr));
            let out = Command::new("ctr")
                .arg("-a")
                .arg(&c.socket)
                .args(["-n", "k8s.io", "images", "import"])
                .arg(&archive)
                .output()
                .unwrap();
            assert!(out.status.success(), "ctr import {image}: {}", String::from_utf8_lossy(&out.stderr));
        }
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive containerd; their containers were removed with the pod.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(format!("containerd-shim.*{}", self.dir.path().display()))
            .status();
    }
}

mod cri {
    use std::collections::HashMap;
    use std::path::Path;

    use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
    use k8s_cri::v1::*;
    use tonic::transport::Channel;

    pub async fn connect(socket: &Path) -> RuntimeServiceClient<Channel> {
        let path = socket.to_owned();
        let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .expect("connect to the CRI socket");
        RuntimeServiceClient::new(channel)
    }

    /// A pod on the host network (no CNI needed) in kubelet's cgroup layout, with one container
    /// running `command`. Returns (sandbox id, container id).
    pub async fn run_pod(
        c: &mut RuntimeServiceClient<Channel>,
        uid: &str,
        image: &str,
        command: &[&str],
        log_dir: &Path,
    ) -> (String, String) {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web-1".into(),
                uid: uid.into(),
                namespace: "shop".into(),
                attempt: 0,
            }),
            log_directory: log_dir.to_string_lossy().into_owned(),
            labels: HashMap::from([("app".into(), "web".into()), ("tier".into(), "front".into())]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Pod as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sandbox = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let container = ContainerConfig {
            metadata: Some(ContainerMetadata { name: "shell".into(), attempt: 0 }),
            image: Some(ImageSpec { image: image.into(), ..Default::default() }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: "shell.log".into(),
            ..Default::default()
        };
        let id = c
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(container),
                sandbox_config: Some(config),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        c.start_container(StartContainerRequest { container_id: id.clone() }).await.expect("StartContainer");
        (sandbox, id)
    }

    pub async fn remove_pod(c: &mut RuntimeServiceClient<Channel>, sandbox: &str) {
        let _ = c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.into() }).await;
        let _ = c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.into() }).await;
    }
}

#[test]
fn containerd_pod_alert_carries_pod_namespace_labels_and_image_from_the_cri() {
    require_root!();
    require_podman!();
    if common::tool("containerd").is_none() || common::tool("ctr").is_none() {
        common::skip(&common::test_name(), "needs containerd (`cargo xtask test` installs it as root)");
        return;
    }
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("pod_rules.yaml");
    std::fs::write(
        &rules,
        "- rule: Shadow read in the web pods\n  desc: k8s fields in a condition\n\
         \x20 condition: evt.type in (open, openat) and fd.name = /etc/shadow and k8s.pod.label.app = web and k8s.ns.name = shop\n\
         \x20 output: shadow read in pod %k8s.pod.name (ns=%k8s.ns.name uid=%k8s.pod.uid qos=%k8s.pod.qos_class tier=%k8s.pod.label[tier] labels=%k8s.pod.labels image=%container.image)\n\
         \x20 priority: WARNING\n  tags: [T1003.008]\n",
    )
    .unwrap();
    let config = dir.path().join("monitor.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [bundled, \"{}\"]\nrate_limit: {{per_second: 0, burst: 0}}\n\
             container_runtime:\n  docker_sockets: []\n  cri_sockets: [\"{}\"]\n  metadata_wait_ms: 2000\n",
            rules.display(),
            containerd.socket.display()
        ),
    )
    .unwrap();
    let d = start_daemon(&config);
    let uid = "0d3ae0b0-5e3c-4e2f-9f0a-1b2c3d4e5f60";
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = rt.block_on(cri::connect(&containerd.socket));
    let (sandbox, id) = rt.block_on(cri::run_pod(
        &mut client,
        uid,
        IMAGE,
        &["sh", "-c", "cat /etc/shadow; sleep 1"],
        &dir.path().join("logs"),
    ));
    let short = id[..12].to_owned();
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.wait_for_or_show(
            "the pod rule's alert",
            |v| {
                rule(v) == "Shadow read in the web pods"
                    && field(v, "container.id") == &Value::from(short.as_str())
            },
            |v| field(v, "container.id") == &Value::from(short.as_str()),
        )
    }));
    rt.block_on(cri::remove_pod(&mut client, &sandbox));
    let a = found.unwrap_or_else(|e| std::panic::resume_unwind(e));
    for (key, want) in [
        ("k8s.pod.name", "web-1"),
        ("k8s.ns.name", "shop"),
        ("k8s.pod.uid", uid),
        ("k8s.pod.qos_class", "besteffort"),
        ("k8s.pod.label[tier]", "front"),
        ("k8s.pod.labels", "app:web, tier:front"),
        ("container.name", "shell"),
        ("container.image.repository", "localhost/monitor-test"),
    ] {
        assert_eq!(field(&a, key), &Value::from(want), "{key}: {a}");
    }
    assert!(field(&a, "container.image").as_str().is_some_and(|i| i.contains("monitor-test")), "{a}");
    let (alerts, without) = metadata_counts(&d.stop());
    eprintln!("container alerts: {alerts}, {without} without container metadata (CRI)");
    assert!(alerts >= 1);
}

/// Falco's stable "Drop and execute new binary in container" on a real overlayfs container: a
/// binary copied into the container's writable layer and run raises it; the image's own copy
/// of the same binary does not.
#[test]
fn drop_and_execute_new_binary_in_container() {
    require_root!();
    require_podman!();
    const RULE: &str = "Drop and execute new binary in container";
    let image = test_image();
    let d = common::falco_stable_daemon();
    // The bundled rule for the same drift, judging the same events.
    let bundled = common::shared_alert_daemon();
    // The image has no /tmp: the root is as writable. busybox runs the applet its name says.
    let dir = format!("/dropped-{}", std::process::id());
    let dropped = format!("{dir}/true");
    let script = format!("/bin/busybox true && mkdir {dir} && cp /bin/busybox {dropped} && {dropped}");
    let out = podman_run().arg("--rm").args([image, "sh", "-c", &script]).output().unwrap();
    assert!(out.status.success(), "podman run: {}", String::from_utf8_lossy(&out.stderr));
    let a = d.wait_for(&format!("`{RULE}` for {dropped}"), |v| {
        rule(v) == RULE && field(v, "proc.exepath") == &Value::from(dropped.as_str())
    });
    assert_ne!(field(&a, "container.id"), &Value::from("host"), "{a}");
    let found = d.matching(|v| rule(v) == RULE && field(v, "proc.exepath") == &Value::from("/bin/busybox"));
    assert!(found.is_empty(), "the image's own busybox raised `{RULE}`: {found:?}");
    const DRIFT: &str = crate::default_rules::DRIFT;
    let a = bundled.wait_for(&format!("`{DRIFT}` for {dropped}"), |v| {
        rule(v) == DRIFT && field(v, "proc.exepath") == &Value::from(dropped.as_str())
    });
    assert!(a["output"].as_str().unwrap().contains(&format!("program={dropped}")), "{a}");
    let found =
        bundled.matching(|v| rule(v) == DRIFT && field(v, "proc.exepath") == &Value::from("/bin/busybox"));
    assert!(found.is_empty(), "the image's own busybox raised `{DRIFT}`: {found:?}");
}

/// Falco's "Launch Sensitive Mount Container": the first process of a container that has a
/// host directory such as /proc mounted, with the mounts from the runtime's API.
#[test]
fn container_started_with_a_sensitive_mount() {
    require_root!();
    require_podman!();
    const RULE: &str = "Launch Sensitive Mount Container";
    let image = test_image();
    let api = PodmanApi::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_sockets(dir.path(), &[&api.socket], 5000);
    let sandbox = common::falco_dir().join("falco-sandbox_rules.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("rules: [bundled]", &format!("rules: [\"{}\"]", sandbox.display())))
        .unwrap();
    let d = start_daemon(&config);
    let run = |mount: Option<&str>| -> String {
        let cidfile = dir.path().join(format!("cid-{}", mount.is_some()));
        let mut c = podman_run();
        c.arg("--rm").arg("--cidfile").arg(&cidfile);
        if let Some(m) = mount {
            c.args(["-v", m]);
        }
        // Up long enough for the runtime to describe it: a removed container has no mounts to ask
        // about.
        let out = c.args([image, "sleep", "3"]).output().unwrap();
        assert!(out.status.success(), "podman run: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(&cidfile).unwrap().trim()[..12].to_owned()
    };
    // The benign twin first: the ring hands events over in order.
    let plain = run(None);
    let mounted = run(Some("/proc:/host/proc:ro"));
    let in_container = |v: &Value, id: &str| rule(v) == RULE && field(v, "container.id") == &Value::from(id);
    let a = d.wait_for(&format!("`{RULE}` in container {mounted}"), |v| in_container(v, &mounted));
    let mounts = a["output_fields"]["container.mounts"].as_str().unwrap_or_default().to_owned();
    assert!(mounts.split(',').any(|m| m.starts_with("/proc:/host/proc:")), "{a}");
    let found = d.matching(|v| in_container(v, &plain));
    assert!(found.is_empty(), "a container without host mounts raised `{RULE}`: {found:?}");
    d.stop();
}
