//! The records the kernel writes to the ring buffer.

use crate::fd::StdioFd;
use crate::filter::DirKey;

/// Default ring buffer size in bytes.
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

/// Largest record the kernel writes; also the size of the per-CPU assembly buffer's window.
pub const MAX_RECORD: usize = 16384;
/// Longest path the kernel reports (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// argv bytes reported at exec; longer argument lists are cut and flagged.
pub const MAX_ARGV: usize = 4096;
/// Environment bytes reported at exec; a longer environment is cut and flagged.
pub const MAX_ENV: usize = 4096;
/// Length of `task_struct.comm`.
pub const COMM_LEN: usize = 16;
/// Bytes of a unix socket path (sizeof sun_path).
pub const UNIX_PATH_LEN: usize = 108;

/// The layout of a record: which fixed part follows the header.
#[repr(u16)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    Open = 4,
    /// connect, and sends naming their destination ([`NetEvent`]).
    Net = 5,
    /// A system call reported by its result and arguments ([`SyscallEvent`]).
    Syscall = 6,
    /// The path of a cgroup id the kernel side had not announced yet.
    Cgroup = 7,
}

/// Number of slots in the drop-counter map (index = EventKind as u32; slot 0 unused).
pub const KIND_SLOTS: u32 = 8;

impl EventKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Exec,
            2 => Self::Fork,
            3 => Self::Exit,
            4 => Self::Open,
            5 => Self::Net,
            6 => Self::Syscall,
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
            Self::Net => "net",
            Self::Syscall => "syscall",
            Self::Cgroup => "cgroup",
        }
    }
}

/// A record's fixed part, which names its own kind: the kernel begins a record by its type
/// alone, so the kind in the header cannot disagree with the layout that follows.
pub trait RecordType: Copy {
    const KIND: EventKind;
}

/// Common start of every record. `pid` is the thread-group id (userspace's pid), `tid` the thread.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct EventHeader {
    pub kind: u16,
    /// Flag bits: kind-specific ones (`EXEC_*`, `OPEN_*`) from bit 0, `REC_*` from bit 15 down.
    pub flags: u16,
    pub cpu: u16,
    /// The door the event came through ([`Via`](crate::Via) as a u8).
    pub via: u8,
    /// What made the event when it is not the syscall its type names ([`Call`](crate::Call)).
    pub call: u8,
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

/// The kernel did not see the result: the record reports the attempt (an io_uring request that
/// posts no completion, a connect seen only by the TCP state backstop). Its `ret` is 0.
pub const REC_RESULT_UNKNOWN: u16 = 1 << 15;
/// An io_uring request's submission, whose result follows in a record with
/// [`REC_IOU_COMPLETION`] and the same `iou_req`.
pub const REC_IOU_AWAITS_COMPLETION: u16 = 1 << 14;
/// The completion of an io_uring request announced by a [`REC_IOU_AWAITS_COMPLETION`] record.
pub const REC_IOU_COMPLETION: u16 = 1 << 13;

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
/// The executable is an overlayfs file whose upper (the container's writable) layer holds it:
/// written or copied up since the image was unpacked.
pub const EXEC_EXE_UPPER_LAYER: u16 = 1 << 5;
/// The executable is an overlayfs file from a lower (image) layer only.
pub const EXEC_EXE_LOWER_LAYER: u16 = 1 << 6;
/// The environment was longer than [`MAX_ENV`] (or than the record's room) and was cut.
pub const EXEC_ENV_TRUNCATED: u16 = 1 << 7;

/// Successful execve/execveat, from sched_process_exec. Sections follow in order:
/// exe path, script path, cwd, cgroup path, argv (NUL-separated), environment (NUL-separated).
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
    /// The credentials' capability sets after the exec (kernel_cap_t bit masks).
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_inheritable: u64,
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
    pub env_len: u16,
    /// The process group's and the session's ids in the task's own pid namespace (0 when
    /// the group or session lies outside it).
    pub vpgid: u32,
    pub vsid: u32,
    pub _pad: u32,
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

/// An open at syscall exit (open, openat, openat2, creat, open_by_handle_at, pidfd_getfd), or
/// an io_uring open's submission or completion. Sections: path, then base directory when
/// [`OPEN_HAS_BASE`] is set, then the caller's string when `raw_len` is not 0.
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
    /// The [`EventType`](crate::EventType) as a u8.
    pub evt_type: u8,
    pub _pad: u8,
    /// The caller's path string as written, when the path section is the resolved one and
    /// the filter asks for it ([`OpenFilter::raw_names`](crate::OpenFilter)).
    pub raw_len: u16,
    pub path_len: u16,
    pub base_len: u16,
    /// The opened file's directory, for a verdict on its later opens; valid with
    /// [`OPEN_HAS_DIR`].
    pub dir: DirKey,
    /// PATH_GEN when the path was walked.
    pub path_gen: u64,
    /// The io_uring request (its kernel address), joining a submission to its completion.
    pub iou_req: u64,
}

/// connect, and sendto/sendmsg naming a destination on an unconnected datagram socket, at
/// syscall exit (which one: `evt_type`). Addresses are network byte order; IPv4 in the first 4 bytes. For unix sockets a
/// path section of `unix_len` bytes follows.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct NetEvent {
    pub header: EventHeader,
    pub ret: i64,
    pub fd: i32,
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub dport: u16,
    pub sport: u16,
    /// The [`EventType`](crate::EventType) as a u8.
    pub evt_type: u8,
    /// 1 when the destination came from the kernel's socket, 0 when from the caller's sockaddr.
    pub from_socket: u8,
    pub daddr: [u8; 16],
    pub saddr: [u8; 16],
    pub unix_len: u16,
    pub _pad: [u16; 3],
    /// The io_uring request (its kernel address), joining a submission to its completion.
    pub iou_req: u64,
}

/// A call's path section was cut at the walk's depth limit or the record's size.
pub const CALL_PATH_TRUNCATED: u16 = 1 << 0;
/// Path section 0's string is relative, and its base directory follows it.
pub const CALL_PATH0_HAS_BASE: u16 = 1 << 1;
pub const CALL_PATH1_HAS_BASE: u16 = 1 << 2;

/// The socket a call's descriptor is ([`SyscallEvent::sock`]); `family` 0: not a socket.
/// Addresses are network byte order, IPv4 in the first 4 bytes; ports host order.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct SockInfo {
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub sport: u16,
    pub dport: u16,
    /// skc_state: TCP_* for TCP; a connected UDP socket is TCP_ESTABLISHED too.
    pub state: u8,
    pub _pad: [u8; 5],
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// A system call reported by its result and arguments ([`crate::calls`] says which argument
/// sits in which slot), and io_uring_setup (entries, flags). Sections, in order: path 0, its
/// base directory, path 1, its base directory, and the path of the call's descriptor's file
/// (`lens` gives each length, 0 when absent).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub ret: i64,
    pub args: [u64; 4],
    /// The call's descriptor's socket, when it is one.
    pub sock: SockInfo,
    /// The [`EventType`](crate::EventType) as a u8.
    pub evt_type: u8,
    pub _pad: u8,
    pub lens: [u16; 5],
    pub _pad2: u32,
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

impl RecordType for ExecEvent {
    const KIND: EventKind = EventKind::Exec;
}
impl RecordType for ForkEvent {
    const KIND: EventKind = EventKind::Fork;
}
impl RecordType for ExitEvent {
    const KIND: EventKind = EventKind::Exit;
}
impl RecordType for OpenEvent {
    const KIND: EventKind = EventKind::Open;
}
impl RecordType for NetEvent {
    const KIND: EventKind = EventKind::Net;
}
impl RecordType for SyscallEvent {
    const KIND: EventKind = EventKind::Syscall;
}
impl RecordType for CgroupEvent {
    const KIND: EventKind = EventKind::Cgroup;
}
