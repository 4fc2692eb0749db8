use super::*;

#[test]
fn lookup_checks_arguments() {
    assert!(Field::lookup("proc.name", None).is_ok());
    assert!(Field::lookup("proc.aname", Some("2")).is_ok());
    assert!(Field::lookup("proc.aname", None).unwrap().is_multi());
    assert!(matches!(Field::lookup("proc.aname", Some("x")), Err(FieldError::BadArgument(_))));
    assert!(matches!(Field::lookup("proc.name", Some("1")), Err(FieldError::BadArgument(_))));
    assert_eq!(Field::lookup("thread.vmrss", None).unwrap_err(), FieldError::Unsupported);
    assert_eq!(Field::lookup("evt.arg.no_such_parameter", None).unwrap_err(), FieldError::Unsupported);
    assert_eq!(Field::lookup("evt.arg.newpath", None).unwrap().name(), "evt.arg.newpath");
    assert_eq!(Field::lookup("evt.rawarg.request", None).unwrap().ty(), FieldType::Int);
    assert_eq!(Field::lookup("evt.arg.flags", None).unwrap().name(), "evt.arg.flags");
    assert_eq!(Field::lookup("k8s.pod.label.app", None).unwrap().name(), "k8s.pod.label[app]");
    assert_eq!(Field::lookup("proc.env", Some("HOME")).unwrap().name(), "proc.env[HOME]");
    assert!(Field::lookup("proc.env", None).is_ok());
}

mod registry_walk {
    use std::sync::Arc;

    use monitor_common::{EventType, FdType, L4Proto};

    use super::super::*;
    use crate::container::{ContainerId, ContainerRuntime};
    use crate::event::{Detail, Event, JsonRenderer, NetInfo, OpenInfo};
    use crate::process::{ProcSource, Process, StdioInfo};

    fn process(pid: u32, comm: &str, argv: &[&str]) -> Arc<Process> {
        Arc::new(Process {
            pid,
            start_ns: 1_234_000 + u64::from(pid),
            ppid: pid.saturating_sub(1),
            comm: comm.into(),
            exe_path: format!("/usr/bin/{comm}"),
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            argv_truncated: pid.is_multiple_of(2),
            paths_truncated: false,
            cwd: Some("/srv/a b".into()),
            script: (comm == "python3").then(|| "/srv/run.py".to_owned()),
            exe_from_memfd: false,
            exe_ino: 77,
            uid: 1000,
            euid: 1000,
            gid: 1000,
            egid: 1000,
            loginuid: if pid == 300 { u32::MAX } else { 1000 },
            vpid: pid + 1,
            pidns: 4026531836,
            mntns: 4026531840,
            tty: 34816,
            stdio: [
                StdioInfo { fd_type: Some(FdType::Ipv4), name: Some("10.0.0.1:5000->10.0.0.2:4444".into()) },
                StdioInfo { fd_type: Some(FdType::Pipe), name: None },
                StdioInfo { fd_type: Some(FdType::File), name: Some("/dev/pts/0".into()) },
            ],
            source: ProcSource::Fork,
            ..Default::default()
        })
    }

    fn event(evt_type: EventType, res: i64, detail: Detail, container: bool) -> Event {
        let full = "0123456789abcdef".repeat(4);
        Event {
            evt_type,
            via: monitor_common::Via::Syscall,
            call: monitor_common::Call::Same,
            result_unknown: false,
            num: 42,
            time_ns: 1_795_435_200_123_456_789,
            cpu: 1,
            pid: 300,
            tid: 301,
            uid: 1000,
            gid: 1000,
            res,
            cgroup_id: 9,
            cgroup_path: Some(
                format!("/kubepods/burstable/pod0b9e5a2c-1111-2222-3333-444455556666/{full}").into(),
            ),
            container: container.then(|| ContainerId {
                full: full.clone(),
                runtime: ContainerRuntime::Containerd,
                pod: crate::container::pod_from_cgroup_path(&format!(
                    "/kubepods/burstable/pod0b9e5a2c-1111-2222-3333-444455556666/{full}"
                )),
            }),
            process: Some(process(300, "python3", &["/usr/bin/python3", "-c", "x  y", "\\n\u{2028}"])),
            ancestors: vec![process(299, "bash", &["-bash", "-i"]), process(1, "systemd", &["/sbin/init"])],
            detail,
        }
    }

    fn samples() -> Vec<Event> {
        let open = |path: &str, flags, resolved| {
            Detail::Open(OpenInfo {
                path: path.into(),
                resolved,
                raw: Some(format!("./../{path}")),
                truncated: false,
                flags,
                mode: 0o644,
                ino: 12,
                dev: 2049,
            })
        };
        let inet = |fd_type, l4, sip: &str, cip: Option<&str>| {
            Detail::Net(NetInfo {
                fd_type,
                l4proto: Some(l4),
                fd: 5,
                sip: Some(sip.parse().unwrap()),
                sport: 443,
                cip: cip.map(|c| c.parse().unwrap()),
                cport: 40000,
                unix_path: None,
                from_socket: true,
                ..Default::default()
            })
        };
        vec![
            event(EventType::Execve, 0, Detail::Exec { filename: "/usr/bin/python3".into() }, true),
            event(EventType::Execveat, 0, Detail::Exec { filename: "/dev/fd/3".into() }, false),
            event(EventType::Clone, 0, Detail::Fork, false),
            event(EventType::Procexit, 0, Detail::Exit { code: 9 }, true),
            event(EventType::Openat, 3, open("/etc/shadow", 0o2000000, true), true),
            event(EventType::Open, -2, open("/tmp/x/\u{10FFA0}missing", 0o101, false), false),
            event(EventType::Openat2, 4, open("/var/log", 0o200000, true), false),
            event(EventType::Creat, 5, open("/tmp/new", 0o1101, true), false),
            event(
                EventType::Connect,
                -115,
                inet(FdType::Ipv4, L4Proto::Tcp, "169.254.169.254", Some("10.1.1.1")),
                true,
            ),
            event(EventType::Sendto, 12, inet(FdType::Ipv6, L4Proto::Udp, "2001:db8::1", None), false),
            event(
                EventType::Sendmsg,
                0,
                Detail::Net(NetInfo {
                    fd_type: FdType::Unix,
                    l4proto: None,
                    fd: 7,
                    unix_path: Some("@abstract".into()),
                    ..Default::default()
                }),
                false,
            ),
        ]
    }

    fn values(ev: &Event, cx: &FieldContext) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        for def in FIELDS {
            let f = Field::lookup(def.name, (def.arg == ArgKind::Key).then_some("app")).unwrap();
            out.push((f.name(), f.extract(ev, cx).to_json()));
            if def.arg == ArgKind::OptionalIndex {
                for i in 0..=3 {
                    let f = f.with_index(i);
                    out.push((f.name(), f.extract(ev, cx).to_json()));
                }
            }
        }
        out
    }

    /// proc.aexe and proc.acmdline of ancestors beyond the parent (and of all ancestors at once).
    fn beyond_the_parent(name: &str) -> bool {
        // The session leader is found by the ancestors' session ids, which the stream does not
        // carry.
        if name == "proc.sname" {
            return true;
        }
        let Some(rest) = name.strip_prefix("proc.aexe").or_else(|| name.strip_prefix("proc.acmdline")) else {
            return false;
        };
        // proc.aexepath is recorded for every ancestor.
        !rest.starts_with("path") && !matches!(rest, "[0]" | "[1]")
    }

    #[test]
    fn every_field_renders_replays_to_the_same_value_and_is_listed() {
        let cx = FieldContext::default();
        let listed: Vec<String> = listing().map(|(n, _)| n).collect();
        let mut names = std::collections::HashSet::new();
        for def in FIELDS {
            for n in std::iter::once(&def.name).chain(def.aliases) {
                assert!(names.insert(*n), "{n} is defined twice");
            }
            assert!(!def.doc.is_empty(), "{} has no doc", def.name);
            let shown = match def.arg {
                ArgKind::None => def.name.to_owned(),
                ArgKind::OptionalIndex => format!("{}[N]", def.name),
                ArgKind::OptionalKey => format!("{}[key]", def.name),
                ArgKind::Key => format!("{}[key]", def.name),
            };
            assert!(listed.contains(&shown), "{shown} is not listed by `monitor rules fields`");
        }
        let mut renderer = JsonRenderer::default();
        for ev in samples() {
            let mut line = Vec::new();
            renderer.write(&ev, &cx, &mut line);
            let json: serde_json::Value = serde_json::from_slice(&line).expect("the events stream is JSON");
            let obj = json.as_object().unwrap();
            for def in FIELDS {
                let f = Field::lookup(def.name, (def.arg == ArgKind::Key).then_some("app")).unwrap();
                let v = f.extract(&ev, &cx);
                if !def.carried_by.contains(ev.evt_type.class()) {
                    assert!(
                        v.is_null(),
                        "{} has a value for {}, which does not carry it",
                        def.name,
                        ev.evt_type.name()
                    );
                }
                let recorded = !matches!(def.record, Record::None);
                if def.arg != ArgKind::OptionalIndex {
                    match (recorded, v.is_null()) {
                        (true, false) => assert_eq!(obj.get(def.name), Some(&v.to_json()), "{}", def.name),
                        _ => assert!(obj.get(def.name).is_none(), "{} is in the stream", def.name),
                    }
                }
            }
            let back = crate::event::replay::event_from_json(std::str::from_utf8(&line).unwrap()).unwrap();
            for ((name, a), (_, b)) in values(&ev, &cx).into_iter().zip(values(&back, &cx)) {
                let def = Field::lookup(name.split('[').next().unwrap(), None).map(|f| f.def());
                // The time it is read differs; the stream carries of ancestors beyond the parent
                // only their name, pid and executable. Nothing else may differ.
                if def.is_ok_and(|d| d.scope == Scope::Clock) || beyond_the_parent(&name) {
                    continue;
                }
                assert_eq!(a, b, "{name} of {} does not replay to the same value", ev.evt_type.name());
            }
        }
    }

    #[test]
    fn call_parameters_read_the_same_under_every_name_falco_gives_them() {
        use crate::event::{CallInfo, CallPath};
        let cx = FieldContext::default();
        let ptrace = event(
            EventType::Ptrace,
            0,
            Detail::Call(CallInfo { args: [16, 1234, 0, 0], ..Default::default() }),
            false,
        );
        let text = |name: &str, arg: Option<&str>, ev: &Event| {
            Field::lookup(name, arg).unwrap().extract(ev, &cx).to_json()
        };
        assert_eq!(text("evt.arg.request", None, &ptrace), "PTRACE_ATTACH");
        assert_eq!(text("evt.arg", Some("request"), &ptrace), "PTRACE_ATTACH");
        assert_eq!(Field::lookup("evt.arg", Some("request")).unwrap().name(), "evt.arg.request");
        assert_eq!(text("evt.rawarg.request", None, &ptrace), 16);
        assert_eq!(text("evt.rawarg", Some("pid"), &ptrace), 1234);
        assert!(text("evt.arg.oldpath", None, &ptrace).is_null());
        // A name an open's field has too reads the call's parameter on a call.
        let path = |p: &str| Some(CallPath { raw: p.into(), path: p.into() });
        let linkat = event(
            EventType::Linkat,
            0,
            Detail::Call(CallInfo {
                args: [(-100i64) as u64, 3, 0x400, 0],
                paths: [path("/etc/shadow"), path("/tmp/x")],
                ..Default::default()
            }),
            false,
        );
        assert_eq!(text("evt.arg.flags", None, &linkat), "AT_SYMLINK_FOLLOW");
        assert_eq!(text("evt.arg.olddir", None, &linkat), "AT_FDCWD");
        assert_eq!(text("evt.arg.oldpath", None, &linkat), "/etc/shadow");
        assert_eq!(
            text("evt.args", None, &linkat),
            "res=0 olddir=AT_FDCWD oldpath=/etc/shadow newdir=3 newpath=/tmp/x flags=AT_SYMLINK_FOLLOW"
        );
    }
}
