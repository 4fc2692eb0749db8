//! What the kernel may dismiss: from the enabled rules' matchers, per kind of event the kernel
//! filters (opens, connects, sends), a condition every event a rule can match satisfies.
//!
//! The analysis over-approximates by construction: a check it does not understand, a `not`
//! over anything but a plain flag or result test, a transformer, a comparison with another
//! field, all stand for "anything". It only narrows on fields the kernel sees before it copies
//! an event: the open's class (evt.is_open_read/write) and result, the file's path (fd.name,
//! fd.directory, fd.filename) judged per directory, a connect's or send's family, result and
//! destination port.

use std::collections::BTreeSet;
use std::sync::Arc;

use monitor_common::{
    EventClass, EventType, FAMILIES, FAMILY_INET, FAMILY_INET6, FAMILY_UNIX, OPEN_CLASS_READ,
    OPEN_CLASS_READ_WRITE, OPEN_CLASS_WRITE, OPEN_CLASSES, RESULT_FAILED, RESULT_IN_PROGRESS, RESULT_OK,
    RESULTS, TypeSet,
};

use super::condition::Op;
use super::matcher::{CheckMatcher, Constant, Constraint, Matcher};
use super::ruleset::Ruleset;
use crate::event::FieldId;
use crate::sensor::filter::{Atom, FileIdentities, FilterPlan, NetNeeds, OpenNeeds, PathExpr};

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

/// Which part of a file's path a field is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PathPart {
    /// fd.name: the whole path.
    Whole,
    /// fd.directory.
    Directory,
    /// fd.filename.
    Name,
}

impl PathPart {
    fn of(id: FieldId) -> Option<Self> {
        Some(match id {
            FieldId::FdName => Self::Whole,
            FieldId::FdDirectory => Self::Directory,
            FieldId::FdFilename => Self::Name,
            _ => return None,
        })
    }
}

/// The path condition of a check on fd.name, fd.directory or fd.filename; None: any path.
fn path_expr(c: &Constraint<'_>, part: PathPart) -> Option<PathExpr> {
    let value = |s: &str| match part {
        PathPart::Whole => Atom::Exact(s.to_owned()),
        PathPart::Directory => Atom::Dir(s.to_owned()),
        PathPart::Name => Atom::Name(s.to_owned()),
    };
    let named = part == PathPart::Whole;
    match c {
        Constraint::OneOf(items) => items
            .iter()
            .map(|i| match i {
                Constant::Str(s) => Some(value(s)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(PathExpr::Atoms),
        // A name prefix or pattern cannot be held by the kernel's set of whole names.
        _ if part == PathPart::Name => None,
        // A directory under or starting with something holds files that are too.
        Constraint::StartsWith(s) => Some(PathExpr::Atoms(vec![Atom::StartsWith((*s).to_owned())])),
        Constraint::Under(prefixes) => {
            Some(PathExpr::Atoms(prefixes.iter().cloned().map(Atom::Under).collect()))
        }
        Constraint::Globs(patterns) => patterns.iter().map(|p| glob_expr(p, named)).reduce(PathExpr::or),
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
    identities: Vec<Arc<FileIdentities>>,
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
    if c.transformed() {
        return (Need::any(), false);
    }
    let id = c.field().id();
    let constraint = c.constraint();
    let mut need = Need::any();
    let negate = c.negated();
    // Bit-set fields: exact, so negation complements.
    let bits = |all: u32, of: &dyn Fn(Constant<'_>) -> Option<u32>| -> Option<u32> {
        let set = match &constraint {
            Constraint::OneOf(items) => items.iter().try_fold(0, |acc, k| of(*k).map(|b| acc | b))?,
            Constraint::Ordered(op, k) => ord_bits(*op, *k, id)?,
            _ => return None,
        };
        Some(if negate { all & !set } else { set })
    };
    // A boolean test's bits: `yes` when true, the rest of `all` when false.
    let boolean = |k: Constant<'_>, yes: u32, all: u32| match k {
        Constant::Bool(true) => Some(yes),
        Constant::Bool(false) => Some(all & !yes),
        _ => None,
    };
    let (classes, results) = match (kind, id) {
        (Kind::Open, FieldId::EvtIsOpenRead) => {
            (bits(OPEN_CLASSES, &|k| boolean(k, OPEN_CLASS_READ | OPEN_CLASS_READ_WRITE, OPEN_CLASSES)), None)
        }
        (Kind::Open, FieldId::EvtIsOpenWrite) => (
            bits(OPEN_CLASSES, &|k| boolean(k, OPEN_CLASS_WRITE | OPEN_CLASS_READ_WRITE, OPEN_CLASSES)),
            None,
        ),
        (_, FieldId::EvtRawRes) | (Kind::Open, FieldId::FdNum) => (
            None,
            bits(RESULTS, &|k| match k {
                Constant::Int(v) => Some(result_of_value(v, id)),
                _ => None,
            }),
        ),
        (_, FieldId::EvtFailed) => {
            (None, bits(RESULTS, &|k| boolean(k, RESULT_FAILED | RESULT_IN_PROGRESS, RESULTS)))
        }
        (_, FieldId::EvtRes) => (
            None,
            bits(RESULTS, &|k| match k {
                Constant::Str("SUCCESS") => Some(RESULT_OK),
                Constant::Str("EINPROGRESS") => Some(RESULT_IN_PROGRESS),
                Constant::Str(_) => Some(RESULT_FAILED),
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
    if kind == Kind::Open
        && let Some(part) = PathPart::of(id)
    {
        if let Some(ids) = c.path_identities() {
            need.identities.push(ids.clone());
        }
        if let Some(p) = path_expr(&constraint, part) {
            need.paths = p;
        }
        return (need, false);
    }
    if kind != Kind::Net {
        return (need, false);
    }
    let strs = || match &constraint {
        Constraint::OneOf(items) => items
            .iter()
            .map(|k| match k {
                Constant::Str(s) => Some(*s),
                _ => None,
            })
            .collect::<Option<Vec<&str>>>(),
        _ => None,
    };
    let ints = || match &constraint {
        Constraint::OneOf(items) => Some(
            items
                .iter()
                .filter_map(|k| match k {
                    Constant::Int(p) => u16::try_from(*p).ok(),
                    _ => None,
                })
                .collect::<BTreeSet<u16>>(),
        ),
        _ => None,
    };
    match id {
        FieldId::FdTypeChar | FieldId::FdType => {
            let fam = |s: &str| match s {
                // An IPv4-mapped IPv6 destination shows as ipv4.
                "4" | "ipv4" => Some(FAMILY_INET | FAMILY_INET6),
                "6" | "ipv6" => Some(FAMILY_INET6),
                "u" | "unix" => Some(FAMILY_UNIX),
                _ => None,
            };
            if let Some(f) =
                strs().and_then(|items| items.iter().try_fold(0, |acc, s| fam(s).map(|f| acc | f)))
            {
                need.families = f;
            }
        }
        FieldId::FdL4Proto
        | FieldId::FdSip
        | FieldId::FdSipName
        | FieldId::FdCipName
        | FieldId::FdSnet
        | FieldId::FdCip
        | FieldId::FdCnet
        | FieldId::FdIp
        | FieldId::FdNet
        | FieldId::FdPort
        | FieldId::FdCport => {
            // A value exists only for inet sockets.
            need.families = FAMILY_INET | FAMILY_INET6;
        }
        FieldId::FdSport => {
            need.families = FAMILY_INET | FAMILY_INET6;
            need.ports = ints();
        }
        _ => {}
    }
    (need, false)
}

/// Which results a value of evt.rawres (or an open's fd.num, -1 on failure) falls in.
fn result_of_value(v: i64, field: FieldId) -> u32 {
    if v >= 0 {
        RESULT_OK
    } else if field == FieldId::FdNum {
        if v == -1 { RESULT_FAILED } else { 0 }
    } else if v == -monitor_common::EINPROGRESS {
        RESULT_IN_PROGRESS
    } else {
        RESULT_FAILED
    }
}

/// Results with some value for which `value op k` holds: tried on the values around k and at
/// the ends, enough for a comparison with one constant.
fn ord_bits(op: Op, k: i64, field: FieldId) -> Option<u32> {
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
        if field == FieldId::FdNum && v < 0 && v != -1 {
            continue;
        }
        if holds(v) {
            bits |= result_of_value(v, field);
        }
    }
    // A failure other than -EINPROGRESS lies on either side of it: try one.
    if field != FieldId::FdNum && (holds(-2) || holds(-200)) {
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

/// The filter for a ruleset: what every enabled rule, specialised per event type, can match.
/// Types the kernel never filters ([`EventType::kernel_filtered`]) do not take part.
pub fn plan(rs: &Ruleset) -> FilterPlan {
    let per_rule: Vec<Need> = TypeSet::of_class(EventClass::Open)
        .iter()
        .filter(|t| t.kernel_filtered())
        .flat_map(|t| rs.matchers_for_type(t).map(|m| need_of(m, Kind::Open)))
        .filter(|n| !n.is_none())
        .collect();
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
        OpenNeeds::new(classes, results, paths, identities)
    });
    let net = |types: &[EventType]| -> Option<NetNeeds> {
        let need = types
            .iter()
            .flat_map(|t| rs.matchers_for_type(*t).map(|m| need_of(m, Kind::Net)).collect::<Vec<_>>())
            .fold(Need::none(), Need::or);
        (!need.is_none()).then_some(NetNeeds {
            families: need.families,
            results: need.results,
            ports: need.ports,
        })
    };
    // A call type is wanted when any rule can match it at all: its rules are few and its
    // events rare next to opens, so what they ask beyond the type is judged in userspace.
    let calls = TypeSet::of_class(EventClass::Syscall)
        .iter()
        .filter(|t| t.kernel_filtered() && rs.matchers_for_type(*t).next().is_some())
        .fold(TypeSet::EMPTY, TypeSet::with);
    FilterPlan {
        open,
        connect: net(&[EventType::Connect]),
        sendto: net(&[EventType::Sendto, EventType::Sendmsg]),
        calls,
        raw_names: rs.uses_field(FieldId::FdNameRaw),
    }
}
