//! The ways into the kernel some hosts have and others lack: 32-bit syscalls and io_uring.
//! Which are open here decides which programs are attached; the start-up log says which are
//! watched, which cannot be, and how an operator closes a door for good.

use monitor_common::KernelOffsets;

use super::offsets::BtfOffsets;
use super::programs::Needs;

/// What this host has, and so what the sensors watch.
#[derive(Debug)]
pub struct Doors {
    /// Ok: 32-bit syscalls happen here and are watched. Err: why they cannot happen.
    pub ia32: Result<(), String>,
    /// Ok(whether io_uring_complete passes the CQE): watched. Err: why not.
    pub io_uring: Result<bool, String>,
    /// The kernel has the x32 ABI, which no sensor watches.
    pub x32: bool,
}

impl Doors {
    /// Looks at this host; fills the io_uring offsets when its io_uring is one the programs
    /// know.
    pub fn detect(btf: &BtfOffsets, offsets: &mut KernelOffsets) -> Self {
        let io_uring = match btf.fill_io_uring(offsets) {
            Ok(()) => Ok(offsets.iou_complete_has_cqe != 0),
            Err(e) => Err(format!("{e:#}")),
        };
        let config = procfs::kernel_config().ok();
        let x32 = config.as_ref().is_some_and(|c| c.contains_key("CONFIG_X86_X32_ABI"));
        Self { ia32: ia32_possible(), io_uring, x32 }
    }

    pub fn admit(&self, needs: Needs) -> bool {
        match needs {
            Needs::Always => true,
            Needs::Ia32 => self.ia32.is_ok(),
            Needs::IoUring => self.io_uring.is_ok(),
            Needs::IoUringCompleteCqe => self.io_uring == Ok(true),
            Needs::IoUringCompleteRes => self.io_uring == Ok(false),
        }
    }

    /// One line per door, for the start-up log.
    pub fn log(&self) {
        match &self.ia32 {
            Ok(()) => tracing::info!(
                "ia32 syscalls: watched (32-bit programs and int 0x80 work on this host; the program \
                 that watches them runs at every syscall's exit; booting with ia32_emulation=0 closes \
                 this door and removes that cost)"
            ),
            Err(why) => tracing::info!("ia32 syscalls: not possible here ({why}); nothing to watch"),
        }
        match &self.io_uring {
            Ok(_) => tracing::info!(
                "io_uring: watched (opens, connects and sends with a destination, and ring setup; \
                 sysctl kernel.io_uring_disabled=2 closes this door)"
            ),
            Err(why) => tracing::warn!(
                "io_uring: NOT watched: this kernel's io_uring is not one the sensors know ({why}); \
                 set sysctl kernel.io_uring_disabled=2 to close this door"
            ),
        }
        if self.x32 {
            tracing::warn!(
                "x32 syscalls: NOT watched: this kernel has CONFIG_X86_X32_ABI; unless it is booted with \
                 syscall.x32=n, an x32 program can open files and connect unseen"
            );
        }
    }
}

/// Whether a 32-bit syscall works here, found by making one: a child process runs ia32
/// getpid through `int 0x80`, which a kernel without ia32 emulation (or booted with
/// ia32_emulation=0) answers with SIGSEGV.
#[cfg(target_arch = "x86_64")]
fn ia32_possible() -> Result<(), String> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    const IA32_GETPID: i64 = 20;
    // SAFETY: the child only runs the syscall instruction and _exit, both async-signal-safe.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let ret: i64;
            // SAFETY: ia32 getpid takes no arguments and touches no memory.
            unsafe { core::arch::asm!("int 0x80", inlateout("rax") IA32_GETPID => ret, options(nostack)) };
            let ok = ret == i64::from(std::process::id());
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, _)) => Err("int 0x80 getpid returned the wrong pid".to_owned()),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                Err(format!("int 0x80 is refused with {sig}: no ia32 emulation, or ia32_emulation=0"))
            }
            Ok(other) => Err(format!("the probe ended as {other:?}")),
            Err(e) => Err(format!("waiting for the probe: {e}")),
        },
        Err(e) => {
            tracing::warn!(
                "cannot fork the ia32 probe ({e}): watching 32-bit syscalls in case they are possible"
            );
            Ok(())
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn ia32_possible() -> Result<(), String> {
    Err("not an x86_64 kernel".to_owned())
}
