//! System calls made by hand, from a child process of the test's own, for the side-door
//! tests: 32-bit syscalls through `int 0x80`, io_uring through its raw syscalls and rings,
//! and the syscalls libc barely wraps. The child is forked from the multi-threaded test
//! process, so between fork and _exit it may only make system calls: whatever it touches
//! (paths, addresses, messages) is prepared before the fork.

use std::cell::Cell;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs `f` in a forked child; returns the child's pid once it exited with status 0 (`f`
/// returns 0 when every call it made did what the test needs).
pub fn in_child(f: impl FnOnce() -> i32) -> u32 {
    // SAFETY: the child runs only `f`, which makes system calls on memory prepared before the
    // fork, and then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's calls failed: wait status {status:#x} (exit code {})",
        libc::WEXITSTATUS(status)
    );
    pid as u32
}

/// The exit code a child gives when call `step` (counting from 1) returned `ret`: 0 for a
/// result that is not an error, else `step` (so a failed test says which call failed).
pub fn check(step: i32, ret: i64) -> Result<(), i32> {
    if ret < 0 { Err(step) } else { Ok(()) }
}

/// `check`ed calls in sequence, as the child's exit code.
pub fn steps(f: impl FnOnce() -> Result<(), i32>) -> i32 {
    match f() {
        Ok(()) => 0,
        Err(step) => step,
    }
}

pub fn syscall(nr: i64, args: &[u64]) -> i64 {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: the caller's arguments are what the syscall takes; memory they point at is the
    // caller's.
    unsafe { libc::syscall(nr, a(0), a(1), a(2), a(3), a(4), a(5)) }
}

/// Memory below 4 GiB (MAP_32BIT), where pointers a 32-bit syscall takes must point. Values
/// are copied in before the fork; the child gets its own copy.
pub struct Low {
    base: *mut u8,
    used: Cell<usize>,
}

const LOW_BYTES: usize = 1 << 16;

impl Low {
    pub fn new() -> Self {
        // SAFETY: a fresh anonymous private mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LOW_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap(MAP_32BIT)");
        assert!((base as usize) < u32::MAX as usize - LOW_BYTES);
        Self { base: base.cast(), used: Cell::new(0) }
    }

    /// Copies `bytes` in; returns their 32-bit address.
    pub fn bytes(&self, bytes: &[u8]) -> u32 {
        let at = self.used.get().next_multiple_of(16);
        assert!(at + bytes.len() <= LOW_BYTES, "low memory is full");
        // SAFETY: within the mapping, not yet handed out.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(at), bytes.len()) };
        self.used.set(at + bytes.len());
        (self.base as usize + at) as u32
    }

    pub fn put<T: Copy>(&self, v: T) -> u32 {
        // SAFETY: T is plain data; its bytes are read once.
        let bytes = unsafe { std::slice::from_raw_parts((&raw const v).cast::<u8>(), size_of::<T>()) };
        self.bytes(bytes)
    }

    pub fn cstr(&self, s: &str) -> u32 {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.bytes(&b)
    }

    /// Room for `n` bytes the kernel writes (a file handle, a result).
    pub fn room(&self, n: usize) -> u32 {
        self.bytes(&vec![0; n])
    }
}

impl Drop for Low {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new.
        unsafe { libc::munmap(self.base.cast(), LOW_BYTES) };
    }
}

/// A 32-bit syscall from this 64-bit process through `int 0x80`: the number in eax, the
/// arguments in ebx, ecx, edx, esi, edi, ebp, each 32 bits (pointers into [`Low`]).
#[cfg(target_arch = "x86_64")]
pub fn int80(nr: u32, args: &[u32]) -> i32 {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    let ret: i32;
    // rbx and rbp cannot be asm operands (LLVM keeps them): loaded and restored by hand.
    // SAFETY: the kernel reads the arguments as the syscall defines them.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "push rbp",
            "mov ebx, {a0:e}",
            "mov ebp, {a5:e}",
            "int 0x80",
            "pop rbp",
            "pop rbx",
            a0 = in(reg) a(0),
            a5 = in(reg) a(5),
            inlateout("eax") nr => ret,
            in("ecx") a(1),
            in("edx") a(2),
            in("esi") a(3),
            in("edi") a(4),
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
pub fn int80(_nr: u32, _args: &[u32]) -> i32 {
    -libc::ENOSYS
}

/// ia32 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl) and socketcall's calls.
pub mod nr32 {
    pub const IA32_EXECVE: u32 = 11;
    pub const IA32_OPEN: u32 = 5;
    pub const IA32_CREAT: u32 = 8;
    pub const IA32_RENAME: u32 = 38;
    pub const IA32_SOCKETCALL: u32 = 102;
    pub const IA32_OPENAT: u32 = 295;
    pub const IA32_NAME_TO_HANDLE_AT: u32 = 341;
    pub const IA32_OPEN_BY_HANDLE_AT: u32 = 342;
    pub const IA32_SENDMMSG: u32 = 345;
    pub const IA32_SOCKET: u32 = 359;
    pub const IA32_CONNECT: u32 = 362;
    pub const IA32_LISTEN: u32 = 363;
    pub const IA32_ACCEPT4: u32 = 364;
    pub const IA32_RECVFROM: u32 = 371;
    pub const IA32_SENDTO: u32 = 369;
    pub const IA32_SENDMSG: u32 = 370;
    pub const IA32_OPENAT2: u32 = 437;
    pub const SYS_SOCKET: u32 = 1;
    pub const SYS_CONNECT: u32 = 3;
    pub const SYS_LISTEN: u32 = 4;
    pub const SYS_ACCEPT: u32 = 5;
    pub const SYS_RECVFROM: u32 = 12;
    pub const SYS_SENDTO: u32 = 11;
    pub const SYS_SENDMSG: u32 = 16;
    pub const SYS_SENDMMSG: u32 = 20;
}

pub const O_RDONLY: u32 = 0;
pub const AT_FDCWD: i32 = -100;
pub const MSG_FASTOPEN: u32 = 0x2000_0000;

/// Whether 32-bit syscalls work here: a child makes ia32 getpid, which a kernel without ia32
/// emulation answers with SIGSEGV.
pub fn ia32_works() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    // SAFETY: the child makes one syscall and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = int80(20, &[]) == std::process::id() as i32;
        // SAFETY: ends the child.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Skips the calling test when this host has no ia32 emulation (the daemon then attaches no
/// ia32 program either: there is nothing to watch).
#[macro_export]
macro_rules! require_ia32 {
    () => {
        if !$crate::common::raw::ia32_works() {
            $crate::common::skip(
                &$crate::common::test_name(),
                "no ia32 emulation on this host: int 0x80 is refused",
            );
            return;
        }
    };
}

/// Moves the calling process into the cgroup whose `cgroup.procs` this is (writing 0 moves
/// the writer), for a child that must be in a fake container.
pub fn enter_cgroup(procs: &std::ffi::CStr) -> Result<(), i32> {
    let fd = syscall(libc::SYS_open, &[procs.as_ptr() as u64, libc::O_WRONLY as u64]);
    check(90, fd)?;
    check(91, syscall(libc::SYS_write, &[fd as u64, c"0".as_ptr() as u64, 1]))?;
    syscall(libc::SYS_close, &[fd as u64]);
    Ok(())
}

pub fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.ip().octets()) },
        sin_zero: [0; 8],
    }
}

/// struct compat_msghdr (include/linux/compat.h): a 32-bit program's msghdr.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CompatMsghdr {
    pub name: u32,
    pub namelen: i32,
    pub iov: u32,
    pub iovlen: u32,
    pub control: u32,
    pub controllen: u32,
    pub flags: u32,
}

/// struct compat_mmsghdr.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CompatMmsghdr {
    pub hdr: CompatMsghdr,
    pub len: u32,
}

/// struct compat_iovec.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CompatIovec {
    pub base: u32,
    pub len: u32,
}

// io_uring (include/uapi/linux/io_uring.h)
pub const IORING_OP_NOP: u8 = 0;
pub const IORING_OP_SENDMSG: u8 = 9;
pub const IORING_OP_CONNECT: u8 = 16;
pub const IORING_OP_OPENAT: u8 = 18;
pub const IORING_OP_READ: u8 = 22;
pub const IORING_OP_SEND: u8 = 26;
pub const IORING_OP_OPENAT2: u8 = 28;
pub const IORING_OP_RENAMEAT: u8 = 35;
pub const IOSQE_IO_LINK: u8 = 1 << 2;
pub const IOSQE_CQE_SKIP_SUCCESS: u8 = 1 << 6;
const IORING_ENTER_GETEVENTS: u64 = 1;
const IORING_ENTER_SQ_WAKEUP: u64 = 2;
const IORING_SETUP_SQPOLL: u32 = 1 << 1;
pub const IOSQE_FIXED_FILE: u8 = 1 << 0;
pub const IOSQE_ASYNC: u8 = 1 << 4;
pub const IORING_OP_SEND_ZC: u8 = 47;
pub const IORING_OP_SENDMSG_ZC: u8 = 48;
pub const IORING_OP_SOCKET: u8 = 45;
const IORING_REGISTER_FILES: u64 = 2;
const SYS_IO_URING_SETUP: i64 = 425;
const SYS_IO_URING_ENTER: i64 = 426;
const SYS_IO_URING_REGISTER: i64 = 427;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    /// off, or addr2 (the open_how of OPENAT2, connect's address length, a send's
    /// destination).
    pub off: u64,
    pub addr: u64,
    pub len: u32,
    /// open_flags, msg_flags, ...
    pub op_flags: u32,
    pub user_data: u64,
    pub buf_index: u16,
    pub personality: u16,
    /// file_index (a fixed-file slot + 1), or addr_len in its low 16 bits for a send.
    pub file_index: u32,
    pub addr3: u64,
    pub _pad: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

/// An io_uring instance driven by hand: its fd and the three mappings (SQ ring, CQ ring,
/// SQEs). Made and used in the child (io_uring_setup is reported as the caller's).
pub struct Ring {
    fd: i32,
    sq: *mut u8,
    cq: *mut u8,
    sqes: *mut Sqe,
    p: Params,
}

const RING_ENTRIES: u32 = 8;

impl Ring {
    /// A ring of 8 entries; Err(the failing step) when a call fails.
    pub fn new() -> Result<Ring, i32> {
        Self::with_flags(0)
    }

    /// A ring whose submissions a kernel thread polls (IORING_SETUP_SQPOLL): requests are
    /// submitted and issued by that thread, with no io_uring_enter to submit them.
    pub fn polled() -> Result<Ring, i32> {
        Self::with_flags(IORING_SETUP_SQPOLL)
    }

    fn with_flags(flags: u32) -> Result<Ring, i32> {
        let mut p = Params { flags, sq_thread_idle: 1000, ..Params::default() };
        let fd = syscall(SYS_IO_URING_SETUP, &[u64::from(RING_ENTRIES), (&raw mut p) as u64]);
        check(101, fd)?;
        let fd = fd as i32;
        let map = |len: usize, offset: i64| {
            // SAFETY: maps the ring's own regions, as io_uring_setup(2) describes.
            let m = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    fd,
                    offset,
                )
            };
            if m == libc::MAP_FAILED { Err(102) } else { Ok(m.cast::<u8>()) }
        };
        let sq = map(p.sq_off.array as usize + p.sq_entries as usize * 4, 0)?;
        let cq = map(p.cq_off.cqes as usize + p.cq_entries as usize * 16, 0x800_0000)?;
        let sqes = map(p.sq_entries as usize * size_of::<Sqe>(), 0x1000_0000)?.cast::<Sqe>();
        Ok(Ring { fd, sq, cq, sqes, p })
    }

    fn u32_at(base: *mut u8, off: u32) -> &'static AtomicU32 {
        // SAFETY: a u32 the kernel shares with us in a ring mapping that outlives the child.
        unsafe { &*(base.add(off as usize).cast::<AtomicU32>()) }
    }

    /// Queues `sqe` (not yet submitted).
    pub fn push(&self, sqe: Sqe) {
        let tail = Self::u32_at(self.sq, self.p.sq_off.tail);
        let mask = Self::u32_at(self.sq, self.p.sq_off.ring_mask).load(Ordering::Relaxed);
        let t = tail.load(Ordering::Relaxed);
        let i = t & mask;
        // SAFETY: slot i of the SQE array and of the index array, both within their mappings.
        unsafe {
            self.sqes.add(i as usize).write(sqe);
            self.sq.add(self.p.sq_off.array as usize).cast::<u32>().add(i as usize).write(i);
        }
        tail.store(t.wrapping_add(1), Ordering::Release);
    }

    /// Submits what was pushed and waits for `wait` completions.
    pub fn enter(&self, submit: u32, wait: u32) -> i64 {
        let mut flags = if wait > 0 { IORING_ENTER_GETEVENTS } else { 0 };
        if self.p.flags & IORING_SETUP_SQPOLL != 0 {
            // The polling thread may have gone to sleep: wake it (harmless when awake).
            flags |= IORING_ENTER_SQ_WAKEUP;
        }
        syscall(SYS_IO_URING_ENTER, &[self.fd as u64, u64::from(submit), u64::from(wait), flags, 0, 0])
    }

    /// The next completion's result, or None when none is posted.
    pub fn reap(&self) -> Option<(u64, i32)> {
        let head = Self::u32_at(self.cq, self.p.cq_off.head);
        let tail = Self::u32_at(self.cq, self.p.cq_off.tail).load(Ordering::Acquire);
        let h = head.load(Ordering::Relaxed);
        if h == tail {
            return None;
        }
        let mask = Self::u32_at(self.cq, self.p.cq_off.ring_mask).load(Ordering::Relaxed);
        // SAFETY: CQE h & mask, within the CQ mapping: { u64 user_data; s32 res; u32 flags }.
        let (user_data, res) = unsafe {
            let cqe = self.cq.add(self.p.cq_off.cqes as usize + ((h & mask) as usize) * 16);
            (cqe.cast::<u64>().read(), cqe.add(8).cast::<i32>().read())
        };
        head.store(h.wrapping_add(1), Ordering::Release);
        Some((user_data, res))
    }

    /// Runs one request to completion; returns its result (negative: -errno).
    pub fn run(&self, sqe: Sqe) -> i32 {
        self.push(sqe);
        let r = self.enter(1, 1);
        if r < 0 {
            return r as i32;
        }
        self.reap().map_or(-libc::EIO, |(_, res)| res)
    }

    /// Runs a request that posts no completion on success (IOSQE_CQE_SKIP_SUCCESS): a NOP
    /// linked after it runs only once it completed. Returns the NOP's result, or the request's
    /// error when it failed (its completion is then posted). (A drain would do, but io_uring
    /// refuses drains once a ring has seen CQE_SKIP_SUCCESS.)
    pub fn run_skipping_success(&self, sqe: Sqe) -> i32 {
        self.push(Sqe { flags: sqe.flags | IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_LINK, ..sqe });
        self.push(Sqe { opcode: IORING_OP_NOP, user_data: 0xdead, ..Sqe::default() });
        let r = self.enter(2, 1);
        if r < 0 {
            return r as i32;
        }
        match self.reap() {
            Some((0xdead, res)) => res,
            Some((_, res)) if res < 0 => res,
            Some(_) => -libc::EPROTO,
            None => -libc::EIO,
        }
    }

    /// Registers a fixed-file table of `slots` empty slots.
    pub fn register_empty_files(&self, slots: &[i32]) -> i64 {
        syscall(
            SYS_IO_URING_REGISTER,
            &[self.fd as u64, IORING_REGISTER_FILES, slots.as_ptr() as u64, slots.len() as u64],
        )
    }
}
