//! Events recorded with `monitor events --json`, read back into events: rules can then be
//! written, tested and benchmarked offline, without root or a kernel. Which fields are read,
//! and how, is the field registry's (`Record::Kept`); this module assembles the event.

use std::sync::Arc;

use monitor_common::{Call, EventClass, EventType, FdType, Via};
use serde_json::Value;

use super::fields::{ArgKind, FIELDS, Record};
use super::{Detail, Event, NetInfo, OpenInfo};
use crate::container::{ContainerId, ContainerRuntime};
use crate::process::Process;

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

/// A string value as the stream carries it (escaped), back to the value.
pub fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => super::text::unescape(s).unwrap_or_else(|| s.clone()),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn json_int(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)).unwrap_or(0)
}

/// An event being read back, field by field; [`Draft::finish`] makes the event.
#[derive(Default)]
pub struct Draft {
    pub evt_type: String,
    pub via: Via,
    pub call: Call,
    pub result_unknown: bool,
    pub num: u64,
    pub time_ns: i128,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    uid: u32,
    gid: u32,
    pub res: i64,
    pub cgroup_id: u64,
    pub cgroup_path: Option<String>,
    process: Option<Process>,
    ancestors: Vec<Process>,
    /// argv[0] and the command line of each ancestor, which make its argv.
    ancestor_argv: Vec<(Option<String>, Option<String>)>,
    pub exec_filename: String,
    pub exit_code: i32,
    pub open: OpenInfo,
    pub net: NetInfo,
    pub fd_name: Option<String>,
    pub container_full: Option<String>,
    pub container_runtime: Option<ContainerRuntime>,
}

impl Draft {
    /// The event's process: recorded process fields mean it had one.
    pub fn process(&mut self) -> &mut Process {
        self.process.get_or_insert_with(Process::default)
    }

    /// Ancestor `index` (1: the parent).
    pub fn ancestor(&mut self, index: Option<usize>) -> &mut Process {
        let i = index.unwrap_or(1).max(1);
        if self.ancestors.len() < i {
            self.ancestors.resize_with(i, Process::default);
            self.ancestor_argv.resize(i, (None, None));
        }
        &mut self.ancestors[i - 1]
    }

    pub fn ancestor_argv0(&mut self, index: Option<usize>, argv0: String) {
        self.ancestor(index);
        self.ancestor_argv[index.unwrap_or(1).max(1) - 1].0 = Some(argv0);
    }

    pub fn ancestor_cmdline(&mut self, index: Option<usize>, cmdline: String) {
        self.ancestor(index);
        self.ancestor_argv[index.unwrap_or(1).max(1) - 1].1 = Some(cmdline);
    }

    pub fn set_uid(&mut self, uid: u32) {
        self.uid = uid;
    }

    pub fn set_gid(&mut self, gid: u32) {
        self.gid = gid;
    }

    fn finish(mut self) -> Result<Event, ReplayError> {
        let evt_type = EventType::from_name(&self.evt_type).ok_or(ReplayError::UnknownType(self.evt_type))?;
        let (uid, gid) = (self.uid, self.gid);
        let process = self.process.take().map(|mut p| {
            p.pid = self.pid;
            (p.uid, p.euid, p.gid, p.egid) = (uid, uid, gid, gid);
            Arc::new(p)
        });
        for (a, (argv0, cmdline)) in self.ancestors.iter_mut().zip(self.ancestor_argv) {
            // cmdline is the name followed by the arguments; argv[0] comes on its own (the name
            // stands in for it when the stream does not carry it).
            let args = cmdline.as_deref().and_then(|c| c.strip_prefix(a.comm.as_str())).unwrap_or("");
            let args = args.strip_prefix(' ');
            let argv0 = argv0.unwrap_or_else(|| a.comm.clone());
            a.argv = std::iter::once(argv0)
                .chain(args.into_iter().flat_map(|s| s.split(' ')).map(str::to_owned))
                .collect();
        }
        let detail = match evt_type.class() {
            EventClass::Exec => Detail::Exec { filename: self.exec_filename },
            EventClass::Fork => Detail::Fork,
            EventClass::Exit => Detail::Exit { code: self.exit_code },
            EventClass::Open => {
                Detail::Open(OpenInfo { path: self.fd_name.unwrap_or_default(), ..self.open })
            }
            EventClass::Net => {
                let mut net = self.net;
                if net.fd_type == FdType::Unix {
                    net.unix_path = self.fd_name;
                }
                Detail::Net(net)
            }
            EventClass::Syscall => Detail::Call(Default::default()),
        };
        let container =
            self.container_full.filter(|id| id != "host" && crate::container::is_hex64(id)).map(|full| {
                ContainerId {
                    full,
                    runtime: self.container_runtime.unwrap_or(ContainerRuntime::Unknown),
                    pod: self.cgroup_path.as_deref().and_then(crate::container::pod_from_cgroup_path),
                }
            });
        Ok(Event {
            evt_type,
            via: self.via,
            call: self.call,
            num: self.num,
            time_ns: self.time_ns,
            cpu: self.cpu,
            pid: self.pid,
            tid: self.tid,
            uid,
            gid,
            res: self.res,
            result_unknown: self.result_unknown,
            cgroup_id: self.cgroup_id,
            cgroup_path: self.cgroup_path.map(Arc::from),
            container,
            process,
            ancestors: self.ancestors.into_iter().map(Arc::new).collect(),
            detail,
        })
    }
}

/// One recorded event (a line of `monitor events --json`).
pub fn event_from_json(line: &str) -> Result<Event, ReplayError> {
    let v: Value = serde_json::from_str(line).map_err(|e| ReplayError::NotJson(e.to_string()))?;
    let Some(map) = v.as_object() else { return Err(ReplayError::NotJson("not an object".into())) };
    let mut d = Draft::default();
    for def in FIELDS {
        let Record::Kept(load) = def.record else { continue };
        match def.arg {
            ArgKind::OptionalIndex => {
                for i in 1..=super::enrich::MAX_ANCESTORS {
                    match map.get(&format!("{}[{i}]", def.name)) {
                        Some(v) => load(&mut d, Some(i), v),
                        None => break,
                    }
                }
            }
            _ => {
                if let Some(v) = map.get(def.name) {
                    load(&mut d, None, v);
                }
            }
        }
    }
    d.finish()
}
