//! Kernel programs of the monitor. Tracepoints only (no kprobes, fentry or LSM on the hosts we
//! target). Each program reads what only the kernel can know at that moment (resolved paths, the
//! socket's addresses, credentials) and leaves formatting, joining and lookups to userspace.
#![no_std]
#![no_main]

mod filter;
mod kernel;
mod record;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{btf_tracepoint, map, tracepoint},
    maps::{HashMap, LruHashMap},
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    CgroupEvent, ConnectEvent, DirKey, EXEC_ARGV_TRUNCATED, EXEC_EXE_UNLINKED, EXEC_EXECVEAT,
    EXEC_PATH_TRUNCATED, EXEC_SCRIPT, EventKind, ExecEvent, ExitEvent, ForkEvent, MAX_ARGV, OPEN_HAS_BASE,
    OPEN_HAS_DIR, OPEN_PATH_TRUNCATED, OPEN_RESOLVED, OpenEvent, RESULT_FAILED, Syscall, SyscallNumbers,
    UNIX_PATH_LEN, open_class,
};

use kernel::{Task, is_daemon, off, rd};
use record::Record;

// Syscall arguments are read at the exit from the task's saved registers (pt_regs), where they
// still are: no entry program, and no map entry per syscall to insert and delete.

/// cgroup ids whose path userspace has been sent (by an exec or a cgroup record).
#[map]
static CGROUPS_ANNOUNCED: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4096, 0);
/// Threads inside execveat, so the exec they lead to is reported as execveat.
#[map]
static EXECVEAT_TIDS: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

const AT_FDCWD: i32 = -100;
const O_CREAT: u32 = 0o100;
const O_WRONLY: u32 = 0o1;
const O_TRUNC: u32 = 0o1000;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_DGRAM: u16 = 2;
const TCP_ESTABLISHED: u8 = 1;

// Offsets in the syscalls:sys_enter_* / sys_exit_* records (see their format files).
const ARG2: usize = 32;
const RET: usize = 16;
const SYSCALL_NR: usize = 8;

/// Sends the path of the current task's cgroup before its first event, so it resolves even if
/// the cgroup is gone when userspace reads the event. Must run before the event's own record
/// is begun: both use the same per-CPU buffer.
#[inline(always)]
fn announce_cgroup() {
    let id = unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() };
    if unsafe { CGROUPS_ANNOUNCED.get(&id) }.is_some() {
        return;
    }
    let Some(mut rec) = Record::begin::<CgroupEvent>(EventKind::Cgroup) else { return };
    let len = rec.append_cgroup_path(Task::current().cgroup_kn());
    rec.fixed::<CgroupEvent>().path_len = len;
    // Only what reached the ring counts as announced; a dropped one is sent again next time.
    if rec.submit() {
        let _ = CGROUPS_ANNOUNCED.insert(&id, &1, 0);
    }
}

#[inline(always)]
fn arg<T>(ctx: &TracePointContext, offset: usize) -> T {
    unsafe { ctx.read_at::<T>(offset).unwrap_or(core::mem::zeroed()) }
}

// ---------------------------------------------------------------------------------------------
// Process lifecycle

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    let task = Task(ctx.arg::<u64>(0));
    let old_tid: u32 = ctx.arg(1);
    let bprm: u64 = ctx.arg(2);
    if is_daemon() {
        return 0;
    }
    let Some(mut rec) = Record::begin::<ExecEvent>(EventKind::Exec) else { return 0 };
    let ev: &mut ExecEvent = rec.fixed();
    let parent = task.real_parent();
    ev.ppid = parent.tgid();
    ev.parent_start_ns = parent.process_start_ns();
    ev.start_ns = task.process_start_ns();
    ev.old_tid = old_tid;
    let cred: u64 = rd(task.0 + off!(task_real_cred));
    ev.euid = rd(cred + off!(cred_euid));
    ev.egid = rd(cred + off!(cred_egid));
    ev.loginuid = rd(task.0 + off!(task_loginuid));
    let (vpid, pidns) = task.vpid_and_pidns();
    ev.vpid = vpid;
    ev.pidns = pidns;
    ev.mntns = task.mntns();
    let (major, minor) = task.tty();
    ev.tty_major = major;
    ev.tty_minor = minor;
    ev.comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or_default();
    // Written in place: a StdioFd built on the stack would carry its constant fd kind into
    // the verifier's state and multiply the paths it explores.
    kernel::stdio_fd(task.fd_file(0), &mut ev.stdio[0]);
    kernel::stdio_fd(task.fd_file(1), &mut ev.stdio[1]);
    kernel::stdio_fd(task.fd_file(2), &mut ev.stdio[2]);
    let mm: u64 = rd(task.0 + off!(task_mm));
    let exe: u64 = rd(mm + off!(mm_exe_file));
    let mut flags = 0u16;
    if exe != 0 {
        let inode: u64 = rd(exe + off!(file_f_inode));
        ev.exe_ino = rd(inode + off!(inode_i_ino));
        ev.exe_nlink = rd(inode + off!(inode_i_nlink));
        let sb: u64 = rd(inode + off!(inode_i_sb));
        ev.exe_dev = rd(sb + off!(super_block_s_dev));
        if ev.exe_nlink == 0 {
            flags |= EXEC_EXE_UNLINKED;
        }
    }
    let (root_mnt, root_dentry) = task.root();
    // Sections, in the order ExecEvent documents.
    let (len, cut) = rec.append_file_path(exe, root_mnt, root_dentry);
    rec.fixed::<ExecEvent>().exe_len = len;
    let filename: u64 = rd(bprm + off!(binprm_filename));
    let interp: u64 = rd(bprm + off!(binprm_interp));
    if filename != interp {
        flags |= EXEC_SCRIPT;
    }
    if unsafe { EXECVEAT_TIDS.get(&old_tid) }.is_some() {
        let _ = EXECVEAT_TIDS.remove(&old_tid);
        flags |= EXEC_EXECVEAT;
    }
    let flen = rec.append_kernel_str(filename);
    rec.fixed::<ExecEvent>().script_len = flen;
    let fs: u64 = rd(task.0 + off!(task_fs));
    let pwd = fs + off!(fs_pwd);
    let (clen, ccut) =
        rec.append_path(rd(pwd + off!(path_mnt)), rd(pwd + off!(path_dentry)), root_mnt, root_dentry);
    rec.fixed::<ExecEvent>().cwd_len = clen;
    let glen = rec.append_cgroup_path(task.cgroup_kn());
    rec.fixed::<ExecEvent>().cgroup_len = glen;
    let arg_start: u64 = rd(mm + off!(mm_arg_start));
    let arg_end: u64 = rd(mm + off!(mm_arg_end));
    let mut total = arg_end.wrapping_sub(arg_start);
    if total > MAX_ARGV as u64 - 1 {
        flags |= EXEC_ARGV_TRUNCATED;
        total = MAX_ARGV as u64 - 1;
    }
    let alen = rec.append_user_bytes(arg_start, total);
    rec.fixed::<ExecEvent>().argv_len = alen;
    if cut || ccut {
        flags |= EXEC_PATH_TRUNCATED;
    }
    rec.fixed::<ExecEvent>().header.flags = flags;
    let cgroup_id = rec.fixed::<ExecEvent>().header.cgroup_id;
    if rec.submit() {
        // The exec record carries the cgroup path itself.
        let _ = CGROUPS_ANNOUNCED.insert(&cgroup_id, &1, 0);
    }
    0
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let child = Task(ctx.arg::<u64>(1));
    let child_tid = child.tid();
    let child_tgid = child.tgid();
    // Threads share their process's table entry; only new processes matter.
    if child_tid != child_tgid || is_daemon() {
        return 0;
    }
    let Some(mut rec) = Record::begin::<ForkEvent>(EventKind::Fork) else { return 0 };
    let ev: &mut ForkEvent = rec.fixed();
    ev.header.pid = child_tgid;
    ev.header.tid = child_tid;
    let parent = child.real_parent();
    ev.ppid = parent.tgid();
    ev.parent_start_ns = parent.process_start_ns();
    ev.start_ns = child.process_start_ns();
    ev.comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or_default();
    let _ = rec.submit();
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    let task = Task(ctx.arg::<u64>(0));
    if is_daemon() {
        return 0;
    }
    // Only the last thread's exit ends the process.
    let signal: u64 = rd(task.0 + off!(task_signal));
    let live: i32 = rd(signal + off!(signal_live));
    if live != 0 {
        return 0;
    }
    let Some(mut rec) = Record::begin::<ExitEvent>(EventKind::Exit) else { return 0 };
    let ev: &mut ExitEvent = rec.fixed();
    ev.start_ns = task.process_start_ns();
    let group_code: i32 = rd(signal + off!(signal_group_exit_code));
    ev.exit_code = if group_code != 0 { group_code } else { rd(task.0 + off!(task_exit_code)) };
    let _ = rec.submit();
    0
}

#[tracepoint]
pub fn sys_enter_execveat(_ctx: TracePointContext) -> u32 {
    if !is_daemon() {
        let tid = bpf_get_current_pid_tgid() as u32;
        let _ = EXECVEAT_TIDS.insert(&tid, &1, 0);
    }
    0
}

/// Only a failed execveat returns; a successful one was consumed at sched_process_exec.
#[tracepoint]
pub fn sys_exit_execveat(_ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = EXECVEAT_TIDS.remove(&tid);
    0
}

// ---------------------------------------------------------------------------------------------
// File opens

/// An open's arguments, as its syscall took them.
struct OpenArgs {
    filename: u64,
    flags: u32,
    mode: u32,
    dfd: i32,
    syscall: u8,
}

/// At a syscall exit: which syscall it was, this architecture's numbers, and the saved
/// registers holding its arguments.
#[inline(always)]
fn exiting_syscall(ctx: &TracePointContext) -> (i32, SyscallNumbers, u64) {
    (arg(ctx, SYSCALL_NR), kernel::syscalls(), kernel::syscall_regs())
}

#[inline(always)]
fn open_args(ctx: &TracePointContext) -> Option<OpenArgs> {
    let (nr, n, regs) = exiting_syscall(ctx);
    let a = |i| kernel::syscall_arg(regs, i);
    Some(if nr == n.openat {
        OpenArgs {
            filename: a(1),
            flags: a(2) as u32,
            mode: a(3) as u32,
            dfd: a(0) as i32,
            syscall: Syscall::OpenAt as u8,
        }
    } else if nr == n.open {
        OpenArgs {
            filename: a(0),
            flags: a(1) as u32,
            mode: a(2) as u32,
            dfd: AT_FDCWD,
            syscall: Syscall::Open as u8,
        }
    } else if nr == n.openat2 {
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        let how = a(2);
        let flags: u64 = unsafe { bpf_probe_read_user(how as *const u64).unwrap_or(0) };
        let mode: u64 = unsafe { bpf_probe_read_user((how + 8) as *const u64).unwrap_or(0) };
        OpenArgs {
            filename: a(1),
            flags: flags as u32,
            mode: mode as u32,
            dfd: a(0) as i32,
            syscall: Syscall::OpenAt2 as u8,
        }
    } else if nr == n.creat {
        OpenArgs {
            filename: a(0),
            flags: O_CREAT | O_WRONLY | O_TRUNC,
            mode: a(1) as u32,
            dfd: AT_FDCWD,
            syscall: Syscall::Creat as u8,
        }
    } else {
        return None;
    })
}

fn open_exit(ctx: &TracePointContext) -> u32 {
    if is_daemon() {
        return 0;
    }
    let ret: i64 = arg(ctx, RET);
    let filter = filter::config();
    // A failed open no rule wants costs only this test: its arguments are not even read.
    if let Some(c) = filter
        && ret < 0
        && c.open.results & RESULT_FAILED == 0
    {
        filter::count_filtered(EventKind::Open as u32);
        return 0;
    }
    let Some(args) = open_args(ctx) else { return 0 };
    let class = open_class(args.flags);
    // Dismissed before anything else is read: by the open's flags and result, then by what
    // its directory's verdict says, all before the path walk.
    if let Some(c) = filter
        && !filter::open_wanted(c, class, ret)
    {
        filter::count_filtered(EventKind::Open as u32);
        return 0;
    }
    let task = Task::current();
    let (root_mnt, root_dentry) = task.root();
    // Another thread may have closed the fd already; then only the caller's string is left.
    let file = if ret >= 0 { task.fd_file(ret as u32) } else { 0 };
    let mut dir = DirKey { root_mnt, root_dentry, ..DirKey::default() };
    let mut has_dir = false;
    let (mut ino, mut dev) = (0u64, 0u32);
    if file != 0 {
        let inode: u64 = rd(file + off!(file_f_inode));
        ino = rd(inode + off!(inode_i_ino));
        let sb: u64 = rd(inode + off!(inode_i_sb));
        dev = rd(sb + off!(super_block_s_dev));
        let (mnt, dentry) = kernel::read_path(file + off!(file_f_path));
        // A mount's root has no directory of its own on that mount: the walk names it by its
        // mount point, so it gets no verdict.
        let mnt_root: u64 = rd(mnt + off!(vfsmount_mnt_root));
        if dentry != mnt_root {
            let parent: u64 = rd(dentry + off!(dentry_d_parent));
            let parent_inode: u64 = rd(parent + off!(dentry_d_inode));
            dir.ino = rd(parent_inode + off!(inode_i_ino));
            dir.dev = dev;
            dir.mnt = mnt;
            has_dir = true;
            if let Some(c) = filter
                && filter::dir_dismisses(c, &dir, class, dentry, ino, dev)
            {
                filter::count_filtered(EventKind::Open as u32);
                return 0;
            }
        }
    }
    announce_cgroup();
    let Some(mut rec) = Record::begin::<OpenEvent>(EventKind::Open) else { return 0 };
    let ev: &mut OpenEvent = rec.fixed();
    ev.ret = ret;
    ev.flags = args.flags;
    ev.mode = args.mode;
    ev.dirfd = args.dfd;
    ev.syscall = args.syscall;
    let mut flags = 0u16;
    if has_dir {
        ev.dir = dir;
        ev.path_gen = filter::path_gen();
        flags |= OPEN_HAS_DIR;
    }
    if file != 0 {
        ev.ino = ino;
        ev.dev = dev;
        let (len, cut) = rec.append_file_path(file, root_mnt, root_dentry);
        rec.fixed::<OpenEvent>().path_len = len;
        flags |= OPEN_RESOLVED;
        if cut {
            flags |= OPEN_PATH_TRUNCATED;
        }
    } else {
        let (len, first) = rec.append_user_str(args.filename);
        rec.fixed::<OpenEvent>().path_len = len;
        if len > 0 && first != b'/' {
            // Relative: report the directory it was relative to, resolved now.
            let (blen, cut) = if args.dfd == AT_FDCWD {
                let fs: u64 = rd(task.0 + off!(task_fs));
                let pwd = fs + off!(fs_pwd);
                rec.append_path(rd(pwd + off!(path_mnt)), rd(pwd + off!(path_dentry)), root_mnt, root_dentry)
            } else if args.dfd >= 0 {
                rec.append_file_path(task.fd_file(args.dfd as u32), root_mnt, root_dentry)
            } else {
                (0, false)
            };
            rec.fixed::<OpenEvent>().base_len = blen;
            flags |= OPEN_HAS_BASE;
            if cut {
                flags |= OPEN_PATH_TRUNCATED;
            }
        }
    }
    rec.fixed::<OpenEvent>().header.flags = flags;
    let _ = rec.submit();
    0
}

/// Attached to sys_exit_open, sys_exit_openat, sys_exit_openat2 and sys_exit_creat: their
/// records have the same layout, and one program is verified once instead of four times.
#[tracepoint]
pub fn sys_exit_open_any(ctx: TracePointContext) -> u32 {
    open_exit(&ctx)
}

// ---------------------------------------------------------------------------------------------
// Network: connect, and sends that name their destination

/// A connect's or send's arguments: the destination the caller named, if any.
struct SockArgs {
    addr: u64,
    addrlen: u32,
    fd: i32,
    syscall: u8,
}

#[inline(always)]
fn sock_args(ctx: &TracePointContext) -> Option<SockArgs> {
    let (nr, n, regs) = exiting_syscall(ctx);
    let a = |i| kernel::syscall_arg(regs, i);
    if nr == n.connect {
        return Some(SockArgs {
            addr: a(1),
            addrlen: a(2) as u32,
            fd: a(0) as i32,
            syscall: Syscall::Connect as u8,
        });
    }
    if nr == n.sendto {
        let addr = a(4);
        // The common case, a send on a connected socket, costs only this test.
        if addr == 0 {
            return None;
        }
        return Some(SockArgs {
            addr,
            addrlen: a(5) as u32,
            fd: a(0) as i32,
            syscall: Syscall::SendTo as u8,
        });
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
            syscall: Syscall::SendMsg as u8,
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
    let ret: i64 = arg(ctx, RET);
    let task = Task::current();
    let sk = kernel::file_sock(task.fd_file(args.fd as u32));
    let is_connect = args.syscall == Syscall::Connect as u8;
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
    announce_cgroup();
    let kind = if is_connect { EventKind::Connect } else { EventKind::SendTo };
    let Some(mut rec) = Record::begin::<ConnectEvent>(kind) else { return 0 };
    let ev: &mut ConnectEvent = rec.fixed();
    ev.ret = ret;
    ev.fd = args.fd;
    ev.syscall = args.syscall;
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
            let max = if args.addrlen > 2 { args.addrlen - 2 } else { 0 };
            let max = if max > UNIX_PATH_LEN as u32 { UNIX_PATH_LEN as u32 } else { max };
            let len = rec.append_user_bytes(args.addr + 2, max as u64);
            rec.fixed::<ConnectEvent>().unix_len = len;
        }
    }
    rec.fixed::<ConnectEvent>().family = family;
    if let Some(c) = filter::config() {
        let f = if is_connect { &c.connect } else { &c.sendto };
        if !filter::net_wanted(f, family, ret, rec.fixed::<ConnectEvent>().dport) {
            filter::count_filtered(kind as u32);
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

// ---------------------------------------------------------------------------------------------
// Path changes: a directory verdict is only as good as the path it was made for

/// Attached to the exits of rename, renameat, renameat2, rmdir, mount, umount, move_mount and
/// pivot_root: once one succeeds, a directory may have a new path (or its inode a new
/// directory), so verdicts made before are void.
#[tracepoint]
pub fn sys_exit_path_change(ctx: TracePointContext) -> u32 {
    let ret: i64 = arg(&ctx, RET);
    if ret == 0 {
        filter::bump_path_gen();
    }
    0
}

const AT_REMOVEDIR: u64 = 0x200;

/// unlinkat(AT_REMOVEDIR) is rmdir. Counted at entry: a directory can only go once empty, so
/// no verdict can be made for it between here and its removal.
#[tracepoint]
pub fn sys_enter_unlinkat(ctx: TracePointContext) -> u32 {
    let flag: u64 = arg(&ctx, ARG2);
    if flag & AT_REMOVEDIR != 0 {
        filter::bump_path_gen();
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
