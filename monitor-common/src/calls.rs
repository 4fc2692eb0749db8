//! The system calls reported by their arguments ([`EventClass::Syscall`](crate::EventClass)):
//! for each, what the kernel program copies into its record ([`CallShape`]) and what Falco
//! names each parameter ([`Param`]). One table, read by the kernel's generic call program
//! (through a map userspace fills from it) and by the daemon's `evt.arg.*` fields, so the two
//! cannot disagree on which argument sits where.

use crate::EventType;

/// An argument slot that copies nothing.
pub const NO_ARG: u8 = 0xff;
/// [`CallShape::fd`]: the call's result is the descriptor the event is about (socket, dup).
pub const FD_RESULT: u8 = 0xfe;

/// No path section.
pub const PATH_NONE: u8 = 0;
/// The caller's string as it is (a symlink's target, module parameters, a memfd's name).
pub const PATH_STRING: u8 = 1;
/// A path the caller names relative to a directory: its string, and the directory (the
/// `dirfd` argument, or the cwd when [`PathSpec::dirfd`] is [`NO_ARG`]) resolved when the
/// string is relative.
pub const PATH_AT: u8 = 2;
/// Bytes the call moved into the caller's buffer: the first [`CALL_BUFFER_MAX`] of them, as
/// many as the call's result says there are.
pub const PATH_BUFFER: u8 = 3;
/// A socket address the call wrote for the caller (a datagram's sender).
pub const PATH_SOCKADDR: u8 = 4;
/// Or'ed into a [`PathSpec::kind`]: the argument is a `struct msghdr *`, and the buffer is its
/// first iovec, the address its msg_name.
pub const PATH_IN_MSGHDR: u8 = 0x80;
/// How much of a received buffer is copied: Falco's default snapshot length.
pub const CALL_BUFFER_MAX: u32 = 80;

#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PathSpec {
    /// PATH_* kind.
    pub kind: u8,
    /// The argument holding the string.
    pub arg: u8,
    /// The argument holding the directory fd, or [`NO_ARG`] for the cwd.
    pub dirfd: u8,
}

/// What the kernel copies for one call, as the map entry of its syscall number holds it.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CallShape {
    /// 0: the syscall number is not one of these calls.
    pub valid: u8,
    /// The [`EventType`] as a u8.
    pub evt_type: u8,
    /// Which syscall argument goes into each of the record's `args`, or [`NO_ARG`].
    pub args: [u8; 4],
    pub paths: [PathSpec; 2],
    /// The descriptor the event is about: an argument, [`FD_RESULT`], or [`NO_ARG`]. Its file's
    /// path, or its socket's addresses, go into the record.
    pub fd: u8,
    pub _pad: [u8; 3],
}

/// Where a parameter's value is in a record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamSource {
    /// The call's result.
    Result,
    /// `args[i]` of the record.
    Arg(u8),
    /// Path section `i` (0 or 1).
    Path(u8),
    /// The call's socket's two ends, as Falco's `tuple` (`client:port->server:port`).
    Tuple,
}

/// How a parameter is written, as Falco writes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamFormat {
    /// A signed number.
    Int,
    /// A descriptor (AT_FDCWD included).
    Fd,
    Hex,
    /// File permission bits, octal with Falco's S_IS* names (`0755|S_ISUID`).
    Mode,
    /// A user or group id, by name where the host's databases know it.
    Uid,
    Gid,
    PtraceRequest,
    SocketDomain,
    SocketType,
    /// CLONE_NEW* flags (setns, unshare).
    CloneFlags,
    /// AT_* flags of linkat and unlinkat.
    AtFlags,
    /// RENAME_* flags.
    RenameFlags,
    BpfCmd,
    /// A path, absolute: a relative one joined with its directory.
    Path,
    /// A string as the caller wrote it.
    Text,
    /// Data moved by the call, printable bytes as they are and others as `.`, as Falco writes it.
    Buffer,
}

/// One of a call's parameters, under Falco's name.
#[derive(Copy, Clone, Debug)]
pub struct Param {
    pub name: &'static str,
    pub source: ParamSource,
    pub format: ParamFormat,
}

/// What a call acts on, for views that group events by it (ECS's `event.category`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Process,
    File,
    Network,
}

/// One call: its event type, what it acts on, its syscall numbers in the ia32 table (the
/// native ones are the architecture's, looked up by the daemon), and its shape and parameters.
#[derive(Copy, Clone, Debug)]
pub struct CallDef {
    pub evt_type: EventType,
    pub subject: Subject,
    pub ia32: &'static [u16],
    pub shape: CallShape,
    pub params: &'static [Param],
    /// Its number among ia32 socketcall(2)'s calls (include/uapi/linux/net.h), 0 for none.
    pub socketcall: u8,
    /// The call is the server's side of a connection (accept, listen): the socket's local end
    /// is the server, its peer the client. A received datagram whose sender the call names
    /// makes its socket the server too (see the daemon's call decoding).
    pub inbound: bool,
}

const fn p(name: &'static str, source: ParamSource, format: ParamFormat) -> Param {
    Param { name, source, format }
}

use ParamFormat as F;
use ParamSource::{Arg, Path, Result as Res};

const fn at(arg: u8, dirfd: u8) -> PathSpec {
    PathSpec { kind: PATH_AT, arg, dirfd }
}

const fn string(arg: u8) -> PathSpec {
    PathSpec { kind: PATH_STRING, arg, dirfd: NO_ARG }
}

const NONE: PathSpec = PathSpec { kind: PATH_NONE, arg: NO_ARG, dirfd: NO_ARG };
const CWD: u8 = NO_ARG;

const fn call(
    evt_type: EventType,
    subject: Subject,
    ia32: &'static [u16],
    args: [u8; 4],
    paths: [PathSpec; 2],
    fd: u8,
    params: &'static [Param],
) -> CallDef {
    CallDef {
        evt_type,
        subject,
        ia32,
        shape: CallShape { valid: 1, evt_type: evt_type as u8, args, paths, fd, _pad: [0; 3] },
        params,
        socketcall: 0,
        inbound: false,
    }
}

/// A call ia32 programs may also make through socketcall(2), as call `n`.
const fn via_socketcall(n: u8, c: CallDef) -> CallDef {
    CallDef { socketcall: n, ..c }
}

const fn inbound(c: CallDef) -> CallDef {
    CallDef { inbound: true, ..c }
}

const fn buffer(arg: u8) -> PathSpec {
    PathSpec { kind: PATH_BUFFER, arg, dirfd: NO_ARG }
}

const fn sockaddr(arg: u8) -> PathSpec {
    PathSpec { kind: PATH_SOCKADDR, arg, dirfd: NO_ARG }
}

const fn in_msghdr(p: PathSpec) -> PathSpec {
    PathSpec { kind: p.kind | PATH_IN_MSGHDR, ..p }
}

const N: u8 = NO_ARG;
const RES: Param = p("res", Res, F::Int);
const TUPLE: Param = p("tuple", ParamSource::Tuple, F::Text);

/// renameat's, and renameat2's flags after them.
const RENAMEAT2_PARAMS: &[Param] = &[
    RES,
    p("olddirfd", Arg(0), F::Fd),
    p("oldpath", Path(0), F::Path),
    p("newdirfd", Arg(1), F::Fd),
    p("newpath", Path(1), F::Path),
    p("flags", Arg(2), F::RenameFlags),
];

/// Every call of this kind. The ia32 numbers are arch/x86/entry/syscalls/syscall_32.tbl's
/// (setuid and its kin have a 16-bit and a 32-bit form there).
pub const CALLS: &[CallDef] = &[
    call(
        EventType::Ptrace,
        Subject::Process,
        &[26],
        [0, 1, 2, 3],
        [NONE, NONE],
        N,
        &[
            RES,
            p("request", Arg(0), F::PtraceRequest),
            p("pid", Arg(1), F::Int),
            p("addr", Arg(2), F::Hex),
            p("data", Arg(3), F::Hex),
        ],
    ),
    call(
        EventType::Symlink,
        Subject::File,
        &[83],
        [N; 4],
        [string(0), at(1, CWD)],
        N,
        &[RES, p("target", Path(0), F::Text), p("linkpath", Path(1), F::Path)],
    ),
    call(
        EventType::Symlinkat,
        Subject::File,
        &[304],
        [1, N, N, N],
        [string(0), at(2, 1)],
        N,
        &[RES, p("target", Path(0), F::Text), p("linkdirfd", Arg(0), F::Fd), p("linkpath", Path(1), F::Path)],
    ),
    call(
        EventType::Link,
        Subject::File,
        &[9],
        [N; 4],
        [at(0, CWD), at(1, CWD)],
        N,
        &[RES, p("oldpath", Path(0), F::Path), p("newpath", Path(1), F::Path)],
    ),
    call(
        EventType::Linkat,
        Subject::File,
        &[303],
        [0, 2, 4, N],
        [at(1, 0), at(3, 2)],
        N,
        &[
            RES,
            p("olddir", Arg(0), F::Fd),
            p("oldpath", Path(0), F::Path),
            p("newdir", Arg(1), F::Fd),
            p("newpath", Path(1), F::Path),
            p("flags", Arg(2), F::AtFlags),
        ],
    ),
    call(
        EventType::InitModule,
        Subject::Process,
        &[128],
        [1, N, N, N],
        [string(2), NONE],
        N,
        &[RES, p("length", Arg(0), F::Int), p("uargs", Path(0), F::Text)],
    ),
    call(
        EventType::FinitModule,
        Subject::Process,
        &[350],
        [0, 2, N, N],
        [string(1), NONE],
        0,
        &[RES, p("fd", Arg(0), F::Fd), p("uargs", Path(0), F::Text), p("flags", Arg(1), F::Hex)],
    ),
    via_socketcall(
        1,
        call(
            EventType::Socket,
            Subject::Network,
            &[359],
            [0, 1, 2, N],
            [NONE, NONE],
            FD_RESULT,
            &[
                p("fd", Res, F::Fd),
                p("domain", Arg(0), F::SocketDomain),
                p("type", Arg(1), F::SocketType),
                p("proto", Arg(2), F::Int),
            ],
        ),
    ),
    call(
        EventType::Dup,
        Subject::Process,
        &[41],
        [0, N, N, N],
        [NONE, NONE],
        FD_RESULT,
        &[RES, p("oldfd", Arg(0), F::Fd)],
    ),
    call(
        EventType::Dup2,
        Subject::Process,
        &[63],
        [0, 1, N, N],
        [NONE, NONE],
        FD_RESULT,
        &[RES, p("oldfd", Arg(0), F::Fd), p("newfd", Arg(1), F::Fd)],
    ),
    call(
        EventType::Dup3,
        Subject::Process,
        &[330],
        [0, 1, 2, N],
        [NONE, NONE],
        FD_RESULT,
        &[RES, p("oldfd", Arg(0), F::Fd), p("newfd", Arg(1), F::Fd), p("flags", Arg(2), F::Hex)],
    ),
    call(
        EventType::Setns,
        Subject::Process,
        &[346],
        [0, 1, N, N],
        [NONE, NONE],
        0,
        &[RES, p("fd", Arg(0), F::Fd), p("nstype", Arg(1), F::CloneFlags)],
    ),
    call(
        EventType::Unshare,
        Subject::Process,
        &[310],
        [0, N, N, N],
        [NONE, NONE],
        N,
        &[RES, p("flags", Arg(0), F::CloneFlags)],
    ),
    call(
        EventType::Setuid,
        Subject::Process,
        &[23, 213],
        [0, N, N, N],
        [NONE, NONE],
        N,
        &[RES, p("uid", Arg(0), F::Uid)],
    ),
    call(
        EventType::Setgid,
        Subject::Process,
        &[46, 214],
        [0, N, N, N],
        [NONE, NONE],
        N,
        &[RES, p("gid", Arg(0), F::Gid)],
    ),
    call(
        EventType::Setresuid,
        Subject::Process,
        &[164, 208],
        [0, 1, 2, N],
        [NONE, NONE],
        N,
        &[RES, p("ruid", Arg(0), F::Uid), p("euid", Arg(1), F::Uid), p("suid", Arg(2), F::Uid)],
    ),
    call(
        EventType::Setresgid,
        Subject::Process,
        &[170, 210],
        [0, 1, 2, N],
        [NONE, NONE],
        N,
        &[RES, p("rgid", Arg(0), F::Gid), p("egid", Arg(1), F::Gid), p("sgid", Arg(2), F::Gid)],
    ),
    call(
        EventType::Chmod,
        Subject::File,
        &[15],
        [1, N, N, N],
        [at(0, CWD), NONE],
        N,
        &[RES, p("filename", Path(0), F::Path), p("mode", Arg(0), F::Mode)],
    ),
    call(
        EventType::Fchmod,
        Subject::File,
        &[94],
        [0, 1, N, N],
        [NONE, NONE],
        0,
        &[RES, p("fd", Arg(0), F::Fd), p("mode", Arg(1), F::Mode)],
    ),
    call(
        EventType::Fchmodat,
        Subject::File,
        &[306],
        [0, 2, N, N],
        [at(1, 0), NONE],
        N,
        &[RES, p("dirfd", Arg(0), F::Fd), p("filename", Path(0), F::Path), p("mode", Arg(1), F::Mode)],
    ),
    call(
        EventType::Unlink,
        Subject::File,
        &[10],
        [N; 4],
        [at(0, CWD), NONE],
        N,
        &[RES, p("path", Path(0), F::Path)],
    ),
    call(
        EventType::Unlinkat,
        Subject::File,
        &[301],
        [0, 2, N, N],
        [at(1, 0), NONE],
        N,
        &[RES, p("dirfd", Arg(0), F::Fd), p("name", Path(0), F::Path), p("flags", Arg(1), F::AtFlags)],
    ),
    call(
        EventType::Rmdir,
        Subject::File,
        &[40],
        [N; 4],
        [at(0, CWD), NONE],
        N,
        &[RES, p("path", Path(0), F::Path)],
    ),
    call(
        EventType::Rename,
        Subject::File,
        &[38],
        [N; 4],
        [at(0, CWD), at(1, CWD)],
        N,
        &[RES, p("oldpath", Path(0), F::Path), p("newpath", Path(1), F::Path)],
    ),
    call(
        EventType::Renameat,
        Subject::File,
        &[302],
        [0, 2, N, N],
        [at(1, 0), at(3, 2)],
        N,
        RENAMEAT2_PARAMS.split_at(5).0,
    ),
    call(
        EventType::Renameat2,
        Subject::File,
        &[353],
        [0, 2, 4, N],
        [at(1, 0), at(3, 2)],
        N,
        RENAMEAT2_PARAMS,
    ),
    call(
        EventType::Mkdir,
        Subject::File,
        &[39],
        [1, N, N, N],
        [at(0, CWD), NONE],
        N,
        &[RES, p("path", Path(0), F::Path), p("mode", Arg(0), F::Mode)],
    ),
    call(
        EventType::Mkdirat,
        Subject::File,
        &[296],
        [0, 2, N, N],
        [at(1, 0), NONE],
        N,
        &[RES, p("dirfd", Arg(0), F::Fd), p("path", Path(0), F::Path), p("mode", Arg(1), F::Mode)],
    ),
    call(
        EventType::Bpf,
        Subject::Process,
        &[357],
        [0, N, N, N],
        [NONE, NONE],
        N,
        &[p("res_or_fd", Res, F::Int), p("cmd", Arg(0), F::BpfCmd)],
    ),
    call(
        EventType::Userfaultfd,
        Subject::Process,
        &[374],
        [0, N, N, N],
        [NONE, NONE],
        N,
        &[RES, p("flags", Arg(0), F::Hex)],
    ),
    call(
        EventType::MemfdCreate,
        Subject::Process,
        &[356],
        [1, N, N, N],
        [string(0), NONE],
        N,
        &[p("fd", Res, F::Fd), p("name", Path(0), F::Text), p("flags", Arg(0), F::Hex)],
    ),
    via_socketcall(
        5,
        inbound(call(
            EventType::Accept,
            Subject::Network,
            &[],
            [N; 4],
            [NONE, NONE],
            FD_RESULT,
            &[p("fd", Res, F::Fd), TUPLE],
        )),
    ),
    via_socketcall(
        18,
        inbound(call(
            EventType::Accept4,
            Subject::Network,
            &[364],
            [3, N, N, N],
            [NONE, NONE],
            FD_RESULT,
            &[p("fd", Res, F::Fd), TUPLE, p("flags", Arg(0), F::Hex)],
        )),
    ),
    via_socketcall(
        4,
        inbound(call(
            EventType::Listen,
            Subject::Network,
            &[363],
            [0, 1, N, N],
            [NONE, NONE],
            0,
            &[RES, p("fd", Arg(0), F::Fd), p("backlog", Arg(1), F::Int)],
        )),
    ),
    via_socketcall(
        12,
        call(
            EventType::Recvfrom,
            Subject::Network,
            &[371],
            [0, 2, N, N],
            [buffer(1), sockaddr(4)],
            0,
            &[RES, p("data", Path(0), F::Buffer), TUPLE, p("fd", Arg(0), F::Fd), p("size", Arg(1), F::Int)],
        ),
    ),
    via_socketcall(
        17,
        call(
            EventType::Recvmsg,
            Subject::Network,
            &[372],
            [0, N, N, N],
            [in_msghdr(buffer(1)), in_msghdr(sockaddr(1))],
            0,
            &[RES, p("data", Path(0), F::Buffer), TUPLE, p("fd", Arg(0), F::Fd)],
        ),
    ),
];

/// io_uring_setup is reported from the ring's creation, not by the generic program; its
/// parameters are listed here so it reads like the others.
pub const IO_URING_SETUP_PARAMS: &[Param] = &[RES, p("entries", Arg(0), F::Int), p("flags", Arg(1), F::Hex)];

/// A call type's definition.
pub fn call_def(t: EventType) -> Option<&'static CallDef> {
    CALLS.iter().find(|c| c.evt_type == t)
}

/// A call type's parameters, in Falco's order.
pub fn params(t: EventType) -> &'static [Param] {
    match t {
        EventType::IoUringSetup => IO_URING_SETUP_PARAMS,
        _ => call_def(t).map_or(&[], |c| c.params),
    }
}

/// Entries of the kernel's shape maps (indexed by syscall number).
pub const CALL_SHAPE_SLOTS: u32 = 512;
/// Entries of the socketcall shape map (socketcall's call numbers end at 20, SYS_SENDMMSG).
pub const SOCKETCALL_SLOTS: u32 = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventClass;

    #[test]
    fn every_call_type_has_one_definition_and_sound_sources() {
        for t in EventType::ALL {
            let defs = CALLS.iter().filter(|c| c.evt_type == t).count();
            let is_call = t.class() == EventClass::Syscall && t != EventType::IoUringSetup;
            assert_eq!(defs, usize::from(is_call), "{t:?}");
        }
        for c in CALLS {
            for p in c.params {
                match p.source {
                    ParamSource::Arg(i) => assert_ne!(c.shape.args[i as usize], NO_ARG, "{}", p.name),
                    ParamSource::Path(i) => {
                        assert_ne!(c.shape.paths[i as usize].kind, PATH_NONE, "{}", p.name)
                    }
                    ParamSource::Result => {}
                    ParamSource::Tuple => assert_ne!(c.shape.fd, NO_ARG, "{}", p.name),
                }
            }
            if c.socketcall != 0 {
                assert!((c.socketcall as u32) < SOCKETCALL_SLOTS);
                assert_eq!(CALLS.iter().filter(|o| o.socketcall == c.socketcall).count(), 1);
            }
            for n in c.ia32 {
                assert!((*n as u32) < CALL_SHAPE_SLOTS);
                assert_eq!(CALLS.iter().filter(|o| o.ia32.contains(n)).count(), 1, "ia32 {n}");
            }
        }
    }
}
