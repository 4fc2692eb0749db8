//! What a program at a syscall's exit needs: which syscall it was, its result, and its
//! arguments, read from the task's saved registers (pt_regs) where they still are at the exit,
//! so no entry program and no map entry per syscall is needed. Native and 32-bit (ia32)
//! syscalls keep their arguments in different registers; [`Args`] knows which.

use crate::kernel::{self, off, rd};
use aya_ebpf::programs::TracePointContext;
use monitor_common::Via;

// Offsets in the syscalls:sys_enter_* / sys_exit_* records (see their format files).
pub const ARG2: usize = 32;
const RET: usize = 16;
const SYSCALL_NR: usize = 8;

#[inline(always)]
pub fn field<T>(ctx: &TracePointContext, offset: usize) -> T {
    unsafe { ctx.read_at::<T>(offset).unwrap_or(core::mem::zeroed()) }
}

/// The syscall's result (sys_exit_* records).
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> i64 {
    field(ctx, RET)
}

/// Which syscall is exiting (compare with [`kernel::syscalls`]).
#[inline(always)]
pub fn nr(ctx: &TracePointContext) -> i32 {
    field(ctx, SYSCALL_NR)
}

/// The saved user registers of the current syscall, and which ABI put its arguments there.
#[derive(Copy, Clone)]
pub struct Args {
    regs: u64,
    ia32: bool,
    /// ia32 socketcall(2)'s argument array in user memory (u32 each), or 0.
    array: u64,
}

impl Args {
    /// The current native syscall's.
    #[inline(always)]
    pub fn current() -> Self {
        Self { regs: kernel::syscall_regs(), ia32: false, array: 0 }
    }

    /// A 32-bit syscall's, from its pt_regs.
    #[inline(always)]
    pub fn ia32(regs: u64) -> Self {
        Self { regs, ia32: true, array: 0 }
    }

    /// Argument `n` (0-5). A 32-bit syscall's arguments are 32 bits wide: pointers among them
    /// point below 4 GiB, and a negative int comes sign-extended.
    #[inline(always)]
    pub fn get(self, n: u32) -> u64 {
        if self.array != 0 {
            return kernel::user::<u32>(self.array + 4 * (n as u64 & 7)) as u64;
        }
        if !self.ia32 {
            return kernel::syscall_arg(self.regs, n);
        }
        let o = match n {
            0 => off!(regs_ia32_arg0),
            1 => off!(regs_ia32_arg1),
            2 => off!(regs_ia32_arg2),
            3 => off!(regs_ia32_arg3),
            4 => off!(regs_ia32_arg4),
            _ => off!(regs_ia32_arg5),
        };
        rd::<u32>(self.regs + o) as u64
    }

    /// The arguments of a call an ia32 socketcall(2) made, from its array.
    #[inline(always)]
    pub fn socketcall(regs: u64, array: u64) -> Self {
        Self { regs, ia32: true, array }
    }

    /// Argument `n` as a C int.
    #[inline(always)]
    pub fn int(self, n: u32) -> i32 {
        self.get(n) as i32
    }

    #[inline(always)]
    pub fn via(self) -> Via {
        if self.ia32 { Via::Ia32 } else { Via::Syscall }
    }

    /// The layout of the user structures this syscall takes.
    #[inline(always)]
    pub fn abi(self) -> Abi {
        if self.ia32 { Abi::IA32 } else { Abi::NATIVE }
    }
}

/// Where the fields of the user structures syscalls take sit, per ABI: a 32-bit process passes
/// compat layouts (include/linux/compat.h) with 4-byte pointers.
#[derive(Copy, Clone)]
pub struct Abi {
    /// Size of a pointer in user memory.
    pub ptr: u64,
    /// struct msghdr: msg_namelen (msg_name is at 0).
    pub msg_namelen: u64,
    /// struct mmsghdr: its size (the msghdr is at 0), and msg_len, the bytes sent.
    pub mmsghdr_size: u64,
    pub mmsg_len: u64,
}

impl Abi {
    pub const NATIVE: Abi = Abi { ptr: 8, msg_namelen: 8, mmsghdr_size: 64, mmsg_len: 56 };
    pub const IA32: Abi = Abi { ptr: 4, msg_namelen: 4, mmsghdr_size: 32, mmsg_len: 28 };

    /// A pointer in user memory.
    #[inline(always)]
    pub fn read_ptr(self, addr: u64) -> u64 {
        if self.ptr == 4 { kernel::user::<u32>(addr) as u64 } else { kernel::user::<u64>(addr) }
    }
}
