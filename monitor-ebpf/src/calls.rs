//! The calls reported by their arguments (ptrace, link, symlink, rename, unlink, mkdir, chmod,
//! set*id, setns, unshare, module loads, bpf, socket, dup, ...): one program for all of them,
//! driven by the shape userspace put in the map entry of the syscall's number
//! (monitor_common::calls), so adding a call adds a table row, not kernel code, and the
//! verifier checks one straight path instead of one per call.

use aya_ebpf::{macros::map, macros::tracepoint, maps::Array, programs::TracePointContext};
use monitor_common::calls::{
    CALL_BUFFER_MAX, CALL_SHAPE_SLOTS, CallShape, FD_RESULT, NO_ARG, PATH_AT, PATH_BUFFER, PATH_IN_MSGHDR,
    PATH_NONE, PATH_SOCKADDR, SOCKETCALL_SLOTS,
};
use monitor_common::{
    AF_INET, AF_INET6, CALL_PATH_TRUNCATED, CALL_PATH0_HAS_BASE, CALL_PATH1_HAS_BASE, Call, SyscallEvent,
    call_wanted,
};

use crate::filter;
use crate::kernel::{self, AT_FDCWD, Task, is_daemon, off, rd};
use crate::record::Record;
use crate::syscall::{self, Args};

#[map]
static CALL_SHAPES: Array<CallShape> = Array::with_max_entries(CALL_SHAPE_SLOTS, 0);

#[map]
static IA32_CALL_SHAPES: Array<CallShape> = Array::with_max_entries(CALL_SHAPE_SLOTS, 0);

/// By socketcall(2) call number: the calls an ia32 program may make through it.
#[map]
static SOCKETCALL_SHAPES: Array<CallShape> = Array::with_max_entries(SOCKETCALL_SLOTS, 0);

/// Attached to the exit of every native call of monitor_common::calls::CALLS.
#[tracepoint]
pub fn sys_exit_call(ctx: TracePointContext) -> u32 {
    let nr = syscall::nr(&ctx);
    if nr < 0 {
        return 0;
    }
    if let Some(shape) = CALL_SHAPES.get(nr as u32) {
        call_exit(shape, syscall::ret(&ctx), Call::Same, Args::current);
    }
    0
}

/// The shape at `index` of one of the ia32 shape maps, if it is one of the calls.
#[inline(always)]
fn valid_shape(map: &'static Array<CallShape>, slots: u32, index: i64) -> Option<&'static CallShape> {
    if !(0..slots as i64).contains(&index) {
        return None;
    }
    map.get(index as u32).filter(|s| s.valid != 0)
}

/// The shape of an ia32 syscall that is one of the calls.
#[inline(always)]
fn ia32_shape(nr: i64) -> Option<&'static CallShape> {
    valid_shape(&IA32_CALL_SHAPES, CALL_SHAPE_SLOTS, nr)
}

/// The shape of a socketcall(2) call that is one of the calls.
#[inline(always)]
fn socketcall_shape(sub: u64) -> Option<&'static CallShape> {
    valid_shape(&SOCKETCALL_SHAPES, SOCKETCALL_SLOTS, sub as i64)
}

/// Whether an ia32 syscall is one of the calls, socketcall's included (`a` are its
/// arguments).
#[inline(always)]
pub fn ia32_is_call(nr: i64, a: Args) -> bool {
    if nr == crate::ia32::SOCKETCALL {
        return socketcall_shape(a.get(0)).is_some();
    }
    ia32_shape(nr).is_some()
}

/// Reports an ia32 syscall that is one of the calls, or a socketcall(2) that makes one. One
/// call_exit for both: inlined twice, the program passes the verifier's 1M-instruction limit.
#[inline(always)]
pub fn ia32_call_exit(nr: i64, ret: i64, a: Args, regs: u64) {
    let found = if nr == crate::ia32::SOCKETCALL {
        socketcall_shape(a.get(0)).map(|s| (s, Call::Socketcall, Args::socketcall(regs, a.get(1))))
    } else {
        ia32_shape(nr).map(|s| (s, Call::Same, a))
    };
    if let Some((shape, call, args)) = found {
        call_exit(shape, ret, call, || args);
    }
}

#[inline(always)]
fn arg_or_zero(a: Args, n: u8) -> u64 {
    if n == NO_ARG { 0 } else { a.get(n as u32) }
}

/// Reports one call as its shape says. The arguments' registers are found only for a call
/// the filter lets through: a dismissal costs no helper call for them.
#[inline(always)]
fn call_exit(shape: &CallShape, ret: i64, call: Call, args: impl FnOnce() -> Args) {
    if shape.valid == 0 || is_daemon() {
        return;
    }
    if let Some(c) = filter::config()
        && !call_wanted(c, shape.evt_type)
    {
        filter::count_filtered_code(shape.evt_type);
        return;
    }
    let a = args();
    crate::cgroups::announce();
    let Some(mut rec) = Record::<SyscallEvent>::begin() else { return };
    let ev = rec.fixed();
    ev.header.via = a.via() as u8;
    ev.header.call = call as u8;
    ev.ret = ret;
    ev.evt_type = shape.evt_type;
    ev.args = [
        arg_or_zero(a, shape.args[0]),
        arg_or_zero(a, shape.args[1]),
        arg_or_zero(a, shape.args[2]),
        arg_or_zero(a, shape.args[3]),
    ];
    let mut flags = 0u16;
    let task = Task::current();
    let (root_mnt, root_dentry) = task.root();
    for i in 0..2usize {
        let spec = shape.paths[i];
        let (mut len, mut base_len) = (0u16, 0u16);
        let kind = spec.kind & !PATH_IN_MSGHDR;
        if kind != PATH_NONE && spec.arg != NO_ARG {
            let arg = a.get(spec.arg as u32);
            if kind == PATH_BUFFER || kind == PATH_SOCKADDR {
                len = append_received(&mut rec, a, arg, spec.kind, ret);
            } else {
                let (l, first) = rec.append_user_str(arg);
                len = l;
                if kind == PATH_AT && len > 0 && first != b'/' {
                    let dfd = if spec.dirfd == NO_ARG { AT_FDCWD } else { a.int(spec.dirfd as u32) };
                    let (bl, cut) = rec.append_dir(task, dfd, root_mnt, root_dentry);
                    base_len = bl;
                    flags |= if i == 0 { CALL_PATH0_HAS_BASE } else { CALL_PATH1_HAS_BASE };
                    if cut {
                        flags |= CALL_PATH_TRUNCATED;
                    }
                }
            }
        }
        rec.fixed().lens[2 * i] = len;
        rec.fixed().lens[2 * i + 1] = base_len;
    }
    if shape.fd != NO_ARG {
        let fd = if shape.fd == FD_RESULT { ret } else { a.int(shape.fd as u32) as i64 };
        let file = if fd >= 0 { task.fd_file(fd as u32) } else { 0 };
        let sk = kernel::file_sock(file);
        if sk != 0 {
            read_sock(&mut rec.fixed().sock, sk);
        } else if file != 0 {
            let (len, cut) = rec.append_file_path(file, root_mnt, root_dentry);
            rec.fixed().lens[4] = len;
            if cut {
                flags |= CALL_PATH_TRUNCATED;
            }
        }
    }
    rec.fixed().header.flags = flags;
    let _ = rec.submit();
}

/// What a receiving call wrote into the caller's memory: the start of the data (as much as the
/// result says arrived, at most CALL_BUFFER_MAX) or the sender's address. `arg` points at it,
/// or at the struct msghdr that points at it.
#[inline(always)]
fn append_received(rec: &mut Record<SyscallEvent>, a: Args, arg: u64, kind: u8, ret: i64) -> u16 {
    if ret < 0 {
        return 0;
    }
    let abi = a.abi();
    let via_msghdr = kind & PATH_IN_MSGHDR != 0;
    if kind & !PATH_IN_MSGHDR == PATH_BUFFER {
        let (base, room) = if via_msghdr {
            // msg_iov follows msg_name and msg_namelen (padded to a pointer); iov_len follows
            // iov_base, in either ABI.
            let iov = abi.read_ptr(arg + 2 * abi.ptr);
            (abi.read_ptr(iov), abi.read_ptr(iov + abi.ptr))
        } else {
            (arg, ret as u64)
        };
        let n = (ret as u64).min(room).min(CALL_BUFFER_MAX as u64);
        return rec.append_user_bytes(base, n);
    }
    let addr = if via_msghdr { abi.read_ptr(arg) } else { arg };
    if addr == 0 {
        return 0;
    }
    let family: u16 = kernel::user(addr);
    // sockaddr_in and sockaddr_in6.
    let size = match family {
        AF_INET => 16,
        AF_INET6 => 28,
        _ => return 0,
    };
    rec.append_user_bytes(addr, size)
}

/// A socket's family, type and both ends, as the kernel holds them now.
#[inline(always)]
fn read_sock(s: &mut monitor_common::SockInfo, sk: u64) {
    s.family = rd(sk + off!(sock_family));
    s.sock_type = rd(sk + off!(sock_type));
    s.protocol = rd(sk + off!(sock_protocol));
    s.state = rd(sk + off!(sock_state));
    s.sport = rd(sk + off!(sock_num));
    s.dport = u16::from_be(rd(sk + off!(sock_dport)));
    if s.family == AF_INET {
        s.saddr[..4].copy_from_slice(&rd::<[u8; 4]>(sk + off!(sock_rcv_saddr)));
        s.daddr[..4].copy_from_slice(&rd::<[u8; 4]>(sk + off!(sock_daddr)));
    } else if s.family == AF_INET6 {
        s.saddr = rd(sk + off!(sock_v6_rcv_saddr));
        s.daddr = rd(sk + off!(sock_v6_daddr));
    }
}
