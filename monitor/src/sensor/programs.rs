//! The kernel programs and where each attaches.

/// A classic tracepoint program and the tracepoints it attaches to. Per-syscall tracepoints run
/// only for their own syscall, unlike raw sys_enter/sys_exit, which run for every syscall.
pub struct Attachment {
    pub program: &'static str,
    pub tracepoints: &'static [(&'static str, &'static str)],
}

const fn one(program: &'static str, tracepoints: &'static [(&'static str, &'static str)]) -> Attachment {
    Attachment { program, tracepoints }
}

pub const TRACEPOINT_PROGRAMS: &[Attachment] = &[
    one(
        "sys_exit_open_any",
        &[
            ("syscalls", "sys_exit_open"),
            ("syscalls", "sys_exit_openat"),
            ("syscalls", "sys_exit_openat2"),
            ("syscalls", "sys_exit_creat"),
            ("syscalls", "sys_exit_open_by_handle_at"),
            ("syscalls", "sys_exit_pidfd_getfd"),
        ],
    ),
    one("sys_enter_execveat", &[("syscalls", "sys_enter_execveat")]),
    one("sys_exit_execveat", &[("syscalls", "sys_exit_execveat")]),
    one(
        "sys_exit_sock_any",
        &[
            ("syscalls", "sys_exit_connect"),
            ("syscalls", "sys_exit_sendto"),
            ("syscalls", "sys_exit_sendmsg"),
        ],
    ),
    one("sys_exit_sendmmsg", &[("syscalls", "sys_exit_sendmmsg")]),
    one(
        "sys_exit_path_change",
        &[
            ("syscalls", "sys_exit_rename"),
            ("syscalls", "sys_exit_renameat"),
            ("syscalls", "sys_exit_renameat2"),
            ("syscalls", "sys_exit_rmdir"),
            ("syscalls", "sys_exit_mount"),
            ("syscalls", "sys_exit_umount"),
            ("syscalls", "sys_exit_move_mount"),
            ("syscalls", "sys_exit_pivot_root"),
        ],
    ),
    one("sys_enter_unlinkat", &[("syscalls", "sys_enter_unlinkat")]),
];

/// When a BTF tracepoint program is attached.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Needs {
    Always,
    /// The host runs 32-bit syscalls (x86_64 with ia32 emulation).
    Ia32,
    /// The kernel's io_uring is one the programs know.
    IoUring,
    /// io_uring_complete passes the CQE (6.13+), or, for the other program, its fields.
    IoUringCompleteCqe,
    IoUringCompleteRes,
}

/// A BTF tracepoint program (it gets the tracepoint's typed arguments): the kernel tracepoint
/// it attaches to, and that tracepoint's tracefs category, for the prerequisite check.
pub struct BtfProgram {
    pub program: &'static str,
    pub tracepoint: &'static str,
    pub category: &'static str,
    pub needs: Needs,
}

const fn btf(
    program: &'static str,
    category: &'static str,
    tracepoint: &'static str,
    needs: Needs,
) -> BtfProgram {
    BtfProgram { program, tracepoint, category, needs }
}

pub const BTF_TRACEPOINTS: &[BtfProgram] = &[
    btf("sched_process_exec", "sched", "sched_process_exec", Needs::Always),
    btf("sched_process_fork", "sched", "sched_process_fork", Needs::Always),
    btf("sched_process_exit", "sched", "sched_process_exit", Needs::Always),
    btf("inet_sock_set_state", "sock", "inet_sock_set_state", Needs::Always),
    // Runs for every syscall of the host: attached only where 32-bit ones can happen.
    btf("sys_exit_ia32", "raw_syscalls", "sys_exit", Needs::Ia32),
    btf("io_uring_submit_req", "io_uring", "io_uring_submit_req", Needs::IoUring),
    btf("io_uring_complete", "io_uring", "io_uring_complete", Needs::IoUringCompleteCqe),
    btf("io_uring_complete_res", "io_uring", "io_uring_complete", Needs::IoUringCompleteRes),
    btf("io_uring_create", "io_uring", "io_uring_create", Needs::IoUring),
];

/// Every tracepoint the daemon cannot run without, for the prerequisite check.
pub fn all_tracepoints() -> impl Iterator<Item = (&'static str, &'static str)> {
    TRACEPOINT_PROGRAMS.iter().flat_map(|a| a.tracepoints.iter().copied()).chain(
        BTF_TRACEPOINTS.iter().filter(|b| b.needs == Needs::Always).map(|b| (b.category, b.tracepoint)),
    )
}
