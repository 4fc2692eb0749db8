//! Types shared by the kernel programs (monitor-ebpf) and the daemon (monitor).
//!
//! Every record the kernel writes to the ring buffer starts with [`EventHeader`], followed by the
//! fixed part for its [`EventKind`] and then, in the order the fixed part lists their lengths, the
//! variable-length sections (paths, argv). Sections are raw bytes without terminators or padding,
//! so a record is as long as what it carries.
#![no_std]

pub mod offsets;

pub use offsets::{KernelOffsets, SyscallNumbers};

/// Name of the ring buffer map.
pub const EVENTS_MAP: &str = "EVENTS";
/// Name of the per-CPU array counting records that could not be reserved, indexed by [`EventKind`].
pub const DROPS_MAP: &str = "DROPS";
/// Name of the load-time global holding the kernel struct offsets read from BTF.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";
/// Name of the load-time global holding this architecture's [`SyscallNumbers`].
pub const SYSCALLS_GLOBAL: &str = "SYSCALLS";
/// Name of the load-time global holding the daemon's own tgid, whose activity is not reported.
pub const DAEMON_TGID_GLOBAL: &str = "DAEMON_TGID";
/// Name of the load-time global: ring-buffer fill (bytes) above which a record wakes the reader.
pub const WAKEUP_BYTES_GLOBAL: &str = "WAKEUP_BYTES";

/// Name of the array (one [`FilterConfig`]) holding what the rules in force need to see.
pub const FILTER_MAP: &str = "FILTER";
/// Name of the LRU map from a directory ([`DirKey`]) to what its files' opens can match
/// ([`DirVerdict`]), filled by userspace from the paths of the opens it receives.
pub const DIR_VERDICTS_MAP: &str = "DIR_VERDICTS";
/// Name of the hash set of file names ([`LeafName`]) that [`VERDICT_LEAVES`] lets through.
pub const LEAF_NAMES_MAP: &str = "LEAF_NAMES";
/// Name of the hash set of files ([`FileId`]) rules name by path, passed whatever their name.
pub const FILE_IDS_MAP: &str = "FILE_IDS";
/// Name of the hash set of destination ports (u16) the network filters let through.
pub const PORTS_MAP: &str = "PORTS";
/// Entries each of LEAF_NAMES, FILE_IDS and PORTS holds unless the config says otherwise.
pub const DEFAULT_SET_ENTRIES: u32 = 4096;
/// Name of the one-slot array counting renames, rmdirs and mount changes: a directory verdict
/// made before the count moved may describe a path that no longer exists.
pub const PATH_GEN_MAP: &str = "PATH_GEN";
/// Name of the per-CPU array counting events dismissed by the filters, indexed by EventKind.
pub const FILTERED_MAP: &str = "FILTERED";

/// Open classes, as evt.is_open_read / evt.is_open_write see the flags: each open is exactly
/// one of them.
pub const OPEN_CLASS_READ: u32 = 1 << 0;
pub const OPEN_CLASS_WRITE: u32 = 1 << 1;
pub const OPEN_CLASS_READ_WRITE: u32 = 1 << 2;
pub const OPEN_CLASS_NEITHER: u32 = 1 << 3;
pub const OPEN_CLASSES: u32 = 0xf;
/// O_PATH: such an open reads nothing, whatever its access mode.
pub const O_PATH: u32 = 0o10000000;

/// The class bit of an open with these flags.
pub const fn open_class(flags: u32) -> u32 {
    let mode = flags & 3;
    let read = (mode == 0 || mode == 2) && flags & O_PATH == 0;
    let write = mode == 1 || mode == 2;
    match (read, write) {
        (true, false) => OPEN_CLASS_READ,
        (false, true) => OPEN_CLASS_WRITE,
        (true, true) => OPEN_CLASS_READ_WRITE,
        (false, false) => OPEN_CLASS_NEITHER,
    }
}

/// Results, for [`NetFilter::results`] and [`OpenFilter::results`].
pub const RESULT_OK: u32 = 1 << 0;
/// -EINPROGRESS: a non-blocking connect under way.
pub const RESULT_IN_PROGRESS: u32 = 1 << 1;
pub const RESULT_FAILED: u32 = 1 << 2;
pub const RESULTS: u32 = 0x7;
pub const EINPROGRESS: i64 = 115;

pub const fn result_class(ret: i64) -> u32 {
    if ret >= 0 {
        RESULT_OK
    } else if ret == -EINPROGRESS {
        RESULT_IN_PROGRESS
    } else {
        RESULT_FAILED
    }
}

/// Socket families, for [`NetFilter::families`].
pub const FAMILY_UNIX: u32 = 1 << 0;
pub const FAMILY_INET: u32 = 1 << 1;
pub const FAMILY_INET6: u32 = 1 << 2;
pub const FAMILY_OTHER: u32 = 1 << 3;
pub const FAMILIES: u32 = 0xf;

pub const fn family_class(family: u16) -> u32 {
    match family {
        1 => FAMILY_UNIX,
        2 => FAMILY_INET,
        10 => FAMILY_INET6,
        _ => FAMILY_OTHER,
    }
}

/// What an open must be for some rule to possibly match it.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OpenFilter {
    /// OPEN_CLASS_* bits.
    pub classes: u32,
    /// RESULT_OK and/or RESULT_FAILED.
    pub results: u32,
    /// 1: look the file's directory up in DIR_VERDICTS.
    pub by_directory: u32,
    pub _pad: u32,
}

/// What a connect or send must be for some rule to possibly match it.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NetFilter {
    pub families: u32,
    pub results: u32,
    /// 1: the destination port must be in PORTS.
    pub by_port: u32,
    pub _pad: u32,
}

/// The filters in force. `epoch` changes with every change of rules, so directory verdicts
/// made for earlier rules are ignored.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    pub epoch: u32,
    /// 0: every event passes (no rules loaded, `monitor events`, or a reload under way).
    pub active: u32,
    pub open: OpenFilter,
    pub connect: NetFilter,
    pub sendto: NetFilter,
}

impl FilterConfig {
    /// Everything passes.
    pub const PASS_ALL: Self = Self {
        epoch: 0,
        active: 0,
        open: OpenFilter { classes: OPEN_CLASSES, results: RESULTS, by_directory: 0, _pad: 0 },
        connect: NetFilter { families: FAMILIES, results: RESULTS, by_port: 0, _pad: 0 },
        sendto: NetFilter { families: FAMILIES, results: RESULTS, by_port: 0, _pad: 0 },
    };
}

/// A directory as the path walk would name it: the directory's inode, the mount the file was
/// opened through, and the opener's root (the walk stops there).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DirKey {
    pub ino: u64,
    pub mnt: u64,
    pub root_mnt: u64,
    pub root_dentry: u64,
    /// Kernel encoding (major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
}

/// Every open of this class in the directory passes.
pub const VERDICT_PASS: u8 = 0;
/// Only files whose name is in LEAF_NAMES pass.
pub const VERDICT_LEAVES: u8 = 1;
/// No open of this class in the directory can match a rule.
pub const VERDICT_DROP: u8 = 2;

#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DirVerdict {
    /// PATH_GEN when the path was walked; the verdict holds only while it is unchanged.
    pub path_gen: u64,
    /// FilterConfig::epoch the verdict was made for.
    pub epoch: u32,
    /// Per open class, in OPEN_CLASS_* bit order.
    pub by_class: [u8; 4],
}

/// Longest file name LEAF_NAMES holds; a longer name always passes.
pub const LEAF_NAME_LEN: usize = 64;

#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeafName(pub [u8; LEAF_NAME_LEN]);

impl LeafName {
    /// The set's key for a file name; None when the set cannot hold it (empty, too long, or
    /// with a NUL).
    pub fn new(name: &[u8]) -> Option<Self> {
        if name.is_empty() || name.len() >= LEAF_NAME_LEN || name.contains(&0) {
            return None;
        }
        let mut out = [0u8; LEAF_NAME_LEN];
        out[..name.len()].copy_from_slice(name);
        Some(Self(out))
    }
}

#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileId {
    pub ino: u64,
    /// Kernel encoding (major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
}

/// Default ring buffer size in bytes.
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

/// Largest record the kernel writes; also the size of the per-CPU assembly buffer's window.
pub const MAX_RECORD: usize = 16384;
/// Longest path the kernel reports (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// argv bytes reported at exec; longer argument lists are cut and flagged.
pub const MAX_ARGV: usize = 4096;
/// Length of `task_struct.comm`.
pub const COMM_LEN: usize = 16;
/// Bytes of a unix socket path (sizeof sun_path).
pub const UNIX_PATH_LEN: usize = 108;

#[repr(u16)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    Open = 4,
    Connect = 5,
    SendTo = 6,
    /// The path of a cgroup id the kernel side had not announced yet.
    Cgroup = 7,
}

/// Number of slots in the drop-counter and filter-counter maps (index = EventKind as u32; slot
/// 0 is unused).
pub const KIND_SLOTS: u32 = 8;

impl EventKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Exec,
            2 => Self::Fork,
            3 => Self::Exit,
            4 => Self::Open,
            5 => Self::Connect,
            6 => Self::SendTo,
            7 => Self::Cgroup,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Fork => "fork",
            Self::Exit => "exit",
            Self::Open => "open",
            Self::Connect => "connect",
            Self::SendTo => "sendto",
            Self::Cgroup => "cgroup",
        }
    }
}

/// Which syscall produced an open, connect or send event (Falco's evt.type values). Exec
/// events carry [`EXEC_EXECVEAT`] instead.
#[repr(u8)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Syscall {
    Unknown = 0,
    Open = 1,
    OpenAt = 2,
    OpenAt2 = 3,
    Creat = 4,
    Connect = 5,
    SendTo = 6,
    SendMsg = 7,
}

impl Syscall {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Open,
            2 => Self::OpenAt,
            3 => Self::OpenAt2,
            4 => Self::Creat,
            5 => Self::Connect,
            6 => Self::SendTo,
            7 => Self::SendMsg,
            _ => Self::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Open => "open",
            Self::OpenAt => "openat",
            Self::OpenAt2 => "openat2",
            Self::Creat => "creat",
            Self::Connect => "connect",
            Self::SendTo => "sendto",
            Self::SendMsg => "sendmsg",
        }
    }
}

/// Common start of every record. `pid` is the thread-group id (userspace's pid), `tid` the thread.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct EventHeader {
    pub kind: u16,
    /// Kind-specific flag bits (`EXEC_*`, `OPEN_*`).
    pub flags: u16,
    pub cpu: u32,
    /// CLOCK_BOOTTIME nanoseconds.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// Real uid and gid of the acting task.
    pub uid: u32,
    pub gid: u32,
    /// cgroup v2 id (inode of the task's cgroup directory in the unified hierarchy).
    pub cgroup_id: u64,
}

/// What a file descriptor refers to, reported for fds 0-2 at exec.
#[repr(u8)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FdKind {
    None = 0,
    File = 1,
    Directory = 2,
    Pipe = 3,
    Socket = 4,
    CharDevice = 5,
    Tty = 6,
    BlockDevice = 7,
    Other = 8,
}

impl FdKind {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::File,
            2 => Self::Directory,
            3 => Self::Pipe,
            4 => Self::Socket,
            5 => Self::CharDevice,
            6 => Self::Tty,
            7 => Self::BlockDevice,
            8 => Self::Other,
            _ => Self::None,
        }
    }
}

/// One of fds 0-2 at exec. For sockets, the family, peer and local addresses as the kernel's
/// socket holds them; addresses are network byte order, IPv4 in the first 4 bytes.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct StdioFd {
    pub kind: u8,
    pub sock_type: u8,
    pub family: u16,
    /// Device number of a character device (tty), as the kernel's dev_t.
    pub rdev: u32,
    pub peer_port: u16,
    pub local_port: u16,
    pub protocol: u16,
    pub _pad: u16,
    pub peer_addr: [u8; 16],
    pub local_addr: [u8; 16],
}

/// The exec'd file was a #! script: the script's path section is present.
pub const EXEC_SCRIPT: u16 = 1 << 0;
/// argv was longer than [`MAX_ARGV`] and was cut.
pub const EXEC_ARGV_TRUNCATED: u16 = 1 << 1;
/// The executable has no links left: deleted, or an anonymous file such as a memfd.
pub const EXEC_EXE_UNLINKED: u16 = 1 << 2;
/// The exec came through execveat (fexecve and fd-based exec included), not execve.
pub const EXEC_EXECVEAT: u16 = 1 << 3;
/// A path section hit the walk's depth limit or the record's size limit.
pub const EXEC_PATH_TRUNCATED: u16 = 1 << 4;

/// Successful execve/execveat, from sched_process_exec. Sections follow in order:
/// exe path, script path, cwd, cgroup path, argv (NUL-separated).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct ExecEvent {
    pub header: EventHeader,
    pub ppid: u32,
    pub euid: u32,
    pub egid: u32,
    pub loginuid: u32,
    /// pid as seen in the task's own pid namespace.
    pub vpid: u32,
    pub pidns: u32,
    pub mntns: u32,
    pub tty_major: u32,
    pub tty_minor: u32,
    pub old_tid: u32,
    /// Boot-time start of the process (its thread-group leader), in ns.
    pub start_ns: u64,
    pub parent_start_ns: u64,
    pub exe_ino: u64,
    pub exe_dev: u32,
    pub exe_nlink: u32,
    pub comm: [u8; COMM_LEN],
    pub stdio: [StdioFd; 3],
    pub exe_len: u16,
    pub script_len: u16,
    pub cwd_len: u16,
    pub cgroup_len: u16,
    pub argv_len: u16,
    pub _pad: [u16; 3],
}

/// A new process (not a thread), from sched_process_fork. The header's pid/tid are the child's.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub ppid: u32,
    pub _pad: u32,
    pub start_ns: u64,
    pub parent_start_ns: u64,
    pub comm: [u8; COMM_LEN],
}

/// The last thread of a process exited, from sched_process_exit.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct ExitEvent {
    pub header: EventHeader,
    pub start_ns: u64,
    pub exit_code: i32,
    pub _pad: u32,
}

/// The path was resolved from the opened struct file (absolute, symlinks and `..` resolved).
pub const OPEN_RESOLVED: u16 = 1 << 0;
/// The path section is the caller's string, and a base-directory section follows (dirfd or cwd).
pub const OPEN_HAS_BASE: u16 = 1 << 1;
/// The path was cut at the walk's depth limit.
pub const OPEN_PATH_TRUNCATED: u16 = 1 << 2;
/// `dir` names the resolved path's directory (not set for a mount's root).
pub const OPEN_HAS_DIR: u16 = 1 << 3;

/// open/openat/openat2/creat at syscall exit. Sections: path, then base directory when
/// [`OPEN_HAS_BASE`] is set.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct OpenEvent {
    pub header: EventHeader,
    /// fd on success, -errno on failure.
    pub ret: i64,
    pub flags: u32,
    pub mode: u32,
    pub ino: u64,
    pub dev: u32,
    pub dirfd: i32,
    pub syscall: u8,
    pub _pad: [u8; 3],
    pub path_len: u16,
    pub base_len: u16,
    /// The opened file's directory, for a verdict on its later opens; valid with
    /// [`OPEN_HAS_DIR`].
    pub dir: DirKey,
    /// PATH_GEN when the path was walked.
    pub path_gen: u64,
}

/// connect, and sendto/sendmsg naming a destination on an unconnected datagram socket, at
/// syscall exit. Addresses are network byte order; IPv4 in the first 4 bytes. For unix sockets a
/// path section of `unix_len` bytes follows.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct ConnectEvent {
    pub header: EventHeader,
    pub ret: i64,
    pub fd: i32,
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub dport: u16,
    pub sport: u16,
    pub syscall: u8,
    /// 1 when the destination came from the kernel's socket, 0 when from the caller's sockaddr.
    pub from_socket: u8,
    pub daddr: [u8; 16],
    pub saddr: [u8; 16],
    pub unix_len: u16,
    pub _pad: [u16; 3],
}

/// The cgroup v2 path of `header.cgroup_id`, sent before the first event of each cgroup the
/// kernel side has not announced yet, so that a cgroup removed before userspace looks still
/// resolves. A path section of `path_len` bytes follows.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct CgroupEvent {
    pub header: EventHeader,
    pub path_len: u16,
    pub _pad: [u16; 3],
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain #[repr(C)] integers without padding-dependent invariants.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::SyscallNumbers {}
    unsafe impl aya::Pod for super::FilterConfig {}
    unsafe impl aya::Pod for super::DirKey {}
    unsafe impl aya::Pod for super::DirVerdict {}
    unsafe impl aya::Pod for super::LeafName {}
    unsafe impl aya::Pod for super::FileId {}
}
