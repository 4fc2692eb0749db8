//! Kernel programs of the monitor. Tracepoints only (no kprobes, fentry or LSM on the hosts we
//! target). Each program reads what only the kernel can know at that moment (resolved paths, the
//! socket's addresses, credentials) and leaves formatting, joining and lookups to userspace.
//!
//! One module per hook family: [`process`] (exec, fork, exit), [`files`] (opens, and the path
//! changes that void directory verdicts), [`sockets`] (connects and sends, and the TCP
//! backstop), [`calls`] (the calls reported by their arguments: ptrace, link, chmod, socket,
//! dup, ...), [`ia32`] (the same for 32-bit syscalls), [`iouring`] (io_uring requests and
//! rings), [`cgroups`] (announcing a cgroup's path before its first event).
#![no_std]
#![no_main]

mod calls;
mod cgroups;
mod files;
mod filter;
mod ia32;
mod iouring;
mod kernel;
mod process;
mod record;
mod sockets;
mod syscall;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
