//! Falco's stock rules loaded into the real daemon: each rule that loads does the real thing
//! and raises the alert, with a benign twin close to it that does not.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use crate::common::{
    self, Daemon, FakeContainer, alert_for, field_str, in_container, py_connect, rule, run_ok,
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
    let (d, _hosts) = daemon_with_hosts(&common::falco_dir().join("falco_rules.yaml"), &[]);
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
