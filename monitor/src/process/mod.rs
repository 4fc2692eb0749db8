//! The table of processes: seeded from /proc at start, then kept exact from fork, exec and exit.

mod procfs_seed;
mod table;

pub use table::{ProcessTable, TableStats};

use std::sync::{Arc, OnceLock};

/// What one of fds 0-2 was at exec (None: not open) and, for sockets, the connection tuple as
/// fd.name renders it, for a device its path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StdioInfo {
    pub fd_type: Option<monitor_common::FdType>,
    pub name: Option<String>,
}

/// Where the process table learnt of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcSource {
    #[default]
    Exec,
    Fork,
    /// Read from /proc: older than the daemon, or an event came before its fork or exec.
    Proc,
}

impl ProcSource {
    pub const ALL: [Self; 3] = [Self::Exec, Self::Fork, Self::Proc];

    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Fork => "fork",
            Self::Proc => "proc",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Capability sets as the kernel holds them: bit n is capability n (`CAP_CHOWN` is 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// One process (thread group). Identified by (pid, start_ns) so pid reuse cannot confuse it.
#[derive(Clone, Debug, Default)]
pub struct Process {
    pub pid: u32,
    /// CLOCK_BOOTTIME ns at process start. Entries seeded from /proc have clock-tick precision.
    pub start_ns: u64,
    pub ppid: u32,
    pub parent_start_ns: u64,
    pub comm: String,
    pub exe_path: String,
    /// argv, including argv[0].
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    /// The environment at exec, `NAME=value` each (at most 4 KiB of it).
    pub env: Vec<String>,
    pub env_truncated: bool,
    /// The exe path or cwd hit the kernel walk's depth or size limit.
    pub paths_truncated: bool,
    pub cwd: Option<String>,
    /// For a #! script, the script as the exec named it; the exe is then its interpreter.
    pub script: Option<String>,
    pub exe_from_memfd: bool,
    pub exe_unlinked: bool,
    /// The executable is in an overlay's upper (writable) layer, or only in a lower one; both
    /// false off overlayfs (and for processes found running at start).
    pub exe_upper_layer: bool,
    pub exe_lower_layer: bool,
    pub exe_ino: u64,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    pub loginuid: u32,
    /// The credentials' capability sets, as of the last exec (or /proc for a process that was
    /// running at start); capset(2) and set*id calls after it are not seen.
    pub caps: Capabilities,
    pub vpid: u32,
    /// The process group and the session, as ids in the process's own pid namespace (as of
    /// the exec: a setpgid or setsid after it is not seen; 0 when outside the namespace).
    pub vpgid: u32,
    pub vsid: u32,
    pub pidns: u32,
    pub mntns: u32,
    /// Controlling terminal as a device number; 0 without one (Falco's proc.tty).
    pub tty: u32,
    pub stdio: [StdioInfo; 3],
    pub source: ProcSource,
    /// proc.args and proc.cmdline, built once per process rather than per event.
    pub(crate) args_joined: OnceLock<String>,
    pub(crate) cmdline_joined: OnceLock<String>,
    /// proc.env, built once per process.
    pub(crate) env_joined: OnceLock<String>,
}

impl Process {
    /// Falco's proc.args: the arguments after argv[0], joined by spaces.
    pub fn args(&self) -> &str {
        self.args_joined
            .get_or_init(|| self.argv.iter().skip(1).map(String::as_str).collect::<Vec<_>>().join(" "))
    }

    /// Falco's proc.cmdline: the process name followed by its arguments.
    pub fn cmdline(&self) -> &str {
        self.cmdline_joined.get_or_init(|| {
            let args = self.args();
            if args.is_empty() { self.comm.clone() } else { format!("{} {}", self.comm, args) }
        })
    }

    /// Falco's proc.exe: argv[0] as the process was started.
    /// Falco's proc.env: the environment's `NAME=value` pairs joined by spaces.
    pub fn env_text(&self) -> &str {
        self.env_joined.get_or_init(|| self.env.join(" "))
    }

    /// One environment variable's value (the first, if it is set twice).
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.iter().find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
    }

    pub fn exe_arg0(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or(&self.comm)
    }
}

pub type ProcessRef = Arc<Process>;

/// Default bound of the process table.
pub const fn table_default_max() -> usize {
    table::DEFAULT_MAX_PROCESSES
}
