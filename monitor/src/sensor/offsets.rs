//! Kernel struct offsets from the running kernel's BTF: the kernel programs are compiled without
//! any, so one binary runs on every kernel whose BTF names these members.

use anyhow::{Context as _, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use monitor_common::{KernelOffsets, NO_OFFSET};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub struct BtfOffsets {
    btf: Btf,
}

impl BtfOffsets {
    pub fn from_sys() -> Result<Self> {
        let btf = Btf::from_file(VMLINUX_BTF).map_err(|e| anyhow!("cannot parse {VMLINUX_BTF}: {e}"))?;
        Ok(Self { btf })
    }

    fn struct_type(&self, name: &str) -> Result<btf_rs::Struct> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| anyhow!("kernel BTF has no type {name}: {e}"))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| anyhow!("kernel BTF has no struct {name}"))
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn strip(&self, mut t: Type) -> Result<Type> {
        loop {
            t = match &t {
                Type::Typedef(x) => self.btf.resolve_chained_type(x),
                Type::Const(x) => self.btf.resolve_chained_type(x),
                Type::Volatile(x) => self.btf.resolve_chained_type(x),
                Type::Restrict(x) => self.btf.resolve_chained_type(x),
                Type::TypeTag(x) => self.btf.resolve_chained_type(x),
                _ => return Ok(t),
            }
            .map_err(|e| anyhow!("BTF: {e}"))?;
        }
    }

    /// Finds `name` among the members of `s`, descending into anonymous structs and unions.
    /// Returns the bit offset from the start of `s` and the member's type.
    fn find_member(&self, s: &btf_rs::Struct, name: &str) -> Option<(u32, Type)> {
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            if mname == name {
                let t = self.btf.resolve_chained_type(m).ok()?;
                return Some((m.bit_offset(), self.strip(t).ok()?));
            }
            if mname.is_empty() {
                let t = self.strip(self.btf.resolve_chained_type(m).ok()?).ok()?;
                if let Type::Struct(inner) | Type::Union(inner) = &t
                    && let Some((bits, t)) = self.find_member(inner, name)
                {
                    return Some((m.bit_offset() + bits, t));
                }
            }
        }
        None
    }

    /// Byte offset of a dotted member path (`f_path.dentry`) from the start of struct `ty`.
    pub fn offset(&self, ty: &str, path: &str) -> Result<u32> {
        let mut s = self.struct_type(ty)?;
        let mut total_bits = 0u32;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (bits, t) = self
                .find_member(&s, part)
                .ok_or_else(|| anyhow!("kernel BTF: struct {ty} has no member {path}"))?;
            total_bits += bits;
            if i + 1 < parts.len() {
                s = match t {
                    Type::Struct(x) | Type::Union(x) => x,
                    _ => bail!("kernel BTF: {ty}.{path}: {part} is not a struct"),
                };
            }
        }
        if !total_bits.is_multiple_of(8) {
            bail!("kernel BTF: {ty}.{path} is a bitfield");
        }
        Ok(total_bits / 8)
    }

    /// The first of several member names this kernel has (members get renamed across versions).
    fn offset_any(&self, ty: &str, paths: &[&str]) -> Result<u32> {
        let mut last = None;
        for p in paths {
            match self.offset(ty, p) {
                Ok(o) => return Ok(o),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no member names given")))
    }

    fn size_of(&self, ty: &str) -> Result<u32> {
        Ok(self.struct_type(ty)?.size() as u32)
    }

    /// Offsets in pt_regs of the registers holding syscall arguments 0-5.
    fn syscall_arg_regs(&self) -> Result<[u32; 6]> {
        #[cfg(target_arch = "x86_64")]
        let names = ["di", "si", "dx", "r10", "r8", "r9"];
        #[cfg(target_arch = "aarch64")]
        {
            // x0 holds the result by the exit; the kernel keeps the first argument in orig_x0.
            let regs = self.offset("pt_regs", "regs")?;
            return Ok([
                self.offset("pt_regs", "orig_x0")?,
                regs + 8,
                regs + 16,
                regs + 24,
                regs + 32,
                regs + 40,
            ]);
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            let mut out = [0; 6];
            for (o, n) in out.iter_mut().zip(names) {
                *o = self.offset("pt_regs", n)?;
            }
            Ok(out)
        }
    }

    /// The syscall number's place in pt_regs, and where a 32-bit syscall's arguments are
    /// (x86_64 only; [`NO_OFFSET`] elsewhere).
    fn syscall_nr_regs(&self) -> Result<(u32, [u32; 6])> {
        #[cfg(target_arch = "x86_64")]
        {
            let mut ia32 = [0; 6];
            for (o, n) in ia32.iter_mut().zip(["bx", "cx", "dx", "si", "di", "bp"]) {
                *o = self.offset("pt_regs", n)?;
            }
            Ok((self.offset("pt_regs", "orig_ax")?, ia32))
        }
        #[cfg(target_arch = "aarch64")]
        return Ok((self.offset("pt_regs", "syscallno")?, [NO_OFFSET; 6]));
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        bail!("syscall numbers in pt_regs are only known for x86_64 and aarch64")
    }

    /// Whether io_uring_complete passes the CQE (6.13 and later) rather than its fields.
    fn iou_complete_has_cqe(&self) -> Result<bool> {
        let name = "btf_trace_io_uring_complete";
        let t = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| anyhow!("kernel BTF has no {name}: {e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("kernel BTF has no {name}"))?;
        let mut t = self.strip(t)?;
        if let Type::Ptr(p) = &t {
            t = self.btf.resolve_chained_type(p).map_err(|e| anyhow!("BTF: {e}"))?;
        }
        match t {
            // The first parameter is the tracepoint's own data pointer.
            Type::FuncProto(f) => match f.parameters.len() {
                4 => Ok(true),
                8 => Ok(false),
                n => bail!("{name} takes {n} parameters, not the 4 or 8 the sensor knows"),
            },
            _ => bail!("{name} is not a function pointer"),
        }
    }

    /// What the io_uring programs read; Err when this kernel's io_uring is not the one they
    /// know (or it has none), and then they are not attached.
    pub fn fill_io_uring(&self, k: &mut KernelOffsets) -> Result<()> {
        let o = |ty: &str, path: &str| self.offset(ty, path);
        let r = "io_kiocb";
        k.iou_req_opcode = o(r, "opcode")?;
        k.iou_req_flags = o(r, "flags")?;
        k.iou_req_fd = o(r, "cqe.fd")?;
        k.iou_req_ctx = o(r, "ctx")?;
        k.iou_req_async_data = o(r, "async_data")?;
        k.iou_open_dfd = o("io_open", "dfd")?;
        k.iou_open_file_slot = o("io_open", "file_slot")?;
        k.iou_open_filename = o("io_open", "filename")?;
        k.iou_open_how_flags = o("io_open", "how.flags")?;
        k.iou_open_how_mode = o("io_open", "how.mode")?;
        k.filename_name = o("filename", "name")?;
        k.iou_connect_addr_len = o("io_connect", "addr_len")?;
        k.iou_msg_addr = o("io_async_msghdr", "addr")?;
        let msg = o("io_async_msghdr", "msg")?;
        k.iou_msg_name = msg + o("msghdr", "msg_name")?;
        k.iou_msg_namelen = msg + o("msghdr", "msg_namelen")?;
        k.iou_ctx_files_nr = o("io_ring_ctx", "file_table.data.nr")?;
        k.iou_ctx_files_nodes = o("io_ring_ctx", "file_table.data.nodes")?;
        k.iou_rsrc_node_file_ptr = o("io_rsrc_node", "file_ptr")?;
        k.iou_complete_has_cqe = u32::from(self.iou_complete_has_cqe()?);
        Ok(())
    }

    pub fn kernel_offsets(&self) -> Result<KernelOffsets> {
        let o = |ty: &str, path: &str| self.offset(ty, path);
        let regs = self.syscall_arg_regs()?;
        let (regs_nr, ia32) = self.syscall_nr_regs()?;
        let t = "task_struct";
        Ok::<_, anyhow::Error>(KernelOffsets {
            task_pid: o(t, "pid")?,
            task_tgid: o(t, "tgid")?,
            task_real_parent: o(t, "real_parent")?,
            task_group_leader: o(t, "group_leader")?,
            task_start_boottime: o(t, "start_boottime")?,
            task_real_cred: o(t, "real_cred")?,
            task_files: o(t, "files")?,
            task_fs: o(t, "fs")?,
            task_mm: o(t, "mm")?,
            task_signal: o(t, "signal")?,
            task_nsproxy: o(t, "nsproxy")?,
            task_thread_pid: o(t, "thread_pid")?,
            task_loginuid: o(t, "loginuid")?,
            task_cgroups: o(t, "cgroups")?,
            task_exit_code: o(t, "exit_code")?,
            task_flags: o(t, "flags")?,
            // x86 only: other architectures' thread_info has no status.
            task_ti_status: o(t, "thread_info.status").unwrap_or(NO_OFFSET),
            cred_euid: o("cred", "euid")?,
            cred_egid: o("cred", "egid")?,
            cred_cap_inheritable: o("cred", "cap_inheritable")?,
            cred_cap_permitted: o("cred", "cap_permitted")?,
            cred_cap_effective: o("cred", "cap_effective")?,
            files_fdt: o("files_struct", "fdt")?,
            fdtable_max_fds: o("fdtable", "max_fds")?,
            fdtable_fd: o("fdtable", "fd")?,
            file_f_path: o("file", "f_path")?,
            file_f_inode: o("file", "f_inode")?,
            file_private_data: o("file", "private_data")?,
            file_f_flags: o("file", "f_flags")?,
            path_mnt: o("path", "mnt")?,
            path_dentry: o("path", "dentry")?,
            dentry_d_parent: o("dentry", "d_parent")?,
            dentry_d_name: o("dentry", "d_name")?,
            dentry_d_inode: o("dentry", "d_inode")?,
            qstr_len: o("qstr", "len")?,
            qstr_name: o("qstr", "name")?,
            inode_i_mode: o("inode", "i_mode")?,
            inode_i_ino: o("inode", "i_ino")?,
            inode_i_sb: o("inode", "i_sb")?,
            inode_i_rdev: o("inode", "i_rdev")?,
            inode_i_nlink: self.offset_any("inode", &["__i_nlink", "i_nlink"])?,
            super_block_s_dev: o("super_block", "s_dev")?,
            super_block_s_magic: o("super_block", "s_magic")?,
            // overlayfs built as a module has no types in vmlinux: then no exe is known to be
            // from an upper layer.
            ovl_inode_vfs_inode: o("ovl_inode", "vfs_inode").unwrap_or(NO_OFFSET),
            ovl_inode_upperdentry: o("ovl_inode", "__upperdentry").unwrap_or(NO_OFFSET),
            vfsmount_mnt_root: o("vfsmount", "mnt_root")?,
            mount_mnt: o("mount", "mnt")?,
            mount_mnt_parent: o("mount", "mnt_parent")?,
            mount_mnt_mountpoint: o("mount", "mnt_mountpoint")?,
            fs_root: o("fs_struct", "root")?,
            fs_pwd: o("fs_struct", "pwd")?,
            mm_exe_file: o("mm_struct", "exe_file")?,
            mm_arg_start: o("mm_struct", "arg_start")?,
            mm_arg_end: o("mm_struct", "arg_end")?,
            mm_env_start: o("mm_struct", "env_start")?,
            mm_env_end: o("mm_struct", "env_end")?,
            signal_tty: o("signal_struct", "tty")?,
            signal_pids: o("signal_struct", "pids")?,
            signal_live: o("signal_struct", "live")?,
            signal_group_exit_code: o("signal_struct", "group_exit_code")?,
            tty_index: o("tty_struct", "index")?,
            tty_driver: o("tty_struct", "driver")?,
            tty_driver_major: o("tty_driver", "major")?,
            tty_driver_minor_start: o("tty_driver", "minor_start")?,
            nsproxy_mnt_ns: o("nsproxy", "mnt_ns")?,
            mnt_namespace_inum: o("mnt_namespace", "ns.inum")?,
            pid_level: o("pid", "level")?,
            pid_numbers: o("pid", "numbers")?,
            upid_size: self.size_of("upid")?,
            upid_nr: o("upid", "nr")?,
            upid_ns: o("upid", "ns")?,
            pid_namespace_inum: o("pid_namespace", "ns.inum")?,
            css_set_dfl_cgrp: o("css_set", "dfl_cgrp")?,
            cgroup_kn: o("cgroup", "kn")?,
            kernfs_node_name: o("kernfs_node", "name")?,
            // Renamed to __parent in 6.15 when it became RCU-protected.
            kernfs_node_parent: self.offset_any("kernfs_node", &["__parent", "parent"])?,
            socket_sk: o("socket", "sk")?,
            sock_family: o("sock", "__sk_common.skc_family")?,
            sock_state: o("sock", "__sk_common.skc_state")?,
            sock_daddr: o("sock", "__sk_common.skc_daddr")?,
            sock_rcv_saddr: o("sock", "__sk_common.skc_rcv_saddr")?,
            sock_dport: o("sock", "__sk_common.skc_dport")?,
            sock_num: o("sock", "__sk_common.skc_num")?,
            sock_v6_daddr: o("sock", "__sk_common.skc_v6_daddr")?,
            sock_v6_rcv_saddr: o("sock", "__sk_common.skc_v6_rcv_saddr")?,
            sock_protocol: o("sock", "sk_protocol")?,
            sock_type: o("sock", "sk_type")?,
            binprm_filename: o("linux_binprm", "filename")?,
            binprm_interp: o("linux_binprm", "interp")?,
            regs_arg0: regs[0],
            regs_arg1: regs[1],
            regs_arg2: regs[2],
            regs_arg3: regs[3],
            regs_arg4: regs[4],
            regs_arg5: regs[5],
            regs_nr,
            regs_ia32_arg0: ia32[0],
            regs_ia32_arg1: ia32[1],
            regs_ia32_arg2: ia32[2],
            regs_ia32_arg3: ia32[3],
            regs_ia32_arg4: ia32[4],
            regs_ia32_arg5: ia32[5],
            iou_req_opcode: NO_OFFSET,
            iou_req_flags: NO_OFFSET,
            iou_req_fd: NO_OFFSET,
            iou_req_ctx: NO_OFFSET,
            iou_req_async_data: NO_OFFSET,
            iou_open_dfd: NO_OFFSET,
            iou_open_file_slot: NO_OFFSET,
            iou_open_filename: NO_OFFSET,
            iou_open_how_flags: NO_OFFSET,
            iou_open_how_mode: NO_OFFSET,
            filename_name: NO_OFFSET,
            iou_connect_addr_len: NO_OFFSET,
            iou_msg_addr: NO_OFFSET,
            iou_msg_name: NO_OFFSET,
            iou_msg_namelen: NO_OFFSET,
            iou_ctx_files_nr: NO_OFFSET,
            iou_ctx_files_nodes: NO_OFFSET,
            iou_rsrc_node_file_ptr: NO_OFFSET,
            iou_complete_has_cqe: 0,
        })
        .context("reading kernel struct offsets from BTF")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_resolve_on_this_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("SKIPPED: no {VMLINUX_BTF} on this machine");
            return;
        }
        let btf = BtfOffsets::from_sys().unwrap();
        let off = btf.kernel_offsets().unwrap();
        // Members inside anonymous unions resolve to their real place, not the union's start.
        assert_ne!(off.file_f_path, 0);
        assert_ne!(off.sock_dport, off.sock_num);
        assert_eq!(off.path_dentry, 8);
        assert!(off.upid_size >= 16);
        // x86_64's pt_regs: r15 .. di; di is the 15th slot, si the 14th.
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!((off.regs_arg0, off.regs_arg1), (112, 104));
            // orig_ax is the 16th slot; bx the 6th, bp the 5th.
            assert_eq!((off.regs_nr, off.regs_ia32_arg0, off.regs_ia32_arg5), (120, 40, 32));
            assert_ne!(off.task_ti_status, NO_OFFSET);
        }
    }

    #[test]
    fn io_uring_offsets_resolve_on_this_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("SKIPPED: no {VMLINUX_BTF} on this machine");
            return;
        }
        let btf = BtfOffsets::from_sys().unwrap();
        let mut off = btf.kernel_offsets().unwrap();
        if let Err(e) = btf.fill_io_uring(&mut off) {
            eprintln!("SKIPPED: this kernel's io_uring is not the one the sensor knows: {e:#}");
            return;
        }
        // The operation's data (struct io_open) overlays the request's start.
        assert!(off.iou_open_dfd < off.iou_req_opcode, "{off:?}");
        assert_eq!(off.iou_msg_name + 8, off.iou_msg_namelen);
        assert_ne!(off.iou_ctx_files_nodes, off.iou_ctx_files_nr);
    }
}
