//! Connects, and sends that name their destination (sendto, sendmsg and each message of
//! sendmmsg on an unconnected datagram socket), dismissed by the in-kernel filter where no rule
//! can match them; and the TCP backstop, which reports every TCP connect no other sensor saw
//! (TCP Fast Open sends, anything still unknown). The 32-bit syscalls ([`crate::ia32`]) and
//! io_uring requests ([`crate::iouring`]) report through the same code.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user},
    macros::{btf_tracepoint, map, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    AF_INET, AF_INET6, AF_UNIX, Call, EventType, NetEvent, REC_RESULT_UNKNOWN, RESULTS, UNIX_PATH_LEN, Via,
    result_class,
};

use crate::files::Memory;
use crate::filter;
use crate::kernel::{self, PF_IO_WORKER, PF_KTHREAD, Task, is_daemon, off, rd};
use crate::record::Record;
use crate::syscall::{self, Abi, Args};

const SOCK_DGRAM: u16 = 2;
const SOCK_RAW: u16 = 3;
const TCP_ESTABLISHED: u8 = 1;
const TCP_SYN_SENT: i32 = 2;
/// sendmmsg takes at most this many messages (UIO_MAXIOV).
const MAX_MMSG: u32 = 1024;

/// Sockets whose connect an io_uring request reported, so the TCP backstop does not report
/// it again.
#[map]
pub static IOU_CONNECTS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(1024, 0);

/// One connect or send being reported.
#[derive(Copy, Clone)]
pub struct NetCall {
    pub evt_type: EventType,
    pub ret: i64,
    /// RESULT_* bits the filter judges the result by (all of them while it is unknown).
    pub results: u32,
    pub fd: i32,
    pub via: Via,
    pub call: Call,
    /// REC_* header bits.
    pub flags: u16,
    pub iou_req: u64,
}

/// The destination the caller named: a sockaddr of `len` bytes at `addr`, in user or (for an
/// io_uring request, copied at prep) kernel memory.
#[derive(Copy, Clone)]
pub struct Destination {
    pub addr: u64,
    pub len: u32,
    pub memory: Memory,
}

impl Destination {
    pub const NONE: Self = Self { addr: 0, len: 0, memory: Memory::User };

    #[inline(always)]
    fn read<T: Copy>(&self, offset: u64) -> T {
        let a = (self.addr + offset) as *const T;
        unsafe {
            match self.memory {
                Memory::User => bpf_probe_read_user(a).unwrap_or(core::mem::zeroed()),
                Memory::Kernel => bpf_probe_read_kernel(a).unwrap_or(core::mem::zeroed()),
            }
        }
    }
}

/// Whether a send on this socket is a connection-like event: only sends that pick their
/// destination per datagram are. A connected socket's destination was its connect's, unless
/// the send `named` one: UDP and raw sockets send to a named address even when connected, so
/// `connect(127.0.0.1)` then `sendto(elsewhere)` goes elsewhere.
#[inline(always)]
pub fn send_names_destination(sk: u64, named: bool) -> bool {
    if sk == 0 {
        return false;
    }
    let sock_type: u16 = rd(sk + off!(sock_type));
    if sock_type != SOCK_DGRAM && sock_type != SOCK_RAW {
        return false;
    }
    named || rd::<u8>(sk + off!(sock_state)) != TCP_ESTABLISHED
}

/// Reports a connect or send on socket `sk` (0: not a socket, or unknown). Returns false when
/// the filter dismissed it (a record that found the ring full is counted as a drop). The
/// caller announces the cgroup first.
#[inline(always)]
pub fn report(c: &NetCall, sk: u64, dest: Destination) -> bool {
    let is_connect = c.evt_type == EventType::Connect;
    let Some(mut rec) = Record::<NetEvent>::begin() else { return true };
    let ev = rec.fixed();
    ev.header.via = c.via as u8;
    ev.header.call = c.call as u8;
    ev.header.flags = c.flags;
    ev.ret = c.ret;
    ev.fd = c.fd;
    ev.evt_type = c.evt_type as u8;
    ev.iou_req = c.iou_req;
    let mut family: u16 = 0;
    if sk != 0 {
        family = rd(sk + off!(sock_family));
        ev.sock_type = rd(sk + off!(sock_type));
        ev.protocol = rd(sk + off!(sock_protocol));
        ev.sport = rd(sk + off!(sock_num));
        if family == AF_INET {
            ev.saddr[..4].copy_from_slice(&rd::<[u8; 4]>(sk + off!(sock_rcv_saddr)));
            if is_connect {
                let daddr: [u8; 4] = rd(sk + off!(sock_daddr));
                let dport: u16 = rd(sk + off!(sock_dport));
                if dport != 0 {
                    ev.daddr[..4].copy_from_slice(&daddr);
                    ev.dport = u16::from_be(dport);
                    ev.from_socket = 1;
                }
            }
        } else if family == AF_INET6 {
            ev.saddr = rd(sk + off!(sock_v6_rcv_saddr));
            if is_connect {
                let dport: u16 = rd(sk + off!(sock_dport));
                if dport != 0 {
                    ev.daddr = rd(sk + off!(sock_v6_daddr));
                    ev.dport = u16::from_be(dport);
                    ev.from_socket = 1;
                }
            }
        }
    }
    // Where the socket does not hold the destination (failed connect, datagram sends, unix
    // sockets, a request not yet issued), report the caller's sockaddr.
    if ev.from_socket == 0 && dest.addr != 0 {
        let user_family: u16 = dest.read(0);
        // The address is laid out as the caller's family, which may differ from the socket's
        // (an IPv4 sockaddr sent on a dual-stack IPv6 socket).
        if family == 0 || user_family == AF_INET || user_family == AF_INET6 {
            family = user_family;
        }
        let port: u16 = dest.read(2);
        if user_family == AF_INET {
            ev.dport = u16::from_be(port);
            let a: [u8; 4] = dest.read(4);
            ev.daddr[..4].copy_from_slice(&a);
        } else if user_family == AF_INET6 {
            ev.dport = u16::from_be(port);
            ev.daddr = dest.read(8);
        } else if user_family == AF_UNIX {
            let max = dest.len.saturating_sub(2);
            let max = if max > UNIX_PATH_LEN as u32 { UNIX_PATH_LEN as u32 } else { max };
            let len = match dest.memory {
                Memory::User => rec.append_user_bytes(dest.addr + 2, max as u64),
                Memory::Kernel => rec.append_kernel_bytes(dest.addr + 2, max as u64),
            };
            rec.fixed().unix_len = len;
        }
    }
    rec.fixed().family = family;
    if let Some(f) = filter::config() {
        let f = if is_connect { &f.connect } else { &f.sendto };
        if !filter::net_wanted(f, family, c.results, rec.fixed().dport) {
            filter::count_filtered(c.evt_type);
            return false;
        }
    }
    let _ = rec.submit();
    true
}

/// A connect, sendto or sendmsg at its syscall's exit, native or 32-bit.
#[inline(always)]
pub fn sock_exit(c: &NetCall, dest: Destination) -> u32 {
    if is_daemon() {
        return 0;
    }
    let sk = kernel::file_sock(Task::current().fd_file(c.fd as u32));
    if c.evt_type != EventType::Connect && !send_names_destination(sk, dest.addr != 0) {
        return 0;
    }
    crate::cgroups::announce();
    report(c, sk, dest);
    0
}

/// One sendmmsg being walked, message by message, in [`mmsg_step`]. Kept in map memory, not
/// on the caller's stack: the verifier checks a bpf_loop callback from the caller's stack as it
/// was at the call, and so took the dedup test against the previous message for dead code.
#[repr(C)]
#[derive(Copy, Clone)]
pub struct MmsgWalk {
    vec: u64,
    sk: u64,
    ret: i64,
    /// The last message's destination (its sockaddr's address and length).
    last_name: u64,
    last_len: u32,
    fd: i32,
    count: u32,
    hdr_size: u32,
    namelen_at: u32,
    len_at: u32,
    ptr_size: u32,
    via: u8,
    call: u8,
    _pad: [u8; 2],
}

#[map]
static MMSG_WALK: PerCpuArray<MmsgWalk> = PerCpuArray::with_max_entries(1, 0);

/// sendmmsg at its exit: each message sent with a destination of its own is reported as a
/// sendmsg (`call` says it was sendmmsg); consecutive messages naming the same sockaddr are
/// reported once. Up to UIO_MAXIOV messages, walked with bpf_loop: the verifier checks one
/// step, not a thousand.
#[inline(always)]
pub fn sendmmsg_exit(ret: i64, fd: i32, vec: u64, vlen: u32, abi: Abi, via: Via, call: Call) -> u32 {
    if is_daemon() {
        return 0;
    }
    let sk = kernel::file_sock(Task::current().fd_file(fd as u32));
    // Messages are not read yet: on a connected socket, ones that name a destination are missed
    // (see the README's blind list).
    if !send_names_destination(sk, false) {
        return 0;
    }
    // A failed call sent nothing; its first message says where it was going.
    let count = if ret > 0 { ret as u32 } else { 1 };
    let count = if count > vlen { vlen } else { count };
    let count = if count > MAX_MMSG { MAX_MMSG } else { count };
    crate::cgroups::announce();
    let Some(walk) = MMSG_WALK.get_ptr_mut(0) else { return 0 };
    let state = MmsgWalk {
        vec,
        sk,
        ret,
        last_name: 0,
        last_len: 0,
        fd,
        count,
        hdr_size: abi.mmsghdr_size as u32,
        namelen_at: abi.msg_namelen as u32,
        len_at: abi.mmsg_len as u32,
        ptr_size: abi.ptr as u32,
        via: via as u8,
        call: call as u8,
        _pad: [0; 2],
    };
    unsafe {
        *walk = state;
        aya_ebpf::helpers::generated::bpf_loop(
            count,
            mmsg_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    0
}

/// Message `i` of a sendmmsg; returns 0 to go on.
#[inline(never)]
extern "C" fn mmsg_step(i: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(w) = MMSG_WALK.get_ptr_mut(0) else { return 1 };
    let w = unsafe { &mut *w };
    let hdr = w.vec + i * w.hdr_size as u64;
    let name = if w.ptr_size == 4 { kernel::user::<u32>(hdr) as u64 } else { kernel::user::<u64>(hdr) };
    let namelen: u32 = kernel::user(hdr + w.namelen_at as u64);
    if name == 0 || (name, namelen) == (w.last_name, w.last_len) {
        return 0;
    }
    w.last_name = name;
    w.last_len = namelen;
    let sent: u32 = kernel::user(hdr + w.len_at as u64);
    let ret = if w.ret > 0 { sent as i64 } else { w.ret };
    let c = NetCall {
        evt_type: EventType::Sendmsg,
        ret,
        results: result_class(ret),
        fd: w.fd,
        via: Via::from_u8(w.via).unwrap_or(Via::Syscall),
        call: Call::from_u8(w.call).unwrap_or(Call::Sendmmsg),
        flags: 0,
        iou_req: 0,
    };
    report(&c, w.sk, Destination { addr: name, len: namelen, memory: Memory::User });
    0
}

/// struct msghdr's destination (msg_name, msg_namelen) in this ABI's layout.
#[inline(always)]
pub fn msghdr_destination(msg: u64, abi: Abi) -> Destination {
    let name = abi.read_ptr(msg);
    if name == 0 {
        return Destination::NONE;
    }
    Destination { addr: name, len: kernel::user(msg + abi.msg_namelen), memory: Memory::User }
}

/// A native connect, sendto or sendmsg at its exit.
#[inline(always)]
fn native_exit(ctx: &TracePointContext) -> u32 {
    let (nr, n, a) = (syscall::nr(ctx), kernel::syscalls(), Args::current());
    let user = |addr, len| Destination { addr, len, memory: Memory::User };
    let (evt_type, dest) = if nr == n.connect {
        (EventType::Connect, user(a.get(1), a.get(2) as u32))
    } else if nr == n.sendto {
        (EventType::Sendto, user(a.get(4), a.get(5) as u32))
    } else if nr == n.sendmsg {
        (EventType::Sendmsg, msghdr_destination(a.get(1), Abi::NATIVE))
    } else {
        return 0;
    };
    // The common case, a send on a connected socket, costs only this test.
    if evt_type != EventType::Connect && dest.addr == 0 {
        return 0;
    }
    let ret = syscall::ret(ctx);
    let c = NetCall {
        evt_type,
        ret,
        results: result_class(ret),
        fd: a.int(0),
        via: Via::Syscall,
        call: Call::Same,
        flags: 0,
        iou_req: 0,
    };
    sock_exit(&c, dest)
}

/// Attached to sys_exit_connect, sys_exit_sendto and sys_exit_sendmsg (same record layout).
#[tracepoint]
pub fn sys_exit_sock_any(ctx: TracePointContext) -> u32 {
    native_exit(&ctx)
}

#[tracepoint]
pub fn sys_exit_sendmmsg(ctx: TracePointContext) -> u32 {
    let a = Args::current();
    sendmmsg_exit(
        syscall::ret(&ctx),
        a.int(0),
        a.get(1),
        a.get(2) as u32,
        Abi::NATIVE,
        Via::Syscall,
        Call::Sendmmsg,
    )
}

// ia32 numbers the backstop tells apart (arch/x86/entry/syscalls/syscall_32.tbl).
const IA32_SOCKETCALL: i64 = 102;
const IA32_CONNECT: i64 = 362;
const IA32_SENDTO: i64 = 369;
const IA32_SENDMSG: i64 = 370;
const IA32_SENDMMSG: i64 = 345;
const IA32_IO_URING_ENTER: i64 = 426;
const SYS_CONNECT: u32 = 3;

/// The TCP backstop: every TCP socket that leaves CLOSE for SYN_SENT is connecting, however it
/// got there. A connect(2) (native or 32-bit) and an io_uring connect were reported by their
/// own sensors; anything else (TCP Fast Open through sendto, sendmsg or sendmmsg, an io_uring
/// send with MSG_FASTOPEN, a call no sensor knows) is reported here as a connect whose result
/// the kernel has not decided yet. Runs in the connecting task's context.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let newstate: i32 = ctx.arg(2);
    if newstate != TCP_SYN_SENT || is_daemon() {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    let task = Task::current();
    let flags = task.flags();
    let io_worker = flags & PF_IO_WORKER != 0;
    // The kernel's own connects (NFS, iSCSI) come from kernel threads no rule is about.
    if flags & PF_KTHREAD != 0 && !io_worker {
        return 0;
    }
    let nr = kernel::current_syscall_nr();
    let ia32 = kernel::in_ia32_syscall(task);
    let n = kernel::syscalls();
    let (via, call) =
        if io_worker || (!ia32 && nr == n.io_uring_enter as i64) || (ia32 && nr == IA32_IO_URING_ENTER) {
            if unsafe { IOU_CONNECTS.get(sk) }.is_some() {
                let _ = IOU_CONNECTS.remove(sk);
                return 0;
            }
            (Via::IoUring, Call::Unknown)
        } else if ia32 {
            let call = match nr {
                IA32_CONNECT => return 0,
                IA32_SOCKETCALL => {
                    let sub = Args::ia32(kernel::syscall_regs()).get(0) as u32;
                    if sub == SYS_CONNECT {
                        return 0;
                    }
                    Call::Socketcall
                }
                IA32_SENDTO => Call::Sendto,
                IA32_SENDMSG => Call::Sendmsg,
                IA32_SENDMMSG => Call::Sendmmsg,
                _ => Call::Unknown,
            };
            (Via::Ia32, call)
        } else {
            let call = if nr == n.connect as i64 {
                return 0;
            } else if nr == n.sendto as i64 {
                Call::Sendto
            } else if nr == n.sendmsg as i64 {
                Call::Sendmsg
            } else if nr == n.sendmmsg as i64 {
                Call::Sendmmsg
            } else {
                Call::Unknown
            };
            (Via::Syscall, call)
        };
    let c = NetCall {
        evt_type: EventType::Connect,
        ret: 0,
        results: RESULTS,
        fd: -1,
        via,
        call,
        flags: REC_RESULT_UNKNOWN,
        iou_req: 0,
    };
    // The socket holds the destination already: tcp_v4_connect and tcp_v6_connect set it
    // before the state.
    crate::cgroups::announce();
    report(&c, sk, Destination::NONE);
    0
}
