//! Connects, and sends that name their destination (sendto, sendmsg on an unconnected datagram
//! socket), dismissed by the in-kernel filter where no rule can match them.

use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};
use monitor_common::{AF_INET, AF_INET6, AF_UNIX, EventType, NetEvent, UNIX_PATH_LEN};

use crate::kernel::{self, Task, is_daemon, off, rd};
use crate::record::Record;
use crate::{filter, syscall};

const SOCK_DGRAM: u16 = 2;
const TCP_ESTABLISHED: u8 = 1;

/// A connect's or send's arguments: the destination the caller named, if any.
struct SockArgs {
    addr: u64,
    addrlen: u32,
    fd: i32,
    evt_type: EventType,
}

#[inline(always)]
fn sock_args(ctx: &TracePointContext) -> Option<SockArgs> {
    let (nr, n, regs) = (syscall::nr(ctx), kernel::syscalls(), syscall::Args::current());
    let a = |i| regs.get(i);
    if nr == n.connect {
        return Some(SockArgs {
            addr: a(1),
            addrlen: a(2) as u32,
            fd: a(0) as i32,
            evt_type: EventType::Connect,
        });
    }
    if nr == n.sendto {
        let addr = a(4);
        // The common case, a send on a connected socket, costs only this test.
        if addr == 0 {
            return None;
        }
        return Some(SockArgs { addr, addrlen: a(5) as u32, fd: a(0) as i32, evt_type: EventType::Sendto });
    }
    if nr == n.sendmsg {
        let msg = a(1);
        // struct user_msghdr { void *msg_name; int msg_namelen; ... }
        let name: u64 = unsafe { bpf_probe_read_user(msg as *const u64).unwrap_or(0) };
        if name == 0 {
            return None;
        }
        let namelen: u32 = unsafe { bpf_probe_read_user((msg + 8) as *const u32).unwrap_or(0) };
        return Some(SockArgs {
            addr: name,
            addrlen: namelen,
            fd: a(0) as i32,
            evt_type: EventType::Sendmsg,
        });
    }
    None
}

#[inline(always)]
fn sock_exit(ctx: &TracePointContext) -> u32 {
    if is_daemon() {
        return 0;
    }
    let Some(args) = sock_args(ctx) else { return 0 };
    let ret = syscall::ret(ctx);
    let task = Task::current();
    let sk = kernel::file_sock(task.fd_file(args.fd as u32));
    let is_connect = args.evt_type == EventType::Connect;
    if !is_connect {
        // Only sends that pick their destination per datagram are connection-like events.
        if sk == 0 {
            return 0;
        }
        let sock_type: u16 = rd(sk + off!(sock_type));
        let state: u8 = rd(sk + off!(sock_state));
        if sock_type != SOCK_DGRAM || state == TCP_ESTABLISHED {
            return 0;
        }
    }
    crate::cgroups::announce();
    let Some(mut rec) = Record::<NetEvent>::begin() else { return 0 };
    let ev = rec.fixed();
    ev.ret = ret;
    ev.fd = args.fd;
    ev.evt_type = args.evt_type as u8;
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
    // sockets), report the caller's sockaddr.
    if ev.from_socket == 0 && args.addr != 0 {
        let user_family: u16 = unsafe { bpf_probe_read_user(args.addr as *const u16).unwrap_or(0) };
        // The address is laid out as the caller's family, which may differ from the socket's
        // (an IPv4 sockaddr sent on a dual-stack IPv6 socket).
        if family == 0 || user_family == AF_INET || user_family == AF_INET6 {
            family = user_family;
        }
        let port: u16 = unsafe { bpf_probe_read_user((args.addr + 2) as *const u16).unwrap_or(0) };
        if user_family == AF_INET {
            ev.dport = u16::from_be(port);
            let a: [u8; 4] =
                unsafe { bpf_probe_read_user((args.addr + 4) as *const [u8; 4]).unwrap_or_default() };
            ev.daddr[..4].copy_from_slice(&a);
        } else if user_family == AF_INET6 {
            ev.dport = u16::from_be(port);
            ev.daddr = unsafe { bpf_probe_read_user((args.addr + 8) as *const [u8; 16]).unwrap_or_default() };
        } else if user_family == AF_UNIX {
            let max = args.addrlen.saturating_sub(2);
            let max = if max > UNIX_PATH_LEN as u32 { UNIX_PATH_LEN as u32 } else { max };
            let len = rec.append_user_bytes(args.addr + 2, max as u64);
            rec.fixed().unix_len = len;
        }
    }
    rec.fixed().family = family;
    if let Some(c) = filter::config() {
        let f = if is_connect { &c.connect } else { &c.sendto };
        if !filter::net_wanted(f, family, ret, rec.fixed().dport) {
            filter::count_filtered(args.evt_type);
            return 0;
        }
    }
    let _ = rec.submit();
    0
}

/// Attached to sys_exit_connect, sys_exit_sendto and sys_exit_sendmsg (same record layout).
#[tracepoint]
pub fn sys_exit_sock_any(ctx: TracePointContext) -> u32 {
    sock_exit(&ctx)
}
