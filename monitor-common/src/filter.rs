//! What the in-kernel filter holds and how it decides: the daemon compiles what the rules in
//! force need into these values, the kernel programs apply them, and the daemon's model of the
//! kernel (for tests and `monitor rules`) applies the same functions, so the two cannot drift.
//! Every decision only ever dismisses what the values say no rule can match; anything unknown
//! (no verdict yet, a stale one, a name too long for the set) passes.

/// Open classes, as evt.is_open_read / evt.is_open_write see the flags: each open is exactly
/// one of them.
pub const OPEN_CLASS_READ: u32 = 1 << 0;
pub const OPEN_CLASS_WRITE: u32 = 1 << 1;
pub const OPEN_CLASS_READ_WRITE: u32 = 1 << 2;
pub const OPEN_CLASS_NEITHER: u32 = 1 << 3;
pub const OPEN_CLASSES: u32 = 0xf;
/// O_PATH: such an open reads nothing, whatever its access mode.
pub const O_PATH: u32 = 0o10000000;

/// The class bit of an open with these flags.
pub const fn open_class(flags: u32) -> u32 {
    let mode = flags & 3;
    let read = (mode == 0 || mode == 2) && flags & O_PATH == 0;
    let write = mode == 1 || mode == 2;
    match (read, write) {
        (true, false) => OPEN_CLASS_READ,
        (false, true) => OPEN_CLASS_WRITE,
        (true, true) => OPEN_CLASS_READ_WRITE,
        (false, false) => OPEN_CLASS_NEITHER,
    }
}

/// Results, for [`NetFilter::results`] and [`OpenFilter::results`].
pub const RESULT_OK: u32 = 1 << 0;
/// -EINPROGRESS: a non-blocking connect under way.
pub const RESULT_IN_PROGRESS: u32 = 1 << 1;
pub const RESULT_FAILED: u32 = 1 << 2;
pub const RESULTS: u32 = 0x7;
pub const EINPROGRESS: i64 = 115;

pub const fn result_class(ret: i64) -> u32 {
    if ret >= 0 {
        RESULT_OK
    } else if ret == -EINPROGRESS {
        RESULT_IN_PROGRESS
    } else {
        RESULT_FAILED
    }
}

/// Socket families, for [`NetFilter::families`].
pub const FAMILY_UNIX: u32 = 1 << 0;
pub const FAMILY_INET: u32 = 1 << 1;
pub const FAMILY_INET6: u32 = 1 << 2;
pub const FAMILY_OTHER: u32 = 1 << 3;
pub const FAMILIES: u32 = 0xf;

pub const fn family_class(family: u16) -> u32 {
    match family {
        crate::fd::AF_UNIX => FAMILY_UNIX,
        crate::fd::AF_INET => FAMILY_INET,
        crate::fd::AF_INET6 => FAMILY_INET6,
        _ => FAMILY_OTHER,
    }
}

/// What an open must be for some rule to possibly match it.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OpenFilter {
    /// OPEN_CLASS_* bits.
    pub classes: u32,
    /// RESULT_OK and/or RESULT_FAILED.
    pub results: u32,
    /// 1: look the file's directory up in DIR_VERDICTS.
    pub by_directory: u32,
    /// 1: a reported open whose path was resolved also carries the caller's string
    /// (fd.nameraw), which costs a user-memory read only rules that name it should pay.
    pub raw_names: u32,
}

/// What a connect or send must be for some rule to possibly match it.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NetFilter {
    pub families: u32,
    pub results: u32,
    /// 1: the destination port must be in PORTS.
    pub by_port: u32,
    pub _pad: u32,
}

/// The filters in force. `epoch` changes with every change of rules, so directory verdicts
/// made for earlier rules are ignored.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    pub epoch: u32,
    /// 0: every event passes (no rules loaded, `monitor events`, or a reload under way).
    pub active: u32,
    pub open: OpenFilter,
    pub connect: NetFilter,
    pub sendto: NetFilter,
    /// The calls of [`crate::calls`] some rule can match, by event type bit
    /// ([`crate::TypeSet`]'s); the others are dismissed by type alone.
    pub calls: u64,
}

impl FilterConfig {
    /// Everything passes.
    pub const PASS_ALL: Self = Self {
        epoch: 0,
        active: 0,
        open: OpenFilter { classes: OPEN_CLASSES, results: RESULTS, by_directory: 0, raw_names: 1 },
        connect: NetFilter { families: FAMILIES, results: RESULTS, by_port: 0, _pad: 0 },
        sendto: NetFilter { families: FAMILIES, results: RESULTS, by_port: 0, _pad: 0 },
        calls: u64::MAX,
    };
}

/// A directory as the path walk would name it: the directory's inode, the mount the file was
/// opened through, and the opener's root (the walk stops there).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DirKey {
    pub ino: u64,
    pub mnt: u64,
    pub root_mnt: u64,
    pub root_dentry: u64,
    /// Kernel encoding (major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
}

/// Every open of this class in the directory passes.
pub const VERDICT_PASS: u8 = 0;
/// Only files whose name is in LEAF_NAMES pass.
pub const VERDICT_LEAVES: u8 = 1;
/// No open of this class in the directory can match a rule.
pub const VERDICT_DROP: u8 = 2;

#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DirVerdict {
    /// PATH_GEN when the path was walked; the verdict holds only while it is unchanged.
    pub path_gen: u64,
    /// FilterConfig::epoch the verdict was made for.
    pub epoch: u32,
    /// Per open class, in OPEN_CLASS_* bit order.
    pub by_class: [u8; 4],
}

/// Longest file name LEAF_NAMES holds; a longer name always passes.
pub const LEAF_NAME_LEN: usize = 64;

#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeafName(pub [u8; LEAF_NAME_LEN]);

impl LeafName {
    /// The set's key for a file name; None when the set cannot hold it (empty, too long, or
    /// with a NUL).
    pub fn new(name: &[u8]) -> Option<Self> {
        if name.is_empty() || name.len() >= LEAF_NAME_LEN || name.contains(&0) {
            return None;
        }
        let mut out = [0u8; LEAF_NAME_LEN];
        out[..name.len()].copy_from_slice(name);
        Some(Self(out))
    }
}

#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileId {
    pub ino: u64,
    /// Kernel encoding (major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
}

/// An open's result as [`OpenFilter::results`] sees it.
pub const fn open_result(ret: i64) -> u32 {
    if ret >= 0 { RESULT_OK } else { RESULT_FAILED }
}

/// Whether an open of this class can matter to some rule, before the file is looked at.
/// `results`: the open's result class ([`open_result`]), or [`RESULTS`] while it is unknown
/// (an io_uring open at submission).
#[inline(always)]
pub fn open_wanted(f: &OpenFilter, class: u32, results: u32) -> bool {
    f.classes & class != 0 && f.results & results != 0
}

/// The verdict of one open class (an OPEN_CLASS_* bit) in a directory's verdict.
#[inline(always)]
pub fn class_verdict(v: &DirVerdict, class: u32) -> u8 {
    match class {
        OPEN_CLASS_READ => v.by_class[0],
        OPEN_CLASS_WRITE => v.by_class[1],
        OPEN_CLASS_READ_WRITE => v.by_class[2],
        _ => v.by_class[3],
    }
}

/// Whether a directory's verdict dismisses an open of this class. `named_file`: the file is one
/// rules name by path (its identity is in FILE_IDS); `listed`: asks whether the file's name is
/// in LEAF_NAMES (a name too long for the set counts as listed), called only when needed.
#[inline(always)]
pub fn verdict_dismisses(verdict: u8, named_file: bool, listed: impl FnOnce() -> bool) -> bool {
    match verdict {
        // A file rules name by path is theirs under any name (a hard link, a bind mount).
        VERDICT_DROP => !named_file,
        VERDICT_LEAVES => !named_file && !listed(),
        _ => false,
    }
}

/// Whether a connect or send with this family, result and destination port can matter.
/// `results`: the result's class ([`result_class`]), or [`RESULTS`] while it is unknown.
/// `port_listed` asks whether the port is in PORTS, called only when the filter narrows by port.
#[inline(always)]
pub fn net_wanted(f: &NetFilter, family: u16, results: u32, port_listed: impl FnOnce() -> bool) -> bool {
    if f.families & family_class(family) == 0 || f.results & results == 0 {
        return false;
    }
    f.by_port == 0 || port_listed()
}

/// Whether a call of this type ([`crate::calls`]) can matter to some rule.
#[inline(always)]
pub fn call_wanted(c: &FilterConfig, evt_type: u8) -> bool {
    evt_type < 64 && c.calls & (1u64 << evt_type) != 0
}
