//! The kernel programs and where each attaches.

/// Per-syscall tracepoints: each runs only for its own syscall, unlike raw sys_enter/sys_exit.
pub const TRACEPOINTS: &[(&str, &str)] = &[
    ("syscalls", "sys_enter_open"),
    ("syscalls", "sys_enter_openat"),
    ("syscalls", "sys_enter_openat2"),
    ("syscalls", "sys_enter_creat"),
    ("syscalls", "sys_exit_open"),
    ("syscalls", "sys_exit_openat"),
    ("syscalls", "sys_exit_openat2"),
    ("syscalls", "sys_exit_creat"),
    ("syscalls", "sys_enter_execveat"),
    ("syscalls", "sys_exit_execveat"),
    ("syscalls", "sys_enter_connect"),
    ("syscalls", "sys_exit_connect"),
    ("syscalls", "sys_enter_sendto"),
    ("syscalls", "sys_exit_sendto"),
    ("syscalls", "sys_enter_sendmsg"),
    ("syscalls", "sys_exit_sendmsg"),
    ("sched", "sched_process_exec"),
    ("sched", "sched_process_fork"),
    ("sched", "sched_process_exit"),
];

/// BTF tracepoints (they get the tracepoint's typed arguments: the task and the linux_binprm).
pub const BTF_TRACEPOINTS: &[&str] = &["sched_process_exec", "sched_process_fork", "sched_process_exit"];
