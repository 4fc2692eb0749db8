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

/// BTF tracepoints (they get the tracepoint's typed arguments: the task and the linux_binprm).
pub const BTF_TRACEPOINTS: &[&str] = &["sched_process_exec", "sched_process_fork", "sched_process_exit"];

/// Every tracepoint the daemon needs, for the prerequisite check.
pub fn all_tracepoints() -> impl Iterator<Item = (&'static str, &'static str)> {
    TRACEPOINT_PROGRAMS
        .iter()
        .flat_map(|a| a.tracepoints.iter().copied())
        .chain(BTF_TRACEPOINTS.iter().map(|name| ("sched", *name)))
}
