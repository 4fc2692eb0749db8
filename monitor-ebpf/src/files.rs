//! File opens (open, openat, openat2, creat, open_by_handle_at, and descriptors taken with
//! pidfd_getfd), dismissed by the in-kernel filter where no rule can match them, and the path
//! changes that void the filter's directory verdicts. The 32-bit syscalls ([`crate::ia32`]) and
//! io_uring opens ([`crate::iouring`]) report through the same code.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use monitor_common::{
    Call, DirKey, EventType, OPEN_HAS_BASE, OPEN_HAS_DIR, OPEN_PATH_TRUNCATED, OPEN_RESOLVED, OpenEvent,
    RESULT_FAILED, Via, open_class, open_result,
};

use crate::filter;
use crate::kernel::{self, AT_FDCWD, Task, is_daemon, off, rd};
use crate::record::Record;
use crate::syscall::{self, Args};

const O_CREAT: u32 = 0o100;
const O_WRONLY: u32 = 0o1;
const O_TRUNC: u32 = 0o1000;
const O_ACCMODE: u32 = 0o3;
const O_PATH: u32 = monitor_common::O_PATH;

/// An open's arguments, as its syscall took them.
struct OpenArgs {
    /// The caller's path (user memory); 0 when the call names none (open_by_handle_at,
    /// pidfd_getfd).
    filename: u64,
    flags: u32,
    mode: u32,
    dfd: i32,
    /// The flags are the opened file's (pidfd_getfd takes a file already open).
    flags_from_file: bool,
}

#[inline(always)]
fn open_args(evt_type: EventType, a: Args) -> OpenArgs {
    let plain = |filename, flags, mode, dfd| OpenArgs { filename, flags, mode, dfd, flags_from_file: false };
    match evt_type {
        EventType::Open => plain(a.get(0), a.get(1) as u32, a.get(2) as u32, AT_FDCWD),
        EventType::Openat2 => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }, the same in every ABI.
            let how = a.get(2);
            let flags: u64 = kernel::user(how);
            let mode: u64 = kernel::user(how + 8);
            plain(a.get(1), flags as u32, mode as u32, a.int(0))
        }
        EventType::Creat => plain(a.get(0), O_CREAT | O_WRONLY | O_TRUNC, a.get(1) as u32, AT_FDCWD),
        // open_by_handle_at(mount_fd, handle, flags): the file is named by the handle, within
        // the mount of mount_fd.
        EventType::OpenByHandleAt => plain(0, a.get(2) as u32, 0, a.int(0)),
        // pidfd_getfd(pidfd, targetfd, flags)
        EventType::PidfdGetfd => OpenArgs { filename: 0, flags: 0, mode: 0, dfd: -1, flags_from_file: true },
        _ => plain(a.get(1), a.get(2) as u32, a.get(3) as u32, a.int(0)),
    }
}

/// What the opened file is, read before any record is begun, so the directory verdict can
/// dismiss the open first.
pub struct Opened {
    pub ino: u64,
    pub dev: u32,
    pub dentry: u64,
    pub dir: DirKey,
    pub has_dir: bool,
}

impl Opened {
    #[inline(always)]
    pub fn read(file: u64, root_mnt: u64, root_dentry: u64) -> Self {
        let mut o = Opened {
            ino: 0,
            dev: 0,
            dentry: 0,
            dir: DirKey { root_mnt, root_dentry, ..DirKey::default() },
            has_dir: false,
        };
        if file == 0 {
            return o;
        }
        let inode: u64 = rd(file + off!(file_f_inode));
        o.ino = rd(inode + off!(inode_i_ino));
        let sb: u64 = rd(inode + off!(inode_i_sb));
        o.dev = rd(sb + off!(super_block_s_dev));
        let (mnt, dentry) = kernel::read_path(file + off!(file_f_path));
        o.dentry = dentry;
        // A mount's root has no directory of its own on that mount: the walk names it by its
        // mount point, so it gets no verdict.
        let mnt_root: u64 = rd(mnt + off!(vfsmount_mnt_root));
        if dentry != mnt_root {
            let parent: u64 = rd(dentry + off!(dentry_d_parent));
            let parent_inode: u64 = rd(parent + off!(dentry_d_inode));
            o.dir.ino = rd(parent_inode + off!(inode_i_ino));
            o.dir.dev = o.dev;
            o.dir.mnt = mnt;
            o.has_dir = true;
        }
        o
    }

    /// Whether the directory's verdict dismisses an open of this class.
    #[inline(always)]
    pub fn dismissed(&self, class: u32) -> bool {
        match filter::config() {
            Some(c) if self.has_dir => {
                filter::dir_dismisses(c, &self.dir, class, self.dentry, self.ino, self.dev)
            }
            _ => false,
        }
    }

    /// Writes the file's identity, directory and resolved path into the record; returns the
    /// header flags that say so.
    #[inline(always)]
    pub fn write(&self, rec: &mut Record<OpenEvent>, file: u64) -> u16 {
        let mut flags = 0u16;
        let ev = rec.fixed();
        if self.has_dir {
            ev.dir = self.dir;
            ev.path_gen = filter::path_gen();
            flags |= OPEN_HAS_DIR;
        }
        ev.ino = self.ino;
        ev.dev = self.dev;
        let (len, cut) = rec.append_file_path(file, self.dir.root_mnt, self.dir.root_dentry);
        rec.fixed().path_len = len;
        flags |= OPEN_RESOLVED;
        if cut {
            flags |= OPEN_PATH_TRUNCATED;
        }
        flags
    }
}

/// Where the caller's path string is.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Memory {
    User,
    Kernel,
}

/// Appends the caller's path (when there is one) and, when it is relative or absent, the
/// directory it is relative to (`dfd`, or the cwd), resolved now. Returns the header flags.
#[inline(always)]
pub fn append_caller_path(rec: &mut Record<OpenEvent>, name: u64, memory: Memory, dfd: i32) -> u16 {
    let (len, first) = match (name, memory) {
        (0, _) => (0, 0),
        (_, Memory::User) => rec.append_user_str(name),
        (_, Memory::Kernel) => rec.append_kernel_str_first(name),
    };
    rec.fixed().path_len = len;
    // Absolute: complete as it is. Nothing at all (a failed open_by_handle_at): the mount
    // it was within is what is known.
    if (len > 0 && first == b'/') || (len == 0 && (name != 0 || dfd < 0)) {
        return 0;
    }
    let task = Task::current();
    let (root_mnt, root_dentry) = task.root();
    let (blen, cut) = rec.append_dir(task, dfd, root_mnt, root_dentry);
    rec.fixed().base_len = blen;
    if cut { OPEN_HAS_BASE | OPEN_PATH_TRUNCATED } else { OPEN_HAS_BASE }
}

/// Reports an open at its syscall's exit, native or 32-bit.
#[inline(always)]
pub fn open_exit(evt_type: EventType, ret: i64, a: Args) -> u32 {
    if is_daemon() {
        return 0;
    }
    let filter = if evt_type.kernel_filtered() { filter::config() } else { None };
    // A failed open no rule wants costs only this test: its arguments are not even read.
    if let Some(c) = filter
        && ret < 0
        && c.open.results & RESULT_FAILED == 0
    {
        filter::count_filtered(evt_type);
        return 0;
    }
    let args = open_args(evt_type, a);
    let task = Task::current();
    // The opened file's flags are the truth where the caller's cannot be trusted: pidfd_getfd
    // names none, and openat2's live in user memory that another thread (or a stalled page)
    // can rewrite between the kernel's copy and this exit, say to O_PATH, which the filter
    // dismisses. The file is then looked up before the class test, and only then.
    let file_first = ret >= 0 && (args.flags_from_file || evt_type == EventType::Openat2);
    let early_file = if file_first { task.fd_file(ret as u32) } else { 0 };
    let flags = if !file_first {
        args.flags
    } else if args.flags_from_file {
        kernel::file_flags(early_file)
    } else {
        // openat2 keeps its other flags (O_CREAT, ...) from the call. A fd already closed by
        // another thread has no flags: the access mode is then 0, taken as a read.
        (args.flags & !(O_ACCMODE | O_PATH)) | (kernel::file_flags(early_file) & (O_ACCMODE | O_PATH))
    };
    let class = open_class(flags);
    // Dismissed before anything else is read: by the open's flags and result, then by what
    // its directory's verdict says, all before the path walk.
    if let Some(c) = filter
        && !monitor_common::open_wanted(&c.open, class, open_result(ret))
    {
        filter::count_filtered(evt_type);
        return 0;
    }
    let (root_mnt, root_dentry) = task.root();
    // Another thread may have closed the fd already; then only the caller's string is left.
    let file = if file_first {
        early_file
    } else if ret >= 0 {
        task.fd_file(ret as u32)
    } else {
        0
    };
    let opened = Opened::read(file, root_mnt, root_dentry);
    if filter.is_some() && opened.dismissed(class) {
        filter::count_filtered(evt_type);
        return 0;
    }
    crate::cgroups::announce();
    let Some(mut rec) = Record::<OpenEvent>::begin() else { return 0 };
    let ev = rec.fixed();
    ev.header.via = a.via() as u8;
    ev.ret = ret;
    ev.flags = flags;
    ev.mode = args.mode;
    ev.dirfd = args.dfd;
    ev.evt_type = evt_type as u8;
    let flags = if file != 0 {
        let flags = opened.write(&mut rec, file);
        // The string as written, which the resolved path no longer shows (`../` climbs).
        if args.filename != 0 && filter.is_none_or(|c| c.open.raw_names != 0) {
            let (raw_len, _) = rec.append_user_str(args.filename);
            rec.fixed().raw_len = raw_len;
        }
        flags
    } else {
        append_caller_path(&mut rec, args.filename, Memory::User, args.dfd)
    };
    rec.fixed().header.flags = flags;
    let _ = rec.submit();
    0
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
    } else if nr == n.open_by_handle_at {
        Some(EventType::OpenByHandleAt)
    } else if nr == n.pidfd_getfd {
        Some(EventType::PidfdGetfd)
    } else {
        None
    }
}

/// Attached to the exits of open, openat, openat2, creat, open_by_handle_at and pidfd_getfd:
/// their records have the same layout, and one program is verified once instead of six times.
#[tracepoint]
pub fn sys_exit_open_any(ctx: TracePointContext) -> u32 {
    let Some(evt_type) = open_type(&ctx) else { return 0 };
    open_exit(evt_type, syscall::ret(&ctx), Args::current())
}

/// Attached to the exits of rename, renameat, renameat2, rmdir, mount, umount, move_mount and
/// pivot_root: once one succeeds, a directory may have a new path (or its inode a new
/// directory), so verdicts made before are void.
#[tracepoint]
pub fn sys_exit_path_change(ctx: TracePointContext) -> u32 {
    path_changed(syscall::ret(&ctx));
    0
}

#[inline(always)]
pub fn path_changed(ret: i64) {
    if ret == 0 {
        filter::bump_path_gen();
    }
}

pub const AT_REMOVEDIR: u64 = 0x200;

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

/// What a record's header says about the call that made it.
#[inline(always)]
pub fn set_door(rec: &mut Record<OpenEvent>, via: Via, call: Call) {
    let h = &mut rec.fixed().header;
    h.via = via as u8;
    h.call = call as u8;
}
