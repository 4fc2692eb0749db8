//! Process lifecycle: exec (with what execveat changes), fork, exit. Never filtered: the
//! process table must see every change.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_tracepoint, map, tracepoint},
    maps::HashMap,
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    EXEC_ARGV_TRUNCATED, EXEC_ENV_TRUNCATED, EXEC_EXE_LOWER_LAYER, EXEC_EXE_UNLINKED, EXEC_EXE_UPPER_LAYER,
    EXEC_EXECVEAT, EXEC_PATH_TRUNCATED, EXEC_SCRIPT, ExecEvent, ExitEvent, ForkEvent, MAX_ARGV, MAX_ENV,
};

use crate::kernel::{self, Task, is_daemon, off, rd};
use crate::record::Record;

/// Threads inside execveat, so the exec they lead to is reported as execveat.
#[map]
static EXECVEAT_TIDS: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    let task = Task(ctx.arg::<u64>(0));
    let old_tid: u32 = ctx.arg(1);
    let bprm: u64 = ctx.arg(2);
    if is_daemon() {
        return 0;
    }
    let Some(mut rec) = Record::<ExecEvent>::begin() else { return 0 };
    let ev = rec.fixed();
    let parent = task.real_parent();
    ev.ppid = parent.tgid();
    ev.parent_start_ns = parent.process_start_ns();
    ev.start_ns = task.process_start_ns();
    ev.old_tid = old_tid;
    let cred: u64 = rd(task.0 + off!(task_real_cred));
    ev.euid = rd(cred + off!(cred_euid));
    ev.egid = rd(cred + off!(cred_egid));
    // kernel_cap_t is one u64 since 6.3. The exec has committed its credentials by now, so
    // these are the new image's (a setuid-root program's full set included).
    ev.cap_effective = rd(cred + off!(cred_cap_effective));
    ev.cap_permitted = rd(cred + off!(cred_cap_permitted));
    ev.cap_inheritable = rd(cred + off!(cred_cap_inheritable));
    ev.loginuid = rd(task.0 + off!(task_loginuid));
    let (vpid, pidns, level) = task.vpid_pidns_level();
    ev.vpid = vpid;
    ev.pidns = pidns;
    (ev.vpgid, ev.vsid) = task.vpgid_vsid(level);
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
        flags |= overlay_layer(inode, sb);
    }
    let (root_mnt, root_dentry) = task.root();
    // Sections, in the order ExecEvent documents.
    let (len, cut) = rec.append_file_path(exe, root_mnt, root_dentry);
    rec.fixed().exe_len = len;
    let filename: u64 = rd(bprm + off!(binprm_filename));
    let interp: u64 = rd(bprm + off!(binprm_interp));
    if filename != interp {
        flags |= EXEC_SCRIPT;
    }
    if unsafe { EXECVEAT_TIDS.get(old_tid) }.is_some() {
        let _ = EXECVEAT_TIDS.remove(old_tid);
        flags |= EXEC_EXECVEAT;
    }
    let flen = rec.append_kernel_str(filename);
    rec.fixed().script_len = flen;
    let fs: u64 = rd(task.0 + off!(task_fs));
    let pwd = fs + off!(fs_pwd);
    let (clen, ccut) =
        rec.append_path(rd(pwd + off!(path_mnt)), rd(pwd + off!(path_dentry)), root_mnt, root_dentry);
    rec.fixed().cwd_len = clen;
    let glen = rec.append_cgroup_path(task.cgroup_kn());
    rec.fixed().cgroup_len = glen;
    let (alen, acut) =
        append_user_area(&mut rec, rd(mm + off!(mm_arg_start)), rd(mm + off!(mm_arg_end)), MAX_ARGV);
    if acut {
        flags |= EXEC_ARGV_TRUNCATED;
    }
    rec.fixed().argv_len = alen;
    let (elen, ecut) =
        append_user_area(&mut rec, rd(mm + off!(mm_env_start)), rd(mm + off!(mm_env_end)), MAX_ENV);
    if ecut {
        flags |= EXEC_ENV_TRUNCATED;
    }
    rec.fixed().env_len = elen;
    if cut || ccut {
        flags |= EXEC_PATH_TRUNCATED;
    }
    rec.fixed().header.flags = flags;
    let cgroup_id = rec.fixed().header.cgroup_id;
    if rec.submit() {
        crate::cgroups::announced(cgroup_id);
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
    let Some(mut rec) = Record::<ForkEvent>::begin() else { return 0 };
    let ev = rec.fixed();
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
    let Some(mut rec) = Record::<ExitEvent>::begin() else { return 0 };
    let ev = rec.fixed();
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
        let _ = EXECVEAT_TIDS.insert(tid, 1, 0);
    }
    0
}

/// Only a failed execveat returns; a successful one was consumed at sched_process_exec.
#[tracepoint]
pub fn sys_exit_execveat(_ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = EXECVEAT_TIDS.remove(tid);
    0
}

const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// Which overlayfs layer an executable's inode comes from: the upper (writable) one once it
/// has an upper dentry, which a file written in the container, or copied up by a change to it,
/// has; flags 0 for other filesystems.
#[inline(always)]
fn overlay_layer(inode: u64, sb: u64) -> u16 {
    let vfs_inode = off!(ovl_inode_vfs_inode);
    if vfs_inode == monitor_common::NO_OFFSET as u64 {
        return 0;
    }
    let magic: u64 = rd(sb + off!(super_block_s_magic));
    if magic != OVERLAYFS_SUPER_MAGIC {
        return 0;
    }
    let upper: u64 = rd(inode - vfs_inode + off!(ovl_inode_upperdentry));
    if upper != 0 { EXEC_EXE_UPPER_LAYER } else { EXEC_EXE_LOWER_LAYER }
}

/// Appends the user memory from `start` to `end` (argv's or the environment's area), at most
/// `max` - 1 bytes; returns its length and whether it was cut, by `max` or by the record's room.
#[inline(always)]
fn append_user_area(rec: &mut Record<ExecEvent>, start: u64, end: u64, max: usize) -> (u16, bool) {
    let total = end.wrapping_sub(start);
    let want = total.min(max as u64 - 1);
    let len = rec.append_user_bytes(start, want);
    (len, want < total || (len as u64) < want)
}
