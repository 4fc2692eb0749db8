//! The kernel side of the prefilter: writes what the rules in force need into the programs'
//! maps, and turns the paths of the opens that reach userspace into directory verdicts, so
//! later opens in directories no rule can match are dismissed before the path walk.

mod plan;

use std::collections::{HashMap as StdHashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use monitor_common::{
    DIR_VERDICTS_MAP, DirKey, DirVerdict, EventClass, EventType, FILE_IDS_MAP, FILTER_MAP, FILTERED_MAP,
    FileId, FilterConfig, LEAF_NAMES_MAP, LeafName, OPEN_HAS_DIR, OPEN_PATH_TRUNCATED, OPEN_RESOLVED,
    OpenEvent, PORTS_MAP,
};

pub use plan::{
    Atom, FileIdentities, FilterPlan, FilterSet, NetNeeds, OpenNeeds, PathExpr, SetSizes, Verdict, Widened,
    split_path,
};

/// Events the filters dismissed, per event type, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilteredCounts {
    pub per_type: Vec<(EventType, u64)>,
}

impl FilteredCounts {
    pub fn total(&self) -> u64 {
        self.per_type.iter().map(|(_, n)| n).sum()
    }

    /// Summed per filtered kind: opens (every open syscall), connects, sends.
    pub fn per_kind(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = vec![("open", 0), ("connect", 0), ("sendto", 0)];
        for (t, n) in &self.per_type {
            let slot = match t {
                EventType::Connect => 1,
                EventType::Sendto | EventType::Sendmsg => 2,
                _ => 0,
            };
            out[slot].1 += n;
        }
        out
    }
}

/// Verdicts made and map writes that failed, for the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerdictStats {
    pub made: u64,
    pub failed_writes: u64,
}

pub struct KernelFilter {
    config: Array<MapData, FilterConfig>,
    dirs: HashMap<MapData, DirKey, DirVerdict>,
    names: HashMap<MapData, LeafName, u8>,
    file_ids: HashMap<MapData, FileId, u8>,
    ports: HashMap<MapData, u16, u8>,
    filtered: PerCpuArray<MapData, u64>,
    epoch: u32,
    /// The filter in force; None: everything passes.
    current: Option<Arc<FilterPlan>>,
    installed_ids: HashSet<FileId>,
    /// Directories verdicts were written for in this epoch, and at which path generation: a
    /// directory whose verdict is Pass keeps sending events, and needs no second write.
    written: StdHashMap<DirKey, u64>,
    pub stats: VerdictStats,
    sizes: SetSizes,
    /// The sets the filter in force could not use because the rules need more entries than
    /// they hold: the filter passes what those sets would have narrowed.
    widened: Vec<Widened>,
}

impl KernelFilter {
    pub(super) fn from_ebpf(ebpf: &mut aya::Ebpf, sizes: SetSizes) -> Result<Self> {
        let mut f = Self {
            config: super::take_map(ebpf, FILTER_MAP)?,
            dirs: super::take_map(ebpf, DIR_VERDICTS_MAP)?,
            names: super::take_map(ebpf, LEAF_NAMES_MAP)?,
            file_ids: super::take_map(ebpf, FILE_IDS_MAP)?,
            ports: super::take_map(ebpf, PORTS_MAP)?,
            filtered: super::take_map(ebpf, FILTERED_MAP)?,
            epoch: 0,
            current: None,
            installed_ids: HashSet::new(),
            written: StdHashMap::new(),
            stats: VerdictStats::default(),
            sizes,
            widened: Vec::new(),
        };
        f.widen()?;
        Ok(f)
    }

    /// Lets every event through: the first half of a change of rules, so that nothing either
    /// the old or the new rules need is dismissed while the change is under way.
    pub fn widen(&mut self) -> Result<()> {
        self.epoch = self.epoch.wrapping_add(1);
        self.config.set(0, FilterConfig { epoch: self.epoch, ..FilterConfig::PASS_ALL }, 0)?;
        self.current = None;
        self.written.clear();
        Ok(())
    }

    /// Puts a filter in force (None: everything passes). Widens first; on an error the filter
    /// stays widened (everything passes) and the caller decides what is in force.
    pub fn install(&mut self, filter: Option<Arc<FilterPlan>>) -> Result<()> {
        self.widen()?;
        self.widened.clear();
        let Some(p) = filter else { return Ok(()) };
        let (p, widened) = p.fitted(&self.sizes);
        for w in &widened {
            tracing::warn!(
                "in-kernel filter widened: {w}; what that set would have dismissed now reaches the daemon \
                 (raise kernel_filter_sets.{} and restart to dismiss it in the kernel)",
                w.set.name()
            );
        }
        // The sets are filled while everything passes, before the config that reads them.
        let names: HashSet<LeafName> =
            p.open.iter().flat_map(|o| o.names.iter().filter_map(|n| LeafName::new(n.as_bytes()))).collect();
        sync_set(&mut self.names, &names, self.sizes.leaf_names).context("filling the set of file names")?;
        let ports: HashSet<u16> = [&p.connect, &p.sendto]
            .into_iter()
            .flat_map(|n| n.iter().flat_map(|n| n.ports.iter().flatten().copied()))
            .collect();
        sync_set(&mut self.ports, &ports, self.sizes.ports).context("filling the set of ports")?;
        self.installed_ids = HashSet::new();
        self.sync_identities(&p)?;
        self.epoch = self.epoch.wrapping_add(1);
        self.config.set(0, p.config(self.epoch), 0)?;
        self.current = Some(Arc::new(p));
        self.widened = widened;
        Ok(())
    }

    /// The sets the filter in force could not use, each with what it needed.
    pub fn widened(&self) -> &[Widened] {
        &self.widened
    }

    fn sync_identities(&mut self, p: &FilterPlan) -> Result<()> {
        let ids: HashSet<FileId> = p
            .open
            .iter()
            .flat_map(|o| o.identities())
            .map(|(dev, ino)| FileId { ino, dev: crate::event::dev_to_kernel(dev), _pad: 0 })
            .collect();
        if ids != self.installed_ids {
            sync_set(&mut self.file_ids, &ids, self.sizes.file_identities)
                .context("filling the set of file identities")?;
            self.installed_ids = ids;
        }
        Ok(())
    }

    /// Follows the files rules name by path as they are replaced (call after the ruleset
    /// re-read them): a new inode is let through from now on. When the named files came to
    /// outnumber the set, directories are no longer judged.
    pub fn refresh_identities(&mut self) -> Result<()> {
        let Some(p) = self.current.clone() else { return Ok(()) };
        let needed = p.open.as_ref().map_or(0, |o| o.identities().len());
        if needed > self.sizes.file_identities as usize {
            let (p, widened) = p.fitted(&self.sizes);
            for w in widened.iter().filter(|w| !self.widened.contains(w)) {
                tracing::warn!("in-kernel filter widened: {w}; opens are no longer judged by directory");
            }
            self.config.set(0, p.config(self.epoch), 0)?;
            self.current = Some(Arc::new(p));
            self.widened = widened;
            return Ok(());
        }
        self.sync_identities(&p)
    }

    /// Makes a verdict for the directory of an open that reached userspace, so the kernel can
    /// dismiss that directory's later opens no rule can match. `path` is the event's fd.name.
    pub fn observe_open(&mut self, ev: &OpenEvent, path: &str) {
        let flags = ev.header.flags;
        if flags & OPEN_HAS_DIR == 0 || flags & OPEN_RESOLVED == 0 || flags & OPEN_PATH_TRUNCATED != 0 {
            return;
        }
        let Some(open) = self.current.as_ref().and_then(|p| p.open.as_ref()) else { return };
        if !open.by_directory() {
            return;
        }
        if self.written.get(&ev.dir) == Some(&ev.path_gen) {
            return;
        }
        let Some((dir, _)) = split_path(path) else { return };
        let by_class = open.verdicts(dir).map(|v| v.code());
        let verdict = DirVerdict { path_gen: ev.path_gen, epoch: self.epoch, by_class };
        if self.written.len() >= 65536 {
            self.written.clear();
        }
        self.written.insert(ev.dir, ev.path_gen);
        // All Pass is what a missing entry means already.
        if by_class.iter().all(|&v| v == monitor_common::VERDICT_PASS) {
            return;
        }
        match self.dirs.insert(ev.dir, verdict, 0) {
            Ok(()) => self.stats.made += 1,
            Err(e) => {
                if self.stats.failed_writes == 0 {
                    tracing::warn!("cannot write a directory verdict ({e}); its opens keep coming (counted)");
                }
                self.stats.failed_writes += 1;
            }
        }
    }

    pub fn filtered(&self) -> Result<FilteredCounts> {
        let mut per_type = Vec::new();
        // Only the types the filter looks at.
        for t in
            EventType::ALL.into_iter().filter(|t| matches!(t.class(), EventClass::Open | EventClass::Net))
        {
            per_type.push((t, self.filtered.get(&(t as u32), 0)?.iter().sum()));
        }
        Ok(FilteredCounts { per_type })
    }

    pub fn active(&self) -> bool {
        self.current.is_some()
    }
}

/// Makes a kernel hash set of `capacity` entries hold exactly `want`: additions first, so what
/// was wanted before stays in until what is wanted now is in; removals first when both would
/// not fit at once.
fn sync_set<K: aya::Pod + Eq + std::hash::Hash>(
    map: &mut HashMap<MapData, K, u8>,
    want: &HashSet<K>,
    capacity: u32,
) -> Result<()> {
    let have: HashSet<K> = map.keys().filter_map(|k| k.ok()).collect();
    let remove = |map: &mut HashMap<MapData, K, u8>| {
        for k in have.difference(want) {
            let _ = map.remove(k);
        }
    };
    let both_fit = have.union(want).count() <= capacity as usize;
    if !both_fit {
        remove(map);
    }
    for k in want.difference(&have) {
        map.insert(*k, 1, 0)?;
    }
    if both_fit {
        remove(map);
    }
    Ok(())
}
