//! Reading kernel structures through probe reads, at offsets from the running kernel's BTF.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel, bpf_probe_read_user,
};
use monitor_common::{FdKind, KernelOffsets, NO_OFFSET, StdioFd, SyscallNumbers};

/// Filled in by the loader from BTF (see monitor-common's KernelOffsets).
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };
/// Filled in by the loader: this architecture's syscall numbers.
#[unsafe(no_mangle)]
pub static SYSCALLS: SyscallNumbers = unsafe { core::mem::zeroed() };
/// The daemon's own tgid: its activity is never reported, so it cannot watch itself in a loop.
#[unsafe(no_mangle)]
pub static DAEMON_TGID: u32 = 0;

/// Reads one offset. The volatile read keeps LLVM from folding the load-time global to its
/// compile-time value (zero).
/// The dirfd that means the cwd.
pub const AT_FDCWD: i32 = -100;

macro_rules! off {
    ($f:ident) => {
        (unsafe { core::ptr::read_volatile(&raw const $crate::kernel::OFFSETS.$f) } as u64)
    };
}
pub(crate) use off;

#[inline(always)]
pub fn rd<T: Copy>(addr: u64) -> T {
    unsafe { bpf_probe_read_kernel(addr as *const T).unwrap_or(core::mem::zeroed()) }
}

/// A value in the current task's user memory; zero when it cannot be read.
#[inline(always)]
pub fn user<T: Copy>(addr: u64) -> T {
    unsafe { bpf_probe_read_user(addr as *const T).unwrap_or(core::mem::zeroed()) }
}

/// This architecture's syscall numbers (see SYSCALLS).
#[inline(always)]
pub fn syscalls() -> SyscallNumbers {
    unsafe { core::ptr::read_volatile(&raw const SYSCALLS) }
}

/// The current task's saved user registers, where a syscall's arguments still are at its exit.
#[inline(always)]
pub fn syscall_regs() -> u64 {
    use aya_ebpf::helpers::generated::{bpf_get_current_task_btf, bpf_task_pt_regs};
    unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as u64 }
}

/// Syscall argument `n` (0-5) from the saved registers.
#[inline(always)]
pub fn syscall_arg(regs: u64, n: u32) -> u64 {
    let o = match n {
        0 => off!(regs_arg0),
        1 => off!(regs_arg1),
        2 => off!(regs_arg2),
        3 => off!(regs_arg3),
        4 => off!(regs_arg4),
        _ => off!(regs_arg5),
    };
    rd(regs + o)
}

/// A struct path as (vfsmount, dentry), in one read of its two pointers.
#[inline(always)]
pub fn read_path(addr: u64) -> (u64, u64) {
    let p: [u64; 2] = rd(addr);
    ((p[(off!(path_mnt) / 8) as usize & 1]), p[(off!(path_dentry) / 8) as usize & 1])
}

/// x86's thread_info.status bit for a task inside a 32-bit syscall (arch/x86/include/asm/
/// thread_info.h); set from entry until just before the return to user mode.
const TS_COMPAT: u32 = 0x0002;
/// task_struct.flags (include/linux/sched.h).
pub const PF_KTHREAD: u32 = 0x0020_0000;
/// An io_uring worker or SQPOLL thread: a thread of the process whose requests it runs.
pub const PF_IO_WORKER: u32 = 0x0000_0010;

/// Whether `task` is inside a 32-bit syscall.
#[inline(always)]
pub fn in_ia32_syscall(task: Task) -> bool {
    let o = unsafe { core::ptr::read_volatile(&raw const OFFSETS.task_ti_status) };
    o != NO_OFFSET && rd::<u32>(task.0 + o as u64) & TS_COMPAT != 0
}

/// Whether the current task is inside a 32-bit syscall, read straight from its task_struct
/// (a BTF pointer, no helper call): the ia32 program asks this at every syscall's exit. The
/// offset comes from frozen read-only data, so the verifier sees a constant and checks the load
/// against task_struct's BTF.
#[inline(always)]
pub fn current_in_ia32_syscall() -> bool {
    use aya_ebpf::helpers::generated::bpf_get_current_task_btf;
    let o = unsafe { core::ptr::read_volatile(&raw const OFFSETS.task_ti_status) };
    if o == NO_OFFSET {
        return false;
    }
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let status = unsafe { core::ptr::read_volatile(task.add(o as usize) as *const u32) };
    status & TS_COMPAT != 0
}

/// The number of the syscall `task` is in, from its saved registers.
#[inline(always)]
pub fn current_syscall_nr() -> i64 {
    rd::<i64>(syscall_regs() + off!(regs_nr))
}

#[inline(always)]
pub fn is_daemon() -> bool {
    let daemon = unsafe { core::ptr::read_volatile(&raw const DAEMON_TGID) };
    (bpf_get_current_pid_tgid() >> 32) as u32 == daemon
}

/// A struct pid's number entry (struct upid) for pid-namespace `level`.
#[inline(always)]
fn upid_at(pid: u64, level: u32) -> u64 {
    pid + off!(pid_numbers) + ((level & 31) as u64) * off!(upid_size)
}

#[derive(Copy, Clone)]
pub struct Task(pub u64);

impl Task {
    #[inline(always)]
    pub fn current() -> Self {
        Task(unsafe { bpf_get_current_task() })
    }

    #[inline(always)]
    pub fn flags(self) -> u32 {
        rd(self.0 + off!(task_flags))
    }

    #[inline(always)]
    pub fn tid(self) -> u32 {
        rd(self.0 + off!(task_pid))
    }

    #[inline(always)]
    pub fn tgid(self) -> u32 {
        rd(self.0 + off!(task_tgid))
    }

    #[inline(always)]
    pub fn real_parent(self) -> Task {
        Task(rd(self.0 + off!(task_real_parent)))
    }

    /// Start time of the task's process (its thread-group leader), CLOCK_BOOTTIME ns: with the
    /// pid, the identity of a process that pid reuse cannot confuse.
    #[inline(always)]
    pub fn process_start_ns(self) -> u64 {
        let leader: u64 = rd(self.0 + off!(task_group_leader));
        rd(leader + off!(task_start_boottime))
    }

    /// The task's pid in its own pid namespace, that namespace's inode number, and its level
    /// (how deep it is nested).
    #[inline(always)]
    pub fn vpid_pidns_level(self) -> (u32, u32, u32) {
        let pid: u64 = rd(self.0 + off!(task_thread_pid));
        if pid == 0 {
            return (0, 0, 0);
        }
        let level: u32 = rd(pid + off!(pid_level));
        let upid = upid_at(pid, level);
        let ns: u64 = rd(upid + off!(upid_ns));
        (rd(upid + off!(upid_nr)), rd(ns + off!(pid_namespace_inum)), level)
    }

    /// The ids of the task's process group and session as seen from pid namespace `level`
    /// (the task's own): 0 for one made outside that namespace, as pid_nr_ns() gives.
    #[inline(always)]
    pub fn vpgid_vsid(self, level: u32) -> (u32, u32) {
        /// PIDTYPE_PGID (include/linux/pid_types.h) as an index of pids[]; PIDTYPE_SID
        /// follows it, so one read takes both.
        const PGID: u64 = 2;
        let signal: u64 = rd(self.0 + off!(task_signal));
        let pids: [u64; 2] = rd(signal + off!(signal_pids) + PGID * 8);
        let nr_at = |pid: u64| -> u32 {
            if pid == 0 || rd::<u32>(pid + off!(pid_level)) < level {
                return 0;
            }
            rd(upid_at(pid, level) + off!(upid_nr))
        };
        (nr_at(pids[0]), nr_at(pids[1]))
    }

    #[inline(always)]
    pub fn mntns(self) -> u32 {
        let nsproxy: u64 = rd(self.0 + off!(task_nsproxy));
        if nsproxy == 0 {
            return 0;
        }
        let mnt_ns: u64 = rd(nsproxy + off!(nsproxy_mnt_ns));
        rd(mnt_ns + off!(mnt_namespace_inum))
    }

    /// Controlling terminal as (major, minor); (0, 0) without one.
    #[inline(always)]
    pub fn tty(self) -> (u32, u32) {
        let signal: u64 = rd(self.0 + off!(task_signal));
        let tty: u64 = rd(signal + off!(signal_tty));
        if tty == 0 {
            return (0, 0);
        }
        let index: i32 = rd(tty + off!(tty_index));
        let driver: u64 = rd(tty + off!(tty_driver));
        let major: i32 = rd(driver + off!(tty_driver_major));
        let minor_start: i32 = rd(driver + off!(tty_driver_minor_start));
        (major as u32, (minor_start + index) as u32)
    }

    /// The struct file behind one of the task's descriptors, or 0.
    #[inline(always)]
    pub fn fd_file(self, fd: u32) -> u64 {
        let files: u64 = rd(self.0 + off!(task_files));
        let fdt: u64 = rd(files + off!(files_fdt));
        let max: u32 = rd(fdt + off!(fdtable_max_fds));
        if fd >= max {
            return 0;
        }
        let fds: u64 = rd(fdt + off!(fdtable_fd));
        rd(fds + (fd as u64) * 8)
    }

    /// The task's root directory as (vfsmount, dentry): path walks stop there, as d_path does.
    #[inline(always)]
    pub fn root(self) -> (u64, u64) {
        let fs: u64 = rd(self.0 + off!(task_fs));
        read_path(fs + off!(fs_root))
    }

    /// kernfs node of the task's cgroup in the unified (v2) hierarchy.
    #[inline(always)]
    pub fn cgroup_kn(self) -> u64 {
        let cset: u64 = rd(self.0 + off!(task_cgroups));
        let cgrp: u64 = rd(cset + off!(css_set_dfl_cgrp));
        rd(cgrp + off!(cgroup_kn))
    }
}

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const S_IFREG: u16 = 0o100000;
const S_IFBLK: u16 = 0o060000;
const S_IFDIR: u16 = 0o040000;
const S_IFCHR: u16 = 0o020000;
const S_IFIFO: u16 = 0o010000;

#[inline(always)]
fn file_mode(file: u64) -> u16 {
    let inode: u64 = rd(file + off!(file_f_inode));
    rd(inode + off!(inode_i_mode))
}

/// The file's open flags (f_flags: O_ACCMODE, O_PATH, ...).
#[inline(always)]
pub fn file_flags(file: u64) -> u32 {
    if file == 0 { 0 } else { rd(file + off!(file_f_flags)) }
}

/// The file in slot `index` of an io_uring ring's fixed-file table, or 0.
#[inline(always)]
pub fn iou_fixed_file(ctx: u64, index: u32) -> u64 {
    let nr: u32 = rd(ctx + off!(iou_ctx_files_nr));
    if index >= nr {
        return 0;
    }
    let nodes: u64 = rd(ctx + off!(iou_ctx_files_nodes));
    let node: u64 = rd(nodes + index as u64 * 8);
    if node == 0 {
        return 0;
    }
    // The low bits of file_ptr are io_uring's flags (FFS_NOWAIT, FFS_ISREG).
    rd::<u64>(node + off!(iou_rsrc_node_file_ptr)) & !3
}

/// The struct sock behind a socket file, or 0 when the file is not a socket.
#[inline(always)]
pub fn file_sock(file: u64) -> u64 {
    if file == 0 || file_mode(file) & S_IFMT != S_IFSOCK {
        return 0;
    }
    let socket: u64 = rd(file + off!(file_private_data));
    rd(socket + off!(socket_sk))
}

/// What one of fds 0-2 is: a shell whose stdio is a network socket is a reverse shell.
#[inline(always)]
pub fn stdio_fd(file: u64, out: &mut StdioFd) {
    if file == 0 {
        return;
    }
    let inode: u64 = rd(file + off!(file_f_inode));
    let mode: u16 = rd(inode + off!(inode_i_mode));
    let fmt = mode & S_IFMT;
    out.kind = match fmt {
        S_IFREG => FdKind::File,
        S_IFDIR => FdKind::Directory,
        S_IFIFO => FdKind::Pipe,
        S_IFSOCK => FdKind::Socket,
        S_IFCHR => FdKind::CharDevice,
        S_IFBLK => FdKind::BlockDevice,
        _ => FdKind::Other,
    } as u8;
    if fmt == S_IFCHR {
        // Userspace tells ttys from other character devices by major number.
        out.rdev = rd(inode + off!(inode_i_rdev));
    }
    if fmt != S_IFSOCK {
        return;
    }
    let socket: u64 = rd(file + off!(file_private_data));
    let sk: u64 = rd(socket + off!(socket_sk));
    let family: u16 = rd(sk + off!(sock_family));
    out.family = family;
    out.sock_type = rd::<u16>(sk + off!(sock_type)) as u8;
    out.protocol = rd(sk + off!(sock_protocol));
    out.local_port = rd(sk + off!(sock_num));
    out.peer_port = u16::from_be(rd(sk + off!(sock_dport)));
    // Both address forms are copied whatever the family; userspace picks by family. Fewer
    // branches here keep the verifier's path count down.
    out.local_addr = rd(sk + off!(sock_v6_rcv_saddr));
    out.peer_addr = rd(sk + off!(sock_v6_daddr));
    if family == 2 {
        out.peer_addr[..4].copy_from_slice(&rd::<[u8; 4]>(sk + off!(sock_daddr)));
        out.local_addr[..4].copy_from_slice(&rd::<[u8; 4]>(sk + off!(sock_rcv_saddr)));
    }
}
