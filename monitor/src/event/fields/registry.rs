//! Every field, defined once: its name (and Falco's other names for it), type, meaning, the
//! events that carry it, how its value is read from an event, and whether `monitor events`
//! records it and `monitor replay` reads it back. The rule compiler, `%field` outputs, alert
//! fields, the events stream, replay, `monitor rules fields` and the kernel filter's analysis
//! all work from this table.

use std::borrow::Cow;
use std::net::IpAddr;

use monitor_common::{Call, EventClass, FdType, Via};

use super::{ArgKind, Classes, Field, FieldContext, FieldType, FieldValue as V, Record, Scope};
use crate::event::format::{
    basename, capability_mask, capability_names, connection_name, dirname, errno_name, is_open_create,
    is_open_read, is_open_write, open_flags,
};
use crate::event::replay::{json_int, json_text};
use crate::event::{Detail, Event, NetInfo, OpenInfo, calls};
use crate::process::Process;

/// One field.
pub struct FieldDef {
    pub id: FieldId,
    pub name: &'static str,
    /// Other names Falco gives the same field (`fd.rip` for `fd.sip`).
    pub aliases: &'static [&'static str],
    pub ty: FieldType,
    pub arg: ArgKind,
    pub doc: &'static str,
    /// The event classes whose events can have a value; for others the field is null, and the
    /// compiler folds checks on it away.
    pub carried_by: Classes,
    /// What the value depends on beyond the event's own record.
    pub scope: Scope,
    pub extract: for<'e> fn(&Field, &'e Event, &FieldContext) -> V<'e>,
    pub record: Record,
}

impl std::fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

const BASE: FieldDef = FieldDef {
    id: FieldId::EvtType,
    name: "",
    aliases: &[],
    ty: FieldType::Str,
    arg: ArgKind::None,
    doc: "",
    carried_by: Classes::ALL,
    scope: Scope::Event,
    extract: |_, _, _| V::Null,
    record: Record::None,
};

macro_rules! registry {
    ($($id:ident { $($body:tt)* })*) => {
        /// A field, typed: what the kernel filter's analysis and the alert views match on.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum FieldId { $($id,)* }

        pub static FIELDS: &[FieldDef] = &[$(FieldDef { id: FieldId::$id, $($body)* ..BASE },)*];
    };
}

fn s(v: &str) -> V<'_> {
    V::Str(Cow::Borrowed(v))
}

fn owned<'e>(v: String) -> V<'e> {
    V::Str(Cow::Owned(v))
}

fn opt(v: Option<&str>) -> V<'_> {
    v.map_or(V::Null, s)
}

fn int(v: impl Into<i64>) -> V<'static> {
    V::Int(v.into())
}

fn ip(v: Option<IpAddr>) -> V<'static> {
    v.map_or(V::Null, V::Ip)
}

/// A network event's names for `ip`: a list (several names may resolve to one address), empty
/// when none does.
fn names_of(ip: Option<IpAddr>, cx: &FieldContext) -> V<'static> {
    ip.map_or(V::Null, |ip| {
        V::List(cx.host_names.names_of(ip).iter().map(|n| owned(n.to_string())).collect())
    })
}

fn proc<'e>(ev: &'e Event, f: impl FnOnce(&'e Process) -> V<'e>) -> V<'e> {
    ev.process.as_deref().map_or(V::Null, f)
}

/// An exec's process (its parameters are the new image's).
fn exec<'e>(ev: &'e Event, f: impl FnOnce(&'e Process) -> V<'e>) -> V<'e> {
    match &ev.detail {
        Detail::Exec { .. } => proc(ev, f),
        _ => V::Null,
    }
}

fn open(ev: &Event) -> Option<&OpenInfo> {
    match &ev.detail {
        Detail::Open(o) => Some(o),
        _ => None,
    }
}

/// A network event's connection, or the socket a call's descriptor is (socket, dup).
fn net(ev: &Event) -> Option<&NetInfo> {
    match &ev.detail {
        Detail::Net(n) => Some(n),
        Detail::Call(c) => c.sock.as_ref(),
        _ => None,
    }
}

fn fs_path(ev: &Event, pick: impl FnOnce(calls::FsPaths) -> Option<String>) -> V<'static> {
    match &ev.detail {
        Detail::Call(c) => pick(calls::fs_paths(ev.evt_type, c)).map_or(V::Null, owned),
        _ => V::Null,
    }
}

/// A network event's value, null for unix sockets (which have no ports).
fn inet<'e>(ev: &'e Event, f: impl FnOnce(&'e NetInfo) -> V<'e>) -> V<'e> {
    net(ev).filter(|n| n.unix_path.is_none()).map_or(V::Null, f)
}

/// The path an event's fd names: the opened file, or a unix socket's path.
fn fd_path(ev: &Event) -> Option<&str> {
    match &ev.detail {
        Detail::Open(o) => Some(&o.path),
        Detail::Net(n) => n.unix_path.as_deref(),
        Detail::Call(c) => c.fd_path.as_deref(),
        _ => None,
    }
}

/// The parent, or the `i`th ancestor.
fn ancestor(ev: &Event, i: usize) -> Option<&Process> {
    ev.ancestors.get(i.checked_sub(1)?).map(|a| &**a)
}

/// Index 0 is the process itself, 1 its parent, and so on; without an index, every ancestor.
fn ancestors<'e>(f: &Field, ev: &'e Event, v: impl Fn(&'e Process) -> V<'e>) -> V<'e> {
    match f.index {
        Some(0) => proc(ev, v),
        Some(i) => ancestor(ev, i).map_or(V::Null, v),
        None => V::List(ev.ancestors.iter().map(|a| v(a)).collect()),
    }
}

/// The leader of the event's process's session among the process and its known ancestors.
fn session_leader(ev: &Event) -> Option<&Process> {
    let p = ev.process.as_deref()?;
    let in_session = |a: &&Process| a.pidns == p.pidns && a.vsid == p.vsid;
    let line = std::iter::once(p).chain(ev.ancestors.iter().map(|a| &**a));
    let mut eldest = None;
    for a in line.take_while(|a| in_session(a)) {
        if a.vpid == p.vsid {
            return Some(a);
        }
        eldest = Some(a);
    }
    eldest
}

fn fd_type(ev: &Event) -> Option<FdType> {
    match &ev.detail {
        Detail::Open(o) if o.flags & 0o200000 != 0 => Some(FdType::Directory),
        Detail::Open(_) => Some(FdType::File),
        Detail::Net(n) => Some(n.fd_type),
        Detail::Call(c) => match (&c.sock, &c.fd_path) {
            (Some(n), _) => Some(n.fd_type),
            (None, Some(_)) => Some(FdType::File),
            (None, None) => None,
        },
        _ => None,
    }
}

/// Falco's evt.args: the event's parameters as `name=value` pairs.
fn evt_args(ev: &Event, cx: &FieldContext) -> String {
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
        Detail::Net(n) => format!("res={} tuple={} fd={}", ev.res, connection_name(n), n.fd),
        Detail::Exit { code } => format!("status={code}"),
        Detail::Fork => format!("res={}", ev.res),
        Detail::Call(c) => calls::args_text(ev, c, cx),
    }
}

fn container_meta<'e>(
    ev: &Event,
    cx: &FieldContext,
    f: impl FnOnce(&crate::container::ContainerMeta) -> V<'e>,
) -> V<'e> {
    match ev.container.as_ref().and_then(|c| cx.containers.as_ref()?.known(&c.full)) {
        Some(meta) => f(&meta),
        None => V::Null,
    }
}

/// One of the container's mounts, picked by the field's key. In a container it is "N/A" when
/// no mount matches or the runtime's answer is missing, the value Falco's rules test for
/// (`not container.mount.dest[/proc*] in ("<NA>","N/A")`): a container the runtime cannot
/// describe is not taken for one with every mount. Null on the host.
fn mount_field<'e>(
    f: &Field,
    ev: &Event,
    cx: &FieldContext,
    by_dest: bool,
    pick: impl FnOnce(&crate::container::ContainerMount) -> String,
) -> V<'e> {
    let Some(c) = &ev.container else { return V::Null };
    let key = f.key.as_deref().unwrap_or_default();
    let meta = cx.containers.as_ref().and_then(|d| d.known(&c.full));
    owned(meta.and_then(|m| m.mount(key, by_dest).map(pick)).unwrap_or_else(|| "N/A".to_owned()))
}

fn meta_str<'e>(v: &Option<String>) -> V<'e> {
    v.as_ref().map_or(V::Null, |s| owned(s.clone()))
}

const OPEN: Classes = Classes::of(EventClass::Open);
const EXEC: Classes = Classes::of(EventClass::Exec);
const EXIT: Classes = Classes::of(EventClass::Exit);
const CALL: Classes = Classes::of(EventClass::Syscall);
/// Fields of a socket: connects and sends, and the calls whose descriptor is one.
const NET: Classes = Classes::of(EventClass::Net).with(EventClass::Syscall);
const FD: Classes = OPEN.with(EventClass::Net).with(EventClass::Syscall);

registry! {
    // Events.
    EvtType {
        name: "evt.type", doc: "The event's type: execve, openat, connect, ...",
        extract: |_, ev, _| s(ev.evt_type.name()),
        record: Record::Kept(|d, _, v| d.evt_type = json_text(v)),
    }
    EvtVia {
        name: "evt.via",
        doc: "The way into the kernel the event came through: syscall (the native syscall), ia32 (a \
              32-bit syscall: a 32-bit program, or int 0x80 from a 64-bit one) or io_uring (a request)",
        extract: |_, ev, _| s(ev.via.name()),
        record: Record::Kept(|d, _, v| d.via = Via::from_name(&json_text(v)).unwrap_or_default()),
    }
    EvtCall {
        name: "evt.call",
        doc: "What made the event: the syscall evt.type names, or socketcall, sendmmsg (each message a \
              sendmsg), sendto or sendmsg (a TCP Fast Open, reported as the connect it makes), an io_uring \
              operation (IORING_OP_OPENAT, ...), or unknown (a TCP connect only the TCP state backstop saw)",
        extract: |_, ev, _| s(ev.call.name().unwrap_or(ev.evt_type.name())),
        record: Record::Kept(|d, _, v| d.call = Call::from_name(&json_text(v)).unwrap_or_default()),
    }
    EvtResultUnknown {
        name: "evt.result_unknown", ty: FieldType::Bool,
        doc: "The kernel did not report the result, only the attempt (evt.rawres is then 0): an io_uring \
              request that posts no completion or whose completion came late, a connect seen only by the \
              TCP state backstop",
        extract: |_, ev, _| V::Bool(ev.result_unknown),
        record: Record::Kept(|d, _, v| d.result_unknown = v.as_bool().unwrap_or(false)),
    }
    EvtDir {
        name: "evt.dir", doc: "The event's direction: always `<` (events are reported at the syscall's exit)",
        extract: |_, _, _| s("<"), record: Record::Shown,
    }
    EvtTime {
        name: "evt.time", aliases: &["evt.rawtime"], ty: FieldType::Int,
        doc: "When the event happened, ns since the Unix epoch",
        extract: |_, ev, _| int(ev.time_ns as i64),
        // Recordings before the field registry wrote evt.time as RFC 3339 text.
        record: Record::Kept(|d, _, v| {
            d.time_ns = match v.as_str().map(str::parse::<jiff::Timestamp>) {
                Some(Ok(t)) => t.as_nanosecond(),
                _ => json_int(v).into(),
            }
        }),
    }
    EvtTimeIso {
        name: "evt.time.iso8601", doc: "When the event happened, RFC 3339 in UTC with nanoseconds",
        extract: |_, ev, _| owned(crate::alert::rfc3339_ns(ev.time_ns)), record: Record::Shown,
    }
    EvtNum {
        name: "evt.num", ty: FieldType::Int, doc: "The event's number since the monitor started",
        extract: |_, ev, _| int(ev.num as i64), record: Record::Kept(|d, _, v| d.num = json_int(v) as u64),
    }
    EvtCpu {
        name: "evt.cpu", ty: FieldType::Int, doc: "The CPU the event happened on",
        extract: |_, ev, _| int(ev.cpu), record: Record::Kept(|d, _, v| d.cpu = json_int(v) as u32),
    }
    EvtRes {
        name: "evt.res", doc: "The syscall's result: SUCCESS or the errno's name (ENOENT, ...)",
        extract: |_, ev, _| V::Str(errno_name(ev.res)), record: Record::Shown,
    }
    EvtRawRes {
        name: "evt.rawres", ty: FieldType::Int, doc: "The syscall's result as a number (an fd, 0, or -errno)",
        extract: |_, ev, _| int(ev.res), record: Record::Kept(|d, _, v| d.res = json_int(v)),
    }
    EvtFailed {
        name: "evt.failed", ty: FieldType::Bool, doc: "Whether the syscall failed",
        extract: |_, ev, _| V::Bool(ev.res < 0),
    }
    EvtIsOpenRead {
        name: "evt.is_open_read", ty: FieldType::Bool, carried_by: OPEN, doc: "The open reads the file",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| V::Bool(is_open_read(o.flags))), record: Record::Shown,
    }
    EvtIsOpenWrite {
        name: "evt.is_open_write", ty: FieldType::Bool, carried_by: OPEN, doc: "The open writes the file",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| V::Bool(is_open_write(o.flags))), record: Record::Shown,
    }
    EvtIsOpenCreate {
        name: "evt.is_open_create", ty: FieldType::Bool, carried_by: OPEN, doc: "The open may create the file (O_CREAT)",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| V::Bool(is_open_create(o.flags))), record: Record::Shown,
    }
    EvtIsOpenExec {
        name: "evt.is_open_exec", ty: FieldType::Bool, carried_by: OPEN,
        doc: "The file was opened to be executed: never for open(2) (executions come as execve)",
        extract: |_, ev, _| open(ev).map_or(V::Null, |_| V::Bool(false)),
    }
    EvtHostname {
        name: "evt.hostname", doc: "The host's name",
        extract: |_, _, cx| owned(cx.hostname.clone()),
    }
    EvtSource {
        name: "evt.source", doc: "Where the event comes from: syscall",
        extract: |_, _, _| s("syscall"),
    }
    EvtArgs {
        name: "evt.args", doc: "The event's parameters as name=value pairs",
        extract: |_, ev, cx| owned(evt_args(ev, cx)),
    }
    EvtRawArgFlags {
        name: "evt.rawarg.flags", ty: FieldType::Int, carried_by: OPEN, doc: "The open's flags as a number",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| int(o.flags)),
        record: Record::Kept(|d, _, v| d.open.flags = json_int(v) as u32),
    }
    EvtBuffer {
        name: "evt.buffer", carried_by: CALL,
        doc: "The start of the data a receiving call moved (recvfrom, recvmsg; at most 80 bytes), compared byte by byte (bcontains cafebabe)",
        extract: |_, ev, _| match &ev.detail {
            Detail::Call(c) => c.buffer.as_deref().map_or(V::Null, |b| V::Bytes(Cow::Borrowed(b))),
            _ => V::Null,
        },
    }
    EvtArgRes {
        name: "evt.arg.res", doc: "The syscall's result, as text",
        extract: |_, ev, _| owned(ev.res.to_string()),
    }
    EvtArgFd {
        name: "evt.arg.fd", carried_by: FD, doc: "The file descriptor the event is about, as text",
        extract: |_, ev, _| match &ev.detail {
            Detail::Open(_) => owned(ev.res.to_string()),
            Detail::Net(n) => owned(n.fd.to_string()),
            _ => V::Null,
        },
    }
    EvtArgName {
        name: "evt.arg.name", carried_by: OPEN, doc: "The opened file's path",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| s(&o.path)),
    }
    EvtArgFlags {
        name: "evt.arg.flags", carried_by: OPEN, doc: "The open's flags, as O_RDONLY|O_CLOEXEC",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| owned(open_flags(o.flags))), record: Record::Shown,
    }
    EvtArgMode {
        name: "evt.arg.mode", carried_by: OPEN, doc: "The open's mode, in octal (0644)",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| owned(format!("0{:o}", o.mode))),
        record: Record::Kept(|d, _, v| d.open.mode = u32::from_str_radix(&json_text(v), 8).unwrap_or(0)),
    }
    EvtArgDev {
        name: "evt.arg.dev", carried_by: OPEN, doc: "The opened file's device, as text",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| owned(o.dev.to_string())),
    }
    EvtArgIno {
        name: "evt.arg.ino", carried_by: OPEN, doc: "The opened file's inode, as text",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| owned(o.ino.to_string())),
    }
    EvtArgFilename {
        name: "evt.arg.filename", carried_by: EXEC, doc: "The path the exec was given",
        extract: |_, ev, _| match &ev.detail {
            Detail::Exec { filename } => s(filename),
            _ => V::Null,
        },
        record: Record::Kept(|d, _, v| d.exec_filename = json_text(v)),
    }
    EvtArgExe {
        name: "evt.arg.exe", carried_by: EXEC, doc: "The exec's argv[0]",
        extract: |_, ev, _| exec(ev, |p| s(p.exe_arg0())),
    }
    EvtArgArgs {
        name: "evt.arg.args", carried_by: EXEC, doc: "The exec's arguments after argv[0]",
        extract: |_, ev, _| exec(ev, |p| s(p.args())),
    }
    EvtArgCwd {
        name: "evt.arg.cwd", carried_by: EXEC, doc: "The exec's working directory",
        extract: |_, ev, _| exec(ev, |p| opt(p.cwd.as_deref())),
    }
    EvtArgTty {
        name: "evt.arg.tty", carried_by: EXEC, doc: "The exec's controlling terminal, as text",
        extract: |_, ev, _| exec(ev, |p| owned(p.tty.to_string())),
    }
    EvtArgPid {
        name: "evt.arg.pid", carried_by: EXEC, doc: "The exec's pid, as text",
        extract: |_, ev, _| match &ev.detail {
            Detail::Exec { .. } => owned(ev.pid.to_string()),
            _ => V::Null,
        },
    }
    EvtArgPtid {
        name: "evt.arg.ptid", carried_by: EXEC, doc: "The exec's parent pid, as text",
        extract: |_, ev, _| exec(ev, |p| owned(p.ppid.to_string())),
    }
    EvtArgUid {
        name: "evt.arg.uid", carried_by: EXEC, doc: "The exec's effective uid, as text",
        extract: |_, ev, _| exec(ev, |p| owned(p.euid.to_string())),
    }
    EvtArgGid {
        name: "evt.arg.gid", carried_by: EXEC, doc: "The exec's effective gid, as text",
        extract: |_, ev, _| exec(ev, |p| owned(p.egid.to_string())),
    }
    EvtArgLoginUid {
        name: "evt.arg.loginuid", carried_by: EXEC, doc: "The exec's login uid, as text",
        extract: |_, ev, _| exec(ev, |p| owned(p.loginuid.to_string())),
    }
    EvtArgComm {
        name: "evt.arg.comm", carried_by: EXEC, doc: "The exec's process name",
        extract: |_, ev, _| exec(ev, |p| s(&p.comm)),
    }
    EvtArgTuple {
        name: "evt.arg.tuple", carried_by: NET, doc: "The connection as client:port->server:port",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| owned(connection_name(n))),
    }
    // Both read the call's parameter in Field::extract, as every `evt.arg.*` name does on
    // calls; they have no value on other events.
    EvtArgCall {
        name: "evt.arg", arg: ArgKind::Key, carried_by: CALL,
        doc: "A call's parameter by Falco's name (`evt.arg.request`, `evt.arg[oldpath]`), as Falco writes it",
    }
    EvtRawArgCall {
        name: "evt.rawarg", arg: ArgKind::Key, ty: FieldType::Int, carried_by: CALL,
        doc: "A call's numeric parameter by Falco's name (`evt.rawarg.request`), as a number",
    }
    EvtArgStatus {
        name: "evt.arg.status", carried_by: EXIT, doc: "The exit status, as text",
        extract: |_, ev, _| match &ev.detail {
            Detail::Exit { code } => owned(code.to_string()),
            _ => V::Null,
        },
        record: Record::Kept(|d, _, v| d.exit_code = json_text(v).parse().unwrap_or(0)),
    }

    // Processes.
    ProcName {
        name: "proc.name", scope: Scope::Process, doc: "The process's name (its comm, at most 15 bytes)",
        extract: |_, ev, _| proc(ev, |p| s(&p.comm)),
        record: Record::Kept(|d, _, v| d.process().comm = json_text(v)),
    }
    ProcExe {
        name: "proc.exe", scope: Scope::Process, doc: "argv[0] as the process was started",
        extract: |_, ev, _| proc(ev, |p| s(p.exe_arg0())), record: Record::Shown,
    }
    ProcExePath {
        name: "proc.exepath", scope: Scope::Process,
        doc: "The executable's full path, as the kernel resolved it (a renamed or symlinked binary shows its real path)",
        extract: |_, ev, _| proc(ev, |p| s(&p.exe_path)),
        record: Record::Kept(|d, _, v| d.process().exe_path = json_text(v)),
    }
    ProcExeOriginal {
        name: "proc.exe_original", scope: Scope::Process,
        doc: "The system binary the executable is a byte-identical copy of (renamed, moved, run from a memfd), else its own path",
        extract: |_, ev, cx| proc(ev, |p| match cx.exe_identity.borrow_mut().original_of(p.pid, &p.exe_path, p.exe_ino) {
            Some(orig) => owned(orig),
            None => s(&p.exe_path),
        }),
    }
    ProcExeIno {
        name: "proc.exe_ino", ty: FieldType::Int, scope: Scope::Process, doc: "The executable's inode",
        extract: |_, ev, _| proc(ev, |p| int(p.exe_ino as i64)),
        record: Record::Kept(|d, _, v| d.process().exe_ino = json_int(v) as u64),
    }
    ProcIsExeUpperLayer {
        name: "proc.is_exe_upper_layer", ty: FieldType::Bool, scope: Scope::Process,
        doc: "The executable is in the writable (upper) layer of the container's overlay filesystem: written or changed in the container, not part of its image",
        extract: |_, ev, _| proc(ev, |p| V::Bool(p.exe_upper_layer)),
        record: Record::Kept(|d, _, v| d.process().exe_upper_layer = v.as_bool().unwrap_or(false)),
    }
    ProcIsExeLowerLayer {
        name: "proc.is_exe_lower_layer", ty: FieldType::Bool, scope: Scope::Process,
        doc: "The executable is from a read-only (image) layer of an overlay filesystem",
        extract: |_, ev, _| proc(ev, |p| V::Bool(p.exe_lower_layer)),
        record: Record::Kept(|d, _, v| d.process().exe_lower_layer = v.as_bool().unwrap_or(false)),
    }
    ProcIsExeFromMemfd {
        name: "proc.is_exe_from_memfd", ty: FieldType::Bool, scope: Scope::Process,
        doc: "The executable is an anonymous memory file (fileless execution)",
        extract: |_, ev, _| proc(ev, |p| V::Bool(p.exe_from_memfd)),
        record: Record::Kept(|d, _, v| d.process().exe_from_memfd = v.as_bool().unwrap_or(false)),
    }
    ProcArgv {
        name: "proc.argv", scope: Scope::Process, doc: "argv, argv[0] included, one value per argument",
        extract: |_, ev, _| proc(ev, |p| V::List(p.argv.iter().map(|a| s(a)).collect())),
        record: Record::Kept(|d, _, v| {
            d.process().argv = v.as_array().map(|a| a.iter().map(json_text).collect()).unwrap_or_default()
        }),
    }
    ProcEnv {
        name: "proc.env", arg: ArgKind::OptionalKey, scope: Scope::Process,
        doc: "The environment at exec (its first 4 KiB) as NAME=value pairs joined by spaces; proc.env[NAME] is one variable's value",
        extract: |f, ev, _| proc(ev, |p| match f.key.as_deref() {
            Some(name) => opt(p.env_var(name)),
            None => s(p.env_text()),
        }),
        // A value with a space in it comes back as two pairs: proc.env reads the same.
        record: Record::Kept(|d, _, v| {
            d.process().env = json_text(v).split(' ').filter(|e| !e.is_empty()).map(str::to_owned).collect()
        }),
    }
    ProcEnvTruncated {
        name: "proc.env_truncated", ty: FieldType::Bool, scope: Scope::Process,
        doc: "The environment was longer than the kernel reports (4 KiB) and was cut",
        extract: |_, ev, _| proc(ev, |p| V::Bool(p.env_truncated)),
        record: Record::Kept(|d, _, v| d.process().env_truncated = v.as_bool().unwrap_or(false)),
    }
    ProcArgsTruncated {
        name: "proc.args_truncated", ty: FieldType::Bool, scope: Scope::Process,
        doc: "argv was longer than the kernel reports (4 KiB) and was cut",
        extract: |_, ev, _| proc(ev, |p| V::Bool(p.argv_truncated)),
        record: Record::Kept(|d, _, v| d.process().argv_truncated = v.as_bool().unwrap_or(false)),
    }
    ProcPathsTruncated {
        name: "proc.paths_truncated", ty: FieldType::Bool, scope: Scope::Process,
        doc: "The executable's path or the working directory hit the kernel walk's limits",
        extract: |_, ev, _| proc(ev, |p| V::Bool(p.paths_truncated)),
        record: Record::Kept(|d, _, v| d.process().paths_truncated = v.as_bool().unwrap_or(false)),
    }
    ProcArgs {
        name: "proc.args", scope: Scope::Process, doc: "The arguments after argv[0], joined by spaces",
        extract: |_, ev, _| proc(ev, |p| s(p.args())), record: Record::Shown,
    }
    ProcCmdline {
        name: "proc.cmdline", scope: Scope::Process, doc: "The process name followed by its arguments",
        extract: |_, ev, _| proc(ev, |p| s(p.cmdline())), record: Record::Shown,
    }
    ProcCmdNArgs {
        name: "proc.cmdnargs", ty: FieldType::Int, scope: Scope::Process, doc: "How many arguments after argv[0]",
        extract: |_, ev, _| proc(ev, |p| int(p.argv.len().saturating_sub(1) as i64)),
    }
    ProcCmdLenArgs {
        name: "proc.cmdlenargs", ty: FieldType::Int, scope: Scope::Process, doc: "The length of proc.args",
        extract: |_, ev, _| proc(ev, |p| int(p.args().len() as i64)),
    }
    ProcPid {
        name: "proc.pid", ty: FieldType::Int, doc: "The process id (thread group id)",
        extract: |_, ev, _| int(ev.pid), record: Record::Kept(|d, _, v| d.pid = json_int(v) as u32),
    }
    ThreadTid {
        name: "proc.tid", aliases: &["thread.tid"], ty: FieldType::Int, doc: "The thread id",
        extract: |_, ev, _| int(ev.tid), record: Record::Kept(|d, _, v| d.tid = json_int(v) as u32),
    }
    ProcPpid {
        name: "proc.ppid", ty: FieldType::Int, scope: Scope::Process, doc: "The parent's process id",
        extract: |_, ev, _| proc(ev, |p| int(p.ppid)),
        record: Record::Kept(|d, _, v| d.process().ppid = json_int(v) as u32),
    }
    ThreadCapEffective {
        name: "thread.cap_effective", scope: Scope::Process,
        doc: "The effective capabilities as of the exec, by name (CAP_SYS_ADMIN ...)",
        extract: |_, ev, _| proc(ev, |p| owned(capability_names(p.caps.effective))),
        record: Record::Kept(|d, _, v| d.process().caps.effective = capability_mask(&json_text(v))),
    }
    ThreadCapPermitted {
        name: "thread.cap_permitted", scope: Scope::Process,
        doc: "The permitted capabilities as of the exec, by name",
        extract: |_, ev, _| proc(ev, |p| owned(capability_names(p.caps.permitted))),
        record: Record::Kept(|d, _, v| d.process().caps.permitted = capability_mask(&json_text(v))),
    }
    ThreadCapInheritable {
        name: "thread.cap_inheritable", scope: Scope::Process,
        doc: "The inheritable capabilities as of the exec, by name",
        extract: |_, ev, _| proc(ev, |p| owned(capability_names(p.caps.inheritable))),
        record: Record::Kept(|d, _, v| d.process().caps.inheritable = capability_mask(&json_text(v))),
    }
    ProcVpid {
        name: "proc.vpid", ty: FieldType::Int, scope: Scope::Process, doc: "The process id in its own pid namespace",
        extract: |_, ev, _| proc(ev, |p| int(p.vpid)),
        record: Record::Kept(|d, _, v| d.process().vpid = json_int(v) as u32),
    }
    ProcVpgid {
        name: "proc.vpgid", ty: FieldType::Int, scope: Scope::Process,
        doc: "The process group's id in the process's pid namespace, as of the exec",
        extract: |_, ev, _| proc(ev, |p| int(p.vpgid)),
        record: Record::Kept(|d, _, v| d.process().vpgid = json_int(v) as u32),
    }
    ProcIsVpgidLeader {
        name: "proc.is_vpgid_leader", ty: FieldType::Bool, scope: Scope::Process,
        doc: "The process leads its process group: a command a shell with job control started, typed at a terminal rather than run by a script",
        extract: |_, ev, _| proc(ev, |p| if p.vpid == 0 { V::Null } else { V::Bool(p.vpgid == p.vpid) }),
    }
    ProcSid {
        name: "proc.sid", ty: FieldType::Int, scope: Scope::Process,
        doc: "The session's id in the process's pid namespace, as of the exec",
        extract: |_, ev, _| proc(ev, |p| int(p.vsid)),
        record: Record::Kept(|d, _, v| d.process().vsid = json_int(v) as u32),
    }
    ProcIsSidLeader {
        name: "proc.is_sid_leader", ty: FieldType::Bool, scope: Scope::Process,
        doc: "The process leads its session (a login shell, a daemon that called setsid)",
        extract: |_, ev, _| proc(ev, |p| if p.vpid == 0 { V::Null } else { V::Bool(p.vsid == p.vpid) }),
    }
    ProcSname {
        name: "proc.sname", scope: Scope::Process,
        doc: "The name of the session's leader: the ancestor whose pid is the session's id, else the eldest known ancestor in the session",
        extract: |_, ev, _| session_leader(ev).map_or(V::Null, |p| s(&p.comm)),
    }
    ProcStartTs {
        name: "proc.start_ts", ty: FieldType::Int, scope: Scope::Process,
        doc: "When the process started, ns since boot (with the pid, the identity of a process)",
        extract: |_, ev, _| proc(ev, |p| int(p.start_ns as i64)),
        record: Record::Kept(|d, _, v| d.process().start_ns = json_int(v) as u64),
    }
    ProcDuration {
        name: "proc.duration", ty: FieldType::Int, scope: Scope::Clock, doc: "How long the process has run, ns",
        extract: |_, ev, _| proc(ev, |p| {
            int((crate::event::enrich::clock_ns(nix::time::ClockId::CLOCK_BOOTTIME) as u64).saturating_sub(p.start_ns) as i64)
        }),
    }
    ProcCwd {
        name: "proc.cwd", scope: Scope::Process, doc: "The working directory at exec",
        extract: |_, ev, _| proc(ev, |p| opt(p.cwd.as_deref())),
        record: Record::Kept(|d, _, v| d.process().cwd = Some(json_text(v))),
    }
    ProcTty {
        name: "proc.tty", ty: FieldType::Int, scope: Scope::Process, doc: "The controlling terminal's device number; 0 without one",
        extract: |_, ev, _| proc(ev, |p| int(p.tty)),
        record: Record::Kept(|d, _, v| d.process().tty = json_int(v) as u32),
    }
    ProcPidNs {
        name: "proc.pidns", ty: FieldType::Int, scope: Scope::Process, doc: "The pid namespace's inode number",
        extract: |_, ev, _| proc(ev, |p| int(p.pidns)),
        record: Record::Kept(|d, _, v| d.process().pidns = json_int(v) as u32),
    }
    ProcMntNs {
        name: "proc.mntns", ty: FieldType::Int, scope: Scope::Process, doc: "The mount namespace's inode number",
        extract: |_, ev, _| proc(ev, |p| int(p.mntns)),
        record: Record::Kept(|d, _, v| d.process().mntns = json_int(v) as u32),
    }
    ProcScript {
        name: "proc.script", scope: Scope::Process, doc: "For a #! script, the script the exec named (the executable is its interpreter)",
        extract: |_, ev, _| proc(ev, |p| opt(p.script.as_deref())),
        record: Record::Kept(|d, _, v| d.process().script = Some(json_text(v))),
    }
    ProcSource {
        name: "proc.source", scope: Scope::Process,
        doc: "Where the monitor learnt of the process: exec, fork, or proc (it was older than the monitor)",
        extract: |_, ev, _| proc(ev, |p| s(p.source.name())),
        record: Record::Kept(|d, _, v| {
            d.process().source = crate::process::ProcSource::from_name(&json_text(v)).unwrap_or_default()
        }),
    }
    ProcProcDir {
        name: "proc.procdir",
        doc: "The process's own /proc directory, with a trailing slash, as the host and its pid namespace see it",
        extract: |_, ev, _| {
            let vpid = ev.process.as_ref().map_or(ev.pid, |p| p.vpid);
            V::List(vec![owned(format!("/proc/{}/", ev.pid)), owned(format!("/proc/{vpid}/"))])
        },
    }
    ProcStdinType {
        name: "proc.stdin.type", scope: Scope::Process, doc: "What fd 0 was at exec: file, pipe, ipv4, unix, ...",
        extract: |_, ev, _| proc(ev, |p| opt(p.stdio[0].fd_type.map(FdType::name))),
        record: Record::Kept(|d, _, v| d.process().stdio[0].fd_type = FdType::from_name(&json_text(v))),
    }
    ProcStdinName {
        name: "proc.stdin.name", scope: Scope::Process, doc: "fd 0 at exec: a device's path, a socket's connection",
        extract: |_, ev, _| proc(ev, |p| opt(p.stdio[0].name.as_deref())),
        record: Record::Kept(|d, _, v| d.process().stdio[0].name = Some(json_text(v))),
    }
    ProcStdoutType {
        name: "proc.stdout.type", scope: Scope::Process, doc: "What fd 1 was at exec",
        extract: |_, ev, _| proc(ev, |p| opt(p.stdio[1].fd_type.map(FdType::name))),
        record: Record::Kept(|d, _, v| d.process().stdio[1].fd_type = FdType::from_name(&json_text(v))),
    }
    ProcStdoutName {
        name: "proc.stdout.name", scope: Scope::Process, doc: "fd 1 at exec: a device's path, a socket's connection",
        extract: |_, ev, _| proc(ev, |p| opt(p.stdio[1].name.as_deref())),
        record: Record::Kept(|d, _, v| d.process().stdio[1].name = Some(json_text(v))),
    }
    ProcStderrType {
        name: "proc.stderr.type", scope: Scope::Process, doc: "What fd 2 was at exec",
        extract: |_, ev, _| proc(ev, |p| opt(p.stdio[2].fd_type.map(FdType::name))),
        record: Record::Kept(|d, _, v| d.process().stdio[2].fd_type = FdType::from_name(&json_text(v))),
    }
    ProcStderrName {
        name: "proc.stderr.name", scope: Scope::Process, doc: "fd 2 at exec: a device's path, a socket's connection",
        extract: |_, ev, _| proc(ev, |p| opt(p.stdio[2].name.as_deref())),
        record: Record::Kept(|d, _, v| d.process().stdio[2].name = Some(json_text(v))),
    }

    // Ancestors.
    ProcPName {
        name: "proc.pname", scope: Scope::Process, doc: "The parent's name",
        extract: |_, ev, _| ancestor(ev, 1).map_or(V::Null, |a| s(&a.comm)), record: Record::Shown,
    }
    ProcPExe {
        name: "proc.pexe", scope: Scope::Process, doc: "The parent's argv[0]",
        extract: |_, ev, _| ancestor(ev, 1).map_or(V::Null, |a| s(a.exe_arg0())),
        record: Record::Kept(|d, _, v| d.ancestor_argv0(Some(1), json_text(v))),
    }
    // The parent's exe path and command line are ancestor 1's; read back too, for recordings
    // that carry only these.
    ProcPExePath {
        name: "proc.pexepath", scope: Scope::Process, doc: "The parent's executable",
        extract: |_, ev, _| ancestor(ev, 1).map_or(V::Null, |a| s(&a.exe_path)),
        record: Record::Kept(|d, _, v| d.ancestor(Some(1)).exe_path = json_text(v)),
    }
    ProcPCmdline {
        name: "proc.pcmdline", scope: Scope::Process, doc: "The parent's name and arguments",
        extract: |_, ev, _| ancestor(ev, 1).map_or(V::Null, |a| s(a.cmdline())),
        record: Record::Kept(|d, _, v| d.ancestor_cmdline(Some(1), json_text(v))),
    }
    ProcAName {
        name: "proc.aname", arg: ArgKind::OptionalIndex, scope: Scope::Process,
        doc: "The name of ancestor N (proc.aname[1] is the parent; [0] the process); without N, every ancestor",
        extract: |f, ev, _| ancestors(f, ev, |a| s(&a.comm)),
        record: Record::Kept(|d, i, v| d.ancestor(i).comm = json_text(v)),
    }
    ProcAPid {
        name: "proc.apid", ty: FieldType::Int, arg: ArgKind::OptionalIndex, scope: Scope::Process,
        doc: "The pid of ancestor N; without N, every ancestor's",
        extract: |f, ev, _| ancestors(f, ev, |a| int(a.pid)),
        record: Record::Kept(|d, i, v| d.ancestor(i).pid = json_int(v) as u32),
    }
    ProcAExe {
        name: "proc.aexe", arg: ArgKind::OptionalIndex, scope: Scope::Process,
        doc: "argv[0] of ancestor N; without N, every ancestor's",
        // The stream carries the parent's (proc.pexe); further ancestors' would make every
        // event kilobytes longer.
        extract: |f, ev, _| ancestors(f, ev, |a| s(a.exe_arg0())),
    }
    ProcAExePath {
        name: "proc.aexepath", arg: ArgKind::OptionalIndex, scope: Scope::Process,
        doc: "The executable of ancestor N; without N, every ancestor's",
        extract: |f, ev, _| ancestors(f, ev, |a| s(&a.exe_path)),
        record: Record::Kept(|d, i, v| d.ancestor(i).exe_path = json_text(v)),
    }
    ProcACmdline {
        name: "proc.acmdline", arg: ArgKind::OptionalIndex, scope: Scope::Process,
        doc: "The name and arguments of ancestor N; without N, every ancestor's",
        // As proc.aexe: the stream carries the parent's (proc.pcmdline).
        extract: |f, ev, _| ancestors(f, ev, |a| s(a.cmdline())),
    }

    // Users and groups.
    UserUid {
        name: "user.uid", ty: FieldType::Int, scope: Scope::Process, doc: "The effective user id",
        extract: |_, ev, _| int(ev.process.as_ref().map_or(ev.uid, |p| p.euid)),
        record: Record::Kept(|d, _, v| d.set_uid(json_int(v) as u32)),
    }
    UserName {
        name: "user.name", scope: Scope::Process, doc: "The effective user's name",
        extract: |_, ev, cx| {
            let uid = ev.process.as_ref().map_or(ev.uid, |p| p.euid);
            cx.users.borrow_mut().name(uid).map_or(V::Null, |n| owned(n.to_string()))
        },
        record: Record::Shown,
    }
    UserLoginUid {
        name: "user.loginuid", ty: FieldType::Int, scope: Scope::Process, doc: "The login user id; -1 when none",
        extract: |_, ev, _| proc(ev, |p| int(if p.loginuid == u32::MAX { -1 } else { i64::from(p.loginuid) })),
        record: Record::Kept(|d, _, v| {
            let l = json_int(v);
            d.process().loginuid = if l < 0 { u32::MAX } else { l as u32 };
        }),
    }
    UserLoginName {
        name: "user.loginname", scope: Scope::Process, doc: "The login user's name",
        extract: |_, ev, cx| proc(ev, |p| {
            if p.loginuid == u32::MAX {
                return V::Null;
            }
            cx.users.borrow_mut().name(p.loginuid).map_or(V::Null, |n| owned(n.to_string()))
        }),
        record: Record::Shown,
    }
    GroupGid {
        name: "group.gid", ty: FieldType::Int, scope: Scope::Process, doc: "The effective group id",
        extract: |_, ev, _| int(ev.process.as_ref().map_or(ev.gid, |p| p.egid)),
        record: Record::Kept(|d, _, v| d.set_gid(json_int(v) as u32)),
    }
    GroupName {
        name: "group.name", scope: Scope::Process, doc: "The effective group's name",
        extract: |_, ev, cx| {
            let gid = ev.process.as_ref().map_or(ev.gid, |p| p.egid);
            cx.groups.borrow_mut().name(gid).map_or(V::Null, |n| owned(n.to_string()))
        },
    }

    // File descriptors: the opened file, or the socket of a connect or send.
    FdNum {
        name: "fd.num", ty: FieldType::Int, carried_by: FD, doc: "The file descriptor; -1 for a failed open",
        extract: |_, ev, _| match &ev.detail {
            Detail::Open(_) => int(if ev.res >= 0 { ev.res } else { -1 }),
            Detail::Net(n) => int(n.fd),
            Detail::Call(c) => c.sock.as_ref().map_or(V::Null, |n| int(n.fd)),
            _ => V::Null,
        },
        record: Record::Kept(|d, _, v| d.net.fd = json_int(v) as i32),
    }
    FdName {
        name: "fd.name", carried_by: FD,
        doc: "The file's absolute path (a failed open's string joined with its base), a unix socket's path, or client:port->server:port",
        extract: |_, ev, _| match &ev.detail {
            Detail::Open(o) => s(&o.path),
            Detail::Net(n) => match &n.unix_path {
                Some(p) => s(p),
                None => owned(connection_name(n)),
            },
            Detail::Call(c) => match (&c.sock, &c.fd_path) {
                (Some(n), _) => owned(connection_name(n)),
                (None, Some(p)) => s(p),
                (None, None) => V::Null,
            },
            _ => V::Null,
        },
        record: Record::Kept(|d, _, v| d.fd_name = Some(json_text(v))),
    }
    FdNameRaw {
        name: "fd.nameraw", carried_by: OPEN,
        doc: "The path as the caller passed it, before the kernel resolved it (`../` climbs show here)",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| opt(o.raw.as_deref())),
        record: Record::Kept(|d, _, v| d.open.raw = Some(json_text(v))),
    }
    FsPathName {
        name: "fs.path.name", carried_by: CALL,
        doc: "The path a call on one path acts on (unlink, mkdir, chmod, ...), absolute with `.` and `..` folded",
        extract: |_, ev, _| fs_path(ev, |p| p.name),
    }
    FsPathSource {
        name: "fs.path.source", carried_by: CALL,
        doc: "The source of a call from one path to another (link, rename; what a symlink points to, from the link's directory), absolute and folded",
        extract: |_, ev, _| fs_path(ev, |p| p.source),
    }
    FsPathTarget {
        name: "fs.path.target", carried_by: CALL,
        doc: "The target of a call from one path to another (the new link, the new name), absolute and folded",
        extract: |_, ev, _| fs_path(ev, |p| p.target),
    }
    FdDirectory {
        name: "fd.directory", carried_by: FD, doc: "The directory of fd.name",
        extract: |_, ev, _| opt(fd_path(ev).map(dirname)), record: Record::Shown,
    }
    FdFilename {
        name: "fd.filename", carried_by: FD, doc: "The last component of fd.name",
        extract: |_, ev, _| opt(fd_path(ev).map(basename)), record: Record::Shown,
    }
    FdType {
        name: "fd.type", carried_by: FD, doc: "file, directory, ipv4, ipv6, unix, ...",
        extract: |_, ev, _| opt(fd_type(ev).map(FdType::name)),
        record: Record::Kept(|d, _, v| d.net.fd_type = FdType::from_name(&json_text(v)).unwrap_or(FdType::Socket)),
    }
    FdTypeChar {
        name: "fd.typechar", carried_by: FD, doc: "fd.type in one letter: f, d, 4, 6, u, ...",
        extract: |_, ev, _| opt(fd_type(ev).map(FdType::typechar)), record: Record::Shown,
    }
    FdIno {
        name: "fd.ino", ty: FieldType::Int, carried_by: OPEN, doc: "The opened file's inode",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| int(o.ino as i64)),
        record: Record::Kept(|d, _, v| d.open.ino = json_int(v) as u64),
    }
    FdDev {
        name: "fd.dev", ty: FieldType::Int, carried_by: OPEN, doc: "The opened file's device (st_dev)",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| int(o.dev)),
        record: Record::Kept(|d, _, v| d.open.dev = json_int(v) as u32),
    }
    FdUnresolved {
        name: "fd.unresolved", ty: FieldType::Bool, carried_by: OPEN,
        doc: "fd.name is the caller's string, not a path the kernel resolved (a failed open)",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| V::Bool(!o.resolved)),
        record: Record::Kept(|d, _, v| d.open.resolved = !v.as_bool().unwrap_or(false)),
    }
    FdNameTruncated {
        name: "fd.name_truncated", ty: FieldType::Bool, carried_by: OPEN, doc: "fd.name hit the kernel walk's limits",
        extract: |_, ev, _| open(ev).map_or(V::Null, |o| V::Bool(o.truncated)),
        record: Record::Kept(|d, _, v| d.open.truncated = v.as_bool().unwrap_or(false)),
    }
    FdL4Proto {
        name: "fd.l4proto", carried_by: NET, doc: "tcp, udp, icmp or raw",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| opt(n.l4proto.map(monitor_common::L4Proto::name))),
        record: Record::Kept(|d, _, v| d.net.l4proto = monitor_common::L4Proto::from_name(&json_text(v))),
    }
    FdSockFamily {
        name: "fd.sockfamily", carried_by: NET, doc: "ip, unix or other",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| s(match n.fd_type {
            FdType::Ipv4 | FdType::Ipv6 => "ip",
            FdType::Unix => "unix",
            _ => "other",
        })),
    }
    FdSip {
        name: "fd.sip", ty: FieldType::Ip, carried_by: NET, doc: "The server's (destination's) address",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.sip)),
        record: Record::Kept(|d, _, v| d.net.sip = json_text(v).parse().ok()),
    }
    FdSport {
        name: "fd.sport", ty: FieldType::Int, carried_by: NET, doc: "The server's (destination's) port",
        extract: |_, ev, _| inet(ev, |n| int(n.sport)),
        record: Record::Kept(|d, _, v| d.net.sport = json_int(v) as u16),
    }
    FdCip {
        name: "fd.cip", ty: FieldType::Ip, carried_by: NET, doc: "The client's (source's) address, when bound",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.cip)),
        record: Record::Kept(|d, _, v| d.net.cip = json_text(v).parse().ok()),
    }
    FdSipName {
        name: "fd.sip.name", scope: Scope::HostNames, carried_by: NET,
        doc: "The host names, of those the rules compare this field with, that resolve to the server's address",
        extract: |_, ev, cx| names_of(net(ev).and_then(|n| n.sip), cx),
    }
    FdCipName {
        name: "fd.cip.name", scope: Scope::HostNames, carried_by: NET,
        doc: "The host names, of those the rules compare this field with, that resolve to the client's address",
        extract: |_, ev, cx| names_of(net(ev).and_then(|n| n.cip), cx),
    }
    FdCport {
        name: "fd.cport", ty: FieldType::Int, carried_by: NET, doc: "The client's (source's) port",
        extract: |_, ev, _| inet(ev, |n| int(n.cport)),
        record: Record::Kept(|d, _, v| d.net.cport = json_int(v) as u16),
    }
    FdIp {
        name: "fd.ip", ty: FieldType::Ip, carried_by: NET, doc: "Either end's address",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| V::List(n.sip.into_iter().chain(n.cip).map(V::Ip).collect())),
    }
    FdPort {
        name: "fd.port", ty: FieldType::Int, carried_by: NET, doc: "Either end's port",
        extract: |_, ev, _| inet(ev, |n| V::List(vec![int(n.sport), int(n.cport)])),
    }
    FdNet {
        name: "fd.net", ty: FieldType::Net, carried_by: NET, doc: "Either end's address, compared with networks (fd.net = 10.0.0.0/8)",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| V::List(n.sip.into_iter().chain(n.cip).map(V::Ip).collect())),
    }
    FdSnet {
        name: "fd.snet", ty: FieldType::Net, carried_by: NET, doc: "The server's address, compared with networks",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.sip)),
    }
    FdCnet {
        name: "fd.cnet", ty: FieldType::Net, carried_by: NET, doc: "The client's address, compared with networks",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.cip)),
    }
    // Local and remote follow the role: a connect's local end is the client, an accept's the
    // server.
    FdLip {
        name: "fd.lip", ty: FieldType::Ip, carried_by: NET, doc: "This end's address",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.local().0)),
    }
    FdRip {
        name: "fd.rip", ty: FieldType::Ip, carried_by: NET, doc: "The peer's address",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.remote().0)),
    }
    FdLport {
        name: "fd.lport", ty: FieldType::Int, carried_by: NET, doc: "This end's port",
        extract: |_, ev, _| inet(ev, |n| int(n.local().1)),
    }
    FdRport {
        name: "fd.rport", ty: FieldType::Int, carried_by: NET, doc: "The peer's port",
        extract: |_, ev, _| inet(ev, |n| int(n.remote().1)),
    }
    FdLnet {
        name: "fd.lnet", ty: FieldType::Net, carried_by: NET, doc: "This end's address, compared with networks",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.local().0)),
    }
    FdRnet {
        name: "fd.rnet", ty: FieldType::Net, carried_by: NET, doc: "The peer's address, compared with networks",
        extract: |_, ev, _| ip(net(ev).and_then(|n| n.remote().0)),
    }
    FdLipName {
        name: "fd.lip.name", scope: Scope::HostNames, carried_by: NET,
        doc: "The host names, of those the rules compare this field with, that resolve to this end's address",
        extract: |_, ev, cx| names_of(net(ev).and_then(|n| n.local().0), cx),
    }
    FdRipName {
        name: "fd.rip.name", scope: Scope::HostNames, carried_by: NET,
        doc: "The host names, of those the rules compare this field with, that resolve to the peer's address",
        extract: |_, ev, cx| names_of(net(ev).and_then(|n| n.remote().0), cx),
    }
    FdIsServer {
        name: "fd.is_server", ty: FieldType::Bool, carried_by: NET,
        doc: "This end is the server: the event accepted, listened or received",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| V::Bool(n.inbound)),
        record: Record::Kept(|d, _, v| d.net.inbound = v.as_bool().unwrap_or(false)),
    }
    // Without per-fd state: a connect connects (or is under way); a send on a connected socket
    // takes its peer from the socket.
    FdConnected {
        name: "fd.connected", ty: FieldType::Bool, carried_by: NET, doc: "The socket is connected",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| match ev.evt_type {
            monitor_common::EventType::Connect => V::Bool(ev.res == 0 || ev.res == -115),
            _ => V::Bool(n.connected.unwrap_or(n.from_socket)),
        }),
    }
    // A send that names its destination may change the fd's peer; counting each one as a change
    // errs towards evaluating outbound rules, never away from them.
    FdNameChanged {
        name: "fd.name_changed", ty: FieldType::Bool, carried_by: NET, doc: "The event may have changed the fd's peer",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| {
            V::Bool(ev.evt_type == monitor_common::EventType::Connect || !n.from_socket)
        }),
    }
    FdDestFromSocket {
        name: "fd.dest_from_socket", ty: FieldType::Bool, carried_by: NET,
        doc: "The destination came from the kernel's socket, not the caller's address",
        extract: |_, ev, _| net(ev).map_or(V::Null, |n| V::Bool(n.from_socket)),
        record: Record::Kept(|d, _, v| d.net.from_socket = v.as_bool().unwrap_or(false)),
    }

    // Cgroups, containers and pods.
    CgroupId {
        name: "cgroup.id", ty: FieldType::Int, doc: "The cgroup v2 id (its directory's inode)",
        extract: |_, ev, _| int(ev.cgroup_id as i64), record: Record::Kept(|d, _, v| d.cgroup_id = json_int(v) as u64),
    }
    CgroupPath {
        name: "cgroup.path", doc: "The cgroup's path in the unified hierarchy",
        extract: |_, ev, _| opt(ev.cgroup_path.as_deref()),
        record: Record::Kept(|d, _, v| d.cgroup_path = Some(json_text(v))),
    }
    ContainerId {
        name: "container.id", doc: "The container's 12-hex short id; host for host processes",
        extract: |_, ev, _| match (&ev.container, &ev.cgroup_path) {
            (Some(c), _) => s(c.short()),
            (None, Some(_)) => s("host"),
            (None, None) => V::Null,
        },
        record: Record::Shown,
    }
    ContainerFullId {
        name: "container.full_id", doc: "The container's full id; host for host processes",
        extract: |_, ev, _| match (&ev.container, &ev.cgroup_path) {
            (Some(c), _) => s(&c.full),
            (None, Some(_)) => s("host"),
            (None, None) => V::Null,
        },
        record: Record::Kept(|d, _, v| d.container_full = Some(json_text(v))),
    }
    ContainerType {
        name: "container.type", doc: "docker, containerd, cri-o or podman",
        extract: |_, ev, _| opt(ev.container.as_ref().map(|c| c.runtime.name())),
        record: Record::Kept(|d, _, v| d.container_runtime = crate::container::ContainerRuntime::from_name(&json_text(v))),
    }
    ContainerName {
        name: "container.name", scope: Scope::Runtime, doc: "The container's name, from the runtime",
        extract: |_, ev, cx| container_meta(ev, cx, |m| meta_str(&m.name)),
    }
    ContainerImage {
        name: "container.image", scope: Scope::Runtime, doc: "The container's image, as the runtime names it",
        extract: |_, ev, cx| container_meta(ev, cx, |m| meta_str(&m.image)),
    }
    ContainerImageId {
        name: "container.image.id", scope: Scope::Runtime, doc: "The image's id",
        extract: |_, ev, cx| container_meta(ev, cx, |m| meta_str(&m.image_id)),
    }
    ContainerImageRepository {
        name: "container.image.repository", scope: Scope::Runtime, doc: "The image's repository",
        extract: |_, ev, cx| container_meta(ev, cx, |m| meta_str(&m.image_repository)),
    }
    ContainerImageTag {
        name: "container.image.tag", scope: Scope::Runtime, doc: "The image's tag",
        extract: |_, ev, cx| container_meta(ev, cx, |m| meta_str(&m.image_tag)),
    }
    ContainerImageDigest {
        name: "container.image.digest", scope: Scope::Runtime, doc: "The image's digest",
        extract: |_, ev, cx| container_meta(ev, cx, |m| meta_str(&m.image_digest)),
    }
    ContainerPrivileged {
        name: "container.privileged", ty: FieldType::Bool, scope: Scope::Runtime, doc: "The container runs privileged",
        extract: |_, ev, cx| container_meta(ev, cx, |m| m.privileged.map_or(V::Null, V::Bool)),
    }
    ContainerMounts {
        name: "container.mounts", scope: Scope::Runtime,
        doc: "The container's mounts, comma-separated, each source:dest:mode:rdwr:propagation",
        extract: |_, ev, cx| container_meta(ev, cx, |m| owned(m.mounts.iter().map(|m| m.text()).collect::<Vec<_>>().join(","))),
    }
    ContainerMount {
        name: "container.mount", arg: ArgKind::Key, scope: Scope::Runtime,
        doc: "One mount as source:dest:mode:rdwr:propagation, by index (container.mount[0]) or by a glob over its source (container.mount[/proc*]); N/A in a container without it",
        extract: |f, ev, cx| mount_field(f, ev, cx, false, |m| m.text()),
    }
    ContainerMountSource {
        name: "container.mount.source", arg: ArgKind::Key, scope: Scope::Runtime,
        doc: "A mount's source, by index or by a glob over its destination; N/A in a container without it",
        extract: |f, ev, cx| mount_field(f, ev, cx, true, |m| m.source.clone()),
    }
    ContainerMountDest {
        name: "container.mount.dest", arg: ArgKind::Key, scope: Scope::Runtime,
        doc: "A mount's destination, by index or by a glob over its source (container.mount.dest[/var/run/docker.sock]); N/A in a container without it",
        extract: |f, ev, cx| mount_field(f, ev, cx, false, |m| m.dest.clone()),
    }
    ContainerMountMode {
        name: "container.mount.mode", arg: ArgKind::Key, scope: Scope::Runtime,
        doc: "A mount's mode string, by index or by a glob over its source",
        extract: |f, ev, cx| mount_field(f, ev, cx, false, |m| m.mode.clone()),
    }
    ContainerMountRdwr {
        name: "container.mount.rdwr", arg: ArgKind::Key, scope: Scope::Runtime,
        doc: "Whether a mount is writable (true or false), by index or by a glob over its source",
        extract: |f, ev, cx| mount_field(f, ev, cx, false, |m| m.rdwr.to_string()),
    }
    ContainerMountPropagation {
        name: "container.mount.propagation", arg: ArgKind::Key, scope: Scope::Runtime,
        doc: "A mount's propagation (rprivate, rslave, rshared, ...), by index or by a glob over its source",
        extract: |f, ev, cx| mount_field(f, ev, cx, false, |m| m.propagation.clone()),
    }
    K8sNsName {
        name: "k8s.ns.name", scope: Scope::Runtime, doc: "The pod's namespace",
        extract: |_, ev, cx| container_meta(ev, cx, |m| m.label("io.kubernetes.pod.namespace").map_or(V::Null, |l| owned(l.to_owned()))),
    }
    K8sPodName {
        name: "k8s.pod.name", scope: Scope::Runtime, doc: "The pod's name",
        extract: |_, ev, cx| container_meta(ev, cx, |m| m.label("io.kubernetes.pod.name").map_or(V::Null, |l| owned(l.to_owned()))),
    }
    K8sPodUid {
        name: "k8s.pod.uid", doc: "The pod's UID, from its kubepods cgroup path",
        extract: |_, ev, _| opt(ev.container.as_ref().and_then(|c| c.pod.as_ref()).map(|p| p.uid.as_str())),
    }
    K8sPodQos {
        name: "k8s.pod.qos_class", doc: "The pod's QoS class (guaranteed, burstable, besteffort), from its cgroup path",
        extract: |_, ev, _| opt(ev.container.as_ref().and_then(|c| c.pod.as_ref()).map(|p| p.qos)),
    }
    K8sPodLabels {
        name: "k8s.pod.labels", scope: Scope::Runtime, doc: "The pod's labels, as key:value, comma-separated",
        extract: |_, ev, cx| container_meta(ev, cx, |m| {
            let mut labels: Vec<String> = m.pod_labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            labels.sort();
            owned(labels.join(", "))
        }),
    }
    K8sPodLabel {
        name: "k8s.pod.label", arg: ArgKind::Key, scope: Scope::Runtime,
        doc: "The pod's label [key] (also written k8s.pod.label.key)",
        extract: |f, ev, cx| container_meta(ev, cx, |m| {
            f.key.as_ref().and_then(|k| m.pod_labels.get(k)).map_or(V::Null, |v| owned(v.clone()))
        }),
    }
}
