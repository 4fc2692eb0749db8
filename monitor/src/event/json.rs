//! An event as one JSON object keyed by Falco field names, and as one line of text.

use std::io::Write;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::enrich::MAX_ANCESTORS;
use super::format::{
    basename, connection_name, dirname, errno_name, is_open_create, is_open_read, is_open_write, open_flags,
};
use super::{Detail, Event, Users};
use crate::process::{Process, ProcessRef};

fn rfc3339(ns: i128) -> String {
    jiff::Timestamp::from_nanosecond(ns).map(|t| t.to_string()).unwrap_or_default()
}

const ANAME: [&str; MAX_ANCESTORS] = [
    "proc.aname[1]",
    "proc.aname[2]",
    "proc.aname[3]",
    "proc.aname[4]",
    "proc.aname[5]",
    "proc.aname[6]",
    "proc.aname[7]",
    "proc.aname[8]",
    "proc.aname[9]",
    "proc.aname[10]",
    "proc.aname[11]",
    "proc.aname[12]",
    "proc.aname[13]",
    "proc.aname[14]",
    "proc.aname[15]",
    "proc.aname[16]",
];
const APID: [&str; MAX_ANCESTORS] = [
    "proc.apid[1]",
    "proc.apid[2]",
    "proc.apid[3]",
    "proc.apid[4]",
    "proc.apid[5]",
    "proc.apid[6]",
    "proc.apid[7]",
    "proc.apid[8]",
    "proc.apid[9]",
    "proc.apid[10]",
    "proc.apid[11]",
    "proc.apid[12]",
    "proc.apid[13]",
    "proc.apid[14]",
    "proc.apid[15]",
    "proc.apid[16]",
];
const STDIO: [(&str, &str); 3] = [
    ("proc.stdin.type", "proc.stdin.name"),
    ("proc.stdout.type", "proc.stdout.name"),
    ("proc.stderr.type", "proc.stderr.name"),
];

/// Writes one JSON object field by field, straight to the output (no intermediate map).
struct Obj<'a, W: Write + ?Sized> {
    out: &'a mut W,
    first: bool,
}

impl<'a, W: Write + ?Sized> Obj<'a, W> {
    fn open(out: &'a mut W) -> std::io::Result<Self> {
        out.write_all(b"{")?;
        Ok(Self { out, first: true })
    }

    fn key(&mut self, k: &str) -> std::io::Result<()> {
        // Keys are our own field names: plain ASCII, nothing to escape.
        self.out.write_all(if self.first { b"\"" } else { b",\"" })?;
        self.first = false;
        self.out.write_all(k.as_bytes())?;
        self.out.write_all(b"\":")
    }

    fn put<V: Serialize + ?Sized>(&mut self, k: &str, v: &V) -> std::io::Result<()> {
        self.key(k)?;
        serde_json::to_writer(&mut *self.out, v).map_err(std::io::Error::other)
    }

    /// Fields already rendered as `"k":v,"k":v` (no braces).
    fn raw(&mut self, fields: &[u8]) -> std::io::Result<()> {
        if fields.is_empty() {
            return Ok(());
        }
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        self.out.write_all(fields)
    }

    fn close(self) -> std::io::Result<()> {
        self.out.write_all(b"}")
    }
}

/// The process part of an event (proc.*, user.*, group.*, ancestry) rendered once and reused
/// while the process and its ancestors stay the same: most events come from processes that
/// already produced one.
struct ProcessFields {
    process: ProcessRef,
    ancestors: Vec<ProcessRef>,
    json: Vec<u8>,
}

const FRAGMENT_CACHE_MAX: usize = 4096;

/// Renders events as JSON lines; owns what rendering needs (user names, the fragment cache).
#[derive(Default)]
pub struct JsonRenderer {
    fragments: HashMap<u32, ProcessFields>,
}

impl JsonRenderer {
    /// Writes `ev` as one JSON object keyed by Falco field names.
    /// `users` is the daemon's one uid -> name cache (the field context's).
    pub fn write<W: Write + ?Sized>(
        &mut self,
        ev: &Event,
        users: &RefCell<Users>,
        out: &mut W,
    ) -> std::io::Result<()> {
        let mut m = Obj::open(out)?;
        m.put("evt.num", &ev.num)?;
        m.put("evt.type", ev.evt_type)?;
        m.put("evt.dir", "<")?;
        m.put("evt.time", &rfc3339(ev.time_ns))?;
        m.put("evt.rawtime", &(ev.time_ns as i64))?;
        m.put("evt.cpu", &ev.cpu)?;
        m.put("evt.res", &errno_name(ev.res))?;
        m.put("evt.rawres", &ev.res)?;
        m.put("proc.pid", &ev.pid)?;
        m.put("proc.tid", &ev.tid)?;
        match &ev.process {
            Some(p) => m.raw(self.process_fields(p, &ev.ancestors, users)?)?,
            None => {
                m.put("user.uid", &ev.uid)?;
                m.put("group.gid", &ev.gid)?;
            }
        }
        m.put("cgroup.id", &ev.cgroup_id)?;
        m.put("cgroup.path", &ev.cgroup_path.as_deref())?;
        // Without a cgroup path, whether this is a container is unknown: null, not "host".
        let (id, full, kind) = match (&ev.container, &ev.cgroup_path) {
            (Some(c), _) => (Some(c.short()), Some(c.full.as_str()), Some(c.runtime)),
            (None, Some(_)) => (Some("host"), Some("host"), None),
            (None, None) => (None, None, None),
        };
        m.put("container.id", &id)?;
        m.put("container.full_id", &full)?;
        m.put("container.type", &kind)?;
        match &ev.detail {
            Detail::Exec { filename, .. } => m.put("evt.arg.filename", filename)?,
            Detail::Fork => {}
            Detail::Exit { code } => m.put("evt.arg.status", code)?,
            Detail::Open(o) => {
                let dir = o.flags & 0o200000 != 0;
                m.put("fd.num", &(ev.res >= 0).then_some(ev.res))?;
                m.put("fd.name", &o.path)?;
                m.put("fd.directory", dirname(&o.path))?;
                m.put("fd.filename", basename(&o.path))?;
                m.put("fd.type", if dir { "directory" } else { "file" })?;
                m.put("fd.typechar", if dir { "d" } else { "f" })?;
                m.put("fd.ino", &o.ino)?;
                m.put("fd.dev", &o.dev)?;
                m.put("fd.unresolved", &!o.resolved)?;
                m.put("fd.name_truncated", &o.truncated)?;
                m.put("evt.arg.flags", &open_flags(o.flags))?;
                m.put("evt.rawarg.flags", &o.flags)?;
                m.put("evt.arg.mode", &format!("0{:o}", o.mode))?;
                m.put("evt.is_open_read", &is_open_read(o.flags))?;
                m.put("evt.is_open_write", &is_open_write(o.flags))?;
                m.put("evt.is_open_create", &is_open_create(o.flags))?;
            }
            Detail::Net(n) => {
                m.put("fd.num", &n.fd)?;
                m.put("fd.type", n.fd_type)?;
                let typechar = match n.fd_type {
                    "ipv4" => "4",
                    "ipv6" => "6",
                    "unix" => "u",
                    _ => "o",
                };
                m.put("fd.typechar", typechar)?;
                m.put("fd.l4proto", n.l4proto)?;
                if let Some(path) = &n.unix_path {
                    m.put("fd.name", path)?;
                } else {
                    m.put("fd.sip", &n.sip)?;
                    m.put("fd.sport", &n.sport)?;
                    m.put("fd.cip", &n.cip)?;
                    m.put("fd.cport", &n.cport)?;
                    m.put("fd.name", &connection_name(n))?;
                }
                m.put("fd.dest_from_socket", &n.from_socket)?;
            }
        }
        m.close()
    }

    fn process_fields(
        &mut self,
        p: &ProcessRef,
        ancestors: &[ProcessRef],
        users: &RefCell<Users>,
    ) -> std::io::Result<&[u8]> {
        let fresh = self.fragments.get(&p.pid).is_some_and(|f| {
            Arc::ptr_eq(&f.process, p)
                && f.ancestors.len() == ancestors.len()
                && f.ancestors.iter().zip(ancestors).all(|(a, b)| Arc::ptr_eq(a, b))
        });
        if !fresh {
            let mut json = Vec::with_capacity(1024);
            write_process_fields(&mut json, p, ancestors, &mut users.borrow_mut())?;
            if self.fragments.len() >= FRAGMENT_CACHE_MAX {
                self.fragments.clear();
            }
            self.fragments
                .insert(p.pid, ProcessFields { process: p.clone(), ancestors: ancestors.to_vec(), json });
        }
        Ok(&self.fragments[&p.pid].json)
    }
}

fn write_process_fields(
    out: &mut Vec<u8>,
    p: &Process,
    ancestors: &[ProcessRef],
    users: &mut Users,
) -> std::io::Result<()> {
    let mut m = Obj { out, first: true };
    m.put("proc.name", &p.comm)?;
    m.put("proc.exe", p.exe_arg0())?;
    m.put("proc.exepath", &p.exe_path)?;
    m.put("proc.exe_ino", &p.exe_ino)?;
    m.put("proc.is_exe_from_memfd", &p.exe_from_memfd)?;
    m.put("proc.args", p.args())?;
    m.put("proc.cmdline", p.cmdline())?;
    m.put("proc.argv", &p.argv)?;
    m.put("proc.args_truncated", &p.argv_truncated)?;
    m.put("proc.paths_truncated", &p.paths_truncated)?;
    m.put("proc.script", &p.script)?;
    m.put("proc.cwd", &p.cwd)?;
    m.put("proc.ppid", &p.ppid)?;
    m.put("proc.vpid", &p.vpid)?;
    m.put("proc.tty", &p.tty)?;
    m.put("proc.start_ts", &p.start_ns)?;
    m.put("proc.pidns", &p.pidns)?;
    m.put("proc.mntns", &p.mntns)?;
    m.put("proc.source", p.source)?;
    for (s, (type_key, name_key)) in p.stdio.iter().zip(STDIO) {
        m.put(type_key, &(!s.fd_type.is_empty()).then_some(s.fd_type))?;
        m.put(name_key, &s.name)?;
    }
    let parent = ancestors.first();
    m.put("proc.pname", &parent.map(|a| a.comm.as_str()))?;
    m.put("proc.pexepath", &parent.map(|a| a.exe_path.as_str()))?;
    m.put("proc.pcmdline", &parent.map(|a| a.cmdline()))?;
    for (i, a) in ancestors.iter().enumerate().take(MAX_ANCESTORS) {
        m.put(ANAME[i], &a.comm)?;
        m.put(APID[i], &a.pid)?;
    }
    m.put("user.uid", &p.euid)?;
    m.put("user.name", &users.name(p.euid).as_deref())?;
    let login = (p.loginuid != u32::MAX).then_some(p.loginuid);
    m.put("user.loginuid", &login.map_or(-1, i64::from))?;
    m.put("user.loginname", &login.and_then(|l| users.name(l)).as_deref())?;
    m.put("group.gid", &p.egid)
}

impl Event {
    /// One human-readable line.
    pub fn to_text(&self) -> String {
        let time = rfc3339(self.time_ns);
        let (name, exe) =
            self.process.as_ref().map(|p| (p.comm.as_str(), p.exe_path.as_str())).unwrap_or(("?", "?"));
        let container = self.container.as_ref().map(|c| c.short()).unwrap_or("host");
        let what = match &self.detail {
            Detail::Exec { .. } => {
                let cmd = self.process.as_ref().map(|p| p.cmdline()).unwrap_or("");
                format!("exe={exe} cmdline={cmd:?}")
            }
            Detail::Fork => String::new(),
            Detail::Exit { code } => format!("status={code}"),
            Detail::Open(o) => format!("{} {} res={}", o.path, open_flags(o.flags), errno_name(self.res)),
            Detail::Net(n) => match &n.unix_path {
                Some(p) => format!("unix {p} res={}", errno_name(self.res)),
                None => format!("{} {} res={}", n.l4proto, connection_name(n), errno_name(self.res)),
            },
        };
        format!(
            "{time} {} pid={} tid={} name={name:?} container={container} {what}",
            self.evt_type, self.pid, self.tid
        )
    }
}
