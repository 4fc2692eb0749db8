//! What a program on a syscall's exit tracepoint needs: which syscall it was, its result, and
//! its arguments, read from the task's saved registers (pt_regs) where they still are at the
//! exit, so no entry program and no map entry per syscall is needed.

use crate::kernel;
use aya_ebpf::programs::TracePointContext;

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

/// The saved user registers of the current syscall.
#[derive(Copy, Clone)]
pub struct Args(u64);

impl Args {
    #[inline(always)]
    pub fn current() -> Self {
        Self(kernel::syscall_regs())
    }

    /// Argument `n` (0-5).
    #[inline(always)]
    pub fn get(self, n: u32) -> u64 {
        kernel::syscall_arg(self.0, n)
    }
}
