//! The field registry: every Falco field an event can fill, its type, and how to read it.
//!
//! One table serves the rule compiler (is this field known, what type are its literals), the
//! alert formatter (output strings and output_fields) and `monitor rules list`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::IpAddr;

use super::enrich::MAX_ANCESTORS;
use super::format::{basename, dirname, errno_name, is_open_create, is_open_read, is_open_write, open_flags};
use super::{Detail, Event, Users};
use crate::process::Process;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Int,
    Bool,
    /// An address, compared with `=` against an address.
    Ip,
    /// An address, compared against networks (`fd.net = 10.0.0.0/8`).
    Net,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    None,
    /// `proc.aname[2]`; without it, the field stands for every ancestor.
    OptionalIndex,
    /// `k8s.pod.label[app]`.
    Key,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Id {
    EvtType,
    EvtDir,
    EvtTime,
    EvtRawTime,
    EvtNum,
    EvtCpu,
    EvtRes,
    EvtRawRes,
    EvtFailed,
    EvtIsOpenRead,
    EvtIsOpenWrite,
    EvtIsOpenCreate,
    EvtIsOpenExec,
    EvtHostname,
    EvtSource,
    EvtArgs,
    EvtArg(&'static str),
    EvtRawArgFlags,
    ProcName,
    ProcExe,
    ProcExePath,
    ProcExeOriginal,
    ProcExeIno,
    ProcIsExeFromMemfd,
    ProcArgs,
    ProcCmdline,
    ProcCmdNArgs,
    ProcCmdLenArgs,
    ProcPid,
    ProcPpid,
    ProcVpid,
    ProcCwd,
    ProcTty,
    ProcPidNs,
    ProcMntNs,
    ProcDuration,
    ProcScript,
    ProcProcDir,
    ProcPName,
    ProcPExe,
    ProcPExePath,
    ProcPCmdline,
    ProcAName,
    ProcAPid,
    ProcAExe,
    ProcAExePath,
    ProcACmdline,
    ProcStdType(usize),
    ProcStdName(usize),
    ThreadTid,
    UserUid,
    UserName,
    UserLoginUid,
    UserLoginName,
    GroupGid,
    GroupName,
    FdNum,
    FdName,
    FdDirectory,
    FdFilename,
    FdType,
    FdTypeChar,
    FdIno,
    FdDev,
    FdL4Proto,
    FdSockFamily,
    FdSip,
    FdSport,
    FdCip,
    FdCport,
    FdIp,
    FdPort,
    FdNet,
    FdSnet,
    FdCnet,
    FdUnresolved,
    FdConnected,
    FdNameChanged,
    CgroupId,
    CgroupPath,
    ContainerId,
    ContainerFullId,
    ContainerType,
    /// Container runtime metadata, from the container directory (null when not known).
    ContainerName,
    ContainerImage,
    ContainerImageId,
    ContainerImageRepo,
    ContainerImageTag,
    ContainerImageDigest,
    ContainerPrivileged,
    K8sNsName,
    K8sPodName,
    K8sPodLabels,
    K8sPodLabel,
    /// From the kubepods cgroup path.
    K8sPodUid,
    K8sPodQos,
}

pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    pub arg: ArgKind,
    id: Id,
}

macro_rules! fields {
    ($($name:literal $ty:ident $arg:ident $id:expr;)*) => {
        &[$(FieldDef { name: $name, ty: FieldType::$ty, arg: ArgKind::$arg, id: $id },)*]
    };
}

use Id::*;

/// `evt.arg.*` names, with the event types that carry them (Falco's exit-event parameters).
const EVT_ARGS: &[(&str, FieldType)] = &[
    ("fd", FieldType::Str),
    ("res", FieldType::Str),
    ("name", FieldType::Str),
    ("flags", FieldType::Str),
    ("mode", FieldType::Str),
    ("dev", FieldType::Str),
    ("ino", FieldType::Str),
    ("filename", FieldType::Str),
    ("exe", FieldType::Str),
    ("args", FieldType::Str),
    ("cwd", FieldType::Str),
    ("tty", FieldType::Str),
    ("pid", FieldType::Str),
    ("ptid", FieldType::Str),
    ("uid", FieldType::Str),
    ("gid", FieldType::Str),
    ("loginuid", FieldType::Str),
    ("comm", FieldType::Str),
    ("tuple", FieldType::Str),
    ("status", FieldType::Str),
];

static FIELDS: &[FieldDef] = fields! {
    "evt.type" Str None EvtType;
    "evt.dir" Str None EvtDir;
    "evt.time" Int None EvtTime;
    "evt.rawtime" Int None EvtRawTime;
    "evt.num" Int None EvtNum;
    "evt.cpu" Int None EvtCpu;
    "evt.res" Str None EvtRes;
    "evt.rawres" Int None EvtRawRes;
    "evt.failed" Bool None EvtFailed;
    "evt.is_open_read" Bool None EvtIsOpenRead;
    "evt.is_open_write" Bool None EvtIsOpenWrite;
    "evt.is_open_create" Bool None EvtIsOpenCreate;
    "evt.is_open_exec" Bool None EvtIsOpenExec;
    "evt.hostname" Str None EvtHostname;
    "evt.source" Str None EvtSource;
    "evt.args" Str None EvtArgs;
    "evt.rawarg.flags" Int None EvtRawArgFlags;
    "proc.name" Str None ProcName;
    "proc.exe" Str None ProcExe;
    "proc.exepath" Str None ProcExePath;
    "proc.exe_original" Str None ProcExeOriginal;
    "proc.exe_ino" Int None ProcExeIno;
    "proc.is_exe_from_memfd" Bool None ProcIsExeFromMemfd;
    "proc.args" Str None ProcArgs;
    "proc.cmdline" Str None ProcCmdline;
    "proc.cmdnargs" Int None ProcCmdNArgs;
    "proc.cmdlenargs" Int None ProcCmdLenArgs;
    "proc.pid" Int None ProcPid;
    "proc.ppid" Int None ProcPpid;
    "proc.vpid" Int None ProcVpid;
    "proc.cwd" Str None ProcCwd;
    "proc.tty" Int None ProcTty;
    "proc.pidns" Int None ProcPidNs;
    "proc.mntns" Int None ProcMntNs;
    "proc.duration" Int None ProcDuration;
    "proc.script" Str None ProcScript;
    "proc.procdir" Str None ProcProcDir;
    "proc.pname" Str None ProcPName;
    "proc.pexe" Str None ProcPExe;
    "proc.pexepath" Str None ProcPExePath;
    "proc.pcmdline" Str None ProcPCmdline;
    "proc.aname" Str OptionalIndex ProcAName;
    "proc.apid" Int OptionalIndex ProcAPid;
    "proc.aexe" Str OptionalIndex ProcAExe;
    "proc.aexepath" Str OptionalIndex ProcAExePath;
    "proc.acmdline" Str OptionalIndex ProcACmdline;
    "proc.stdin.type" Str None ProcStdType(0);
    "proc.stdin.name" Str None ProcStdName(0);
    "proc.stdout.type" Str None ProcStdType(1);
    "proc.stdout.name" Str None ProcStdName(1);
    "proc.stderr.type" Str None ProcStdType(2);
    "proc.stderr.name" Str None ProcStdName(2);
    "thread.tid" Int None ThreadTid;
    "proc.tid" Int None ThreadTid;
    "user.uid" Int None UserUid;
    "user.name" Str None UserName;
    "user.loginuid" Int None UserLoginUid;
    "user.loginname" Str None UserLoginName;
    "group.gid" Int None GroupGid;
    "group.name" Str None GroupName;
    "fd.num" Int None FdNum;
    "fd.name" Str None FdName;
    "fd.directory" Str None FdDirectory;
    "fd.filename" Str None FdFilename;
    "fd.type" Str None FdType;
    "fd.typechar" Str None FdTypeChar;
    "fd.ino" Int None FdIno;
    "fd.dev" Int None FdDev;
    "fd.l4proto" Str None FdL4Proto;
    "fd.sockfamily" Str None FdSockFamily;
    "fd.sip" Ip None FdSip;
    "fd.rip" Ip None FdSip;
    "fd.sport" Int None FdSport;
    "fd.rport" Int None FdSport;
    "fd.cip" Ip None FdCip;
    "fd.lip" Ip None FdCip;
    "fd.cport" Int None FdCport;
    "fd.lport" Int None FdCport;
    "fd.ip" Ip None FdIp;
    "fd.port" Int None FdPort;
    "fd.net" Net None FdNet;
    "fd.snet" Net None FdSnet;
    "fd.rnet" Net None FdSnet;
    "fd.cnet" Net None FdCnet;
    "fd.lnet" Net None FdCnet;
    "fd.unresolved" Bool None FdUnresolved;
    "fd.connected" Bool None FdConnected;
    "fd.name_changed" Bool None FdNameChanged;
    "cgroup.id" Int None CgroupId;
    "cgroup.path" Str None CgroupPath;
    "container.id" Str None ContainerId;
    "container.full_id" Str None ContainerFullId;
    "container.type" Str None ContainerType;
    "container.name" Str None ContainerName;
    "container.image" Str None ContainerImage;
    "container.image.id" Str None ContainerImageId;
    "container.image.repository" Str None ContainerImageRepo;
    "container.image.tag" Str None ContainerImageTag;
    "container.image.digest" Str None ContainerImageDigest;
    "container.privileged" Bool None ContainerPrivileged;
    "k8s.ns.name" Str None K8sNsName;
    "k8s.pod.name" Str None K8sPodName;
    "k8s.pod.uid" Str None K8sPodUid;
    "k8s.pod.qos_class" Str None K8sPodQos;
    "k8s.pod.labels" Str None K8sPodLabels;
    "k8s.pod.label" Str Key K8sPodLabel;
};

/// A field as a rule or output names it: its definition and argument.
#[derive(Clone, Debug)]
pub struct Field {
    def: &'static FieldDef,
    /// `[2]` of proc.aname[2]; None: the field itself (or, for ancestors, all of them).
    index: Option<usize>,
    key: Option<String>,
    evt_arg: Option<&'static str>,
}

impl std::fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Why a field name cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// Not a field the monitor can fill (Falco may know it).
    Unsupported,
    BadArgument(String),
}

impl Field {
    /// Looks a field up by name and argument as written in a rule (`proc.aname`, `2`).
    pub fn lookup(name: &str, arg: Option<&str>) -> Result<Self, FieldError> {
        if let Some(arg_name) = name.strip_prefix("evt.arg.") {
            let Some(&(n, ty)) = EVT_ARGS.iter().find(|(n, _)| *n == arg_name) else {
                return Err(FieldError::Unsupported);
            };
            if arg.is_some() {
                return Err(FieldError::BadArgument(format!("{name} takes no argument")));
            }
            // Falco's evt.arg.* are the parameters rendered as text (evt.rawarg.* are typed).
            static EVT_ARG: FieldDef =
                FieldDef { name: "evt.arg", ty: FieldType::Str, arg: ArgKind::None, id: EvtArg("") };
            debug_assert_eq!(ty, FieldType::Str);
            return Ok(Self { def: &EVT_ARG, index: None, key: None, evt_arg: Some(n) });
        }
        // `k8s.pod.label.app` is shorthand for `k8s.pod.label[app]`.
        if let Some(key) = name.strip_prefix("k8s.pod.label.") {
            return Self::lookup("k8s.pod.label", Some(key));
        }
        let def = FIELDS.iter().find(|f| f.name == name).ok_or(FieldError::Unsupported)?;
        let mut field = Self { def, index: None, key: None, evt_arg: None };
        match (def.arg, arg) {
            (ArgKind::None, None) | (ArgKind::OptionalIndex, None) => {}
            (ArgKind::None, Some(_)) => {
                return Err(FieldError::BadArgument(format!("{name} takes no argument")));
            }
            (ArgKind::OptionalIndex, Some(a)) => match a.trim().parse::<usize>() {
                Ok(i) => field.index = Some(i),
                Err(_) => {
                    return Err(FieldError::BadArgument(format!(
                        "{name}[...] takes an ancestor number, not `{a}`"
                    )));
                }
            },
            (ArgKind::Key, Some(k)) => field.key = Some(k.to_owned()),
            (ArgKind::Key, None) => return Err(FieldError::BadArgument(format!("{name} needs a [key]"))),
        }
        Ok(field)
    }

    pub fn ty(&self) -> FieldType {
        self.def.ty
    }

    /// Without an index, an ancestor field holds one value per ancestor.
    pub fn is_multi(&self) -> bool {
        self.def.arg == ArgKind::OptionalIndex && self.index.is_none()
    }

    pub fn name(&self) -> String {
        if let Some(a) = self.evt_arg {
            return format!("evt.arg.{a}");
        }
        match (&self.index, &self.key) {
            (Some(i), _) => format!("{}[{i}]", self.def.name),
            (_, Some(k)) => format!("{}[{k}]", self.def.name),
            _ => self.def.name.to_owned(),
        }
    }

    /// Names of every field the registry knows, for `monitor rules fields` and docs.
    pub fn all_names() -> impl Iterator<Item = String> {
        FIELDS
            .iter()
            .map(|f| match f.arg {
                ArgKind::None => f.name.to_owned(),
                ArgKind::OptionalIndex => format!("{}[N]", f.name),
                ArgKind::Key => format!("{}[key]", f.name),
            })
            .chain(EVT_ARGS.iter().map(|(n, _)| format!("evt.arg.{n}")))
    }

    /// Whether events of `evt_type` can carry a value for this field; false lets the compiler
    /// fold checks away for that type. Conservative: true when unsure.
    pub fn available_in(&self, evt_type: &str) -> bool {
        let open = matches!(evt_type, "open" | "openat" | "openat2" | "creat");
        let net = matches!(evt_type, "connect" | "sendto" | "sendmsg");
        let exec = matches!(evt_type, "execve" | "execveat");
        match self.def.id {
            EvtIsOpenRead | EvtIsOpenWrite | EvtIsOpenCreate | EvtIsOpenExec | EvtRawArgFlags | FdIno
            | FdDev | FdUnresolved | FdDirectory | FdFilename => {
                open || (net && matches!(self.def.id, FdDirectory | FdFilename))
            }
            FdNum | FdName | FdType | FdTypeChar => open || net,
            FdConnected | FdNameChanged => net,
            FdL4Proto | FdSockFamily | FdSip | FdSport | FdCip | FdCport | FdIp | FdPort | FdNet | FdSnet
            | FdCnet => net,
            EvtArg(_) => match self.evt_arg.unwrap_or("") {
                "res" => true,
                "fd" => open || net,
                "name" | "flags" | "mode" | "dev" | "ino" => open,
                "tuple" => net,
                "status" => evt_type == "procexit",
                _ => exec,
            },
            _ => true,
        }
    }

    pub fn extract<'e>(&self, ev: &'e Event, cx: &FieldContext) -> FieldValue<'e> {
        use FieldValue as V;
        let p = ev.process.as_deref();
        let proc_str = |f: fn(&'e Process) -> &'e str| p.map_or(V::Null, |p| V::Str(Cow::Borrowed(f(p))));
        let open = match &ev.detail {
            Detail::Open(o) => Some(o),
            _ => None,
        };
        let net = match &ev.detail {
            Detail::Net(n) => Some(n),
            _ => None,
        };
        let path = || match (&ev.detail, net.and_then(|n| n.unix_path.as_deref())) {
            (Detail::Open(o), _) => Some(o.path.as_str()),
            (_, Some(p)) => Some(p),
            _ => None,
        };
        let opt_str = |s: Option<&'e str>| s.map_or(V::Null, |s| V::Str(Cow::Borrowed(s)));
        let ip = |v: Option<IpAddr>| v.map_or(V::Null, V::Ip);
        match self.def.id {
            EvtType => V::Str(Cow::Borrowed(ev.evt_type)),
            EvtDir => V::Str(Cow::Borrowed("<")),
            EvtTime | EvtRawTime => V::Int(ev.time_ns as i64),
            EvtNum => V::Int(ev.num as i64),
            EvtCpu => V::Int(ev.cpu.into()),
            EvtRes => V::Str(errno_name(ev.res)),
            EvtRawRes => V::Int(ev.res),
            EvtFailed => V::Bool(ev.res < 0),
            EvtIsOpenRead => open.map_or(V::Null, |o| V::Bool(is_open_read(o.flags))),
            EvtIsOpenWrite => open.map_or(V::Null, |o| V::Bool(is_open_write(o.flags))),
            EvtIsOpenCreate => open.map_or(V::Null, |o| V::Bool(is_open_create(o.flags))),
            // __FMODE_EXEC is not an open(2) flag: files opened to be executed come as execs.
            EvtIsOpenExec => open.map_or(V::Null, |_| V::Bool(false)),
            EvtHostname => V::Str(Cow::Owned(cx.hostname.clone())),
            EvtSource => V::Str(Cow::Borrowed("syscall")),
            EvtArgs => V::Str(Cow::Owned(evt_args(ev))),
            EvtArg(_) => self.evt_arg(ev),
            EvtRawArgFlags => open.map_or(V::Null, |o| V::Int(o.flags.into())),
            ProcName => proc_str(|p| &p.comm),
            ProcExe => proc_str(Process::exe_arg0),
            ProcExePath => proc_str(|p| &p.exe_path),
            // The system binary this executable is a byte-identical copy of (renamed, moved, or
            // run from a memfd); otherwise the executable's own path.
            ProcExeOriginal => p.map_or(V::Null, |p| {
                match cx.exe_identity.borrow_mut().original_of(p.pid, &p.exe_path, p.exe_ino) {
                    Some(orig) => V::Str(Cow::Owned(orig)),
                    None => V::Str(Cow::Borrowed(&p.exe_path)),
                }
            }),
            ProcExeIno => p.map_or(V::Null, |p| V::Int(p.exe_ino as i64)),
            ProcIsExeFromMemfd => p.map_or(V::Null, |p| V::Bool(p.exe_from_memfd)),
            ProcArgs => proc_str(Process::args),
            ProcCmdline => proc_str(Process::cmdline),
            ProcCmdNArgs => p.map_or(V::Null, |p| V::Int(p.argv.len().saturating_sub(1) as i64)),
            ProcCmdLenArgs => p.map_or(V::Null, |p| V::Int(p.args().len() as i64)),
            ProcPid => V::Int(ev.pid.into()),
            ProcPpid => p.map_or(V::Null, |p| V::Int(p.ppid.into())),
            ProcVpid => p.map_or(V::Null, |p| V::Int(p.vpid.into())),
            ProcCwd => opt_str(p.and_then(|p| p.cwd.as_deref())),
            ProcTty => p.map_or(V::Null, |p| V::Int(p.tty.into())),
            ProcPidNs => p.map_or(V::Null, |p| V::Int(p.pidns.into())),
            ProcMntNs => p.map_or(V::Null, |p| V::Int(p.mntns.into())),
            ProcDuration => p.map_or(V::Null, |p| {
                V::Int(
                    (super::enrich::clock_ns(libc::CLOCK_BOOTTIME) as u64).saturating_sub(p.start_ns) as i64
                )
            }),
            ProcScript => opt_str(p.and_then(|p| p.script.as_deref())),
            // The process's own /proc directory, with a trailing slash, as seen from the host and
            // from its pid namespace: `fd.name startswith val(proc.procdir)` tells a process's
            // own /proc entries (also through task/<tid>/) from another's.
            ProcProcDir => {
                let vpid = p.map_or(ev.pid, |p| p.vpid);
                V::List(vec![
                    V::Str(Cow::Owned(format!("/proc/{}/", ev.pid))),
                    V::Str(Cow::Owned(format!("/proc/{vpid}/"))),
                ])
            }
            ProcPName => self.ancestor(ev, 1, |a| V::Str(Cow::Borrowed(&a.comm))),
            ProcPExe => self.ancestor(ev, 1, |a| V::Str(Cow::Borrowed(a.exe_arg0()))),
            ProcPExePath => self.ancestor(ev, 1, |a| V::Str(Cow::Borrowed(&a.exe_path))),
            ProcPCmdline => self.ancestor(ev, 1, |a| V::Str(Cow::Borrowed(a.cmdline()))),
            ProcAName => self.ancestors(ev, |a| V::Str(Cow::Borrowed(&a.comm))),
            ProcAPid => self.ancestors(ev, |a| V::Int(a.pid.into())),
            ProcAExe => self.ancestors(ev, |a| V::Str(Cow::Borrowed(a.exe_arg0()))),
            ProcAExePath => self.ancestors(ev, |a| V::Str(Cow::Borrowed(&a.exe_path))),
            ProcACmdline => self.ancestors(ev, |a| V::Str(Cow::Borrowed(a.cmdline()))),
            ProcStdType(i) => {
                p.map_or(V::Null, |p| opt_str((!p.stdio[i].fd_type.is_empty()).then_some(p.stdio[i].fd_type)))
            }
            ProcStdName(i) => opt_str(p.and_then(|p| p.stdio[i].name.as_deref())),
            ThreadTid => V::Int(ev.tid.into()),
            UserUid => V::Int(p.map_or(ev.uid, |p| p.euid).into()),
            UserName => {
                let uid = p.map_or(ev.uid, |p| p.euid);
                cx.users.borrow_mut().name(uid).map_or(V::Null, |n| V::Str(Cow::Owned(n.to_string())))
            }
            UserLoginUid => {
                p.map_or(V::Null, |p| V::Int(if p.loginuid == u32::MAX { -1 } else { p.loginuid.into() }))
            }
            UserLoginName => p
                .filter(|p| p.loginuid != u32::MAX)
                .and_then(|p| cx.users.borrow_mut().name(p.loginuid))
                .map_or(V::Null, |n| V::Str(Cow::Owned(n.to_string()))),
            GroupGid => V::Int(p.map_or(ev.gid, |p| p.egid).into()),
            GroupName => {
                let gid = p.map_or(ev.gid, |p| p.egid);
                cx.groups.borrow_mut().name(gid).map_or(V::Null, |n| V::Str(Cow::Owned(n.to_string())))
            }
            FdNum => match (&ev.detail, net) {
                (Detail::Open(_), _) => V::Int(if ev.res >= 0 { ev.res } else { -1 }),
                (_, Some(n)) => V::Int(n.fd.into()),
                _ => V::Null,
            },
            FdName => match (open, net) {
                (Some(o), _) => V::Str(Cow::Borrowed(&o.path)),
                (_, Some(n)) => match &n.unix_path {
                    Some(p) => V::Str(Cow::Borrowed(p)),
                    None => V::Str(Cow::Owned(super::format::connection_name(n))),
                },
                _ => V::Null,
            },
            FdDirectory => opt_str(path().map(dirname)),
            FdFilename => opt_str(path().map(basename)),
            FdType => match (open, net) {
                (Some(o), _) => {
                    V::Str(Cow::Borrowed(if o.flags & 0o200000 != 0 { "directory" } else { "file" }))
                }
                (_, Some(n)) => V::Str(Cow::Borrowed(n.fd_type)),
                _ => V::Null,
            },
            FdTypeChar => match (open, net) {
                (Some(o), _) => V::Str(Cow::Borrowed(if o.flags & 0o200000 != 0 { "d" } else { "f" })),
                (_, Some(n)) => V::Str(Cow::Borrowed(match n.fd_type {
                    "ipv4" => "4",
                    "ipv6" => "6",
                    "unix" => "u",
                    _ => "o",
                })),
                _ => V::Null,
            },
            FdIno => open.map_or(V::Null, |o| V::Int(o.ino as i64)),
            FdDev => open.map_or(V::Null, |o| V::Int(o.dev.into())),
            FdL4Proto => net.map_or(V::Null, |n| opt_str((!n.l4proto.is_empty()).then_some(n.l4proto))),
            FdSockFamily => net.map_or(V::Null, |n| {
                V::Str(Cow::Borrowed(match n.fd_type {
                    "ipv4" | "ipv6" => "ip",
                    "unix" => "unix",
                    _ => "other",
                }))
            }),
            FdSip => ip(net.and_then(|n| n.sip)),
            FdSport => net.filter(|n| n.unix_path.is_none()).map_or(V::Null, |n| V::Int(n.sport.into())),
            FdCip => ip(net.and_then(|n| n.cip)),
            FdCport => net.filter(|n| n.unix_path.is_none()).map_or(V::Null, |n| V::Int(n.cport.into())),
            FdIp | FdNet => {
                net.map_or(V::Null, |n| V::List(n.sip.into_iter().chain(n.cip).map(V::Ip).collect()))
            }
            FdPort => net
                .filter(|n| n.unix_path.is_none())
                .map_or(V::Null, |n| V::List(vec![V::Int(n.sport.into()), V::Int(n.cport.into())])),
            FdSnet => ip(net.and_then(|n| n.sip)),
            FdCnet => ip(net.and_then(|n| n.cip)),
            FdUnresolved => open.map_or(V::Null, |o| V::Bool(!o.resolved)),
            // Without per-fd state: a connect connects (or is under way); a send on a connected
            // socket takes its peer from the socket.
            FdConnected => match (ev.evt_type, net) {
                ("connect", Some(_)) => V::Bool(ev.res == 0 || ev.res == -115),
                (_, Some(n)) => V::Bool(n.from_socket),
                _ => V::Null,
            },
            // A send that names its destination may change the fd's peer; counting each one as a
            // change errs towards evaluating outbound rules, never away from them.
            FdNameChanged => net.map_or(V::Null, |n| V::Bool(ev.evt_type == "connect" || !n.from_socket)),
            CgroupId => V::Int(ev.cgroup_id as i64),
            CgroupPath => opt_str(ev.cgroup_path.as_deref()),
            ContainerId => match (&ev.container, &ev.cgroup_path) {
                (Some(c), _) => V::Str(Cow::Borrowed(c.short())),
                (None, Some(_)) => V::Str(Cow::Borrowed("host")),
                (None, None) => V::Null,
            },
            ContainerFullId => match (&ev.container, &ev.cgroup_path) {
                (Some(c), _) => V::Str(Cow::Borrowed(&c.full)),
                (None, Some(_)) => V::Str(Cow::Borrowed("host")),
                (None, None) => V::Null,
            },
            ContainerType => opt_str(ev.container.as_ref().map(|c| c.runtime)),
            ContainerName | ContainerImage | ContainerImageId | ContainerImageRepo | ContainerImageTag
            | ContainerImageDigest | ContainerPrivileged | K8sNsName | K8sPodName | K8sPodLabels
            | K8sPodLabel => {
                let Some(meta) = ev.container.as_ref().and_then(|c| cx.containers.as_ref()?.known(&c.full))
                else {
                    return V::Null;
                };
                let owned =
                    |s: &Option<String>| s.as_ref().map_or(V::Null, |s| V::Str(Cow::Owned(s.clone())));
                let label = |k: &str| meta.label(k).map_or(V::Null, |s| V::Str(Cow::Owned(s.to_owned())));
                match self.def.id {
                    ContainerName => owned(&meta.name),
                    ContainerImage => owned(&meta.image),
                    ContainerImageId => owned(&meta.image_id),
                    ContainerImageRepo => owned(&meta.image_repository),
                    ContainerImageTag => owned(&meta.image_tag),
                    ContainerImageDigest => owned(&meta.image_digest),
                    ContainerPrivileged => meta.privileged.map_or(V::Null, V::Bool),
                    K8sNsName => label("io.kubernetes.pod.namespace"),
                    K8sPodLabels => {
                        let mut labels: Vec<String> =
                            meta.pod_labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                        labels.sort();
                        V::Str(Cow::Owned(labels.join(", ")))
                    }
                    K8sPodLabel => self
                        .key
                        .as_ref()
                        .and_then(|k| meta.pod_labels.get(k))
                        .map_or(V::Null, |v| V::Str(Cow::Owned(v.clone()))),
                    _ => label("io.kubernetes.pod.name"),
                }
            }
            K8sPodUid => opt_str(ev.container.as_ref().and_then(|c| c.pod.as_ref()).map(|p| p.uid.as_str())),
            K8sPodQos => opt_str(ev.container.as_ref().and_then(|c| c.pod.as_ref()).map(|p| p.qos)),
        }
    }

    fn ancestor<'e>(
        &self,
        ev: &'e Event,
        n: usize,
        f: impl Fn(&'e Process) -> FieldValue<'e>,
    ) -> FieldValue<'e> {
        ev.ancestors.get(n - 1).map_or(FieldValue::Null, |a| f(a))
    }

    /// Index 0 is the process itself, 1 its parent, and so on.
    fn ancestors<'e>(&self, ev: &'e Event, f: impl Fn(&'e Process) -> FieldValue<'e>) -> FieldValue<'e> {
        match self.index {
            Some(0) => ev.process.as_deref().map_or(FieldValue::Null, f),
            Some(i) if i <= MAX_ANCESTORS => self.ancestor(ev, i, f),
            Some(_) => FieldValue::Null,
            None => FieldValue::List(ev.ancestors.iter().map(|a| f(a)).collect()),
        }
    }

    fn evt_arg<'e>(&self, ev: &'e Event) -> FieldValue<'e> {
        match self.evt_arg_typed(ev) {
            FieldValue::Int(i) => FieldValue::Str(Cow::Owned(i.to_string())),
            v => v,
        }
    }

    fn evt_arg_typed<'e>(&self, ev: &'e Event) -> FieldValue<'e> {
        use FieldValue as V;
        let name = self.evt_arg.unwrap_or("");
        let p = ev.process.as_deref();
        match (&ev.detail, name) {
            (_, "res") => V::Int(ev.res),
            (Detail::Open(_), "fd") => V::Int(ev.res),
            (Detail::Open(o), "name") => V::Str(Cow::Borrowed(&o.path)),
            (Detail::Open(o), "flags") => V::Str(Cow::Owned(open_flags(o.flags))),
            (Detail::Open(o), "mode") => V::Str(Cow::Owned(format!("0{:o}", o.mode))),
            (Detail::Open(o), "dev") => V::Int(o.dev.into()),
            (Detail::Open(o), "ino") => V::Int(o.ino as i64),
            (Detail::Exec { filename }, "filename") => V::Str(Cow::Borrowed(filename)),
            (Detail::Exec { .. }, "exe") => p.map_or(V::Null, |p| V::Str(Cow::Borrowed(p.exe_arg0()))),
            (Detail::Exec { .. }, "args") => p.map_or(V::Null, |p| V::Str(Cow::Borrowed(p.args()))),
            (Detail::Exec { .. }, "cwd") => {
                p.and_then(|p| p.cwd.as_deref()).map_or(V::Null, |c| V::Str(Cow::Borrowed(c)))
            }
            (Detail::Exec { .. }, "tty") => p.map_or(V::Null, |p| V::Int(p.tty.into())),
            (Detail::Exec { .. }, "pid") => V::Int(ev.pid.into()),
            (Detail::Exec { .. }, "ptid") => p.map_or(V::Null, |p| V::Int(p.ppid.into())),
            (Detail::Exec { .. }, "uid") => p.map_or(V::Null, |p| V::Int(p.euid.into())),
            (Detail::Exec { .. }, "gid") => p.map_or(V::Null, |p| V::Int(p.egid.into())),
            (Detail::Exec { .. }, "loginuid") => p.map_or(V::Null, |p| V::Int(p.loginuid.into())),
            (Detail::Exec { .. }, "comm") => p.map_or(V::Null, |p| V::Str(Cow::Borrowed(&p.comm))),
            (Detail::Net(n), "fd") => V::Int(n.fd.into()),
            (Detail::Net(n), "tuple") => V::Str(Cow::Owned(super::format::connection_name(n))),
            (Detail::Exit { code }, "status") => V::Int((*code).into()),
            _ => V::Null,
        }
    }
}

/// Falco's evt.args: the event's parameters as `name=value` pairs.
fn evt_args(ev: &Event) -> String {
    match &ev.detail {
        Detail::Open(o) => format!(
            "fd={} name={} flags={} mode=0{:o} dev={:x} ino={}",
            ev.res,
            o.path,
            open_flags(o.flags),
            o.mode,
            o.dev,
            o.ino
        ),
        Detail::Exec { filename } => {
            let p = ev.process.as_deref();
            format!(
                "res={} exe={} args={} filename={filename}",
                ev.res,
                p.map_or("", |p| p.exe_arg0()),
                p.map_or("", |p| p.args())
            )
        }
        Detail::Net(n) => format!("res={} tuple={} fd={}", ev.res, super::format::connection_name(n), n.fd),
        Detail::Exit { code } => format!("status={code}"),
        Detail::Fork => format!("res={}", ev.res),
    }
}

/// What a field holds for one event; borrowed from the event where it can be.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Ip(IpAddr),
    /// Fields with one value per ancestor or per endpoint.
    List(Vec<FieldValue<'a>>),
}

impl FieldValue<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// As Falco prints a value inside an output string; unknown values print as `<NA>`.
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Self::Null => out.push_str("<NA>"),
            Self::Str(s) => out.push_str(s),
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
            Self::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_text(out);
                }
            }
        }
    }

    /// As an alert's output_fields carry it: strings escaped as in the output text
    /// ([`super::text::escape`]), so raw JSON shown on a terminal cannot drive it either.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Self::Null => J::Null,
            Self::Str(s) => J::String(super::text::escaped(s)),
            Self::Int(i) => J::from(*i),
            Self::Bool(b) => J::Bool(*b),
            Self::Ip(ip) => J::String(ip.to_string()),
            Self::List(items) => J::Array(items.iter().map(Self::to_json).collect()),
        }
    }
}

/// What extraction needs beyond the event: name lookups and the host's name.
pub struct FieldContext {
    /// Container metadata from the runtimes, when the daemon talks to them.
    pub containers: Option<crate::container::ContainerDirectory>,
    pub users: RefCell<Users>,
    pub exe_identity: RefCell<super::exe_identity::ExeIdentity>,
    pub groups: RefCell<Users>,
    pub hostname: String,
}

impl Default for FieldContext {
    fn default() -> Self {
        Self {
            containers: None,
            users: RefCell::new(Users::new("/etc/passwd")),
            exe_identity: RefCell::new(Default::default()),
            groups: RefCell::new(Users::new("/etc/group")),
            hostname: nix_hostname(),
        }
    }
}

pub fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_checks_arguments() {
        assert!(Field::lookup("proc.name", None).is_ok());
        assert!(Field::lookup("proc.aname", Some("2")).is_ok());
        assert!(Field::lookup("proc.aname", None).unwrap().is_multi());
        assert!(matches!(Field::lookup("proc.aname", Some("x")), Err(FieldError::BadArgument(_))));
        assert!(matches!(Field::lookup("proc.name", Some("1")), Err(FieldError::BadArgument(_))));
        assert_eq!(Field::lookup("thread.cap_effective", None).unwrap_err(), FieldError::Unsupported);
        assert_eq!(Field::lookup("evt.arg.newpath", None).unwrap_err(), FieldError::Unsupported);
        assert_eq!(Field::lookup("evt.arg.flags", None).unwrap().name(), "evt.arg.flags");
        assert_eq!(Field::lookup("k8s.pod.label.app", None).unwrap().name(), "k8s.pod.label[app]");
    }
}
