//! Assembling one variable-length record in a per-CPU buffer and handing it to the ring buffer.
//!
//! The verifier needs every variable offset brought back into a fixed range before use, and LLVM
//! deletes masks it can prove redundant: `black_box` before each mask keeps the ones the verifier
//! needs.

use core::{ffi::c_void, hint::black_box};

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
            bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str,
        },
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use monitor_common::{DEFAULT_RING_BYTES, EventHeader, KIND_SLOTS, MAX_RECORD, RecordType};

use crate::kernel::{AT_FDCWD, Task, off, rd};

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Records that found the ring buffer full, per CPU, indexed by EventKind.
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Ring-buffer fill in bytes from which a record wakes the reader; below it the reader's own
/// short timer collects records, so busy hosts do not pay a wake-up per event.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 0;

/// A section is at most this long (mask), so a masked offset plus a section stays in the buffer.
const SECTION_MASK: u64 = 4095;
const REC_MASK: u64 = MAX_RECORD as u64 - 1;
const REC_BUF: usize = MAX_RECORD + 4096;
/// Path walks build right to left, ending here; names are at most 255 bytes, so a masked
/// position plus a name stays inside the walk buffer.
const WALK_END: u64 = 4096;
const WALK_TMP: u64 = 4352;
const WALK_BUF: usize = 8192;
/// Slots at the end of the walk buffer through which values pass to forget what the verifier
/// knows of them: a value read back from map memory is an unknown scalar, so the states after a
/// walk or a section no longer differ by the exact offsets of each path, and they prune.
const SLOT_OFF: usize = WALK_BUF - 8;
/// A walk's loop state, in u64 slots from here.
const WALK_STATE: usize = WALK_BUF - 64;
const WS_DENTRY: usize = 0;
const WS_VFSMNT: usize = 1;
const WS_POS: usize = 2;
const WS_DONE: usize = 3;
const WALK_RUNNING: u64 = 0;
const WALK_COMPLETE: u64 = 1;
const WALK_CUT: u64 = 2;

/// u64 slots in map memory, accessed volatile so LLVM keeps every load and store.
#[derive(Copy, Clone)]
struct WalkState(*mut u64);

impl WalkState {
    #[inline(always)]
    fn get(self, slot: usize) -> u64 {
        unsafe { core::ptr::read_volatile(self.0.add(slot)) }
    }

    #[inline(always)]
    fn set(self, slot: usize, v: u64) {
        unsafe { core::ptr::write_volatile(self.0.add(slot), v) }
    }
}
/// Directory levels a path walk climbs (mount crossings count as a level).
const MAX_DEPTH: usize = 64;
const MAX_CGROUP_DEPTH: usize = 16;

#[repr(C)]
pub struct RecordBuf {
    bytes: [u8; REC_BUF],
}

#[repr(C)]
pub struct WalkBuf {
    bytes: [u8; WALK_BUF],
}

#[map]
static RECORD_BUF: PerCpuArray<RecordBuf> = PerCpuArray::with_max_entries(1, 0);
#[map]
static WALK: PerCpuArray<WalkBuf> = PerCpuArray::with_max_entries(1, 0);

/// Counts one lost event in the per-CPU drop map.
#[inline(always)]
pub fn count_drop(slot: u32) {
    if let Some(count) = DROPS.get_ptr_mut(slot) {
        unsafe { *count += 1 };
    }
}

/// A record of type `T` being assembled.
pub struct Record<T: RecordType> {
    rec: *mut u8,
    walk: *mut u8,
    _type: core::marker::PhantomData<T>,
}

/// Zeroes for clearing a record's fixed part with one helper call instead of a byte loop.
static ZEROS: [u8; 512] = [0; 512];

impl<T: RecordType> Record<T> {
    /// Starts a record: its header filled for the current task, its fixed part zeroed.
    #[inline(always)]
    pub fn begin() -> Option<Self> {
        let rec = RECORD_BUF.get_ptr_mut(0)? as *mut u8;
        let walk = WALK.get_ptr_mut(0)? as *mut u8;
        let pid_tgid = bpf_get_current_pid_tgid();
        let uid_gid = bpf_get_current_uid_gid();
        unsafe {
            let size = size_of::<T>() as u32;
            bpf_probe_read_kernel(rec as *mut c_void, size, ZEROS.as_ptr() as *const c_void);
            *(rec as *mut EventHeader) = EventHeader {
                kind: T::KIND as u16,
                flags: 0,
                cpu: bpf_get_smp_processor_id() as u16,
                via: 0,
                call: 0,
                ts_ns: bpf_ktime_get_boot_ns(),
                pid: (pid_tgid >> 32) as u32,
                tid: pid_tgid as u32,
                uid: uid_gid as u32,
                gid: (uid_gid >> 32) as u32,
                cgroup_id: bpf_get_current_cgroup_id(),
            };
        }
        let r = Record { rec, walk, _type: core::marker::PhantomData };
        r.set_off(size_of::<T>() as u64);
        Some(r)
    }

    /// The record's current length, as an unknown scalar to the verifier (see SLOT_OFF).
    #[inline(always)]
    fn off(&self) -> u64 {
        unsafe { core::ptr::read_volatile(self.walk.add(SLOT_OFF) as *const u64) }
    }

    #[inline(always)]
    fn set_off(&self, v: u64) {
        unsafe { core::ptr::write_volatile(self.walk.add(SLOT_OFF) as *mut u64, v) }
    }

    /// The record's fixed part.
    #[inline(always)]
    pub fn fixed(&mut self) -> &mut T {
        unsafe { &mut *(self.rec as *mut T) }
    }

    /// Room for a section of up to `len` bytes at the current offset: (offset, length).
    #[inline(always)]
    fn room(&self, len: u64) -> Option<(u64, u64)> {
        let off = self.off();
        if off >= MAX_RECORD as u64 {
            return None;
        }
        let off = black_box(off) & REC_MASK;
        let space = MAX_RECORD as u64 - off;
        // Cap before masking: a mask alone would keep a longer section modulo its size.
        let len = if len > SECTION_MASK { SECTION_MASK } else { len };
        let len = if len > space { space } else { len };
        Some((off, black_box(len) & SECTION_MASK))
    }

    /// Appends kernel bytes (e.g. from the walk buffer); returns the length written.
    #[inline(always)]
    pub fn append_kernel_bytes(&mut self, src: u64, len: u64) -> u16 {
        let Some((off, len)) = self.room(len) else { return 0 };
        let ret = unsafe {
            bpf_probe_read_kernel(self.rec.add(off as usize) as *mut c_void, len as u32, src as *const c_void)
        };
        if ret != 0 {
            return 0;
        }
        self.set_off(off + len);
        len as u16
    }

    #[inline(always)]
    pub fn append_user_bytes(&mut self, src: u64, len: u64) -> u16 {
        let Some((off, len)) = self.room(len) else { return 0 };
        let ret = unsafe {
            bpf_probe_read_user(self.rec.add(off as usize) as *mut c_void, len as u32, src as *const c_void)
        };
        if ret != 0 {
            return 0;
        }
        self.set_off(off + len);
        len as u16
    }

    /// Appends a NUL-terminated kernel string, without its NUL.
    #[inline(always)]
    pub fn append_kernel_str(&mut self, src: u64) -> u16 {
        let Some((off, room)) = self.room(SECTION_MASK) else { return 0 };
        let n = unsafe {
            bpf_probe_read_kernel_str(
                self.rec.add(off as usize) as *mut c_void,
                room as u32,
                src as *const c_void,
            )
        };
        if n <= 1 {
            return 0;
        }
        let len = (n as u64 - 1) & SECTION_MASK;
        self.set_off(off + len);
        len as u16
    }

    /// Appends a NUL-terminated kernel string, without its NUL; also returns its first byte.
    #[inline(always)]
    pub fn append_kernel_str_first(&mut self, src: u64) -> (u16, u8) {
        let Some((off, _)) = self.room(0) else { return (0, 0) };
        let len = self.append_kernel_str(src);
        (len, if len == 0 { 0 } else { unsafe { *self.rec.add(off as usize) } })
    }

    /// Appends the caller's NUL-terminated string, without its NUL; also returns its first byte.
    #[inline(always)]
    pub fn append_user_str(&mut self, src: u64) -> (u16, u8) {
        let Some((off, room)) = self.room(SECTION_MASK) else { return (0, 0) };
        let dst = unsafe { self.rec.add(off as usize) };
        let n = unsafe { bpf_probe_read_user_str(dst as *mut c_void, room as u32, src as *const c_void) };
        if n <= 1 {
            return (0, 0);
        }
        let len = (n as u64 - 1) & SECTION_MASK;
        self.set_off(off + len);
        (len as u16, unsafe { *dst })
    }

    /// Appends the absolute path of an open struct file. Returns (length, cut at depth limit).
    #[inline(always)]
    pub fn append_file_path(&mut self, file: u64, root_mnt: u64, root_dentry: u64) -> (u16, bool) {
        if file == 0 {
            return (0, false);
        }
        let path = file + off!(file_f_path);
        self.append_path(rd(path + off!(path_mnt)), rd(path + off!(path_dentry)), root_mnt, root_dentry)
    }

    /// Appends the directory a relative path is relative to: the file of `dfd`, or the cwd for
    /// AT_FDCWD; nothing for another negative fd. Returns (length, cut at depth limit).
    #[inline(always)]
    pub fn append_dir(&mut self, task: Task, dfd: i32, root_mnt: u64, root_dentry: u64) -> (u16, bool) {
        if dfd == AT_FDCWD {
            let fs: u64 = rd(task.0 + off!(task_fs));
            let pwd = fs + off!(fs_pwd);
            self.append_path(rd(pwd + off!(path_mnt)), rd(pwd + off!(path_dentry)), root_mnt, root_dentry)
        } else if dfd >= 0 {
            self.append_file_path(task.fd_file(dfd as u32), root_mnt, root_dentry)
        } else {
            (0, false)
        }
    }

    /// Appends the path of (vfsmount, dentry) as seen from the task's root, walking dentries up
    /// to each mount's root and crossing to the parent mount, as d_path does.
    ///
    /// The loop keeps its state in map memory, not registers: every iteration then starts from
    /// the same verifier state and every exit leaves the same state behind, so the verifier
    /// checks one step per iteration and the code after the loop once, instead of once for each
    /// way out of the loop.
    #[inline(always)]
    pub fn append_path(&mut self, vfsmnt: u64, dentry: u64, root_mnt: u64, root_dentry: u64) -> (u16, bool) {
        if dentry == 0 {
            return (0, false);
        }
        let o_mount_mnt = off!(mount_mnt);
        let o_mnt_root = off!(vfsmount_mnt_root);
        let o_mnt_parent = off!(mount_mnt_parent);
        let o_mountpoint = off!(mount_mnt_mountpoint);
        let o_d_parent = off!(dentry_d_parent);
        let o_name = off!(dentry_d_name) + off!(qstr_name);
        let o_len = off!(dentry_d_name) + off!(qstr_len);
        let walk = self.walk;
        let st = self.walk_state();
        st.set(WS_DENTRY, dentry);
        st.set(WS_VFSMNT, vfsmnt);
        st.set(WS_POS, WALK_END);
        st.set(WS_DONE, WALK_RUNNING);
        for _ in 0..MAX_DEPTH {
            if st.get(WS_DONE) != WALK_RUNNING {
                break;
            }
            let dentry = st.get(WS_DENTRY);
            let vfsmnt = st.get(WS_VFSMNT);
            let mnt = vfsmnt.wrapping_sub(o_mount_mnt);
            if dentry == root_dentry && vfsmnt == root_mnt {
                st.set(WS_DONE, WALK_COMPLETE);
                continue;
            }
            let mnt_root: u64 = rd(vfsmnt + o_mnt_root);
            if dentry == mnt_root {
                let parent: u64 = rd(mnt + o_mnt_parent);
                if parent == mnt || parent == 0 {
                    st.set(WS_DONE, WALK_COMPLETE);
                } else {
                    st.set(WS_DENTRY, rd(mnt + o_mountpoint));
                    st.set(WS_VFSMNT, parent + o_mount_mnt);
                }
                continue;
            }
            let parent: u64 = rd(dentry + o_d_parent);
            let name: u64 = rd(dentry + o_name);
            let len = black_box(rd::<u32>(dentry + o_len) as u64) & 255;
            let pos = black_box(st.get(WS_POS)) & 8191;
            // pos stays >= 1, so a path is at most SECTION_MASK bytes.
            if len + 1 >= pos {
                st.set(WS_DONE, WALK_CUT);
                continue;
            }
            let pos = black_box(pos - len - 1) & SECTION_MASK;
            unsafe {
                bpf_probe_read_kernel(
                    walk.add(pos as usize + 1) as *mut c_void,
                    len as u32,
                    name as *const c_void,
                );
                *walk.add(pos as usize) = b'/';
            }
            st.set(WS_POS, pos);
            st.set(WS_DENTRY, parent);
            if parent == dentry || parent == 0 {
                // A pseudo file (memfd, pipe, socket): its own name is the whole path.
                st.set(WS_DONE, WALK_COMPLETE);
            }
        }
        let cut = st.get(WS_DONE) != WALK_COMPLETE;
        (self.append_walked(), cut)
    }

    /// Copies what a walk built (walk[pos..WALK_END]) into the record; "/" for an empty path.
    #[inline(always)]
    fn append_walked(&mut self) -> u16 {
        let st = self.walk_state();
        if st.get(WS_POS) >= WALK_END {
            unsafe { *self.walk.add(WALK_END as usize - 1) = b'/' };
            st.set(WS_POS, WALK_END - 1);
        }
        let pos = black_box(st.get(WS_POS)) & SECTION_MASK;
        self.append_kernel_bytes(self.walk as u64 + pos, WALK_END - pos)
    }

    #[inline(always)]
    fn walk_state(&self) -> WalkState {
        WalkState(unsafe { self.walk.add(WALK_STATE) } as *mut u64)
    }

    /// Appends the cgroup's path in the unified hierarchy (e.g. `/system.slice/docker-<id>.scope`)
    /// from its kernfs node, so userspace can name a cgroup that is gone by the time it reads the
    /// record. Same memory-carried loop as `append_path`.
    #[inline(always)]
    pub fn append_cgroup_path(&mut self, kn: u64) -> u16 {
        let o_parent = off!(kernfs_node_parent);
        let o_name = off!(kernfs_node_name);
        let walk = self.walk;
        let st = self.walk_state();
        st.set(WS_DENTRY, kn);
        st.set(WS_POS, WALK_END);
        st.set(WS_DONE, WALK_RUNNING);
        for _ in 0..MAX_CGROUP_DEPTH {
            if st.get(WS_DONE) != WALK_RUNNING {
                break;
            }
            let kn = st.get(WS_DENTRY);
            let parent: u64 = if kn == 0 { 0 } else { rd(kn + o_parent) };
            if parent == 0 {
                // The root's name is empty; the path so far is complete.
                st.set(WS_DONE, WALK_COMPLETE);
                continue;
            }
            let name: u64 = rd(kn + o_name);
            let n = unsafe {
                bpf_probe_read_kernel_str(
                    walk.add(WALK_TMP as usize) as *mut c_void,
                    256,
                    name as *const c_void,
                )
            };
            let len = black_box(if n > 1 { n as u64 - 1 } else { 0 }) & 255;
            let pos = black_box(st.get(WS_POS)) & 8191;
            if len == 0 || len + 1 >= pos {
                st.set(WS_DONE, WALK_CUT);
                continue;
            }
            let pos = black_box(pos - len - 1) & SECTION_MASK;
            unsafe {
                bpf_probe_read_kernel(
                    walk.add(pos as usize + 1) as *mut c_void,
                    len as u32,
                    walk.add(WALK_TMP as usize) as *const c_void,
                );
                *walk.add(pos as usize) = b'/';
            }
            st.set(WS_POS, pos);
            st.set(WS_DENTRY, parent);
        }
        self.append_walked()
    }

    /// Hands the record to the ring buffer; false when it had no room (counted as a drop).
    #[inline(always)]
    pub fn submit(self) -> bool {
        self.output()
    }

    #[inline(always)]
    fn output(&self) -> bool {
        let len = black_box(self.off());
        if len > MAX_RECORD as u64 {
            return false;
        }
        // Only the record that takes the fill across the mark wakes the reader. A reader that
        // lags is awake already, and waking it again per record is what costs the most (an
        // irq_work and a context switch each); an idle one finds the rest on its next tick.
        let wake_at = unsafe { core::ptr::read_volatile(&raw const WAKEUP_BYTES) };
        let before = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
        let flags =
            if before < wake_at && before + len >= wake_at { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP };
        let data = unsafe { core::slice::from_raw_parts(self.rec as *const u8, len as usize) };
        if EVENTS.output::<[u8]>(data, flags as u64).is_err() {
            count_drop(T::KIND as u32);
            return false;
        }
        true
    }
}
