//! Types shared by the kernel programs (monitor-ebpf) and the daemon (monitor).
//!
//! Every record the kernel writes to the ring buffer starts with [`EventHeader`], followed by the
//! fixed part for its [`EventKind`] and then, in the order the fixed part lists their lengths, the
//! variable-length sections (paths, argv). Sections are raw bytes without terminators or padding,
//! so a record is as long as what it carries.
#![no_std]

pub mod calls;
pub mod event_type;
pub mod fd;
pub mod filter;
pub mod offsets;
pub mod records;
pub mod via;

pub use event_type::{EventClass, EventType, TypeSet};
pub use fd::*;
pub use filter::*;
pub use offsets::{KernelOffsets, NO_OFFSET, SyscallNumbers};
pub use records::*;
pub use via::{Call, Via, iouring_op};

/// Name of the ring buffer map.
pub const EVENTS_MAP: &str = "EVENTS";
/// Name of the per-CPU array counting records that could not be reserved, indexed by [`EventKind`].
pub const DROPS_MAP: &str = "DROPS";
/// Name of the load-time global holding the kernel struct offsets read from BTF.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";
/// Name of the load-time global holding this architecture's [`SyscallNumbers`].
pub const SYSCALLS_GLOBAL: &str = "SYSCALLS";
/// Name of the load-time global holding the daemon's own tgid, whose activity is not reported.
pub const DAEMON_TGID_GLOBAL: &str = "DAEMON_TGID";
/// Name of the load-time global: ring-buffer fill (bytes) above which a record wakes the reader.
pub const WAKEUP_BYTES_GLOBAL: &str = "WAKEUP_BYTES";

/// Name of the array (one [`FilterConfig`]) holding what the rules in force need to see.
pub const FILTER_MAP: &str = "FILTER";
/// Name of the LRU map from a directory ([`DirKey`]) to what its files' opens can match
/// ([`DirVerdict`]), filled by userspace from the paths of the opens it receives.
pub const DIR_VERDICTS_MAP: &str = "DIR_VERDICTS";
/// Name of the hash set of file names ([`LeafName`]) that [`VERDICT_LEAVES`] lets through.
pub const LEAF_NAMES_MAP: &str = "LEAF_NAMES";
/// Name of the hash set of files ([`FileId`]) rules name by path, passed whatever their name.
pub const FILE_IDS_MAP: &str = "FILE_IDS";
/// Name of the hash set of destination ports (u16) the network filters let through.
pub const PORTS_MAP: &str = "PORTS";
/// Entries each of LEAF_NAMES, FILE_IDS and PORTS holds unless the config says otherwise.
pub const DEFAULT_SET_ENTRIES: u32 = 4096;
/// Name of the one-slot array counting renames, rmdirs and mount changes: a directory verdict
/// made before the count moved may describe a path that no longer exists.
pub const PATH_GEN_MAP: &str = "PATH_GEN";
/// Name of the per-CPU array counting events dismissed by the filters, indexed by
/// [`EventType`] (as u8).
pub const FILTERED_MAP: &str = "FILTERED";
/// Name of the array from a native syscall number to the [`calls::CallShape`] the generic
/// call program copies, filled by userspace from [`calls::CALLS`].
pub const CALL_SHAPES_MAP: &str = "CALL_SHAPES";
/// The same for ia32 syscall numbers.
pub const IA32_CALL_SHAPES_MAP: &str = "IA32_CALL_SHAPES";
/// The calls' shapes by ia32 socketcall(2) call number (SYS_LISTEN, ...).
pub const SOCKETCALL_SHAPES_MAP: &str = "SOCKETCALL_SHAPES";
/// Slots of FILTERED: room for every event type, present and to come.
pub const TYPE_SLOTS: u32 = 64;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain #[repr(C)] integers without padding-dependent invariants.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::SyscallNumbers {}
    unsafe impl aya::Pod for super::FilterConfig {}
    unsafe impl aya::Pod for super::DirKey {}
    unsafe impl aya::Pod for super::DirVerdict {}
    unsafe impl aya::Pod for super::LeafName {}
    unsafe impl aya::Pod for super::FileId {}
    unsafe impl aya::Pod for super::calls::CallShape {}
}
