//! An event as one JSON object keyed by Falco field names, and as one line of text.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer as _};

use super::format::{endpoint, errno_name, is_open_create, is_open_read, is_open_write, open_flags};
use super::{Detail, Event, Users};
use super::enrich::MAX_ANCESTORS;
use crate::process::Process;

fn rfc3339(ns: i128) -> String {
    jiff::Timestamp::from_nanosecond(ns).map(|t| t.to_string()).unwrap_or_default()
}

fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

const ANAME: [&str; MAX_ANCESTORS] = [
    "proc.aname[1]", "proc.aname[2]", "proc.aname[3]", "proc.aname[4]", "proc.aname[5]", "proc.aname[6]",
    "proc.aname[7]", "proc.aname[8]", "proc.aname[9]", "proc.aname[10]", "proc.aname[11]", "proc.aname[12]",
    "proc.aname[13]", "proc.aname[14]", "proc.aname[15]", "proc.aname[16]",
];
const APID: [&str; MAX_ANCESTORS] = [
    "proc.apid[1]", "proc.apid[2]", "proc.apid[3]", "proc.apid[4]", "proc.apid[5]", "proc.apid[6]",
    "proc.apid[7]", "proc.apid[8]", "proc.apid[9]", "proc.apid[10]", "proc.apid[11]", "proc.apid[12]",
    "proc.apid[13]", "proc.apid[14]", "proc.apid[15]", "proc.apid[16]",
];
const STDIO: [(&str, &str); 3] = [
    ("proc.stdin.type", "proc.stdin.name"),
    ("proc.stdout.type", "proc.stdout.name"),
    ("proc.stderr.type", "proc.stderr.name"),
];

fn io(e: serde_json::Error) -> std::io::Error {
    std::io::Error::other(e)
}

type Obj<'a, W> = serde_json::ser::Compound<'a, W, serde_json::ser::CompactFormatter>;

fn put<W: Write, V: Serialize + ?Sized>(m: &mut Obj<'_, W>, k: &str, v: &V) -> std::io::Result<()> {
    m.serialize_entry(k, v).map_err(io)
}

fn ip(v: Option<IpAddr>) -> Option<String> {
    v.map(|ip| ip.to_string())
}

impl Event {
    /// Writes the event as one JSON object keyed by Falco field names, straight to `out`.
    pub fn write_json<W: Write + ?Sized>(&self, users: &mut Users, out: &mut W) -> std::io::Result<()> {
        let mut ser = serde_json::Serializer::new(out);
        let mut m = ser.serialize_map(None).map_err(io)?;
        put(&mut m, "evt.type", self.evt_type)?;
        put(&mut m, "evt.dir", "<")?;
        put(&mut m, "evt.time", &rfc3339(self.time_ns))?;
        put(&mut m, "evt.rawtime", &(self.time_ns as i64))?;
        put(&mut m, "evt.cpu", &self.cpu)?;
        put(&mut m, "evt.res", &errno_name(self.res))?;
        put(&mut m, "evt.rawres", &self.res)?;
        put(&mut m, "proc.pid", &self.pid)?;
        put(&mut m, "proc.tid", &self.tid)?;
        put(&mut m, "thread.tid", &self.tid)?;
        match &self.process {
            Some(p) => self.put_process(&mut m, p, users)?,
            None => {
                put(&mut m, "user.uid", &self.uid)?;
                put(&mut m, "group.gid", &self.gid)?;
            }
        }
        put(&mut m, "cgroup.id", &self.cgroup_id)?;
        put(&mut m, "cgroup.path", &self.cgroup_path.as_deref())?;
        // Without a cgroup path, whether this is a container is unknown: null, not "host".
        let (id, full, kind) = match (&self.container, &self.cgroup_path) {
            (Some(c), _) => (Some(c.short()), Some(c.full.as_str()), Some(c.runtime)),
            (None, Some(_)) => (Some("host"), Some("host"), None),
            (None, None) => (None, None, None),
        };
        put(&mut m, "container.id", &id)?;
        put(&mut m, "container.full_id", &full)?;
        put(&mut m, "container.type", &kind)?;
        match &self.detail {
            Detail::Exec { filename, .. } => put(&mut m, "evt.arg.filename", filename)?,
            Detail::Fork => {}
            Detail::Exit { code } => put(&mut m, "evt.arg.status", code)?,
            Detail::Open(o) => {
                let dir = o.flags & 0o200000 != 0;
                put(&mut m, "fd.num", &(self.res >= 0).then_some(self.res))?;
                put(&mut m, "fd.name", &o.path)?;
                put(&mut m, "fd.directory", dirname(&o.path))?;
                put(&mut m, "fd.filename", basename(&o.path))?;
                put(&mut m, "fd.type", if dir { "directory" } else { "file" })?;
                put(&mut m, "fd.typechar", if dir { "d" } else { "f" })?;
                put(&mut m, "fd.ino", &o.ino)?;
                put(&mut m, "fd.dev", &o.dev)?;
                put(&mut m, "fd.unresolved", &!o.resolved)?;
                put(&mut m, "fd.name_truncated", &o.truncated)?;
                put(&mut m, "evt.arg.flags", &open_flags(o.flags))?;
                put(&mut m, "evt.rawarg.flags", &o.flags)?;
                put(&mut m, "evt.arg.mode", &format!("0{:o}", o.mode))?;
                put(&mut m, "evt.is_open_read", &is_open_read(o.flags))?;
                put(&mut m, "evt.is_open_write", &is_open_write(o.flags))?;
                put(&mut m, "evt.is_open_create", &is_open_create(o.flags))?;
            }
            Detail::Net(n) => {
                put(&mut m, "fd.num", &n.fd)?;
                put(&mut m, "fd.type", n.fd_type)?;
                let typechar = match n.fd_type {
                    "ipv4" => "4",
                    "ipv6" => "6",
                    "unix" => "u",
                    _ => "o",
                };
                put(&mut m, "fd.typechar", typechar)?;
                put(&mut m, "fd.l4proto", n.l4proto)?;
                if let Some(path) = &n.unix_path {
                    put(&mut m, "fd.name", path)?;
                } else {
                    put(&mut m, "fd.sip", &ip(n.sip))?;
                    put(&mut m, "fd.sport", &n.sport)?;
                    put(&mut m, "fd.cip", &ip(n.cip))?;
                    put(&mut m, "fd.cport", &n.cport)?;
                    put(&mut m, "fd.name", &format!("{}->{}", endpoint(n.cip, n.cport), endpoint(n.sip, n.sport)))?;
                }
                put(&mut m, "fd.dest_from_socket", &n.from_socket)?;
            }
        }
        SerializeMap::end(m).map_err(io)
    }

    fn put_process<W: Write>(&self, m: &mut Obj<'_, W>, p: &Process, users: &mut Users) -> std::io::Result<()> {
        put(m, "proc.name", &p.comm)?;
        put(m, "proc.exe", p.exe_arg0())?;
        put(m, "proc.exepath", &p.exe_path)?;
        put(m, "proc.is_exe_from_memfd", &p.exe_from_memfd)?;
        put(m, "proc.args", p.args())?;
        put(m, "proc.cmdline", p.cmdline())?;
        put(m, "proc.argv", &p.argv)?;
        put(m, "proc.args_truncated", &p.argv_truncated)?;
        put(m, "proc.script", &p.script)?;
        put(m, "proc.cwd", &p.cwd)?;
        put(m, "proc.ppid", &p.ppid)?;
        put(m, "proc.vpid", &p.vpid)?;
        put(m, "proc.tty", &p.tty)?;
        put(m, "proc.start_ts", &p.start_ns)?;
        put(m, "proc.pidns", &p.pidns)?;
        put(m, "proc.mntns", &p.mntns)?;
        put(m, "proc.source", p.source)?;
        for (s, (type_key, name_key)) in p.stdio.iter().zip(STDIO) {
            put(m, type_key, &(!s.fd_type.is_empty()).then_some(s.fd_type))?;
            put(m, name_key, &s.name)?;
        }
        let parent = self.ancestors.first();
        put(m, "proc.pname", &parent.map(|a| a.comm.as_str()))?;
        put(m, "proc.pexepath", &parent.map(|a| a.exe_path.as_str()))?;
        put(m, "proc.pcmdline", &parent.map(|a| a.cmdline()))?;
        for (i, a) in self.ancestors.iter().enumerate().take(MAX_ANCESTORS) {
            put(m, ANAME[i], &a.comm)?;
            put(m, APID[i], &a.pid)?;
        }
        put(m, "user.uid", &p.euid)?;
        put(m, "user.name", &users.name(p.euid).as_deref())?;
        let login = (p.loginuid != u32::MAX).then_some(p.loginuid);
        put(m, "user.loginuid", &login.map_or(-1, i64::from))?;
        put(m, "user.loginname", &login.and_then(|l| users.name(l)).as_deref())?;
        put(m, "group.gid", &p.egid)
    }
}

impl Event {
    /// One human-readable line.
    pub fn to_text(&self) -> String {
        let time = rfc3339(self.time_ns);
        let (name, exe) = self.process.as_ref().map(|p| (p.comm.as_str(), p.exe_path.as_str())).unwrap_or(("?", "?"));
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
                None => format!("{} {}->{} res={}", n.l4proto, endpoint(n.cip, n.cport), endpoint(n.sip, n.sport), errno_name(self.res)),
            },
        };
        format!("{time} {} pid={} tid={} name={name:?} container={container} {what}", self.evt_type, self.pid, self.tid)
    }
}
