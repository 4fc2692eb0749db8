//! Types shared by the kernel programs (monitor-ebpf) and the daemon (monitor).
//!
//! Every record the kernel writes to the ring buffer starts with [`EventHeader`], followed by the
//! fixed part for its [`EventKind`] and then, in the order the fixed part lists their lengths, the
//! variable-length sections (paths, argv). Sections are raw bytes without terminators or padding,
//! so a record is as long as what it carries.
#![no_std]

pub mod offsets;

pub use offsets::KernelOffsets;

/// Name of the ring buffer map.
pub const EVENTS_MAP: &str = "EVENTS";
/// Name of the per-CPU array counting records that could not be reserved, indexed by [`EventKind`].
pub const DROPS_MAP: &str = "DROPS";
/// Name of the load-time global holding the kernel struct offsets read from BTF.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";
/// Name of the load-time global holding the daemon's own tgid, whose activity is not reported.
pub const DAEMON_TGID_GLOBAL: &str = "DAEMON_TGID";
/// Name of the load-time global: ring-buffer fill (bytes) above which a record wakes the reader.
pub const WAKEUP_BYTES_GLOBAL: &str = "WAKEUP_BYTES";

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

/// Number of slots in the drop-counter map (index = EventKind as u32, plus [`LOST_ARGS_SLOT`]).
pub const KIND_SLOTS: u32 = 8;
/// Drop-counter slot (unused by any kind) for syscalls whose entry arguments could not be kept
/// until their exit (the per-thread argument map was full), so no event could be made.
pub const LOST_ARGS_SLOT: u32 = 0;

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
}
