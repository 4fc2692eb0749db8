//! cgroup id -> cgroup path. The kernel reports the path with every exec, so a short-lived
//! container's cgroup resolves even after it is removed; ids first seen on other events are
//! looked up in the unified hierarchy (a cgroup's id is its directory's inode number).

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::id::{ContainerId, container_from_cgroup_path};

const MAX_ENTRIES: usize = 16384;
/// A scan of the cgroup tree is not repeated more often than this for unknown ids.
const RESCAN_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct CgroupEntry {
    pub path: Arc<str>,
    pub container: Option<ContainerId>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub entries: usize,
    pub scans: u64,
    pub unresolved: u64,
    pub evictions: u64,
}

pub struct CgroupResolver {
    root: Option<PathBuf>,
    by_id: HashMap<u64, Arc<CgroupEntry>>,
    order: VecDeque<u64>,
    last_scan: Option<Instant>,
    stats: CgroupStats,
}

/// Where the unified (v2) hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on
/// hybrid hosts.
pub fn unified_mount() -> Option<PathBuf> {
    let mounts = procfs::process::Process::myself().ok()?.mountinfo().ok()?;
    mounts.into_iter().find(|m| m.fs_type == "cgroup2").map(|m| m.mount_point)
}

impl Default for CgroupResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl CgroupResolver {
    pub fn new() -> Self {
        Self {
            root: unified_mount(),
            by_id: HashMap::new(),
            order: VecDeque::new(),
            last_scan: None,
            stats: CgroupStats::default(),
        }
    }

    /// Records the path the kernel reported for `id`.
    pub fn learn(&mut self, id: u64, path: &str) -> Arc<CgroupEntry> {
        if let Some(e) = self.by_id.get(&id)
            && &*e.path == path
        {
            return e.clone();
        }
        self.insert(id, path)
    }

    fn insert(&mut self, id: u64, path: &str) -> Arc<CgroupEntry> {
        if self.by_id.len() >= MAX_ENTRIES
            && let Some(old) = self.order.pop_front()
        {
            self.by_id.remove(&old);
            self.stats.evictions += 1;
        }
        let entry = Arc::new(CgroupEntry { path: path.into(), container: container_from_cgroup_path(path) });
        if self.by_id.insert(id, entry.clone()).is_none() {
            self.order.push_back(id);
        }
        entry
    }

    pub fn resolve(&mut self, id: u64) -> Option<Arc<CgroupEntry>> {
        if let Some(e) = self.by_id.get(&id) {
            return Some(e.clone());
        }
        let due = self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_INTERVAL);
        if due && let Some(root) = self.root.clone() {
            self.last_scan = Some(Instant::now());
            self.stats.scans += 1;
            self.scan(&root, &root, 0);
        }
        let found = self.by_id.get(&id).cloned();
        if found.is_none() {
            self.stats.unresolved += 1;
        }
        found
    }

    fn scan(&mut self, root: &Path, dir: &Path, depth: usize) {
        if depth > 16 {
            return;
        }
        let Ok(meta) = std::fs::metadata(dir) else { return };
        let rel = dir.strip_prefix(root).map(|r| format!("/{}", r.display())).unwrap_or_default();
        if !self.by_id.contains_key(&meta.ino()) {
            self.insert(meta.ino(), if rel == "/" { "/" } else { &rel });
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                self.scan(root, &e.path(), depth + 1);
            }
        }
    }

    pub fn stats(&self) -> CgroupStats {
        CgroupStats { entries: self.by_id.len(), ..self.stats }
    }
}
