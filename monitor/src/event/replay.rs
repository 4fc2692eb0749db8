//! Events recorded with `monitor events --json`, read back into events: rules can then be
//! written, tested and benchmarked offline, without root or a kernel.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Detail, Event, NetInfo, OpenInfo};
use crate::container::ContainerId;
use crate::process::{Process, StdioInfo};
use crate::rules::types::{EVENT_TYPES, TypeSet};

/// Why a recorded line could not be read back.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplayError {
    NotJson(String),
    UnknownType(String),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson(e) => write!(f, "not a JSON event object: {e}"),
            Self::UnknownType(t) => write!(f, "unknown evt.type `{t}`"),
        }
    }
}

fn intern(s: &str, known: &[&'static str]) -> &'static str {
    known.iter().find(|k| **k == s).copied().unwrap_or("")
}

const FD_TYPES: &[&str] =
    &["file", "directory", "ipv4", "ipv6", "unix", "pipe", "netlink", "socket", "other"];
const L4: &[&str] = &["tcp", "udp", "icmp", "raw"];
const RUNTIMES: &[&str] = &["docker", "containerd", "cri-o", "podman", "unknown"];
const SOURCES: &[&str] = &["exec", "fork", "proc"];

struct Obj<'a>(&'a Map<String, Value>);

impl Obj<'_> {
    fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(Value::as_str)
    }
    fn string(&self, k: &str) -> String {
        self.str(k).unwrap_or("").to_owned()
    }
    fn int(&self, k: &str) -> i64 {
        self.0.get(k).and_then(Value::as_i64).unwrap_or(0)
    }
    fn u32(&self, k: &str) -> u32 {
        self.int(k) as u32
    }
    fn bool(&self, k: &str) -> bool {
        self.0.get(k).and_then(Value::as_bool).unwrap_or(false)
    }
    fn ip(&self, k: &str) -> Option<IpAddr> {
        self.str(k).and_then(|s| s.parse().ok())
    }
}

/// One recorded event (a line of `monitor events --json`).
pub fn event_from_json(line: &str) -> Result<Event, ReplayError> {
    let v: Value = serde_json::from_str(line).map_err(|e| ReplayError::NotJson(e.to_string()))?;
    let Some(map) = v.as_object() else { return Err(ReplayError::NotJson("not an object".into())) };
    let o = Obj(map);
    let ty = o.str("evt.type").unwrap_or("");
    let evt_type =
        TypeSet::index_of(ty).map(|i| EVENT_TYPES[i]).ok_or_else(|| ReplayError::UnknownType(ty.into()))?;
    let process = o.str("proc.name").map(|comm| {
        let argv = map
            .get("proc.argv")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let stdio = ["stdin", "stdout", "stderr"].map(|s| StdioInfo {
            fd_type: intern(o.str(&format!("proc.{s}.type")).unwrap_or(""), FD_TYPES),
            name: o.str(&format!("proc.{s}.name")).map(str::to_owned),
        });
        let login = o.int("user.loginuid");
        Arc::new(Process {
            pid: o.u32("proc.pid"),
            start_ns: o.int("proc.start_ts") as u64,
            ppid: o.u32("proc.ppid"),
            comm: comm.to_owned(),
            exe_path: o.string("proc.exepath"),
            argv,
            argv_truncated: o.bool("proc.args_truncated"),
            paths_truncated: o.bool("proc.paths_truncated"),
            cwd: o.str("proc.cwd").map(str::to_owned),
            script: o.str("proc.script").map(str::to_owned),
            exe_from_memfd: o.bool("proc.is_exe_from_memfd"),
            exe_ino: o.int("proc.exe_ino") as u64,
            uid: o.u32("user.uid"),
            euid: o.u32("user.uid"),
            gid: o.u32("group.gid"),
            egid: o.u32("group.gid"),
            loginuid: if login < 0 { u32::MAX } else { login as u32 },
            vpid: o.u32("proc.vpid"),
            pidns: o.u32("proc.pidns"),
            mntns: o.u32("proc.mntns"),
            tty: o.u32("proc.tty"),
            stdio,
            source: intern(o.str("proc.source").unwrap_or(""), SOURCES),
            ..Default::default()
        })
    });
    let mut ancestors = Vec::new();
    for i in 1..=super::enrich::MAX_ANCESTORS {
        let Some(name) = o.str(&format!("proc.aname[{i}]")) else { break };
        let mut a =
            Process { pid: o.u32(&format!("proc.apid[{i}]")), comm: name.to_owned(), ..Default::default() };
        if i == 1 {
            a.exe_path = o.string("proc.pexepath");
            a.argv =
                o.str("proc.pcmdline").map(|c| c.split(' ').map(str::to_owned).collect()).unwrap_or_default();
        }
        ancestors.push(Arc::new(a));
    }
    let fd_type = intern(o.str("fd.type").unwrap_or(""), FD_TYPES);
    let detail = match evt_type {
        "execve" | "execveat" => Detail::Exec { filename: o.string("evt.arg.filename") },
        "clone" => Detail::Fork,
        "procexit" => Detail::Exit { code: o.int("evt.arg.status") as i32 },
        "connect" | "sendto" | "sendmsg" => Detail::Net(NetInfo {
            fd_type,
            l4proto: intern(o.str("fd.l4proto").unwrap_or(""), L4),
            fd: o.int("fd.num") as i32,
            sip: o.ip("fd.sip"),
            sport: o.int("fd.sport") as u16,
            cip: o.ip("fd.cip"),
            cport: o.int("fd.cport") as u16,
            unix_path: (fd_type == "unix").then(|| o.string("fd.name")),
            from_socket: o.bool("fd.dest_from_socket"),
        }),
        _ => Detail::Open(OpenInfo {
            path: o.string("fd.name"),
            resolved: !o.bool("fd.unresolved"),
            truncated: o.bool("fd.name_truncated"),
            flags: o.int("evt.rawarg.flags") as u32,
            mode: o.str("evt.arg.mode").and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(0),
            ino: o.int("fd.ino") as u64,
            dev: o.u32("fd.dev"),
        }),
    };
    let container = o
        .str("container.full_id")
        .filter(|id| *id != "host")
        .map(|full| ContainerId {
            full: full.to_owned(),
            runtime: intern(o.str("container.type").unwrap_or(""), RUNTIMES),
            pod: o.str("cgroup.path").and_then(crate::container::pod_from_cgroup_path),
        })
        .filter(|c| crate::container::is_hex64(&c.full));
    Ok(Event {
        evt_type,
        num: o.int("evt.num") as u64,
        time_ns: i128::from(o.int("evt.rawtime")),
        cpu: o.u32("evt.cpu"),
        pid: o.u32("proc.pid"),
        tid: o.u32("proc.tid"),
        uid: o.u32("user.uid"),
        gid: o.u32("group.gid"),
        res: o.int("evt.rawres"),
        cgroup_id: o.int("cgroup.id") as u64,
        cgroup_path: o.str("cgroup.path").map(Arc::from),
        container,
        process,
        ancestors,
        detail,
    })
}
