//! An event as one JSON object keyed by Falco field names.

use serde_json::{Map, Value};

use super::format::{endpoint, errno_name, is_open_create, is_open_read, is_open_write, open_flags};
use super::{Detail, Event, Users};
use crate::process::Process;

fn put(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    m.insert(k.to_owned(), v.into());
}

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

impl Event {
    pub fn to_json(&self, users: &mut Users) -> Value {
        let mut m = Map::new();
        put(&mut m, "evt.type", self.evt_type);
        put(&mut m, "evt.dir", "<");
        put(&mut m, "evt.time", rfc3339(self.time_ns));
        put(&mut m, "evt.rawtime", self.time_ns as i64);
        put(&mut m, "evt.cpu", self.cpu);
        put(&mut m, "evt.res", errno_name(self.res));
        put(&mut m, "evt.rawres", self.res);
        put(&mut m, "proc.pid", self.pid);
        put(&mut m, "proc.tid", self.tid);
        put(&mut m, "thread.tid", self.tid);
        if let Some(p) = &self.process {
            self.put_process(&mut m, p, users);
        } else {
            put(&mut m, "user.uid", self.uid);
            put(&mut m, "group.gid", self.gid);
        }
        put(&mut m, "cgroup.id", self.cgroup_id);
        put(&mut m, "cgroup.path", self.cgroup_path.as_deref().map(Value::from).unwrap_or(Value::Null));
        match &self.container {
            Some(c) => {
                put(&mut m, "container.id", c.short());
                put(&mut m, "container.full_id", c.full.as_str());
                put(&mut m, "container.type", c.runtime);
            }
            None if self.cgroup_path.is_some() => {
                put(&mut m, "container.id", "host");
                put(&mut m, "container.full_id", "host");
                put(&mut m, "container.type", Value::Null);
            }
            // The cgroup could not be named: whether this is a container is unknown.
            None => {
                put(&mut m, "container.id", Value::Null);
                put(&mut m, "container.full_id", Value::Null);
                put(&mut m, "container.type", Value::Null);
            }
        }
        match &self.detail {
            Detail::Exec { filename, .. } => {
                put(&mut m, "evt.arg.filename", filename.as_str());
            }
            Detail::Fork => {}
            Detail::Exit { code } => put(&mut m, "evt.arg.status", *code),
            Detail::Open(o) => {
                put(&mut m, "fd.num", if self.res >= 0 { Value::from(self.res) } else { Value::Null });
                put(&mut m, "fd.name", o.path.as_str());
                put(&mut m, "fd.directory", dirname(&o.path));
                put(&mut m, "fd.filename", basename(&o.path));
                put(&mut m, "fd.type", if o.flags & 0o200000 != 0 { "directory" } else { "file" });
                put(&mut m, "fd.typechar", if o.flags & 0o200000 != 0 { "d" } else { "f" });
                put(&mut m, "fd.ino", o.ino);
                put(&mut m, "fd.dev", o.dev);
                put(&mut m, "fd.unresolved", !o.resolved);
                put(&mut m, "fd.name_truncated", o.truncated);
                put(&mut m, "evt.arg.flags", open_flags(o.flags));
                put(&mut m, "evt.rawarg.flags", o.flags);
                put(&mut m, "evt.arg.mode", format!("{:#o}", o.mode));
                put(&mut m, "evt.is_open_read", is_open_read(o.flags));
                put(&mut m, "evt.is_open_write", is_open_write(o.flags));
                put(&mut m, "evt.is_open_create", is_open_create(o.flags));
            }
            Detail::Net(n) => {
                put(&mut m, "fd.num", n.fd);
                put(&mut m, "fd.type", n.fd_type);
                put(&mut m, "fd.typechar", match n.fd_type {
                    "ipv4" => "4",
                    "ipv6" => "6",
                    "unix" => "u",
                    _ => "o",
                });
                put(&mut m, "fd.l4proto", n.l4proto);
                if let Some(path) = &n.unix_path {
                    put(&mut m, "fd.name", path.as_str());
                } else {
                    put(&mut m, "fd.sip", n.sip.map(|ip| Value::from(ip.to_string())).unwrap_or(Value::Null));
                    put(&mut m, "fd.sport", n.sport);
                    put(&mut m, "fd.cip", n.cip.map(|ip| Value::from(ip.to_string())).unwrap_or(Value::Null));
                    put(&mut m, "fd.cport", n.cport);
                    put(&mut m, "fd.name", format!("{}->{}", endpoint(n.cip, n.cport), endpoint(n.sip, n.sport)));
                }
                put(&mut m, "fd.dest_from_socket", n.from_socket);
            }
        }
        Value::Object(m)
    }

    fn put_process(&self, m: &mut Map<String, Value>, p: &Process, users: &mut Users) {
        put(m, "proc.name", p.comm.as_str());
        put(m, "proc.exe", p.exe_arg0());
        put(m, "proc.exepath", p.exe_path.as_str());
        put(m, "proc.is_exe_from_memfd", p.exe_from_memfd);
        put(m, "proc.args", p.args());
        put(m, "proc.cmdline", p.cmdline());
        put(m, "proc.argv", p.argv.clone());
        put(m, "proc.args_truncated", p.argv_truncated);
        put(m, "proc.script", p.script.as_deref().map(Value::from).unwrap_or(Value::Null));
        put(m, "proc.cwd", p.cwd.as_deref().map(Value::from).unwrap_or(Value::Null));
        put(m, "proc.ppid", p.ppid);
        put(m, "proc.vpid", p.vpid);
        put(m, "proc.tty", p.tty);
        put(m, "proc.start_ts", p.start_ns);
        put(m, "proc.pidns", p.pidns);
        put(m, "proc.mntns", p.mntns);
        put(m, "proc.source", p.source);
        for (i, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            let s = &p.stdio[i];
            put(m, &format!("proc.{name}.type"), if s.fd_type.is_empty() { Value::Null } else { s.fd_type.into() });
            put(m, &format!("proc.{name}.name"), s.name.as_deref().map(Value::from).unwrap_or(Value::Null));
        }
        match self.ancestors.first() {
            Some(parent) => {
                put(m, "proc.pname", parent.comm.as_str());
                put(m, "proc.pexepath", parent.exe_path.as_str());
                put(m, "proc.pcmdline", parent.cmdline());
            }
            None => {
                put(m, "proc.pname", Value::Null);
                put(m, "proc.pexepath", Value::Null);
                put(m, "proc.pcmdline", Value::Null);
            }
        }
        for (i, a) in self.ancestors.iter().enumerate() {
            put(m, &format!("proc.aname[{}]", i + 1), a.comm.as_str());
            put(m, &format!("proc.apid[{}]", i + 1), a.pid);
        }
        put(m, "user.uid", p.euid);
        put(m, "user.name", users.name(p.euid).map(|n| Value::from(&*n)).unwrap_or(Value::Null));
        put(m, "user.loginuid", if p.loginuid == u32::MAX { -1 } else { i64::from(p.loginuid) });
        put(m, "user.loginname", if p.loginuid == u32::MAX { Value::Null } else { users.name(p.loginuid).map(|n| Value::from(&*n)).unwrap_or(Value::Null) });
        put(m, "group.gid", p.egid);
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
                let cmd = self.process.as_ref().map(|p| p.cmdline()).unwrap_or_default();
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
