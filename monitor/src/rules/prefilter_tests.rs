//! The prefilter is conservative: every event a rule matches passes the kernel's filter (as
//! [`Prefilter::admits_open`] and [`Prefilter::admits_net`] model it), over recorded events and
//! over events generated from the rules' own paths, ports and a vocabulary of paths, for the
//! bundled rules, Falco's stock rules (when present beside the project) and conditions written
//! to exercise each shape the analysis understands.

use std::path::PathBuf;
use std::sync::Arc;

use monitor_common::{
    FAMILY_INET, FAMILY_INET6, OPEN_CLASS_NEITHER, OPEN_CLASS_READ, OPEN_CLASS_READ_WRITE, OPEN_CLASS_WRITE,
    RESULT_OK,
};

use super::loader::Definitions;
use super::ruleset::Ruleset;
use super::source::SourceFile;
use crate::container::ContainerId;
use crate::event::{Detail, Event, FieldContext, NetInfo, OpenInfo};
use crate::process::{Process, StdioInfo};
use crate::sensor::filter::{Atom, FilterPlan as Prefilter, PathExpr, Verdict};
use monitor_common::{EventClass, EventType, FdType, L4Proto, TypeSet};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

fn bundled() -> Ruleset {
    let l = Ruleset::load(&[PathBuf::from(super::BUNDLED)]);
    assert!(!l.has_errors());
    l.ruleset
}

fn falco() -> Option<Ruleset> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco");
    if !dir.join("falco_rules.yaml").is_file() {
        eprintln!("SKIPPED PART: Falco's stock rules not found at {}", dir.display());
        return None;
    }
    let files = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"];
    let mut defs = Definitions::default();
    for f in files {
        let p = dir.join(f);
        if let Ok(text) = std::fs::read_to_string(&p) {
            defs.load_source(SourceFile::new(p.display().to_string(), &text));
        }
    }
    Some(Ruleset::from_definitions(defs).ruleset)
}

/// Falco's stock rules with every rule enabled (it ships many disabled; the filter must hold
/// for each of them).
fn falco_all_enabled() -> Option<Ruleset> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco");
    if !dir.join("falco_rules.yaml").is_file() {
        return None;
    }
    let mut text = String::new();
    for f in ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"] {
        if let Ok(t) = std::fs::read_to_string(dir.join(f)) {
            text.push_str(&t.replace("enabled: false", "enabled: true"));
            text.push('\n');
        }
    }
    let mut defs = Definitions::default();
    defs.load_source(SourceFile::new("falco-all.yaml", &text));
    Some(Ruleset::from_definitions(defs).ruleset)
}

/// Conditions for each shape the analysis narrows on, and the ones it must not narrow on.
const SHAPES: &str = r#"
- list: watched_dirs
  items: [/srv/watched, /opt/app/conf]
- rule: exact names
  desc: d
  condition: evt.type in (open, openat, openat2) and fd.name in (/etc/passwd, /var/lib/x/state.db)
  output: o
  priority: WARNING
- rule: under dirs, written
  desc: d
  condition: open_write and fd.name pmatch (watched_dirs)
  output: o
  priority: WARNING
- rule: starts with
  desc: d
  condition: evt.type = openat and fd.name startswith /var/log/aud and evt.rawres >= 0
  output: o
  priority: WARNING
- rule: glob
  desc: d
  condition: evt.type = openat and (fd.name glob "/data/*/secret*" or fd.name glob "/keys/*.pem")
  output: o
  priority: WARNING
- rule: directory and name
  desc: d
  condition: evt.type = openat and (fd.directory = /run/secrets or fd.filename in (id_ed25519, .netrc))
  output: o
  priority: WARNING
- rule: directory prefix
  desc: d
  condition: evt.type = openat and fd.directory pmatch (/var/spool/cron)
  output: o
  priority: WARNING
- rule: failed opens
  desc: d
  condition: evt.type = openat and evt.res = EACCES and fd.name startswith /root
  output: o
  priority: WARNING
- rule: not read
  desc: d
  condition: evt.type = openat and not evt.is_open_read = true and fd.name = /srv/flag
  output: o
  priority: WARNING
- rule: negated path is wide
  desc: d
  condition: evt.type = openat and not fd.name startswith /usr and evt.is_open_write = true and fd.num >= 0
  output: o
  priority: WARNING
- rule: transformer is wide
  desc: d
  condition: evt.type = openat and toupper(fd.name) = /TMP/SHOUT and evt.is_open_read = true
  output: o
  priority: WARNING
- rule: field comparison is wide
  desc: d
  condition: evt.type = openat and fd.name startswith val(proc.cwd)
  output: o
  priority: WARNING
- rule: ports
  desc: d
  condition: evt.type = connect and fd.sport in (4444, 31337) and evt.rawres >= 0
  output: o
  priority: WARNING
- rule: unix only
  desc: d
  condition: evt.type in (sendto, sendmsg) and fd.typechar = u
  output: o
  priority: WARNING
- rule: in progress
  desc: d
  condition: evt.type = connect and fd.sip = 8.8.8.8 and evt.res = EINPROGRESS
  output: o
  priority: WARNING
- macro: open_write
  condition: (evt.type in (open, openat, openat2, creat) and evt.is_open_write = true and fd.num >= 0)
"#;

fn shapes() -> Ruleset {
    let mut defs = Definitions::default();
    defs.load_source(SourceFile::new("shapes.yaml", SHAPES));
    let l = Ruleset::from_definitions(defs);
    assert!(!l.has_errors(), "{:?}", l.diagnostics.iter().map(|d| d.headline()).collect::<Vec<_>>());
    assert!(l.ruleset.skipped.is_empty(), "{}", l.ruleset.skipped[0].reason);
    l.ruleset
}

fn process(name: &str, exe: &str, parent: Arc<Process>) -> Arc<Process> {
    Arc::new(Process {
        pid: 100,
        ppid: parent.pid,
        comm: name.into(),
        exe_path: exe.into(),
        argv: vec![name.into(), "-c".into(), "curl x | sh".into()],
        cwd: Some("/tmp".into()),
        vpid: 2,
        tty: 34816,
        stdio: [
            StdioInfo { fd_type: Some(FdType::Pipe), name: None },
            StdioInfo { fd_type: Some(FdType::Ipv4), name: Some("10.0.0.1:5000->10.0.0.2:4444".into()) },
            StdioInfo::default(),
        ],
        ..Default::default()
    })
}

/// Processes whose names the rules ask about: shells, interpreters, services, tools.
fn processes() -> Vec<(Arc<Process>, Vec<Arc<Process>>)> {
    let root = Arc::new(Process {
        pid: 1,
        comm: "systemd".into(),
        exe_path: "/usr/lib/systemd/systemd".into(),
        ..Default::default()
    });
    let mut out = Vec::new();
    for (pname, pexe) in [
        ("nginx", "/usr/sbin/nginx"),
        ("python3", "/usr/bin/python3"),
        ("containerd-shim", "/usr/bin/containerd-shim"),
    ] {
        let parent = Arc::new(Process {
            pid: 50,
            ppid: 1,
            comm: pname.into(),
            exe_path: pexe.into(),
            ..Default::default()
        });
        for (name, exe) in [
            ("bash", "/usr/bin/bash"),
            ("python3", "/usr/bin/python3.11"),
            ("cat", "/usr/bin/cat"),
            ("nc", "/usr/bin/nc"),
        ] {
            out.push((process(name, exe, parent.clone()), vec![parent.clone(), root.clone()]));
        }
    }
    out
}

fn base(
    evt_type: EventType,
    res: i64,
    detail: Detail,
    p: &(Arc<Process>, Vec<Arc<Process>>),
    container: bool,
) -> Event {
    Event {
        evt_type,
        via: monitor_common::Via::Syscall,
        call: monitor_common::Call::Same,
        result_unknown: false,
        num: 1,
        time_ns: 1_700_000_000_000_000_000,
        cpu: 0,
        pid: 100,
        tid: 100,
        uid: 0,
        gid: 0,
        res,
        cgroup_id: 9,
        cgroup_path: Some("/kubepods/x".into()),
        container: container.then(|| ContainerId {
            full: "a".repeat(64),
            runtime: crate::container::ContainerRuntime::Containerd,
            pod: None,
        }),
        process: Some(p.0.clone()),
        ancestors: p.1.clone(),
        detail,
    }
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Paths from the rules' own atoms (and their neighbours), a fixed list, and random ones.
fn paths(filters: &[&Prefilter]) -> Vec<String> {
    let mut out: Vec<String> = [
        "/",
        "/etc",
        "/etc/shadow",
        "/etc/shadowx",
        "/etc/hostname",
        "/etc/os-release",
        "/etc/sudoers.d/x",
        "/root/.ssh/authorized_keys",
        "/home/u/.ssh/id_rsa",
        "/home/u/.ssh/authorized_keys2",
        "/home/u/.aws/credentials",
        "/home/u/.kube/config",
        "/home/u/.docker/config.json",
        "/home/u/.config/gcloud/x",
        "/proc/1/environ",
        "/proc/self/environ",
        "/tmp/a",
        "/tmp/etc/shadow",
        "/usr/bin/x",
        "/usr/local/bin/y",
        "/bin/sh",
        "/data/a/secret.txt",
        "/data/a/b/secret",
        "/keys/a.pem",
        "/keys/sub/a.pem",
        "/run/secrets/db",
        "/run/secrets/sub/db",
        "/x/id_ed25519",
        "/var/spool/cron/crontabs/root",
        "/var/log/audit/audit.log",
        "/var/log/aud",
        "/srv/watched",
        "/srv/watched/a/b",
        "/srv/watchedx/a",
        "/opt/app/conf/x.yaml",
        "/srv/flag",
        "/var/lib/x/state.db",
        "/etc/passwd",
        "/dev/mem",
        "/boot/vmlinuz",
        "/lib/modules/x.ko",
        "/var/run/docker.sock",
        "/etc/ld.so.preload",
        "/etc/cron.d/job",
        "/root/.bash_history",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    fn atoms(p: &PathExpr, out: &mut Vec<String>) {
        match p {
            PathExpr::Any => {}
            PathExpr::Atoms(a) => {
                for atom in a {
                    let s = match atom {
                        Atom::Exact(s) | Atom::Under(s) | Atom::StartsWith(s) | Atom::Dir(s) => s.clone(),
                        Atom::Name(n) => format!("/tmp/{n}"),
                    };
                    out.push(s.clone());
                    out.push(format!("{s}x"));
                    out.push(format!("{}/x", s.trim_end_matches('/')));
                    out.push(format!("{}/a/b", s.trim_end_matches('/')));
                    if let Some((d, _)) = crate::sensor::filter::split_path(&s) {
                        out.push(d.to_owned());
                    }
                }
            }
            PathExpr::And(xs) | PathExpr::Or(xs) => xs.iter().for_each(|x| atoms(x, out)),
        }
    }
    for f in filters {
        if let Some(o) = &f.open {
            o.paths.iter().for_each(|p| atoms(p, &mut out));
        }
    }
    let words = [
        "etc", "shadow", "home", "u", ".ssh", "id_rsa", "proc", "1", "environ", "usr", "bin", "tmp", "root",
        "var", "log", "passwd", "srv", "watched", "data", "secret", "run", "secrets", "cron.d",
    ];
    let mut rng = Lcg(7);
    for _ in 0..1500 {
        let depth = 1 + rng.next(5);
        let p: String = (0..depth).map(|_| format!("/{}", words[rng.next(words.len())])).collect();
        out.push(p);
    }
    out.retain(|p| p.starts_with('/'));
    out.sort();
    out.dedup();
    out
}

fn open_events(paths: &[String], procs: &[(Arc<Process>, Vec<Arc<Process>>)]) -> Vec<Event> {
    let flags = [0, 1, 2, 0o1101, 0o10000000, 0o200000, 0o2101];
    let mut out = Vec::new();
    let mut rng = Lcg(11);
    for path in paths {
        for f in flags {
            for res in [3, -2, -13] {
                let p = &procs[rng.next(procs.len())];
                let ty = [
                    EventType::Openat,
                    EventType::Open,
                    EventType::Openat2,
                    EventType::OpenByHandleAt,
                    EventType::PidfdGetfd,
                ][rng.next(5)];
                let info =
                    OpenInfo { path: path.clone(), resolved: res >= 0, flags: f, ..Default::default() };
                let ev = base(ty, res, Detail::Open(info), p, rng.next(2) == 0);
                // Some come through io_uring with no completion: the caller's path, result unknown.
                if rng.next(4) == 0 {
                    let mut submitted = ev.clone();
                    submitted.via = monitor_common::Via::IoUring;
                    submitted.result_unknown = true;
                    submitted.res = 0;
                    if let Detail::Open(o) = &mut submitted.detail {
                        o.resolved = false;
                    }
                    out.push(submitted);
                }
                out.push(ev);
            }
        }
    }
    out
}

fn net_events(procs: &[(Arc<Process>, Vec<Arc<Process>>)]) -> Vec<Event> {
    let mut out = Vec::new();
    let ips = [
        "127.0.0.1",
        "10.0.0.1",
        "8.8.8.8",
        "169.254.169.254",
        "::1",
        "2001:db8::1",
        "::ffff:8.8.8.8",
        "100.100.100.200",
    ];
    for ty in [EventType::Connect, EventType::Sendto, EventType::Sendmsg] {
        for (i, p) in procs.iter().enumerate() {
            for ip in ips {
                for port in [53u16, 80, 443, 4444, 1337, 22, 6666, 31337] {
                    for res in [0, -115, -111] {
                        let addr: std::net::IpAddr = ip.parse().unwrap();
                        let fd_type = if addr.is_ipv4() || ip.starts_with("::ffff:") {
                            FdType::Ipv4
                        } else {
                            FdType::Ipv6
                        };
                        let info = NetInfo {
                            fd_type,
                            l4proto: Some(if ty == EventType::Connect { L4Proto::Tcp } else { L4Proto::Udp }),
                            fd: 3,
                            sip: Some(addr),
                            sport: port,
                            cip: Some("10.1.1.1".parse().unwrap()),
                            cport: 40000,
                            ..Default::default()
                        };
                        out.push(base(ty, res, Detail::Net(info), p, i % 2 == 0));
                    }
                }
            }
            for path in ["/var/run/docker.sock", "/run/containerd/containerd.sock", "@abstract"] {
                let info = NetInfo {
                    fd_type: FdType::Unix,
                    fd: 3,
                    unix_path: Some(path.into()),
                    ..Default::default()
                };
                out.push(base(ty, 0, Detail::Net(info), p, i % 2 == 0));
            }
        }
    }
    out
}

/// Every call type, with paths, arguments and sockets the rules name and others.
fn call_events(procs: &[(Arc<Process>, Vec<Arc<Process>>)]) -> Vec<Event> {
    use crate::event::{CallInfo, CallPath};
    let paths = ["/etc/shadow", "/etc/sudoers", "/root/.bash_history", "/usr/bin/x", "/tmp/x", "/bin/sh"];
    let sock = NetInfo {
        fd_type: FdType::Ipv4,
        l4proto: Some(L4Proto::Tcp),
        fd: 1,
        sip: Some("10.1.2.3".parse().unwrap()),
        sport: 4444,
        cip: Some("172.17.0.2".parse().unwrap()),
        cport: 40000,
        unix_path: None,
        from_socket: true,
        inbound: false,
        connected: Some(true),
    };
    let mut out = Vec::new();
    let mut rng = Lcg(7);
    for t in TypeSet::of_class(EventClass::Syscall).iter() {
        for (i, p) in procs.iter().enumerate() {
            for args in
                [[0, 0, 0, 0], [16, 1, 0, 0], [17, 3, 0, 0], [0o4755, 0, 0, 0], [5, 0x2000_0000, 0, 0]]
            {
                let mut path = |k: usize| {
                    let at = paths[(i + k + rng.next(paths.len())) % paths.len()];
                    Some(CallPath { raw: at.to_owned(), path: at.to_owned() })
                };
                // Sockets of either role, connected or not; received data with a class file's
                // magic number and without.
                let sock = (i % 2 == 0).then(|| NetInfo {
                    inbound: i % 4 == 0,
                    connected: Some(i % 3 != 0),
                    from_socket: i % 3 != 0,
                    ..sock.clone()
                });
                let buffer = match i % 3 {
                    0 => Some(b"\xca\xfe\xba\xbe\x00\x00\x00\x34".to_vec()),
                    1 => Some(b"GET / HTTP/1.0".to_vec()),
                    _ => None,
                };
                let info = CallInfo {
                    args,
                    paths: [path(0), path(1)],
                    fd_path: None,
                    sock,
                    buffer,
                    truncated: false,
                };
                out.push(base(t, if i % 3 == 0 { -1 } else { 1 }, Detail::Call(info), p, i % 2 == 0));
            }
        }
    }
    out
}

fn recorded() -> Vec<Event> {
    let text = include_str!("../../tests/fixtures/recorded_events.jsonl");
    text.lines().filter_map(|l| crate::event::replay::event_from_json(l).ok()).collect()
}

/// Whether the kernel would pass the event, for every kernel family its fd type allows.
fn admitted(f: &Prefilter, ev: &Event) -> bool {
    if !ev.evt_type.kernel_filtered() {
        return true;
    }
    // A result the kernel has not seen (an io_uring submission) is judged as any result.
    if ev.result_unknown {
        return [0, -2, -115]
            .iter()
            .any(|&res| admitted(f, &Event { res, result_unknown: false, ..ev.clone() }));
    }
    match &ev.detail {
        Detail::Open(o) => {
            let path = o.resolved.then_some(o.path.as_str());
            f.admits_open(o.flags, ev.res, path, (u64::from(o.dev), o.ino))
        }
        Detail::Net(n) => {
            let sendto = ev.evt_type != EventType::Connect;
            let families: &[u16] = match n.fd_type {
                FdType::Ipv4 => &[AF_INET, AF_INET6],
                FdType::Ipv6 => &[AF_INET6],
                FdType::Unix => &[AF_UNIX],
                _ => &[0, 16, 17],
            };
            families.iter().all(|&fam| f.admits_net(sendto, fam, ev.res, n.sport))
        }
        Detail::Call(_) => f.admits_call(ev.evt_type),
        // Never filtered.
        _ => true,
    }
}

/// (events a rule matched, events the filter dismissed); panics on a matched event dismissed.
fn check(name: &str, rs: &Ruleset, events: &[Event]) -> (usize, usize) {
    let f = super::prefilter::plan(rs);
    let cx = FieldContext::default();
    let mut matched = 0;
    let mut dismissed = 0;
    let mut out = Vec::new();
    for ev in events {
        out.clear();
        rs.matching(ev, &cx, &mut out);
        let pass = admitted(&f, ev);
        if !pass {
            dismissed += 1;
        }
        if !out.is_empty() {
            matched += 1;
            assert!(
                pass,
                "{name}: the filter dismisses an event rule `{}` matches: {} {:?}\nfilter: {}",
                rs.rules[out[0]].name,
                ev.evt_type.name(),
                ev.detail,
                f.describe()
            );
        }
    }
    (matched, dismissed)
}

#[test]
fn every_event_a_rule_matches_passes_the_filter() {
    let procs = processes();
    let mut sets = vec![("bundled", bundled()), ("shapes", shapes())];
    if let Some(f) = falco() {
        sets.push(("falco stock", f));
    }
    if let Some(f) = falco_all_enabled() {
        sets.push(("falco, every rule enabled", f));
    }
    let filters: Vec<Prefilter> = sets.iter().map(|(_, rs)| super::prefilter::plan(rs)).collect();
    let filter_refs: Vec<&Prefilter> = filters.iter().collect();
    let mut events = recorded();
    assert!(events.len() > 300, "the recorded fixture reads back");
    events.extend(open_events(&paths(&filter_refs), &procs));
    events.extend(net_events(&procs));
    let calls = call_events(&procs);
    events.extend(calls.iter().cloned());
    for (name, rs) in &sets {
        let (matched, dismissed) = check(name, rs, &events);
        eprintln!("{name}: {} events, {matched} matched a rule, {dismissed} dismissed", events.len());
        // Not vacuous: rules match many of these events, and the filter dismisses many others.
        assert!(matched > 50, "{name}: only {matched} events matched");
        assert!(dismissed > 0, "{name}: nothing dismissed");
        if name.starts_with("falco") {
            // The calls' rules are judged too, not only opens and connects.
            let (calls_matched, _) = check(name, rs, &calls);
            assert!(calls_matched > 20, "{name}: only {calls_matched} call events matched");
        }
        if *name == "bundled" {
            // Of the events the kernel may judge at all (not a rare type, result known).
            let judged = events.iter().filter(|e| e.evt_type.kernel_filtered() && !e.result_unknown).count();
            assert!(dismissed > judged / 2, "{name}: only {dismissed} of {judged} dismissed");
        }
    }
}

#[test]
fn bundled_rules_compile_to_a_narrow_filter() {
    let f = super::prefilter::plan(&bundled());
    let o = f.open.as_ref().expect("the bundled rules watch opens");
    assert_eq!(o.results, RESULT_OK, "every bundled open rule needs a successful open");
    assert!(o.by_directory());
    let read = OPEN_CLASS_READ.trailing_zeros() as usize;
    let write = OPEN_CLASS_WRITE.trailing_zeros() as usize;
    let neither = OPEN_CLASS_NEITHER.trailing_zeros() as usize;
    assert_eq!(o.classes & OPEN_CLASS_NEITHER, 0, "O_PATH opens are neither read nor write");
    assert_ne!(o.classes & OPEN_CLASS_READ_WRITE, 0);
    assert_eq!(o.verdicts("/tmp")[read], Verdict::Drop);
    assert_eq!(o.verdicts("/etc")[read], Verdict::Names, "only named files in /etc are read-sensitive");
    assert!(o.names.contains("shadow") && o.names.contains("os-release"));
    assert_eq!(o.verdicts("/etc")[write], Verdict::Pass, "all of /etc is write-sensitive");
    assert_eq!(o.verdicts("/etc/sudoers.d")[read], Verdict::Pass);
    assert_eq!(o.verdicts("/root/.ssh/keys")[read], Verdict::Pass);
    assert_eq!(o.verdicts("/home/alice")[read], Verdict::Pass, "a glob's literal head is kept");
    assert_eq!(o.verdicts("/proc/123")[read], Verdict::Names, "/proc/*/environ: only files named environ");
    assert!(o.names.contains("environ"));
    assert_eq!(o.verdicts("/proc/123")[write], Verdict::Drop);
    assert_eq!(o.verdicts("/var/lib/x")[write], Verdict::Drop);
    assert_eq!(o.verdicts("/tmp")[neither], Verdict::Drop);
    let c = f.connect.as_ref().expect("connect rules");
    assert_eq!(c.families, FAMILY_INET | FAMILY_INET6, "no bundled rule watches unix-socket connects");
    assert!(f.admits_net(false, AF_INET, -111, 1));
    assert!(!f.admits_net(false, AF_UNIX, 0, 0));
    assert!(!f.admits_open(0, -2, None, (0, 0)), "failed opens are dismissed");
    assert!(!f.admits_open(0, 3, Some("/etc/hostname"), (1, 2)));
    assert!(f.admits_open(0, 3, Some("/etc/shadow"), (1, 2)));
    assert!(f.admits_open(1, 3, Some("/etc/hostname"), (1, 2)));
}

#[test]
fn path_atoms_judge_directories() {
    let v = |a: Atom, dir: &str| PathExpr::Atoms(vec![a]).verdict(dir);
    assert_eq!(v(Atom::Under("/etc".into()), "/"), Verdict::Names);
    assert_eq!(v(Atom::Under("/etc".into()), "/etc/x"), Verdict::Pass);
    assert_eq!(v(Atom::Under("/etc".into()), "/etcx"), Verdict::Drop);
    assert_eq!(v(Atom::Under("/".into()), "/anything"), Verdict::Pass);
    assert_eq!(
        v(Atom::StartsWith("/var/log/aud".into()), "/var/log"),
        Verdict::Pass,
        "a name prefix cannot be held"
    );
    assert_eq!(v(Atom::StartsWith("/var/log/aud".into()), "/var/logs"), Verdict::Drop);
    assert_eq!(v(Atom::StartsWith("/var/log/aud/x/y".into()), "/var/log"), Verdict::Drop);
    assert_eq!(v(Atom::StartsWith("/va".into()), "/"), Verdict::Pass);
    assert_eq!(v(Atom::StartsWith("/var/".into()), "/var"), Verdict::Pass);
    assert_eq!(v(Atom::Exact("/a/b".into()), "/a"), Verdict::Names);
    assert_eq!(v(Atom::Exact("/a/b".into()), "/a/b"), Verdict::Drop);
    assert_eq!(v(Atom::Exact(format!("/a/{}", "n".repeat(80))), "/a"), Verdict::Pass, "too long for the set");
    assert_eq!(v(Atom::Dir("/run/s".into()), "/run/s"), Verdict::Pass);
    assert_eq!(v(Atom::Dir("/run/s".into()), "/run"), Verdict::Drop);
    assert_eq!(v(Atom::Name("x".into()), "/q"), Verdict::Names);
    let and = PathExpr::And(vec![PathExpr::Any, PathExpr::Atoms(vec![Atom::Exact("/a/b".into())])]);
    assert_eq!(and.verdict("/a"), Verdict::Names);
    assert_eq!(and.verdict("/c"), Verdict::Drop);
    let or = PathExpr::Or(vec![
        PathExpr::Atoms(vec![Atom::Exact("/a/b".into())]),
        PathExpr::Atoms(vec![Atom::Dir("/c".into())]),
    ]);
    assert_eq!(or.verdict("/c"), Verdict::Pass);
    assert_eq!(or.verdict("/d"), Verdict::Drop);
}

#[test]
fn shapes_narrow_only_where_they_can() {
    let f = super::prefilter::plan(&shapes());
    let o = f.open.as_ref().unwrap();
    // `not fd.name startswith /usr` widens writes to every directory; failed EACCES opens
    // under /root stay wanted.
    assert_eq!(o.verdicts("/anything")[OPEN_CLASS_WRITE.trailing_zeros() as usize], Verdict::Pass);
    assert_ne!(o.results & monitor_common::RESULT_FAILED, 0);
    // toupper() and val() leave reads of any path wanted.
    assert_eq!(o.verdicts("/anything")[OPEN_CLASS_READ.trailing_zeros() as usize], Verdict::Pass);
    let c = f.connect.as_ref().unwrap();
    assert_eq!(c.ports, None, "the EINPROGRESS rule names no port");
    let s = f.sendto.as_ref().unwrap();
    assert_eq!(s.families, monitor_common::FAMILY_UNIX);
}
