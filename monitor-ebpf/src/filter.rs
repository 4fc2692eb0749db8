//! Dismissing, in the kernel, events no loaded rule can match: the daemon compiles what the
//! rules need into these maps. The decisions themselves are monitor_common::filter's, which the
//! daemon's model of the kernel applies too; here are the maps and the reads they need.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use monitor_common::{
    DEFAULT_SET_ENTRIES, DirKey, DirVerdict, EventType, FileId, FilterConfig, LEAF_NAME_LEN, LeafName,
    NetFilter, TYPE_SLOTS, VERDICT_PASS,
};

use crate::kernel::{off, rd};

#[map]
static FILTER: Array<FilterConfig> = Array::with_max_entries(1, 0);
#[map]
static DIR_VERDICTS: LruHashMap<DirKey, DirVerdict> = LruHashMap::with_max_entries(16384, 0);
// Sized by the loader from the config (kernel_filter_sets).
#[map]
static LEAF_NAMES: HashMap<LeafName, u8> = HashMap::with_max_entries(DEFAULT_SET_ENTRIES, 0);
#[map]
static FILE_IDS: HashMap<FileId, u8> = HashMap::with_max_entries(DEFAULT_SET_ENTRIES, 0);
#[map]
static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(DEFAULT_SET_ENTRIES, 0);
#[map]
static PATH_GEN: Array<u64> = Array::with_max_entries(1, 0);
#[map]
static FILTERED: PerCpuArray<u64> = PerCpuArray::with_max_entries(TYPE_SLOTS, 0);
/// Scratch for a file name looked up in LEAF_NAMES (too large for the stack alongside a walk).
#[map]
static LEAF_SCRATCH: PerCpuArray<LeafName> = PerCpuArray::with_max_entries(1, 0);

static ZERO_NAME: [u8; LEAF_NAME_LEN] = [0; LEAF_NAME_LEN];

/// The filters in force; None only if the map is missing, and then everything passes.
#[inline(always)]
pub fn config() -> Option<&'static FilterConfig> {
    let c = FILTER.get(0)?;
    if c.active == 0 { None } else { Some(c) }
}

#[inline(always)]
pub fn count_filtered(evt_type: EventType) {
    count_filtered_code(evt_type as u8);
}

/// [`count_filtered`] for a type known by its code.
#[inline(always)]
pub fn count_filtered_code(evt_type: u8) {
    if let Some(n) = FILTERED.get_ptr_mut(evt_type as u32) {
        unsafe { *n += 1 };
    }
}

#[inline(always)]
pub fn path_gen() -> u64 {
    PATH_GEN.get(0).copied().unwrap_or(0)
}

/// A rename, rmdir or mount change happened: every directory verdict made before is void.
/// Not atomic (the target has no atomic add in Rust): two bumps racing may count once, which
/// still moves the count past every verdict made before either change took effect, since each
/// bump reads the count after its own change and a walk reads it before walking.
#[inline(always)]
pub fn bump_path_gen() {
    if let Some(p) = PATH_GEN.get_ptr_mut(0) {
        unsafe { core::ptr::write_volatile(p, core::ptr::read_volatile(p).wrapping_add(1)) };
    }
}

/// Whether the directory's verdict dismisses this open. `dentry` is the opened file's.
#[inline(always)]
pub fn dir_dismisses(c: &FilterConfig, key: &DirKey, class: u32, dentry: u64, ino: u64, dev: u32) -> bool {
    if c.open.by_directory == 0 {
        return false;
    }
    let Some(v) = (unsafe { DIR_VERDICTS.get(key) }) else { return false };
    if v.epoch != c.epoch || v.path_gen != path_gen() {
        return false;
    }
    let verdict = monitor_common::class_verdict(v, class);
    if verdict == VERDICT_PASS {
        return false;
    }
    let named_file = unsafe { FILE_IDS.get(FileId { ino, dev, _pad: 0 }) }.is_some();
    monitor_common::verdict_dismisses(verdict, named_file, || leaf_listed(dentry))
}

/// Whether the dentry's name is in LEAF_NAMES; a name that does not fit the set counts as
/// listed.
#[inline(always)]
fn leaf_listed(dentry: u64) -> bool {
    let len: u32 = rd(dentry + off!(dentry_d_name) + off!(qstr_len));
    if len as usize >= LEAF_NAME_LEN {
        return true;
    }
    let name: u64 = rd(dentry + off!(dentry_d_name) + off!(qstr_name));
    let Some(buf) = LEAF_SCRATCH.get_ptr_mut(0) else { return true };
    unsafe {
        bpf_probe_read_kernel(buf as *mut c_void, LEAF_NAME_LEN as u32, ZERO_NAME.as_ptr() as *const c_void);
        if bpf_probe_read_kernel_str(buf as *mut c_void, LEAF_NAME_LEN as u32, name as *const c_void) < 0 {
            return true;
        }
        LEAF_NAMES.get(*buf).is_some()
    }
}

/// Whether a connect or send with this family, results (RESULT_* bits) and destination port
/// can matter.
#[inline(always)]
pub fn net_wanted(f: &NetFilter, family: u16, results: u32, dport: u16) -> bool {
    monitor_common::net_wanted(f, family, results, || unsafe { PORTS.get(dport) }.is_some())
}
