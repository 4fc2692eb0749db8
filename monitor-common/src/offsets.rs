/// Byte offsets of the kernel struct members the programs read, taken from the running kernel's
/// BTF at start-up and handed to the programs as a load-time global. Rust eBPF has no CO-RE
/// relocations, so nothing here may be compiled in.
///
/// Names are `<struct>_<member>`; nested members are flattened to the offset from the outer
/// struct's start (e.g. `file_f_path` descends into an anonymous union).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    pub task_real_cred: u32,
    pub task_files: u32,
    pub task_fs: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    pub task_nsproxy: u32,
    pub task_thread_pid: u32,
    pub task_loginuid: u32,
    pub task_cgroups: u32,
    pub task_exit_code: u32,
    pub task_flags: u32,
    /// `thread_info.status`, which holds TS_COMPAT during a 32-bit syscall (x86);
    /// [`NO_OFFSET`] where the architecture has none.
    pub task_ti_status: u32,

    pub cred_euid: u32,
    pub cred_egid: u32,
    pub cred_cap_inheritable: u32,
    pub cred_cap_permitted: u32,
    pub cred_cap_effective: u32,

    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,

    pub file_f_path: u32,
    pub file_f_inode: u32,
    pub file_private_data: u32,
    pub file_f_flags: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,

    pub dentry_d_parent: u32,
    pub dentry_d_name: u32,
    pub dentry_d_inode: u32,
    pub qstr_len: u32,
    pub qstr_name: u32,

    pub inode_i_mode: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub inode_i_rdev: u32,
    pub inode_i_nlink: u32,
    pub super_block_s_dev: u32,
    pub super_block_s_magic: u32,
    /// Where an overlayfs inode's VFS inode sits in its `struct ovl_inode`, and the upper
    /// (writable) layer's dentry beside it; [`NO_OFFSET`] without overlayfs in the kernel's BTF.
    pub ovl_inode_vfs_inode: u32,
    pub ovl_inode_upperdentry: u32,

    pub vfsmount_mnt_root: u32,
    /// Offset of the embedded `struct vfsmount mnt` inside `struct mount`.
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,

    pub fs_root: u32,
    pub fs_pwd: u32,

    pub mm_exe_file: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,

    pub signal_tty: u32,
    /// signal_struct.pids: the process group's and session's struct pid (PIDTYPE_PGID, _SID).
    pub signal_pids: u32,
    pub signal_live: u32,
    pub signal_group_exit_code: u32,
    pub tty_index: u32,
    pub tty_driver: u32,
    pub tty_driver_major: u32,
    pub tty_driver_minor_start: u32,

    pub nsproxy_mnt_ns: u32,
    pub mnt_namespace_inum: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_nr: u32,
    pub upid_ns: u32,
    pub pid_namespace_inum: u32,

    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_name: u32,
    pub kernfs_node_parent: u32,

    pub socket_sk: u32,
    pub sock_family: u32,
    pub sock_state: u32,
    pub sock_daddr: u32,
    pub sock_rcv_saddr: u32,
    pub sock_dport: u32,
    pub sock_num: u32,
    pub sock_v6_daddr: u32,
    pub sock_v6_rcv_saddr: u32,
    pub sock_protocol: u32,
    pub sock_type: u32,

    pub binprm_filename: u32,
    pub binprm_interp: u32,

    /// Where the syscall's arguments 0-5 sit in the task's saved user registers (pt_regs): the
    /// exit tracepoints read them there, so no entry program has to keep them.
    pub regs_arg0: u32,
    pub regs_arg1: u32,
    pub regs_arg2: u32,
    pub regs_arg3: u32,
    pub regs_arg4: u32,
    pub regs_arg5: u32,
    /// The syscall number in pt_regs (x86: orig_ax).
    pub regs_nr: u32,
    /// Where a 32-bit syscall's arguments 0-5 sit (x86: bx, cx, dx, si, di, bp).
    pub regs_ia32_arg0: u32,
    pub regs_ia32_arg1: u32,
    pub regs_ia32_arg2: u32,
    pub regs_ia32_arg3: u32,
    pub regs_ia32_arg4: u32,
    pub regs_ia32_arg5: u32,

    /// io_uring's request and its operations' data (io_uring/*.h); all [`NO_OFFSET`] when the
    /// kernel's BTF lacks them, and then the io_uring programs are not attached.
    pub iou_req_opcode: u32,
    pub iou_req_flags: u32,
    pub iou_req_fd: u32,
    pub iou_req_ctx: u32,
    pub iou_req_async_data: u32,
    /// struct io_open, at the start of the request (its `cmd`).
    pub iou_open_dfd: u32,
    pub iou_open_file_slot: u32,
    pub iou_open_filename: u32,
    pub iou_open_how_flags: u32,
    pub iou_open_how_mode: u32,
    pub filename_name: u32,
    /// struct io_connect, at the start of the request: the address's length.
    pub iou_connect_addr_len: u32,
    /// struct io_async_msghdr: the kernel's copy of the destination, and the msghdr naming it.
    pub iou_msg_addr: u32,
    pub iou_msg_name: u32,
    pub iou_msg_namelen: u32,
    /// The ring's fixed-file table (`file_table.data`) and a node's file pointer.
    pub iou_ctx_files_nr: u32,
    pub iou_ctx_files_nodes: u32,
    pub iou_rsrc_node_file_ptr: u32,
    /// 1: io_uring_complete's third argument is the CQE (6.13+); 0: its fourth is the result.
    pub iou_complete_has_cqe: u32,
}

/// An offset the running kernel does not have.
pub const NO_OFFSET: u32 = u32::MAX;

/// This architecture's numbers of the syscalls the programs tell apart (-1: it has none).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallNumbers {
    pub open: i32,
    pub openat: i32,
    pub openat2: i32,
    pub creat: i32,
    pub connect: i32,
    pub sendto: i32,
    pub sendmsg: i32,
    pub sendmmsg: i32,
    pub open_by_handle_at: i32,
    pub pidfd_getfd: i32,
    pub io_uring_enter: i32,
    pub _pad: i32,
}
