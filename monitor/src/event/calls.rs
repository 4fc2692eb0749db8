//! The calls reported by their arguments (monitor_common::calls): what an event of one holds,
//! and its parameters written as Falco writes them, for `evt.arg.*`, `evt.rawarg.*` and
//! `evt.args`.

use std::borrow::Cow;

use monitor_common::EventType;
use monitor_common::calls::{Param, ParamFormat, ParamSource, params};

use super::fields::FieldContext;
use super::format::{dirname, errno_name, join};
use super::{Event, NetInfo};

/// A path a call names: as the caller wrote it, and absolute (a relative one joined with the
/// directory the kernel resolved for it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallPath {
    pub raw: String,
    pub path: String,
}

#[derive(Clone, Debug, Default)]
pub struct CallInfo {
    /// The record's argument slots, as the call's parameters list them.
    pub args: [u64; 4],
    pub paths: [Option<CallPath>; 2],
    /// The call's descriptor's file, when it is one (setns's namespace, fchmod's file).
    pub fd_path: Option<String>,
    /// The call's descriptor's socket, when it is one (socket, dup of a socket, accept).
    pub sock: Option<NetInfo>,
    /// The start of the data a receiving call moved (at most CALL_BUFFER_MAX bytes).
    pub buffer: Option<Vec<u8>>,
    /// A path was cut at the kernel's walk limit.
    pub truncated: bool,
}

/// The paths a call acts on, absolute and folded lexically (`.` and `..` resolved, as rules
/// compare them), as Falco's `fs.path.*` fields give them: `name` for a call on one path,
/// `source` and `target` for one from a path to another (link, rename). A symlink's source is
/// what it points to, taken from the link's directory when relative, as the kernel follows it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FsPaths {
    pub name: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
}

pub fn fs_paths(t: EventType, info: &CallInfo) -> FsPaths {
    use monitor_common::calls::{PATH_AT, PATH_STRING, call_def};
    let Some(def) = call_def(t) else { return FsPaths::default() };
    let [first, second] = def.shape.paths.map(|p| p.kind);
    let folded = |p: &CallPath| lexical(&p.path);
    let [a, b] = [&info.paths[0], &info.paths[1]];
    match (first, second) {
        // symlink(target, linkpath)
        (PATH_STRING, PATH_AT) => {
            let target = b.as_ref().map(folded);
            let source =
                a.as_ref().zip(target.as_deref()).map(|(s, link)| lexical(&join(dirname(link), &s.raw)));
            FsPaths { name: None, source, target }
        }
        (PATH_AT, PATH_AT) => {
            FsPaths { name: None, source: a.as_ref().map(folded), target: b.as_ref().map(folded) }
        }
        (PATH_AT, _) => FsPaths { name: a.as_ref().map(folded), source: None, target: None },
        // A call on a descriptor (fchmod): its file.
        _ if def.shape.fd != monitor_common::calls::NO_ARG && info.sock.is_none() => {
            FsPaths { name: info.fd_path.clone(), source: None, target: None }
        }
        _ => FsPaths::default(),
    }
}

/// An absolute path with `.` and `..` folded; a relative one (no directory was known) as it is.
fn lexical(path: &str) -> String {
    match path.strip_prefix('/') {
        Some(rest) => join("/", rest),
        None => path.to_owned(),
    }
}

/// The parameter of this event's call named `name`.
pub fn param(t: EventType, name: &str) -> Option<&'static Param> {
    params(t).iter().find(|p| p.name == name)
}

/// Whether any call type has a parameter of this name (so `evt.arg.<name>` is a field).
pub fn is_param_name(name: &str) -> bool {
    EventType::ALL.iter().any(|t| param(*t, name).is_some())
}

/// A parameter's number, for `evt.rawarg.*`: the argument, or the result.
pub fn raw_value(ev: &Event, info: &CallInfo, p: &Param) -> Option<i64> {
    match p.source {
        ParamSource::Result => Some(ev.res),
        ParamSource::Arg(i) => Some(arg_as_int(info.args[i as usize], p.format)),
        ParamSource::Path(_) | ParamSource::Tuple => None,
    }
}

/// An argument as the C type the call takes: ints are 32 bits (a 64-bit register may carry
/// garbage above them), pointers and lengths are not.
fn arg_as_int(v: u64, format: ParamFormat) -> i64 {
    match format {
        ParamFormat::Hex => v as i64,
        ParamFormat::Int if v > u32::MAX as u64 => v as i64,
        _ => i64::from(v as u32 as i32),
    }
}

/// A parameter as Falco writes it in `evt.arg.*` and `evt.args`.
/// `cx` looks uids and gids up by name; without it they are numbers.
pub fn text<'e>(
    ev: &'e Event,
    info: &'e CallInfo,
    p: &Param,
    cx: Option<&FieldContext>,
) -> Option<Cow<'e, str>> {
    let v = match p.source {
        ParamSource::Result => {
            return Some(if ev.res < 0 { errno_name(ev.res) } else { Cow::Owned(ev.res.to_string()) });
        }
        ParamSource::Path(_) if p.format == ParamFormat::Buffer => {
            return info.buffer.as_deref().map(|b| Cow::Owned(buffer_text(b)));
        }
        ParamSource::Tuple => {
            return info.sock.as_ref().map(|n| Cow::Owned(super::format::connection_name(n)));
        }
        ParamSource::Path(i) => {
            let path = info.paths[i as usize].as_ref()?;
            return Some(Cow::Borrowed(if p.format == ParamFormat::Text { &path.raw } else { &path.path }));
        }
        ParamSource::Arg(i) => info.args[i as usize],
    };
    let int = arg_as_int(v, p.format);
    Some(Cow::Owned(match p.format {
        ParamFormat::Int => int.to_string(),
        ParamFormat::Fd if int == -100 => "AT_FDCWD".to_owned(),
        ParamFormat::Fd => int.to_string(),
        ParamFormat::Hex => format!("{v:#x}"),
        ParamFormat::Mode => mode_text(v as u32),
        ParamFormat::Uid => id_text(v as u32, cx.and_then(|cx| cx.users.borrow_mut().name(v as u32))),
        ParamFormat::Gid => id_text(v as u32, cx.and_then(|cx| cx.groups.borrow_mut().name(v as u32))),
        ParamFormat::PtraceRequest => named(int, PTRACE_REQUESTS),
        ParamFormat::SocketDomain => named(int, SOCKET_DOMAINS),
        ParamFormat::SocketType => socket_type_text(v as u32),
        ParamFormat::CloneFlags => flags_text(v, CLONE_NEW_FLAGS),
        ParamFormat::AtFlags => flags_text(v, AT_FLAGS),
        ParamFormat::RenameFlags => flags_text(v, RENAME_FLAGS),
        ParamFormat::BpfCmd => named(int, BPF_CMDS),
        ParamFormat::Path | ParamFormat::Text | ParamFormat::Buffer => return None,
    }))
}

/// Falco's `evt.args` for a call: every parameter as `name=value`.
pub fn args_text(ev: &Event, info: &CallInfo, cx: &FieldContext) -> String {
    pairs(ev, info, Some(cx), params(ev.evt_type).iter(), |v| v.into_owned())
}

/// A call for a log line: its result by errno name, then its other parameters, escaped, ids
/// as numbers (no name lookups).
pub fn summary(ev: &Event, info: &CallInfo) -> String {
    let others = params(ev.evt_type).iter().filter(|p| p.source != ParamSource::Result);
    let rest = pairs(ev, info, None, others, |v| super::text::escaped(&v));
    let res = errno_name(ev.res);
    if rest.is_empty() { format!("res={res}") } else { format!("res={res} {rest}") }
}

fn pairs<'p>(
    ev: &Event,
    info: &CallInfo,
    cx: Option<&FieldContext>,
    params: impl Iterator<Item = &'p Param>,
    show: impl Fn(Cow<'_, str>) -> String,
) -> String {
    let mut out = String::new();
    for p in params {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(p.name);
        out.push('=');
        out.push_str(&text(ev, info, p, cx).map_or_else(|| "<NA>".to_owned(), &show));
    }
    out
}

/// Received data as Falco prints a buffer: printable ASCII as it is, other bytes as `.`.
pub fn buffer_text(b: &[u8]) -> String {
    b.iter().map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '.' }).collect()
}

/// A uid or gid as Falco shows it where it knows the name: the name (rules compare
/// `evt.arg.uid=nobody`); the number otherwise, and -1 ("unchanged") as -1.
fn id_text(id: u32, name: Option<std::sync::Arc<str>>) -> String {
    match name {
        Some(n) => n.to_string(),
        None if id == u32::MAX => "-1".to_owned(),
        None => id.to_string(),
    }
}

fn named(v: i64, table: &[(i64, &str)]) -> String {
    table.iter().find(|(n, _)| *n == v).map_or_else(|| v.to_string(), |(_, name)| (*name).to_owned())
}

/// Set bits by name, `|`-joined; bits without a name as a number.
fn flags_text(v: u64, table: &[(u64, &str)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut left = v;
    for (bit, name) in table {
        if v & bit == *bit && *bit != 0 {
            out.push((*name).to_owned());
            left &= !bit;
        }
    }
    if left != 0 || out.is_empty() {
        out.push(format!("{left:#x}"));
    }
    out.join("|")
}

/// Permission bits in octal, with the set-id and sticky bits named as Falco names them.
pub fn mode_text(mode: u32) -> String {
    let mut out = format!("0{:o}", mode & 0o7777);
    for (bit, name) in [(0o4000, "S_ISUID"), (0o2000, "S_ISGID"), (0o1000, "S_ISVTX")] {
        if mode & bit != 0 {
            out.push('|');
            out.push_str(name);
        }
    }
    out
}

fn socket_type_text(v: u32) -> String {
    const SOCK_NONBLOCK: u32 = 0o4000;
    const SOCK_CLOEXEC: u32 = 0o2000000;
    let mut out = named(i64::from(v & 0xf), SOCKET_TYPES);
    for (bit, name) in [(SOCK_NONBLOCK, "SOCK_NONBLOCK"), (SOCK_CLOEXEC, "SOCK_CLOEXEC")] {
        if v & bit != 0 {
            out.push('|');
            out.push_str(name);
        }
    }
    out
}

const PTRACE_REQUESTS: &[(i64, &str)] = &[
    (0, "PTRACE_TRACEME"),
    (1, "PTRACE_PEEKTEXT"),
    (2, "PTRACE_PEEKDATA"),
    (3, "PTRACE_PEEKUSR"),
    (4, "PTRACE_POKETEXT"),
    (5, "PTRACE_POKEDATA"),
    (6, "PTRACE_POKEUSR"),
    (7, "PTRACE_CONT"),
    (8, "PTRACE_KILL"),
    (9, "PTRACE_SINGLESTEP"),
    (12, "PTRACE_GETREGS"),
    (13, "PTRACE_SETREGS"),
    (14, "PTRACE_GETFPREGS"),
    (15, "PTRACE_SETFPREGS"),
    (16, "PTRACE_ATTACH"),
    (17, "PTRACE_DETACH"),
    (24, "PTRACE_SYSCALL"),
    (0x4200, "PTRACE_SETOPTIONS"),
    (0x4201, "PTRACE_GETEVENTMSG"),
    (0x4202, "PTRACE_GETSIGINFO"),
    (0x4203, "PTRACE_SETSIGINFO"),
    (0x4204, "PTRACE_GETREGSET"),
    (0x4205, "PTRACE_SETREGSET"),
    (0x4206, "PTRACE_SEIZE"),
    (0x4207, "PTRACE_INTERRUPT"),
    (0x4208, "PTRACE_LISTEN"),
];

const SOCKET_DOMAINS: &[(i64, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (10, "AF_INET6"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (38, "AF_ALG"),
    (40, "AF_VSOCK"),
    (44, "AF_XDP"),
];

const SOCKET_TYPES: &[(i64, &str)] = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (10, "SOCK_PACKET"),
];

const CLONE_NEW_FLAGS: &[(u64, &str)] = &[
    (0x0000_0200, "CLONE_FS"),
    (0x0000_0400, "CLONE_FILES"),
    (0x0000_0080, "CLONE_NEWTIME"),
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
    (0x0000_8000, "CLONE_SYSVSEM"),
];

const AT_FLAGS: &[(u64, &str)] = &[
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_REMOVEDIR"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x1000, "AT_EMPTY_PATH"),
];

const RENAME_FLAGS: &[(u64, &str)] =
    &[(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT")];

const BPF_CMDS: &[(i64, &str)] = &[
    (0, "BPF_MAP_CREATE"),
    (1, "BPF_MAP_LOOKUP_ELEM"),
    (2, "BPF_MAP_UPDATE_ELEM"),
    (3, "BPF_MAP_DELETE_ELEM"),
    (4, "BPF_MAP_GET_NEXT_KEY"),
    (5, "BPF_PROG_LOAD"),
    (6, "BPF_OBJ_PIN"),
    (7, "BPF_OBJ_GET"),
    (8, "BPF_PROG_ATTACH"),
    (9, "BPF_PROG_DETACH"),
    (10, "BPF_PROG_TEST_RUN"),
    (11, "BPF_PROG_GET_NEXT_ID"),
    (12, "BPF_MAP_GET_NEXT_ID"),
    (13, "BPF_PROG_GET_FD_BY_ID"),
    (14, "BPF_MAP_GET_FD_BY_ID"),
    (15, "BPF_OBJ_GET_INFO_BY_FD"),
    (16, "BPF_PROG_QUERY"),
    (17, "BPF_RAW_TRACEPOINT_OPEN"),
    (18, "BPF_BTF_LOAD"),
    (28, "BPF_LINK_CREATE"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_falco_writes_them() {
        assert_eq!(mode_text(0o4755), "04755|S_ISUID");
        assert_eq!(mode_text(0o644), "0644");
        assert_eq!(named(16, PTRACE_REQUESTS), "PTRACE_ATTACH");
        assert_eq!(named(99999, PTRACE_REQUESTS), "99999");
        assert_eq!(socket_type_text(3 | 0o2000000), "SOCK_RAW|SOCK_CLOEXEC");
        assert_eq!(flags_text(0x0002_0000 | 0x4000_0000, CLONE_NEW_FLAGS), "CLONE_NEWNS|CLONE_NEWNET");
        assert_eq!(flags_text(0, AT_FLAGS), "0x0");
        assert_eq!(flags_text(0x200 | 0x8, AT_FLAGS), "AT_REMOVEDIR|0x8");
        assert_eq!(arg_as_int(0xffff_ffff_ffff_ff9c, ParamFormat::Fd), -100);
        assert_eq!(arg_as_int(0x1_0000_0005, ParamFormat::Fd), 5);
    }

    #[test]
    fn fs_paths_are_absolute_and_folded_and_a_symlink_points_from_its_directory() {
        let path = |raw: &str, path: &str| Some(CallPath { raw: raw.into(), path: path.into() });
        let two = |a, b| CallInfo { paths: [a, b], ..Default::default() };
        let link = two(path("/etc/./shadow", "/etc/./shadow"), path("x", "/tmp/d/x"));
        assert_eq!(
            fs_paths(EventType::Link, &link),
            FsPaths { name: None, source: Some("/etc/shadow".into()), target: Some("/tmp/d/x".into()) }
        );
        let symlink = two(path("../../etc/shadow", "../../etc/shadow"), path("x", "/tmp/d/x"));
        let p = fs_paths(EventType::Symlinkat, &symlink);
        assert_eq!(p.source.as_deref(), Some("/etc/shadow"));
        assert_eq!(p.target.as_deref(), Some("/tmp/d/x"));
        let unlink = two(path("h", "/root/../root/.bash_history"), None);
        assert_eq!(fs_paths(EventType::Unlinkat, &unlink).name.as_deref(), Some("/root/.bash_history"));
        let fchmod = CallInfo { fd_path: Some("/usr/bin/x".into()), ..Default::default() };
        assert_eq!(fs_paths(EventType::Fchmod, &fchmod).name.as_deref(), Some("/usr/bin/x"));
        assert_eq!(fs_paths(EventType::Ptrace, &CallInfo::default()), FsPaths::default());
    }

    #[test]
    fn every_param_name_is_found_for_its_types() {
        for t in EventType::ALL {
            for p in params(t) {
                assert!(std::ptr::eq(param(t, p.name).unwrap(), p), "{t:?} {}", p.name);
                assert!(is_param_name(p.name));
            }
        }
        assert!(!is_param_name("no_such_param"));
    }
}
