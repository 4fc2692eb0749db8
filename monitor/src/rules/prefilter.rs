//! What the kernel may dismiss: from the enabled rules' matchers, per kind of event the kernel
//! filters (opens, connects, sends), a condition every event a rule can match satisfies.
//!
//! The analysis over-approximates by construction: a check it does not understand, a `not`
//! over anything but a plain flag or result test, a transformer, a comparison with another
//! field, all stand for "anything". It only narrows on fields the kernel sees before it copies
//! an event: the open's class (evt.is_open_read/write) and result, the file's path (fd.name,
//! fd.directory, fd.filename) judged per directory, a connect's or send's family, result and
//! destination port.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use monitor_common::{
    FAMILIES, FAMILY_INET, FAMILY_INET6, FAMILY_UNIX, OPEN_CLASS_READ, OPEN_CLASS_READ_WRITE,
    OPEN_CLASS_WRITE, OPEN_CLASSES, RESULT_FAILED, RESULT_IN_PROGRESS, RESULT_OK, RESULTS,
};

use super::compile::{CheckMatcher, Const, Matcher, PathIdentities, Test};
use super::condition::Op;
use super::ruleset::Ruleset;
use super::types::TypeSet;

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
    fn and(self, o: Self) -> Self {
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

    fn or(self, o: Self) -> Self {
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

const GLOB_SPECIAL: [char; 5] = ['*', '?', '[', '{', '\\'];

/// What a path matching a glob on it must be: its literal head, and for a glob on the file's
/// path (`named`) whose last component is literal, that name (`/proc/*/environ` -> under
/// "/proc/", named "environ"), whether or not `*` crosses slashes.
fn glob_expr(pattern: &str, named: bool) -> PathExpr {
    let end = pattern.find(GLOB_SPECIAL).unwrap_or(pattern.len());
    let head = PathExpr::Atoms(vec![Atom::StartsWith(pattern[..end].to_owned())]);
    match pattern.rsplit_once('/') {
        Some((_, last))
            if named && end < pattern.len() && !last.is_empty() && !last.contains(GLOB_SPECIAL) =>
        {
            head.and(PathExpr::Atoms(vec![Atom::Name(last.to_owned())]))
        }
        _ => head,
    }
}

/// The path condition of a test on fd.name, fd.directory or fd.filename; None: any path.
fn path_expr(test: &Test, field: &str) -> Option<PathExpr> {
    let value = |s: &String| match field {
        "fd.name" => Atom::Exact(s.clone()),
        "fd.directory" => Atom::Dir(s.clone()),
        _ => Atom::Name(s.clone()),
    };
    let atoms = |a: Vec<Atom>| Some(PathExpr::Atoms(a));
    let named = field == "fd.name";
    match test {
        Test::Eq(Const::Str(s)) => atoms(vec![value(s)]),
        Test::InStr(items) => atoms(items.iter().map(value).collect()),
        Test::Path(items, _) => atoms(items.iter().map(value).collect()),
        // A name prefix or pattern cannot be held by the kernel's set of whole names.
        _ if field == "fd.filename" => None,
        // A directory under or starting with something holds files that are too.
        Test::StartsWith(s) => atoms(vec![Atom::StartsWith(s.clone())]),
        Test::PMatch(trie) => atoms(trie.prefixes().into_iter().map(Atom::Under).collect()),
        Test::Glob(g) => Some(glob_expr(g.glob().glob(), named)),
        Test::GlobSet(_, patterns) => patterns.iter().map(|p| glob_expr(p, named)).reduce(PathExpr::or),
        _ => None,
    }
}

/// A necessary condition of one matcher, in the dimensions the kernel sees.
#[derive(Clone, Debug)]
struct Need {
    classes: u32,
    results: u32,
    families: u32,
    /// None: any port.
    ports: Option<BTreeSet<u16>>,
    paths: PathExpr,
    identities: Vec<Arc<PathIdentities>>,
}

impl Need {
    fn any() -> Self {
        Self {
            classes: OPEN_CLASSES,
            results: RESULTS,
            families: FAMILIES,
            ports: None,
            paths: PathExpr::Any,
            identities: Vec::new(),
        }
    }

    fn none() -> Self {
        Self { classes: 0, results: 0, families: 0, ports: Some(BTreeSet::new()), ..Self::any() }
    }

    fn is_none(&self) -> bool {
        self.classes == 0 || self.results == 0 || self.families == 0
    }

    fn and(self, o: Self) -> Self {
        let ports = match (self.ports, o.ports) {
            (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
            (a, None) => a,
            (None, b) => b,
        };
        let mut identities = self.identities;
        identities.extend(o.identities);
        Self {
            classes: self.classes & o.classes,
            results: self.results & o.results,
            families: self.families & o.families,
            ports,
            paths: self.paths.and(o.paths),
            identities,
        }
    }

    fn or(self, o: Self) -> Self {
        if self.is_none() {
            return o;
        }
        if o.is_none() {
            return self;
        }
        let ports = match (self.ports, o.ports) {
            (Some(a), Some(b)) => Some(a.union(&b).copied().collect()),
            _ => None,
        };
        let mut identities = self.identities;
        identities.extend(o.identities);
        Self {
            classes: self.classes | o.classes,
            results: self.results | o.results,
            families: self.families | o.families,
            ports,
            paths: self.paths.or(o.paths),
            identities,
        }
    }
}

/// Which kernel-filtered kind an event type belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Open,
    Net,
}

/// A check's need, and whether that need is exactly the check (so `not` may complement it);
/// exact needs constrain one bit set only.
fn check_need(c: &CheckMatcher, kind: Kind) -> (Need, bool) {
    if !c.transformers.is_empty() {
        return (Need::any(), false);
    }
    let name = c.field.name();
    let mut need = Need::any();
    let negate = c.negate;
    // Bit-set fields: exact, so negation complements.
    let bits = |all: u32, of: &dyn Fn(&Const) -> Option<u32>| -> Option<u32> {
        let set = match &c.test {
            Test::Eq(k) => of(k)?,
            Test::InStr(items) => {
                let mut b = 0;
                for i in items {
                    b |= of(&Const::Str(i.clone()))?;
                }
                b
            }
            Test::InInt(items) => {
                let mut b = 0;
                for i in items {
                    b |= of(&Const::Int(*i))?;
                }
                b
            }
            Test::InBool(v) => {
                let mut b = 0;
                for (i, yes) in v.iter().enumerate() {
                    if *yes {
                        b |= of(&Const::Bool(i == 1))?;
                    }
                }
                b
            }
            Test::Ord(op, k) => ord_bits(*op, k, &name)?,
            _ => return None,
        };
        Some(if negate { all & !set } else { set })
    };
    // A boolean test's bits: `yes` when true, the rest of `all` when false.
    let boolean = |k: &Const, yes: u32, all: u32| match k {
        Const::Bool(true) => Some(yes),
        Const::Bool(false) => Some(all & !yes),
        _ => None,
    };
    let (classes, results) = match (kind, name.as_str()) {
        (Kind::Open, "evt.is_open_read") => {
            (bits(OPEN_CLASSES, &|k| boolean(k, OPEN_CLASS_READ | OPEN_CLASS_READ_WRITE, OPEN_CLASSES)), None)
        }
        (Kind::Open, "evt.is_open_write") => (
            bits(OPEN_CLASSES, &|k| boolean(k, OPEN_CLASS_WRITE | OPEN_CLASS_READ_WRITE, OPEN_CLASSES)),
            None,
        ),
        (_, "evt.rawres") | (Kind::Open, "fd.num") => (
            None,
            bits(RESULTS, &|k| match k {
                Const::Int(v) => Some(result_of_value(*v, &name)),
                _ => None,
            }),
        ),
        (_, "evt.failed") => {
            (None, bits(RESULTS, &|k| boolean(k, RESULT_FAILED | RESULT_IN_PROGRESS, RESULTS)))
        }
        (_, "evt.res") => (
            None,
            bits(RESULTS, &|k| match k {
                Const::Str(s) if s == "SUCCESS" => Some(RESULT_OK),
                Const::Str(s) if s == "EINPROGRESS" => Some(RESULT_IN_PROGRESS),
                Const::Str(_) => Some(RESULT_FAILED),
                _ => None,
            }),
        ),
        _ => (None, None),
    };
    if let Some(b) = classes {
        need.classes = b;
        return (need, true);
    }
    if let Some(b) = results {
        need.results = b;
        return (need, true);
    }
    if negate {
        return (need, false);
    }
    if kind == Kind::Open && matches!(name.as_str(), "fd.name" | "fd.directory" | "fd.filename") {
        if let Test::Path(_, ids) = &c.test {
            need.identities.push(ids.clone());
        }
        if let Some(p) = path_expr(&c.test, &name) {
            need.paths = p;
        }
        return (need, false);
    }
    match (kind, name.as_str()) {
        (Kind::Net, "fd.typechar" | "fd.type") => {
            let fam = |s: &str| match s {
                // An IPv4-mapped IPv6 destination shows as ipv4.
                "4" | "ipv4" => Some(FAMILY_INET | FAMILY_INET6),
                "6" | "ipv6" => Some(FAMILY_INET6),
                "u" | "unix" => Some(FAMILY_UNIX),
                _ => None,
            };
            let set = match &c.test {
                Test::Eq(Const::Str(s)) => fam(s),
                Test::InStr(items) => items.iter().map(|s| fam(s)).try_fold(0, |acc, f| f.map(|f| acc | f)),
                _ => None,
            };
            if let Some(f) = set {
                need.families = f;
            }
        }
        (
            Kind::Net,
            "fd.l4proto" | "fd.sip" | "fd.rip" | "fd.snet" | "fd.rnet" | "fd.cip" | "fd.lip" | "fd.cnet"
            | "fd.lnet" | "fd.ip" | "fd.net" | "fd.port" | "fd.cport" | "fd.lport",
        ) => {
            // A value exists only for inet sockets.
            need.families = FAMILY_INET | FAMILY_INET6;
        }
        (Kind::Net, "fd.sport" | "fd.rport") => {
            need.families = FAMILY_INET | FAMILY_INET6;
            need.ports = match &c.test {
                Test::Eq(Const::Int(p)) => Some(u16::try_from(*p).ok().into_iter().collect()),
                Test::InInt(items) => Some(items.iter().filter_map(|p| u16::try_from(*p).ok()).collect()),
                _ => None,
            };
        }
        _ => {}
    }
    (need, false)
}

/// Which results a value of evt.rawres (or an open's fd.num, -1 on failure) falls in.
fn result_of_value(v: i64, field: &str) -> u32 {
    if v >= 0 {
        RESULT_OK
    } else if field == "fd.num" {
        if v == -1 { RESULT_FAILED } else { 0 }
    } else if v == -monitor_common::EINPROGRESS {
        RESULT_IN_PROGRESS
    } else {
        RESULT_FAILED
    }
}

/// Results with some value for which `value op k` holds: tried on the values around k and at
/// the ends, enough for a comparison with one constant.
fn ord_bits(op: Op, k: &Const, field: &str) -> Option<u32> {
    let Const::Int(k) = k else { return None };
    let k = *k;
    let holds = |v: i64| match op {
        Op::Lt => v < k,
        Op::Le => v <= k,
        Op::Gt => v > k,
        Op::Ge => v >= k,
        _ => false,
    };
    let candidates = [
        i64::MIN,
        -monitor_common::EINPROGRESS,
        -1,
        0,
        i64::MAX,
        k.saturating_sub(1),
        k,
        k.saturating_add(1),
    ];
    let mut bits = 0;
    for v in candidates {
        // Among failures, fd.num is only ever -1.
        if field == "fd.num" && v < 0 && v != -1 {
            continue;
        }
        if holds(v) {
            bits |= result_of_value(v, field);
        }
    }
    // A failure other than -EINPROGRESS lies on either side of it: try one.
    if field != "fd.num" && (holds(-2) || holds(-200)) {
        bits |= RESULT_FAILED;
    }
    Some(bits)
}

fn need_of(m: &Matcher, kind: Kind) -> Need {
    match m {
        Matcher::True | Matcher::Unknown => Need::any(),
        Matcher::False => Need::none(),
        Matcher::And(xs) => xs.iter().fold(Need::any(), |acc, x| acc.and(need_of(x, kind))),
        Matcher::Or(xs) => xs.iter().fold(Need::none(), |acc, x| acc.or(need_of(x, kind))),
        Matcher::Not(inner) => match inner.as_ref() {
            Matcher::Check(c) => {
                let (n, exact) = check_need(c, kind);
                if !exact {
                    return Need::any();
                }
                // An exact need narrows one set: its complement is the negation.
                Need {
                    classes: complement(n.classes, OPEN_CLASSES),
                    results: complement(n.results, RESULTS),
                    families: complement(n.families, FAMILIES),
                    ..Need::any()
                }
            }
            _ => Need::any(),
        },
        Matcher::Check(c) => check_need(c, kind).0,
    }
}

/// The complement of a narrowed set; a set that is whole stays whole.
fn complement(bits: u32, all: u32) -> u32 {
    if bits == all { all } else { all & !bits }
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
    identities: Vec<Arc<PathIdentities>>,
}

impl OpenNeeds {
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

/// The filter for one ruleset.
#[derive(Clone, Debug)]
pub struct Prefilter {
    /// None: no rule matches opens.
    pub open: Option<OpenNeeds>,
    pub connect: Option<NetNeeds>,
    /// sendto and sendmsg (one kind of kernel event).
    pub sendto: Option<NetNeeds>,
}

impl Prefilter {
    pub fn from_ruleset(rs: &Ruleset) -> Self {
        let open_types = ["open", "openat", "openat2", "creat"];
        let mut per_rule = Vec::new();
        for t in open_types {
            let Some(ti) = TypeSet::index_of(t) else { continue };
            per_rule.extend(rs.matchers_for_type(ti).map(|m| need_of(m, Kind::Open)));
        }
        let per_rule: Vec<Need> = per_rule.into_iter().filter(|n| !n.is_none()).collect();
        let open = (!per_rule.is_empty()).then(|| {
            let mut classes = 0;
            let mut results = 0;
            let mut paths: [Option<PathExpr>; 4] = Default::default();
            let mut identities = Vec::new();
            for n in &per_rule {
                classes |= n.classes;
                results |= n.results & (RESULT_OK | RESULT_FAILED);
                // -EINPROGRESS is a failure for opens.
                if n.results & RESULT_IN_PROGRESS != 0 {
                    results |= RESULT_FAILED;
                }
                identities.extend(n.identities.iter().cloned());
                if n.results & RESULT_OK == 0 {
                    continue;
                }
                for (i, p) in paths.iter_mut().enumerate() {
                    if n.classes & (1 << i) != 0 {
                        *p = Some(match p.take() {
                            None => n.paths.clone(),
                            Some(q) => q.or(n.paths.clone()),
                        });
                    }
                }
            }
            // A class no successful-open rule accepts has nothing to pass.
            let paths = paths.map(|p| p.unwrap_or(PathExpr::Atoms(Vec::new())));
            let mut names = BTreeSet::new();
            for p in &paths {
                p.names(&mut names);
            }
            names.retain(|n| fits_name_set(n));
            OpenNeeds { classes, results, paths, names, names_fit: true, identities }
        });
        let net = |types: &[&str]| -> Option<NetNeeds> {
            let need = types
                .iter()
                .filter_map(|t| TypeSet::index_of(t))
                .flat_map(|ti| rs.matchers_for_type(ti).map(|m| need_of(m, Kind::Net)).collect::<Vec<_>>())
                .fold(Need::none(), Need::or);
            (!need.is_none()).then_some(NetNeeds {
                families: need.families,
                results: need.results,
                ports: need.ports,
            })
        };
        Self { open, connect: net(&["connect"]), sendto: net(&["sendto", "sendmsg"]) }
    }

    /// This filter as the kernel's sets can hold it: a set the rules need more entries of than
    /// its map has is not used, and the filter passes what it would have narrowed (as for any
    /// rule the analysis cannot narrow). Returns the filter and the sets that did not fit.
    pub fn fitted(&self, sizes: &SetSizes) -> (Prefilter, Vec<Widened>) {
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

    /// Whether the kernel, holding this filter with every directory verdict made, would pass
    /// an open: the model the kernel programs follow, for tests and for `monitor rules`.
    pub fn admits_open(
        &self,
        flags: u32,
        ret: i64,
        resolved_path: Option<&str>,
        identity: (u64, u64),
    ) -> bool {
        let Some(o) = &self.open else { return false };
        let class = monitor_common::open_class(flags);
        let result = if ret >= 0 { RESULT_OK } else { RESULT_FAILED };
        if o.classes & class == 0 || o.results & result == 0 {
            return false;
        }
        let Some((dir, name)) = resolved_path.filter(|_| ret >= 0).and_then(split_path) else { return true };
        let verdict = o.verdicts(dir)[class.trailing_zeros() as usize];
        match verdict {
            Verdict::Pass => true,
            _ if o.identities().contains(&identity) => true,
            Verdict::Names => !fits_name_set(name) || o.names.contains(name),
            Verdict::Drop => false,
        }
    }

    /// Whether the kernel would pass a connect (`sendto` false) or send with this family
    /// (AF_*), result and destination port.
    pub fn admits_net(&self, sendto: bool, family: u16, ret: i64, dport: u16) -> bool {
        let n = if sendto { &self.sendto } else { &self.connect };
        let Some(n) = n else { return false };
        n.families & monitor_common::family_class(family) != 0
            && n.results & monitor_common::result_class(ret) != 0
            && n.ports.as_ref().is_none_or(|p| p.contains(&dport))
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
        format!("{open}; connects: {}; sends: {}", net(&self.connect), net(&self.sendto))
    }
}
