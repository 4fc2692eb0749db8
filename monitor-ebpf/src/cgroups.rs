//! A cgroup's path, sent before the first event from it, so `container.id` resolves even for a
//! container whose cgroup is gone by the time userspace reads its events.

use aya_ebpf::{macros::map, maps::LruHashMap};
use monitor_common::CgroupEvent;

use crate::kernel::Task;
use crate::record::Record;

/// cgroup ids whose path userspace has been sent (by an exec or a cgroup record).
#[map]
static CGROUPS_ANNOUNCED: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4096, 0);

/// Sends the path of the current task's cgroup before its first event. Must run before the
/// event's own record is begun: both use the same per-CPU buffer.
#[inline(always)]
pub fn announce() {
    let id = unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() };
    if unsafe { CGROUPS_ANNOUNCED.get(id) }.is_some() {
        return;
    }
    let Some(mut rec) = Record::<CgroupEvent>::begin() else { return };
    let len = rec.append_cgroup_path(Task::current().cgroup_kn());
    rec.fixed().path_len = len;
    // Only what reached the ring counts as announced; a dropped one is sent again next time.
    if rec.submit() {
        announced(id);
    }
}

/// An exec record carries its cgroup's path itself.
#[inline(always)]
pub fn announced(id: u64) {
    let _ = CGROUPS_ANNOUNCED.insert(id, 1, 0);
}
