//! Falco's stock rules loaded into the real daemon: each rule that loads does the real thing
//! and raises the alert, with a benign twin close to it that does not.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use crate::common::{
    self, Daemon, FakeContainer, LoopbackAddress, alert_for, assert_no_alert, cmd, expect_alert, field_str,
    in_container, py_connect, rule, run_ok,
};

/// A `monitor run` daemon with `rules`, in a mount namespace of its own whose /etc/hosts names
/// `hosts` (name, address): names resolve as the rules need without touching the host's file.
fn daemon_with_hosts(rules: &Path, hosts: &[(&str, &str)]) -> (Daemon, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "127.0.0.1 localhost").unwrap();
    for (name, address) in hosts {
        writeln!(file, "{address} {name}").unwrap();
    }
    file.flush().unwrap();
    let script = format!("mount --bind {} /etc/hosts && exec \"$0\" \"$@\"", file.path().display());
    let wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", &script];
    let rules = rules.to_str().unwrap();
    let d = Daemon::start_with(common::Options {
        command: &["run", "--format", "json"],
        args: &["--config", "/dev/null", "--rules", rules, "--set", "rate_limit.per_second=0"],
        wrapper: &wrapper,
        ..Default::default()
    });
    // Names are resolved off the event path; the first round ends before anything is judged.
    d.wait_for_log("host names the rules compare addresses with resolved");
    (d, file)
}

#[test]
fn contact_k8s_api_server_from_container() {
    require_root!();
    let py = require_tool!("python3");
    const RULE: &str = "Contact K8S API Server From Container";
    // The API server's name resolves to a loopback address of the daemon's own choosing.
    let (d, _hosts) = daemon_with_hosts(
        &common::falco_dir().join("falco_rules.yaml"),
        &[("kubernetes.default.svc.cluster.local", "127.0.0.77")],
    );
    let api = TcpListener::bind("127.0.0.77:0").unwrap();
    let port = api.local_addr().unwrap().port();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let c = FakeContainer::new();
    // Benign: the host reaching the API server (kubelets do), and the container reaching
    // another address.
    let host = common::run(Command::new(&py).args(["-c", &py_connect("127.0.0.77", port)]));
    let elsewhere = run_ok(&mut in_container(&c, &py, &["-c", &py_connect("127.0.0.1", other_port)]));
    let pid = run_ok(&mut in_container(&c, &py, &["-c", &py_connect("127.0.0.77", port)]));
    let a = d.wait_for(&format!("`{RULE}` for pid {pid}"), |v| alert_for(v, RULE, pid));
    assert_eq!(field_str(&a, "fd.sip"), "127.0.0.77", "{a}");
    assert_eq!(field_str(&a, "container.id"), c.short_id(), "{a}");
    let output = a["output"].as_str().unwrap();
    assert!(output.contains(&format!("127.0.0.77:{port}")), "{output}");
    let found = d.matching(|v| {
        rule(v) == RULE
            && [host, elsewhere].iter().any(|p| common::field_u64(v, "proc.pid") == Some(u64::from(*p)))
    });
    assert!(found.is_empty(), "the host or another destination raised `{RULE}`: {found:?}");
}

#[test]
fn server_names_in_rules_match_every_address_they_resolve_to() {
    require_root!();
    let py = require_tool!("python3");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("names.yaml");
    std::fs::write(
        &rules,
        r#"
- list: pool_domains
  items: [pool.example.test, other.example.test]
- rule: Pool contacted
  desc: a connect to a named pool
  condition: evt.type = connect and fd.sip.name in (pool_domains) and proc.name startswith python
  output: pool contacted (names=%fd.sip.name connection=%fd.name)
  priority: WARNING
- rule: Pool contacted by its other name
  desc: the same address under its second name
  condition: evt.type = connect and fd.rip.name = "other.example.test" and proc.name startswith python
  output: other name (connection=%fd.name)
  priority: WARNING
"#,
    )
    .unwrap();
    // pool.example.test has two addresses; other.example.test shares the second.
    let (d, _hosts) = daemon_with_hosts(
        &rules,
        &[
            ("pool.example.test", "127.0.0.81"),
            ("pool.example.test", "127.0.0.82"),
            ("other.example.test", "127.0.0.82"),
        ],
    );
    // The address no name resolves to goes first: once the later connects have raised their
    // alerts, its event has been judged too (one ordered ring).
    let mut pids = Vec::new();
    for ip in ["127.0.0.83", "127.0.0.81", "127.0.0.82"] {
        let l = TcpListener::bind((ip, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        pids.push(common::run(Command::new(&py).args(["-c", &py_connect(ip, port)])));
    }
    let [unnamed, first, second] = pids[..] else { unreachable!() };
    let a = d.wait_for("the pool's first address", |v| alert_for(v, "Pool contacted", first));
    assert_eq!(field_str(&a, "fd.sip"), "127.0.0.81", "{a}");
    let a = d.wait_for("the pool's second address", |v| alert_for(v, "Pool contacted", second));
    assert!(a["output"].as_str().unwrap().contains("names=other.example.test,pool.example.test"), "{a}");
    d.wait_for("the second address under its other name", |v| {
        alert_for(v, "Pool contacted by its other name", second)
    });
    let found = d.matching(|v| {
        alert_for(v, "Pool contacted", unnamed) || alert_for(v, "Pool contacted by its other name", unnamed)
    });
    assert!(found.is_empty(), "an address no rule names raised an alert: {found:?}");
    let found = d.matching(|v| alert_for(v, "Pool contacted by its other name", first));
    assert!(found.is_empty(), "the first address does not carry the second name: {found:?}");
}

#[test]
fn detect_release_agent_file_container_escapes() {
    require_root!();
    let setpriv = require_tool!("setpriv");
    const RULE: &str = "Detect release_agent File Container Escapes";
    let d = common::falco_stable_daemon();
    // Not a cgroup's release_agent: a file of that name, which is what the rule looks at.
    let dir = tempfile::tempdir().unwrap();
    let agent = format!("{}/release_agent", common::canonical(dir.path().to_str().unwrap()));
    let write = format!("echo /payload > {agent}");
    let c = FakeContainer::new();
    // Benign: the host writing it, and a container process without CAP_SYS_ADMIN (dropped
    // from the bounding set, so the exec of sh cannot have it).
    let host = common::run(Command::new("sh").args(["-c", &write]));
    let without =
        run_ok(&mut in_container(&c, &setpriv, &["--bounding-set", "-sys_admin", "sh", "-c", &write]));
    let pid = run_ok(&mut in_container(&c, "sh", &["-c", &write]));
    let a = d.wait_for(&format!("`{RULE}` for pid {pid}"), |v| alert_for(v, RULE, pid));
    assert_eq!(field_str(&a, "fd.name"), agent, "{a}");
    assert_eq!(field_str(&a, "container.id"), c.short_id(), "{a}");
    let output = a["output"].as_str().unwrap();
    assert!(output.contains("CAP_SYS_ADMIN") && output.contains("CAP_CHOWN"), "{output}");
    let found = d.matching(|v| rule(v) == RULE && [host, without].iter().any(|p| alert_for(v, RULE, *p)));
    assert!(found.is_empty(), "the host or a process without CAP_SYS_ADMIN raised `{RULE}`: {found:?}");
}

#[test]
fn directory_traversal_monitored_file_read() {
    require_root!();
    let py = require_tool!("python3");
    const RULE: &str = "Directory traversal monitored file read";
    let d = common::falco_stable_daemon();
    let read = |path: &str| common::run(Command::new(&py).args(["-c", &format!("open({path:?}).read()")]));
    // Benign: the same file by its plain path, and a climb that stays out of /etc.
    let plain = read("/etc/passwd");
    let elsewhere = read("/usr/share/../../usr/share/../lib/os-release");
    let pid = read("/usr/share/../../etc/passwd");
    let a = expect_alert(d, RULE, pid);
    assert_no_alert(d, RULE, plain, "/etc/passwd by its plain path");
    assert_no_alert(d, RULE, elsewhere, "a climb outside /etc");
    assert_eq!(field_str(&a, "fd.name"), "/etc/passwd", "{a}");
    assert_eq!(field_str(&a, "fd.nameraw"), "/usr/share/../../etc/passwd", "{a}");
}

#[test]
fn create_symlink_and_hardlink_over_sensitive_files() {
    require_root!();
    let d = common::falco_stable_daemon();
    let dir = tempfile::tempdir().unwrap();
    // The directory resolved, not the links (canonical() would follow them to /etc).
    let base = common::canonical(dir.path().to_str().unwrap());
    let at = |name: &str| format!("{base}/{name}");
    let ln = |args: &[&str]| common::run(Command::new("ln").args(args));
    // Benign: links to a file no rule protects.
    let soft_benign = ln(&["-s", "/etc/hostname", &at("s0")]);
    let hard_benign = ln(&["/etc/hostname", &at("h0")]);
    let soft = ln(&["-s", "/etc/shadow", &at("s1")]);
    // A hard link across filesystems fails; the attempt is what the rule reports.
    let hard = ln(&["/etc/shadow", &at("h1")]);
    const SYMLINK: &str = "Create Symlink Over Sensitive Files";
    const HARDLINK: &str = "Create Hardlink Over Sensitive Files";
    let a = expect_alert(d, SYMLINK, soft);
    assert_no_alert(d, SYMLINK, soft_benign, "a symlink to /etc/hostname");
    assert_eq!(field_str(&a, "evt.arg.target"), "/etc/shadow", "{a}");
    assert_eq!(field_str(&a, "evt.arg.linkpath"), at("s1"), "{a}");
    let a = expect_alert(d, HARDLINK, hard);
    assert_no_alert(d, HARDLINK, hard_benign, "a hard link to /etc/hostname");
    assert_eq!(field_str(&a, "evt.arg.oldpath"), "/etc/shadow", "{a}");
    assert_eq!(field_str(&a, "evt.arg.newpath"), at("h1"), "{a}");
}

#[test]
fn packet_socket_created_in_container() {
    require_root!();
    let py = require_tool!("python3");
    const RULE: &str = "Packet socket created in container";
    let d = common::falco_stable_daemon();
    let packet = "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)";
    let inet = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)";
    let c = FakeContainer::new();
    // Benign: the host opening one, and the container opening an ordinary socket.
    let host = common::run(Command::new(&py).args(["-c", packet]));
    let ordinary = run_ok(&mut in_container(&c, &py, &["-c", inet]));
    let pid = run_ok(&mut in_container(&c, &py, &["-c", packet]));
    let a = expect_alert(d, RULE, pid);
    assert_no_alert(d, RULE, host, "a packet socket on the host");
    assert_no_alert(d, RULE, ordinary, "an AF_INET socket in the container");
    assert!(a["output"].as_str().unwrap().contains("domain=AF_PACKET"), "{a}");
    assert_eq!(field_str(&a, "container.id"), c.short_id(), "{a}");
}

#[test]
fn redirect_stdout_to_network_connection_in_container() {
    require_root!();
    let py = require_tool!("python3");
    const RULE: &str = "Redirect STDOUT/STDIN to Network Connection in Container";
    let d = common::falco_stable_daemon();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let script = |target: u32| {
        format!(
            "import os, socket; s = socket.create_connection(('127.0.0.1', {port})); os.dup2(s.fileno(), {target})"
        )
    };
    let file_to_stdout = "import os; os.dup2(os.open('/dev/null', os.O_WRONLY), 1)";
    let c = FakeContainer::new();
    // Benign: a socket moved to another descriptor, a file onto stdout, and the host's shell.
    let other_fd = run_ok(&mut in_container(&c, &py, &["-c", &script(7)]));
    let file = run_ok(&mut in_container(&c, &py, &["-c", file_to_stdout]));
    let host = common::run(Command::new(&py).args(["-c", &script(1)]));
    let pid = run_ok(&mut in_container(&c, &py, &["-c", &script(1)]));
    let a = expect_alert(d, RULE, pid);
    assert_no_alert(d, RULE, other_fd, "a socket moved to fd 7");
    assert_no_alert(d, RULE, file, "/dev/null onto stdout");
    assert_no_alert(d, RULE, host, "the host redirecting stdout");
    assert_eq!(field_str(&a, "fd.sip"), "127.0.0.1", "{a}");
    assert!(a["output"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{a}");
}

#[test]
fn ptrace_attach_and_anti_debug() {
    require_root!();
    let py = require_tool!("python3");
    let d = common::falco_stable_daemon();
    let mut target = Command::new("sleep").arg("30").spawn().unwrap();
    let ptrace = |request: u32, pid: u32| {
        format!("import ctypes; ctypes.CDLL(None, use_errno=True).ptrace({request}, {pid}, 0, 0)")
    };
    // PTRACE_TRACEME = 0, PTRACE_PEEKDATA = 2 (reading is not injecting), PTRACE_ATTACH = 16.
    let peek = common::run(Command::new(&py).args(["-c", &ptrace(2, target.id())]));
    let attach = common::run(Command::new(&py).args(["-c", &ptrace(16, target.id())]));
    let traceme = common::run(Command::new(&py).args(["-c", &ptrace(0, 0)]));
    const ATTACH: &str = "PTRACE attached to process";
    const ANTI_DEBUG: &str = "PTRACE anti-debug attempt";
    let a = expect_alert(d, ATTACH, attach);
    assert_no_alert(d, ATTACH, peek, "PTRACE_PEEKDATA");
    assert_no_alert(d, ATTACH, traceme, "PTRACE_TRACEME");
    assert_eq!(field_str(&a, "evt.type"), "ptrace", "{a}");
    expect_alert(d, ANTI_DEBUG, traceme);
    assert_no_alert(d, ANTI_DEBUG, peek, "PTRACE_PEEKDATA");
    assert_no_alert(d, ANTI_DEBUG, attach, "PTRACE_ATTACH");
    let _ = target.kill();
    let _ = target.wait();
}

#[test]
fn linux_kernel_module_injection_detected() {
    require_root!();
    // Without module support the kernel has no init_module or finit_module at all (no
    // tracepoint, and the call fails with ENOSYS): nothing can be loaded, nor seen.
    if !Path::new("/proc/modules").exists() {
        common::skip(&common::test_name(), "the kernel is built without module support (CONFIG_MODULES=n)");
        return;
    }
    let insmod = require_tool!("insmod");
    const RULE: &str = "Linux Kernel Module Injection Detected";
    let d = common::falco_stable_daemon();
    let c = FakeContainer::new();
    let module = tempfile::NamedTempFile::new().unwrap();
    // Not a module: the kernel refuses it, after the call the rule looks at.
    let pid = common::run(&mut in_container(&c, &insmod, &[module.path().to_str().unwrap()]));
    let a = d.wait_for(&format!("`{RULE}` for pid {pid}"), |v| alert_for(v, RULE, pid));
    assert_eq!(field_str(&a, "container.id"), c.short_id(), "{a}");
}

/// Falco's incubating rules that read the environment at exec (`proc.env`).
#[test]
fn environment_rules_of_the_incubating_file() {
    require_root!();
    let curl = require_tool!("curl");
    const PROXY: &str = "Program run with disallowed http proxy env";
    const TUNABLES: &str = "Potential Local Privilege Escalation via Environment Variables Misuse";
    let rules = common::falco_dir().join("falco-incubating_rules.yaml");
    let d = Daemon::start_run(&[
        "--config",
        "/dev/null",
        "--rules",
        rules.to_str().unwrap(),
        "--set",
        "rate_limit.per_second=0",
    ]);
    let curl = curl.to_str().unwrap();
    let with_env =
        |vars: &[&str], program: &[&str]| common::run(Command::new("env").args(vars).args(program));
    // Benign twins: curl without a proxy, and a program with an ordinary variable.
    let plain_curl = with_env(&["NO_PROXY_SET=1"], &[curl, "--version"]);
    let ordinary = with_env(&["MONITOR_TEST=1"], &["true"]);
    let proxied = with_env(&["HTTP_PROXY=http://127.0.0.1:9"], &[curl, "--version"]);
    let tunables = with_env(&["GLIBC_TUNABLES=glibc.malloc.mxfast=0"], &["true"]);
    let a = expect_alert(&d, PROXY, proxied);
    assert!(field_str(&a, "proc.env").contains("HTTP_PROXY=http://127.0.0.1:9"), "{a}");
    let a = expect_alert(&d, TUNABLES, tunables);
    assert!(field_str(&a, "proc.env").contains("GLIBC_TUNABLES=glibc.malloc.mxfast=0"), "{a}");
    assert_no_alert(&d, PROXY, plain_curl, "curl without a proxy");
    assert_no_alert(&d, TUNABLES, ordinary, "an ordinary environment variable");
}

/// Falco's three stock files loaded together, with the sandbox's disabled network rules
/// switched on as a user would (a later file setting `enabled: true`).
fn falco_all_daemon() -> &'static Daemon {
    static DAEMON: std::sync::OnceLock<&'static Daemon> = std::sync::OnceLock::new();
    static ENABLE: std::sync::OnceLock<tempfile::NamedTempFile> = std::sync::OnceLock::new();
    let enable = ENABLE.get_or_init(|| {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for name in [UNEXPECTED_INBOUND, INTERPRETED_INBOUND, JAVA_CLASS_DOWNLOAD] {
            writeln!(file, "- rule: {name}\n  enabled: true").unwrap();
        }
        file.flush().unwrap();
        file
    });
    let dir = common::falco_dir();
    let files = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"];
    let mut args = vec!["--config".to_owned(), "/dev/null".to_owned()];
    for f in files.iter().map(|f| dir.join(f)).chain([enable.path().to_owned()]) {
        args.extend(["--rules".to_owned(), f.to_str().unwrap().to_owned()]);
    }
    args.extend(["--set".to_owned(), "rate_limit.per_second=0".to_owned()]);
    common::shared_daemon(&DAEMON, args)
}

const UNEXPECTED_INBOUND: &str = "Unexpected inbound connection source";
const INTERPRETED_INBOUND: &str = "Interpreted procs inbound network activity";
const JAVA_CLASS_DOWNLOAD: &str = "Java Process Class File Download";

/// A Python program that listens on `ip`, connects to itself and accepts.
fn py_accept(ip: &str) -> String {
    format!(
        "import socket\nl = socket.socket(); l.bind(('{ip}', 0)); l.listen(1)\n\
         c = socket.create_connection(l.getsockname()); s, _ = l.accept()"
    )
}

#[test]
fn inbound_connections_accepted_and_datagrams_received() {
    require_root!();
    let py = require_tool!("python3");
    let d = falco_all_daemon();
    let outside = LoopbackAddress::add("192.0.2.77");
    let accepted = common::run(Command::new(&py).args(["-c", &py_accept("192.0.2.77")]));
    // A datagram from an address the socket is not connected to: the sender is the fd's new
    // peer. The connected twin reads its peer's datagram: no name changes.
    let datagram = |connect: bool, call: &str| {
        format!(
            "import socket\nu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('192.0.2.77', 0))\n\
             v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); v.bind(('192.0.2.77', 0))\n\
             if {}: u.connect(v.getsockname())\n\
             v.sendto(b'ping', u.getsockname()); u.{call}(100)",
            if connect { "True" } else { "False" }
        )
    };
    let received = run_ok(Command::new(&py).args(["-c", &datagram(false, "recvfrom")]));
    let received_msg = run_ok(Command::new(&py).args(["-c", &datagram(false, "recvmsg")]));
    let connected = run_ok(Command::new(&py).args(["-c", &datagram(true, "recvfrom")]));
    // Loopback's own network is not inbound by Falco's macro.
    let local = common::run(Command::new(&py).args(["-c", &py_accept("127.0.0.1")]));
    let a = d.wait_for_or_show(
        &format!("`{UNEXPECTED_INBOUND}` on accept for pid {accepted}"),
        |v| alert_for(v, UNEXPECTED_INBOUND, accepted) && field_str(v, "evt.type").starts_with("accept"),
        |v| common::involves(v, accepted),
    );
    let port = |v: &serde_json::Value, f| common::field_u64(v, f).unwrap();
    // The accepted socket's local end is the listener's port; its peer the connecting socket.
    assert_ne!(port(&a, "fd.lport"), port(&a, "fd.rport"), "{a}");
    let out = a["output"].as_str().unwrap();
    assert!(out.contains(&format!("lport={}", port(&a, "fd.lport"))), "{a}");
    assert!(field_str(&a, "fd.name").starts_with("192.0.2.77:"), "{a}");
    let i = d.wait_for_or_show(
        &format!("`{INTERPRETED_INBOUND}` for pid {accepted}"),
        |v| alert_for(v, INTERPRETED_INBOUND, accepted),
        |v| common::involves(v, accepted),
    );
    assert!(["accept", "accept4", "listen"].contains(&field_str(&i, "evt.type")), "{i}");
    for pid in [received, received_msg] {
        let r = d.wait_for_or_show(
            &format!("`{INTERPRETED_INBOUND}` on a datagram for pid {pid}"),
            |v| alert_for(v, INTERPRETED_INBOUND, pid),
            |v| common::involves(v, pid),
        );
        assert!(["recvfrom", "recvmsg"].contains(&field_str(&r, "evt.type")), "{r}");
        assert_eq!(field_str(&r, "fd.l4proto"), "udp", "{r}");
        // The sender is the client; this socket the server.
        let name = field_str(&r, "fd.name");
        assert!(name.starts_with("192.0.2.77:") && name.contains("->192.0.2.77:"), "{r}");
    }
    assert_no_alert(d, INTERPRETED_INBOUND, connected, "a datagram on a connected socket");
    assert_no_alert(d, INTERPRETED_INBOUND, local, "an accept on 127.0.0.1");
    assert_no_alert(d, UNEXPECTED_INBOUND, local, "an accept on 127.0.0.1");
    drop(outside);
}

#[test]
fn java_process_class_file_download() {
    require_root!();
    let py = require_tool!("python3");
    let d = falco_all_daemon();
    // A "java" (argv[0], which proc.exe is) reading a class file's magic number off a socket;
    // the same program reading anything else is its benign twin.
    let receive = |payload: &str| {
        let code = format!(
            "import socket\nl = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)\n\
             c = socket.create_connection(l.getsockname()); s, _ = l.accept()\n\
             s.sendall({payload}); c.recv(100)"
        );
        common::run(Command::new(&py).arg0("/opt/jdk/bin/java").args(["-c", &code]))
    };
    let plain = receive("b'GET / HTTP/1.0'");
    let class = receive("b'\\xca\\xfe\\xba\\xbe\\x00\\x00\\x00\\x34'");
    let a = expect_alert(d, JAVA_CLASS_DOWNLOAD, class);
    assert_eq!(field_str(&a, "evt.type"), "recvfrom", "{a}");
    assert_no_alert(d, JAVA_CLASS_DOWNLOAD, plain, "a java process reading a plain request");
}

#[test]
fn basic_interactive_reconnaissance() {
    require_root!();
    let script = require_tool!("script");
    const RULE: &str = "Basic Interactive Reconnaissance";
    let d = falco_all_daemon();
    // `script` starts a session on a new terminal: a command exec'd by its shell leads its
    // process group, as one a user typed at an interactive shell does. One a script runs
    // among others shares the script's group: not interactive. The script's shell writes down
    // its pid, the parent of the command it runs.
    let shell_pid = tempfile::NamedTempFile::new().unwrap();
    let script_text = format!("echo $$ > {}; id; true", shell_pid.path().display());
    run_ok(cmd(&script).env("SHELL", "/bin/sh").args(["-qc", &script_text, "/dev/null"]));
    let scripted: u32 = std::fs::read_to_string(shell_pid.path()).unwrap().trim().parse().unwrap();
    // Its parent is `script`: `exec` keeps the shell's pid and group.
    let typed = run_ok(cmd(&script).env("SHELL", "/bin/sh").args(["-qc", "exec id", "/dev/null"]));
    let a = d.wait_for_or_show(
        &format!("`{RULE}` under pid {typed}"),
        |v| rule(v) == RULE && field_str(v, "proc.name") == "id" && common::involves(v, typed),
        |v| common::involves(v, typed),
    );
    assert_ne!(common::field_u64(&a, "proc.tty"), Some(0), "{a}");
    // The typed command came later through the same ordered ring: the scripted one was judged.
    assert_no_alert(d, RULE, scripted, "an id run by a script on a terminal");
}
