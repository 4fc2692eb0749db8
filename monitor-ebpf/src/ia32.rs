//! 32-bit (ia32) system calls on x86_64: from 32-bit programs, and from 64-bit ones through
//! `int 0x80`. The syscalls:* tracepoints skip them (x86's trace_get_syscall_nr returns -1
//! for a compat syscall), so one program on the raw sys_exit tracepoint, which runs for every
//! syscall of the host, picks them out by TS_COMPAT and reports them through the same code as
//! the native ones, with the compat layouts of the structures they point at.

use aya_ebpf::{
    macros::{btf_tracepoint, map},
    maps::ProgramArray,
    programs::BtfTracePointContext,
};
use monitor_common::{Call, EventType, Via, result_class};

use crate::calls;
use crate::files::Memory;
use crate::files::{self, AT_REMOVEDIR};
use crate::kernel::{self, off, rd};
use crate::sockets::{self, Destination, NetCall};
use crate::syscall::{Abi, Args};

// arch/x86/entry/syscalls/syscall_32.tbl
const OPEN: i64 = 5;
const CREAT: i64 = 8;
const OPENAT: i64 = 295;
const OPENAT2: i64 = 437;
const OPEN_BY_HANDLE_AT: i64 = 342;
const PIDFD_GETFD: i64 = 438;
const CONNECT: i64 = 362;
const SENDTO: i64 = 369;
const SENDMSG: i64 = 370;
const SENDMMSG: i64 = 345;
pub const SOCKETCALL: i64 = 102;
const RENAME: i64 = 38;
const RENAMEAT: i64 = 302;
const RENAMEAT2: i64 = 353;
const RMDIR: i64 = 40;
const MOUNT: i64 = 21;
const UMOUNT: i64 = 22;
const UMOUNT2: i64 = 52;
const MOVE_MOUNT: i64 = 429;
const PIVOT_ROOT: i64 = 217;
const UNLINKAT: i64 = 301;

// socketcall's calls (include/uapi/linux/net.h).
const SYS_CONNECT: u32 = 3;
const SYS_SENDTO: u32 = 11;
const SYS_SENDMSG: u32 = 16;
const SYS_SENDMMSG: u32 = 20;

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_ia32(ctx: BtfTracePointContext) -> i32 {
    // Every syscall of the host passes here: a native one costs this test alone.
    if !kernel::current_in_ia32_syscall() {
        return 0;
    }
    let regs: u64 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let nr: i64 = rd(regs + off!(regs_nr));
    let a = Args::ia32(regs);
    if exit(nr, ret, a) == Next::Call && calls::ia32_is_call(nr, a) {
        // The calls' code in this program would take it past the verifier's limit: it runs
        // in its own program, which this one hands the same context to.
        unsafe {
            IA32_CALL.tail_call(&ctx, 0);
        }
    }
    0
}

/// The program for the calls of monitor_common::calls (slot 0), set by userspace.
#[map]
static IA32_CALL: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What is left to do after [`exit`].
#[derive(PartialEq, Eq)]
enum Next {
    Done,
    /// The syscall may be one of the calls reported by their arguments.
    Call,
}

/// The tail of [`sys_exit_ia32`] for the calls of monitor_common::calls.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_ia32_call(ctx: BtfTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let nr: i64 = rd(regs + off!(regs_nr));
    calls::ia32_call_exit(nr, ret, Args::ia32(regs), regs);
    0
}

/// A socket call's arguments, however it was made: the socket, the destination and its
/// length (connect, sendto), the message (sendmsg), or the messages and their count
/// (sendmmsg, `many`).
struct SockCall {
    evt_type: EventType,
    fd: i32,
    p1: u64,
    p2: u64,
    call: Call,
    many: bool,
}

impl SockCall {
    fn new(evt_type: EventType, fd: i32, p1: u64, p2: u64, call: Call) -> Self {
        Self { evt_type, fd, p1, p2, call, many: false }
    }

    fn many(fd: i32, vec: u64, vlen: u64, call: Call) -> Self {
        Self { evt_type: EventType::Sendmsg, fd, p1: vec, p2: vlen, call, many: true }
    }
}

#[inline(always)]
fn exit(nr: i64, ret: i64, a: Args) -> Next {
    let open_type = match nr {
        OPEN => Some(EventType::Open),
        CREAT => Some(EventType::Creat),
        OPENAT => Some(EventType::Openat),
        OPENAT2 => Some(EventType::Openat2),
        OPEN_BY_HANDLE_AT => Some(EventType::OpenByHandleAt),
        PIDFD_GETFD => Some(EventType::PidfdGetfd),
        _ => None,
    };
    if let Some(t) = open_type {
        files::open_exit(t, ret, a);
        return Next::Done;
    }
    let s = match nr {
        CONNECT => SockCall::new(EventType::Connect, a.int(0), a.get(1), a.get(2), Call::Same),
        SENDTO => SockCall::new(EventType::Sendto, a.int(0), a.get(4), a.get(5), Call::Same),
        SENDMSG => SockCall::new(EventType::Sendmsg, a.int(0), a.get(1), 0, Call::Same),
        SENDMMSG => SockCall::many(a.int(0), a.get(1), a.get(2), Call::Sendmmsg),
        SOCKETCALL => {
            // Its other calls (listen, accept, recvfrom, ...) may be among the calls.
            let Some(s) = socketcall(a.get(0) as u32, a.get(1)) else { return Next::Call };
            s
        }
        RENAME | RENAMEAT | RENAMEAT2 | RMDIR | MOUNT | UMOUNT | UMOUNT2 | MOVE_MOUNT | PIVOT_ROOT => {
            files::path_changed(ret);
            return Next::Call;
        }
        UNLINKAT => {
            if a.get(2) & AT_REMOVEDIR != 0 {
                files::path_changed(ret);
            }
            return Next::Call;
        }
        _ => return Next::Call,
    };
    if s.many {
        sockets::sendmmsg_exit(ret, s.fd, s.p1, s.p2 as u32, Abi::IA32, Via::Ia32, s.call);
        return Next::Done;
    }
    let dest = if s.evt_type == EventType::Sendmsg {
        sockets::msghdr_destination(s.p1, Abi::IA32)
    } else {
        Destination { addr: s.p1, len: s.p2 as u32, memory: Memory::User }
    };
    if s.evt_type != EventType::Connect && dest.addr == 0 {
        return Next::Done;
    }
    let c = NetCall {
        evt_type: s.evt_type,
        ret,
        results: result_class(ret),
        fd: s.fd,
        via: Via::Ia32,
        call: s.call,
        flags: 0,
        iou_req: 0,
    };
    sockets::sock_exit(&c, dest);
    Next::Done
}

/// socketcall(call, args): the arguments are an array of u32 in the caller's memory.
#[inline(always)]
fn socketcall(sub: u32, args: u64) -> Option<SockCall> {
    let arg = |i: u64| kernel::user::<u32>(args + 4 * i) as u64;
    let fd = arg(0) as i32;
    let call = Call::Socketcall;
    Some(match sub {
        SYS_CONNECT => SockCall::new(EventType::Connect, fd, arg(1), arg(2), call),
        SYS_SENDTO => SockCall::new(EventType::Sendto, fd, arg(4), arg(5), call),
        SYS_SENDMSG => SockCall::new(EventType::Sendmsg, fd, arg(1), 0, call),
        SYS_SENDMMSG => SockCall::many(fd, arg(1), arg(2), call),
        _ => return None,
    })
}
