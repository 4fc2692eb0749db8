//! File opens (open, openat, openat2, creat), dismissed by the in-kernel filter where no rule
//! can match them, and the path changes that void the filter's directory verdicts.

use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};
use monitor_common::{
    DirKey, EventType, OPEN_HAS_BASE, OPEN_HAS_DIR, OPEN_PATH_TRUNCATED, OPEN_RESOLVED, OpenEvent,
    RESULT_FAILED, open_class,
};

use crate::kernel::{self, Task, is_daemon, off, rd};
use crate::record::Record;
use crate::{filter, syscall};

const AT_FDCWD: i32 = -100;
const O_CREAT: u32 = 0o100;
const O_WRONLY: u32 = 0o1;
const O_TRUNC: u32 = 0o1000;

/// An open's arguments, as its syscall took them.
struct OpenArgs {
    filename: u64,
    flags: u32,
    mode: u32,
    dfd: i32,
    evt_type: EventType,
}

/// Which open syscall is exiting.
#[inline(always)]
fn open_type(ctx: &TracePointContext) -> Option<EventType> {
    let (nr, n) = (syscall::nr(ctx), kernel::syscalls());
    if nr == n.openat {
        Some(EventType::Openat)
    } else if nr == n.open {
        Some(EventType::Open)
    } else if nr == n.openat2 {
        Some(EventType::Openat2)
    } else if nr == n.creat {
        Some(EventType::Creat)
    } else {
        None
    }
}

#[inline(always)]
fn open_args(evt_type: EventType) -> OpenArgs {
    let a = syscall::Args::current();
    match evt_type {
        EventType::Open => OpenArgs {
            filename: a.get(0),
            flags: a.get(1) as u32,
            mode: a.get(2) as u32,
            dfd: AT_FDCWD,
            evt_type,
        },
        EventType::Openat2 => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            let how = a.get(2);
            let flags: u64 = unsafe { bpf_probe_read_user(how as *const u64).unwrap_or(0) };
            let mode: u64 = unsafe { bpf_probe_read_user((how + 8) as *const u64).unwrap_or(0) };
            OpenArgs {
                filename: a.get(1),
                flags: flags as u32,
                mode: mode as u32,
                dfd: a.get(0) as i32,
                evt_type,
            }
        }
        EventType::Creat => OpenArgs {
            filename: a.get(0),
            flags: O_CREAT | O_WRONLY | O_TRUNC,
            mode: a.get(1) as u32,
            dfd: AT_FDCWD,
            evt_type,
        },
        _ => OpenArgs {
            filename: a.get(1),
            flags: a.get(2) as u32,
            mode: a.get(3) as u32,
            dfd: a.get(0) as i32,
            evt_type,
        },
    }
}

fn open_exit(ctx: &TracePointContext) -> u32 {
    if is_daemon() {
        return 0;
    }
    let Some(evt_type) = open_type(ctx) else { return 0 };
    let ret = syscall::ret(ctx);
    let filter = filter::config();
    // A failed open no rule wants costs only this test: its arguments are not even read.
    if let Some(c) = filter
        && ret < 0
        && c.open.results & RESULT_FAILED == 0
    {
        filter::count_filtered(evt_type);
        return 0;
    }
    let args = open_args(evt_type);
    let class = open_class(args.flags);
    // Dismissed before anything else is read: by the open's flags and result, then by what
    // its directory's verdict says, all before the path walk.
    if let Some(c) = filter
        && !monitor_common::open_wanted(&c.open, class, ret)
    {
        filter::count_filtered(args.evt_type);
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
                filter::count_filtered(args.evt_type);
                return 0;
            }
        }
    }
    crate::cgroups::announce();
    let Some(mut rec) = Record::<OpenEvent>::begin() else { return 0 };
    let ev = rec.fixed();
    ev.ret = ret;
    ev.flags = args.flags;
    ev.mode = args.mode;
    ev.dirfd = args.dfd;
    ev.evt_type = args.evt_type as u8;
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
        rec.fixed().path_len = len;
        flags |= OPEN_RESOLVED;
        if cut {
            flags |= OPEN_PATH_TRUNCATED;
        }
    } else {
        let (len, first) = rec.append_user_str(args.filename);
        rec.fixed().path_len = len;
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
            rec.fixed().base_len = blen;
            flags |= OPEN_HAS_BASE;
            if cut {
                flags |= OPEN_PATH_TRUNCATED;
            }
        }
    }
    rec.fixed().header.flags = flags;
    let _ = rec.submit();
    0
}

/// Attached to sys_exit_open, sys_exit_openat, sys_exit_openat2 and sys_exit_creat: their
/// records have the same layout, and one program is verified once instead of four times.
#[tracepoint]
pub fn sys_exit_open_any(ctx: TracePointContext) -> u32 {
    open_exit(&ctx)
}

/// Attached to the exits of rename, renameat, renameat2, rmdir, mount, umount, move_mount and
/// pivot_root: once one succeeds, a directory may have a new path (or its inode a new
/// directory), so verdicts made before are void.
#[tracepoint]
pub fn sys_exit_path_change(ctx: TracePointContext) -> u32 {
    if syscall::ret(&ctx) == 0 {
        filter::bump_path_gen();
    }
    0
}

const AT_REMOVEDIR: u64 = 0x200;

/// unlinkat(AT_REMOVEDIR) is rmdir. Counted at entry: a directory can only go once empty, so
/// no verdict can be made for it between here and its removal.
#[tracepoint]
pub fn sys_enter_unlinkat(ctx: TracePointContext) -> u32 {
    let flag: u64 = syscall::field(&ctx, syscall::ARG2);
    if flag & AT_REMOVEDIR != 0 {
        filter::bump_path_gen();
    }
    0
}
