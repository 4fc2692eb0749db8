//! The in-kernel filter as data: what opens, connects and sends the rules in force need, and
//! the daemon's model of what the kernel programs then dismiss (monitor_common::filter's
//! decisions over the same values). The rules' analysis ([`crate::rules::prefilter`]) makes a
//! plan; [`super::KernelFilter`] writes it into the maps.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use monitor_common::{
    DirVerdict, EventType, FilterConfig, NetFilter, OpenFilter, TypeSet, class_verdict, open_class,
    open_wanted,
};

/// A condition on a file's path, judged for all files of one directory at a time.
#[derive(Clone, Debug, PartialEq)]
pub enum PathExpr {
    Any,
    /// One of these holds.
    Atoms(Vec<Atom>),
    And(Vec<PathExpr>),
    Or(Vec<PathExpr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    /// The path is exactly this.
    Exact(String),
    /// The path is this directory or below it, by whole components (pmatch).
    Under(String),
    /// The path starts with this string (startswith, and the literal head of a glob).
    StartsWith(String),
    /// The path's directory is exactly this.
    Dir(String),
    /// The file's name is exactly this.
    Name(String),
}

/// What all opens of one class in one directory can be, for the kernel's verdict map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Only files named in [`OpenNeeds::names`] can match.
    Names,
    Drop,
}

impl Verdict {
    fn and(self, o: Self) -> Self {
        if self == Self::Drop || o == Self::Drop {
            Self::Drop
        } else if self == Self::Names || o == Self::Names {
            Self::Names
        } else {
            Self::Pass
        }
    }

    fn or(self, o: Self) -> Self {
        if self == Self::Pass || o == Self::Pass {
            Self::Pass
        } else if self == Self::Names || o == Self::Names {
            Self::Names
        } else {
            Self::Drop
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Pass => monitor_common::VERDICT_PASS,
            Self::Names => monitor_common::VERDICT_LEAVES,
            Self::Drop => monitor_common::VERDICT_DROP,
        }
    }
}

impl PathExpr {
    pub fn and(self, o: Self) -> Self {
        match (self, o) {
            (Self::Any, x) | (x, Self::Any) => x,
            (Self::And(mut a), Self::And(b)) => {
                a.extend(b);
                Self::And(a)
            }
            (Self::And(mut a), x) | (x, Self::And(mut a)) => {
                a.push(x);
                Self::And(a)
            }
            (a, b) => Self::And(vec![a, b]),
        }
    }

    pub fn or(self, o: Self) -> Self {
        match (self, o) {
            (Self::Any, _) | (_, Self::Any) => Self::Any,
            (Self::Atoms(mut a), Self::Atoms(b)) => {
                a.extend(b);
                Self::Atoms(a)
            }
            (Self::Or(mut a), x) | (x, Self::Or(mut a)) => {
                a.push(x);
                Self::Or(a)
            }
            (a, b) => Self::Or(vec![a, b]),
        }
    }

    /// What the files directly in `dir` (an absolute path, no trailing slash but for "/") can
    /// be for this condition to hold.
    pub fn verdict(&self, dir: &str) -> Verdict {
        self.verdict_in(dir, &dir_head(dir))
    }

    /// `head`: `dir` with its trailing slash, made once for every atom.
    fn verdict_in(&self, dir: &str, head: &str) -> Verdict {
        match self {
            Self::Any => Verdict::Pass,
            Self::Atoms(atoms) => {
                let mut v = Verdict::Drop;
                for a in atoms {
                    v = v.or(a.verdict(dir, head));
                    if v == Verdict::Pass {
                        break;
                    }
                }
                v
            }
            Self::And(xs) => xs.iter().map(|x| x.verdict_in(dir, head)).fold(Verdict::Pass, Verdict::and),
            Self::Or(xs) => xs.iter().map(|x| x.verdict_in(dir, head)).fold(Verdict::Drop, Verdict::or),
        }
    }

    fn names(&self, out: &mut BTreeSet<String>) {
        match self {
            Self::Any => {}
            Self::Atoms(atoms) => {
                for a in atoms {
                    if let Some(n) = a.name() {
                        out.insert(n.to_owned());
                    }
                }
            }
            Self::And(xs) | Self::Or(xs) => xs.iter().for_each(|x| x.names(out)),
        }
    }
}

/// `dir` with a trailing slash: the head every path in it starts with.
fn dir_head(dir: &str) -> String {
    if dir == "/" { "/".to_owned() } else { format!("{dir}/") }
}

/// (directory, name) of an absolute path; None for "/" and anything not absolute.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') || path == "/" {
        return None;
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let i = path.rfind('/')?;
    let dir = if i == 0 { "/" } else { &path[..i] };
    Some((dir, &path[i + 1..]))
}

/// A name the kernel's set can hold (it compares NUL-padded bytes).
fn fits_name_set(name: &str) -> bool {
    monitor_common::LeafName::new(name.as_bytes()).is_some()
}

impl Atom {
    fn name(&self) -> Option<&str> {
        match self {
            Self::Exact(p) | Self::Under(p) => split_path(p).map(|(_, n)| n),
            Self::Name(n) => Some(n),
            Self::StartsWith(_) | Self::Dir(_) => None,
        }
    }

    /// A name these files must have: Names when the name fits the kernel's set, else Pass.
    fn named(name: &str) -> Verdict {
        if fits_name_set(name) { Verdict::Names } else { Verdict::Pass }
    }

    fn verdict(&self, dir: &str, head: &str) -> Verdict {
        match self {
            Self::Exact(p) => match split_path(p) {
                Some((d, n)) if d == dir => Self::named(n),
                Some(_) => Verdict::Drop,
                // A relative or odd path: leave it to userspace.
                None => Verdict::Pass,
            },
            Self::Under(q) => {
                let q = q.trim_end_matches('/');
                if q.is_empty() || dir == q || head.strip_prefix(q).is_some_and(|rest| rest.starts_with('/'))
                {
                    return Verdict::Pass;
                }
                match split_path(q) {
                    Some((d, n)) if d == dir => Self::named(n),
                    Some(_) => Verdict::Drop,
                    None => Verdict::Pass,
                }
            }
            Self::StartsWith(s) => {
                if head.starts_with(s.as_str()) {
                    Verdict::Pass
                } else if let Some(rest) = s.strip_prefix(head) {
                    // The name must start with `rest`: the kernel's set holds whole names only.
                    if rest.contains('/') { Verdict::Drop } else { Verdict::Pass }
                } else {
                    Verdict::Drop
                }
            }
            Self::Dir(d) => {
                if d.trim_end_matches('/') == dir || (d == "/" && dir == "/") {
                    Verdict::Pass
                } else {
                    Verdict::Drop
                }
            }
            Self::Name(n) => Self::named(n),
        }
    }
}

/// The (device, inode) of files rules name by path, refreshed as files are replaced: a hard
/// link or bind mount of a named file is that file too.
#[derive(Debug)]
pub struct FileIdentities {
    pub paths: Vec<String>,
    ids: ArcSwap<HashSet<(u64, u64)>>,
}

impl FileIdentities {
    pub fn new(paths: Vec<String>) -> Arc<Self> {
        let p = Arc::new(Self { paths, ids: ArcSwap::from_pointee(HashSet::new()) });
        p.refresh();
        p
    }

    /// Re-reads the identities; a replaced file (new inode) is picked up here.
    pub fn refresh(&self) {
        use std::os::unix::fs::MetadataExt as _;
        let ids: HashSet<(u64, u64)> = self
            .paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        if **self.ids.load() != ids {
            self.ids.store(Arc::new(ids));
        }
    }

    /// The (device, inode) pairs last read, device as userspace encodes it.
    pub fn ids(&self) -> Arc<HashSet<(u64, u64)>> {
        self.ids.load_full()
    }

    pub fn contains(&self, dev: u64, ino: u64) -> bool {
        self.ids.load().contains(&(dev, ino))
    }
}

/// What opens the rules need: the kernel's open filter and directory verdicts.
#[derive(Clone, Debug)]
pub struct OpenNeeds {
    /// OPEN_CLASS_* bits some rule accepts.
    pub classes: u32,
    /// RESULT_OK and/or RESULT_FAILED.
    pub results: u32,
    /// Per class (OPEN_CLASS_* bit order): the path condition of successful opens.
    pub paths: [PathExpr; 4],
    /// Every file name a Names verdict lets through.
    pub names: BTreeSet<String>,
    /// False when the names do not fit the kernel's set: a directory that would be Names
    /// passes everything instead.
    pub names_fit: bool,
    pub(crate) identities: Vec<Arc<FileIdentities>>,
}

impl OpenNeeds {
    /// What opens need, from the classes and results some rule accepts and the path condition of
    /// each class's successful opens.
    pub fn new(
        classes: u32,
        results: u32,
        paths: [PathExpr; 4],
        identities: Vec<Arc<FileIdentities>>,
    ) -> Self {
        let mut names = BTreeSet::new();
        for p in &paths {
            p.names(&mut names);
        }
        names.retain(|n| fits_name_set(n));
        Self { classes, results, paths, names, names_fit: true, identities }
    }

    /// Whether any directory can get a verdict other than Pass.
    pub fn by_directory(&self) -> bool {
        (0..4).any(|i| self.classes & (1 << i) != 0 && self.paths[i] != PathExpr::Any)
    }

    /// Per class, what the files in `dir` can be.
    pub fn verdicts(&self, dir: &str) -> [Verdict; 4] {
        std::array::from_fn(|i| match self.paths[i].verdict(dir) {
            _ if self.classes & (1 << i) == 0 => Verdict::Drop,
            Verdict::Names if !self.names_fit => Verdict::Pass,
            v => v,
        })
    }

    /// The (device, inode) of files rules name by path, device as userspace encodes it.
    pub fn identities(&self) -> HashSet<(u64, u64)> {
        self.identities.iter().flat_map(|i| i.ids().iter().copied().collect::<Vec<_>>()).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetNeeds {
    pub families: u32,
    pub results: u32,
    /// None: any destination port.
    pub ports: Option<BTreeSet<u16>>,
}

/// The kernel's filter sets, which hold what the rules name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterSet {
    /// File names a Names verdict lets through.
    LeafNames,
    /// Files rules name by path, passed under any name.
    FileIdentities,
    /// Destination ports of connects and sends.
    Ports,
}

impl FilterSet {
    pub const ALL: [FilterSet; 3] = [Self::LeafNames, Self::FileIdentities, Self::Ports];

    /// The name in the config (`kernel_filter_sets.<name>`), the log and /metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::LeafNames => "leaf_names",
            Self::FileIdentities => "file_identities",
            Self::Ports => "ports",
        }
    }

    pub fn capacity(self, sizes: &SetSizes) -> u32 {
        match self {
            Self::LeafNames => sizes.leaf_names,
            Self::FileIdentities => sizes.file_identities,
            Self::Ports => sizes.ports,
        }
    }
}

/// Entries each kernel filter set holds (the maps' sizes, fixed when the programs load).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SetSizes {
    pub leaf_names: u32,
    pub file_identities: u32,
    pub ports: u32,
}

impl Default for SetSizes {
    fn default() -> Self {
        let n = monitor_common::DEFAULT_SET_ENTRIES;
        Self { leaf_names: n, file_identities: n, ports: n }
    }
}

/// A set the rules needed more entries of than the kernel's map holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Widened {
    pub set: FilterSet,
    pub needed: usize,
    pub capacity: u32,
}

impl std::fmt::Display for Widened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the rules name {} {} but the kernel's set holds {} (kernel_filter_sets.{})",
            self.needed,
            match self.set {
                FilterSet::LeafNames => "file names",
                FilterSet::FileIdentities => "files",
                FilterSet::Ports => "ports",
            },
            self.capacity,
            self.set.name()
        )
    }
}

fn net_filter(n: &Option<NetNeeds>) -> NetFilter {
    match n {
        // No rule needs the kind: an empty family set passes nothing.
        None => NetFilter { families: 0, results: 0, by_port: 0, _pad: 0 },
        Some(n) => NetFilter {
            families: n.families,
            results: n.results,
            by_port: u32::from(n.ports.is_some()),
            _pad: 0,
        },
    }
}

/// The filter for one ruleset.
#[derive(Clone, Debug)]
pub struct FilterPlan {
    /// None: no rule matches opens.
    pub open: Option<OpenNeeds>,
    pub connect: Option<NetNeeds>,
    /// sendto and sendmsg (one kind of kernel event).
    pub sendto: Option<NetNeeds>,
    /// The calls (monitor_common::calls) some rule can match.
    pub calls: TypeSet,
    /// A rule reads fd.nameraw: reported opens carry the caller's string.
    pub raw_names: bool,
}

impl FilterPlan {
    /// This filter as the kernel's sets can hold it: a set the rules need more entries of than
    /// its map has is not used, and the filter passes what it would have narrowed (as for any
    /// rule the analysis cannot narrow). Returns the filter and the sets that did not fit.
    pub fn fitted(&self, sizes: &SetSizes) -> (FilterPlan, Vec<Widened>) {
        let mut p = self.clone();
        let mut widened = Vec::new();
        let mut check = |set: FilterSet, needed: usize| {
            let capacity = set.capacity(sizes);
            let fits = needed <= capacity as usize;
            if !fits {
                widened.push(Widened { set, needed, capacity });
            }
            fits
        };
        if let Some(o) = &mut p.open {
            if !check(FilterSet::LeafNames, o.names.len()) {
                o.names.clear();
                o.names_fit = false;
            }
            // Without every named file's identity, a hard link in a dismissed directory could
            // hide one: no directory is judged at all.
            if !check(FilterSet::FileIdentities, o.identities().len()) {
                o.paths = std::array::from_fn(|_| PathExpr::Any);
            }
        }
        let ports: BTreeSet<u16> = [&p.connect, &p.sendto]
            .into_iter()
            .flatten()
            .flat_map(|n| n.ports.iter().flatten().copied())
            .collect();
        if !check(FilterSet::Ports, ports.len()) {
            for n in [&mut p.connect, &mut p.sendto].into_iter().flatten() {
                n.ports = None;
            }
        }
        (p, widened)
    }

    /// The kernel's filter config for this plan, as of `epoch`.
    pub fn config(&self, epoch: u32) -> FilterConfig {
        let open = match &self.open {
            None => OpenFilter { classes: 0, results: 0, by_directory: 0, raw_names: 0 },
            Some(o) => OpenFilter {
                classes: o.classes,
                results: o.results,
                by_directory: u32::from(o.by_directory()),
                raw_names: u32::from(self.raw_names),
            },
        };
        FilterConfig {
            epoch,
            active: 1,
            open,
            connect: net_filter(&self.connect),
            sendto: net_filter(&self.sendto),
            calls: self.calls.bits(),
        }
    }

    /// Whether the kernel, holding this plan with every directory verdict made, would pass an
    /// open: the kernel programs' decisions over the same values, for tests and `monitor rules`.
    pub fn admits_open(
        &self,
        flags: u32,
        ret: i64,
        resolved_path: Option<&str>,
        identity: (u64, u64),
    ) -> bool {
        let c = self.config(0);
        let class = open_class(flags);
        if !open_wanted(&c.open, class, monitor_common::open_result(ret)) {
            return false;
        }
        let (Some(o), Some((dir, name))) =
            (&self.open, resolved_path.filter(|_| ret >= 0).and_then(split_path))
        else {
            return true;
        };
        if c.open.by_directory == 0 {
            return true;
        }
        let verdict = DirVerdict { by_class: o.verdicts(dir).map(Verdict::code), ..Default::default() };
        let named_file = o.identities().contains(&identity);
        !monitor_common::verdict_dismisses(class_verdict(&verdict, class), named_file, || {
            !fits_name_set(name) || o.names.contains(name)
        })
    }

    /// Whether the kernel would pass a call of this type.
    pub fn admits_call(&self, evt_type: EventType) -> bool {
        monitor_common::call_wanted(&self.config(0), evt_type as u8)
    }

    /// Whether the kernel would pass a connect (`sendto` false) or send with this family
    /// (AF_*), result and destination port.
    pub fn admits_net(&self, sendto: bool, family: u16, ret: i64, dport: u16) -> bool {
        let n = if sendto { &self.sendto } else { &self.connect };
        let ports = n.as_ref().and_then(|n| n.ports.as_ref());
        monitor_common::net_wanted(&net_filter(n), family, monitor_common::result_class(ret), || {
            ports.is_some_and(|p| p.contains(&dport))
        })
    }

    /// One line per kind, for logs and `monitor rules`.
    pub fn describe(&self) -> String {
        let open = match &self.open {
            None => "opens: none".to_owned(),
            Some(o) => format!(
                "opens: classes {:#x}, results {:#x}, by directory: {}, {} names, {} identities",
                o.classes,
                o.results,
                o.by_directory(),
                o.names.len(),
                o.identities().len()
            ),
        };
        let net = |n: &Option<NetNeeds>| match n {
            None => "none".to_owned(),
            Some(n) => format!(
                "families {:#x}, results {:#x}, ports {}",
                n.families,
                n.results,
                match &n.ports {
                    None => "any".to_owned(),
                    Some(p) if p.len() <= 16 => format!("{p:?}"),
                    Some(p) => format!("{} of them", p.len()),
                }
            ),
        };
        format!(
            "{open}; connects: {}; sends: {}; calls: {}",
            net(&self.connect),
            net(&self.sendto),
            if self.calls.is_empty() { "none".to_owned() } else { self.calls.to_string() }
        )
    }
}
