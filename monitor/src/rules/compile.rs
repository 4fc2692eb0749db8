//! Conditions -> matchers: macros expanded, lists resolved, literals parsed to the field's type,
//! large lists turned into hash sets and path tries. A matcher is then specialised per event
//! type, which folds `evt.type` tests and fields the type never has into constants.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use ipnet::IpNet;

use super::condition::{self, Check, Expr, FieldExpr, Literal, Op, Operand, Transformer};
use super::loader::Definitions;
use super::source::{Diagnostic, LocatedText, Span};
use super::types::{EVENT_TYPES, TypeSet};
use crate::event::{Event, Field, FieldContext, FieldError, FieldType, FieldValue};

/// Why a condition did not compile: an error in the rules, or something this monitor cannot
/// evaluate (the rule is then skipped, not failed).
#[derive(Debug)]
pub enum Problem {
    Error(Diagnostic),
    /// The matcher has `Unknown` where the unsupported checks were, for type analysis.
    Unsupported {
        reason: String,
        at: Span,
        matcher: Matcher,
        foreign_types: Vec<String>,
    },
}

/// A compiled condition and the event type names it names that the monitor never produces.
pub struct Compiled {
    pub matcher: Matcher,
    pub foreign_types: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Matcher {
    True,
    False,
    /// A check the monitor cannot evaluate; only in matchers of skipped rules.
    Unknown,
    And(Vec<Matcher>),
    Or(Vec<Matcher>),
    Not(Box<Matcher>),
    /// Shared: the per-type specialisations of a rule refer to the same compiled check.
    Check(Arc<CheckMatcher>),
}

#[derive(Debug, Clone)]
pub struct CheckMatcher {
    pub(super) field: Field,
    pub(super) transformers: Vec<Transformer>,
    pub(super) test: Test,
    /// `!=`: negates the test when the field has a value (a missing value matches nothing).
    pub(super) negate: bool,
}

#[derive(Debug, Clone)]
pub(super) enum Const {
    Str(String),
    Int(i64),
    Bool(bool),
    Net(IpNet),
}

#[derive(Debug, Clone)]
pub(super) enum Test {
    Exists,
    Eq(Const),
    Ord(Op, Const),
    Contains(String),
    IContains(String),
    BContains(Vec<u8>),
    StartsWith(String),
    BStartsWith(Vec<u8>),
    EndsWith(String),
    Glob(globset::GlobMatcher),
    /// Several globs on one field, or'ed: matched in one pass; with their patterns.
    GlobSet(globset::GlobSet, Vec<String>),
    Regex(regex::Regex),
    InStr(HashSet<String>),
    InInt(HashSet<i64>),
    InBool([bool; 2]),
    InNets(Vec<IpNet>),
    PMatch(PathTrie),
    /// fd.name against literal paths: by name, and by the files' identity so that another
    /// name for the same file (a hard link, a bind mount) matches too.
    Path(HashSet<String>, Arc<PathIdentities>),
    Type(TypeSet),
    Field {
        op: Op,
        other: Box<(Field, Vec<Transformer>)>,
    },
}

/// The (device, inode) of literal paths rules name, refreshed as files are replaced.
#[derive(Debug)]
pub struct PathIdentities {
    pub(super) paths: Vec<String>,
    ids: ArcSwap<HashSet<(u64, u64)>>,
}

impl PathIdentities {
    fn new(paths: Vec<String>) -> Arc<Self> {
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

    fn contains(&self, dev: u64, ino: u64) -> bool {
        self.ids.load().contains(&(dev, ino))
    }
}

/// Path prefixes by component: `/etc` matches /etc and /etc/x, not /etcx.
#[derive(Debug, Clone, Default)]
pub(super) struct PathTrie {
    terminal: bool,
    children: HashMap<String, PathTrie>,
}

impl PathTrie {
    fn insert(&mut self, path: &str) {
        let mut node = self;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            node = node.children.entry(c.to_owned()).or_default();
        }
        node.terminal = true;
    }

    /// The prefixes, as absolute paths.
    pub(super) fn prefixes(&self) -> Vec<String> {
        fn walk(node: &PathTrie, at: &str, out: &mut Vec<String>) {
            if node.terminal {
                out.push(if at.is_empty() { "/".to_owned() } else { at.to_owned() });
                return;
            }
            for (name, child) in &node.children {
                walk(child, &format!("{at}/{name}"), out);
            }
        }
        let mut out = Vec::new();
        walk(self, "", &mut out);
        out
    }

    fn matches(&self, path: &str) -> bool {
        let mut node = self;
        if node.terminal {
            return true;
        }
        for c in path.split('/').filter(|c| !c.is_empty()) {
            match node.children.get(c) {
                Some(n) if n.terminal => return true,
                Some(n) => node = n,
                None => return false,
            }
        }
        false
    }
}

pub struct Compiler<'d> {
    defs: &'d Definitions,
    parsed_macros: HashMap<String, Result<Expr, Diagnostic>>,
    expanding: Vec<String>,
    /// The first unsupported thing met; compilation goes on to find errors.
    unsupported: Option<(String, Span)>,
    foreign_types: Vec<String>,
    /// Every identity set made, for the ruleset to refresh.
    pub identities: Vec<Arc<PathIdentities>>,
    depth: usize,
}

/// Nesting of a condition with its macros expanded; deeper is refused (the matcher's evaluation
/// recurses as deep).
const MAX_EXPANDED_DEPTH: usize = 1000;

impl<'d> Compiler<'d> {
    pub fn new(defs: &'d Definitions) -> Self {
        Self {
            defs,
            parsed_macros: HashMap::new(),
            expanding: Vec::new(),
            unsupported: None,
            foreign_types: Vec::new(),
            identities: Vec::new(),
            depth: 0,
        }
    }

    /// Compiles a rule's condition (and its exceptions, already folded into the text).
    pub fn compile(&mut self, text: &LocatedText) -> Result<Compiled, Problem> {
        self.unsupported = None;
        self.foreign_types.clear();
        let expr = parse_located(text).map_err(Problem::Error)?;
        let matcher = self.expr(&expr, text).map_err(Problem::Error)?;
        let mut foreign_types = std::mem::take(&mut self.foreign_types);
        foreign_types.sort();
        foreign_types.dedup();
        match self.unsupported.take() {
            Some((reason, at)) => Err(Problem::Unsupported { reason, at, matcher, foreign_types }),
            None => Ok(Compiled { matcher, foreign_types }),
        }
    }

    fn type_set<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) -> TypeSet {
        let mut set = TypeSet::EMPTY;
        for n in names {
            // fork, vfork and clone3 are not aliased to our clone event: under `!=` or `not in` an
            // alias would exclude the clone events the rule means to keep.
            match TypeSet::index_of(n) {
                Some(i) => set.insert(i),
                None => self.foreign_types.push(n.to_owned()),
            }
        }
        set
    }

    pub fn is_list(&self, name: &str) -> bool {
        self.defs.lists.contains_key(name)
    }

    /// Checks a macro's own syntax, used or not.
    pub fn check_macro_syntax(&mut self, name: &str) -> Option<Diagnostic> {
        self.parsed_macro(name).err()
    }

    fn parsed_macro(&mut self, name: &str) -> Result<Expr, Diagnostic> {
        if let Some(r) = self.parsed_macros.get(name) {
            return r.clone();
        }
        let def = &self.defs.macros[name];
        let r = parse_located(&def.condition);
        self.parsed_macros.insert(name.to_owned(), r.clone());
        r
    }

    fn expr(&mut self, e: &Expr, text: &LocatedText) -> Result<Matcher, Diagnostic> {
        self.depth += 1;
        let r = self.expr_inner(e, text);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, e: &Expr, text: &LocatedText) -> Result<Matcher, Diagnostic> {
        if self.depth > MAX_EXPANDED_DEPTH {
            let at = match e {
                Expr::Macro { at, .. } => at.clone(),
                Expr::Check(c) => c.at.clone(),
                _ => 0..0,
            };
            return Err(Diagnostic::error(
                Some(text.span(at)),
                format!(
                    "the condition nests deeper than {MAX_EXPANDED_DEPTH} levels once its macros are expanded"
                ),
            ));
        }
        Ok(match e {
            Expr::And(t) => Matcher::And(t.iter().map(|e| self.expr(e, text)).collect::<Result<_, _>>()?),
            Expr::Or(t) => {
                let mut terms = Vec::with_capacity(t.len());
                for e in t {
                    match self.expr(e, text)? {
                        Matcher::Or(inner) => terms.extend(inner),
                        m => terms.push(m),
                    }
                }
                merge_globs(&mut terms);
                Matcher::Or(terms)
            }
            Expr::Not(e) => Matcher::Not(Box::new(self.expr(e, text)?)),
            Expr::Macro { name, at } => {
                if !self.defs.macros.contains_key(name) {
                    let hint = if self.defs.lists.contains_key(name) {
                        format!(
                            "unknown macro `{name}`: it is a list; lists go in a field check, e.g. `proc.name in ({name})`"
                        )
                    } else {
                        format!(
                            "unknown macro `{name}` (expected a macro defined in a loaded rules file, or a field followed by an operator)"
                        )
                    };
                    return Err(Diagnostic::error(Some(text.span(at.clone())), hint));
                }
                if self.expanding.iter().any(|n| n == name) {
                    return Err(Diagnostic::error(
                        Some(text.span(at.clone())),
                        format!("macro `{name}` refers to itself through {}", self.expanding.join(" -> ")),
                    ));
                }
                let body = self.parsed_macro(name)?;
                let def_text = self.defs.macros[name].condition.clone();
                self.expanding.push(name.clone());
                let r = self.expr(&body, &def_text);
                self.expanding.pop();
                r?
            }
            Expr::Check(c) => self.check(c, text)?,
        })
    }

    fn field(&mut self, f: &FieldExpr, text: &LocatedText) -> Result<Option<Field>, Diagnostic> {
        match Field::lookup(&f.name, f.arg.as_deref()) {
            Ok(field) => Ok(Some(field)),
            Err(FieldError::Unsupported) => {
                if self.unsupported.is_none() {
                    let via = match self.expanding.last() {
                        Some(m) => format!(" (through macro `{m}`)"),
                        None => String::new(),
                    };
                    self.unsupported = Some((
                        format!("field `{}`{via} is not supported by this monitor", f.display_name()),
                        text.span(f.at.clone()),
                    ));
                }
                Ok(None)
            }
            Err(FieldError::BadArgument(msg)) => Err(Diagnostic::error(Some(text.span(f.at.clone())), msg)),
        }
    }

    fn check(&mut self, c: &Check, text: &LocatedText) -> Result<Matcher, Diagnostic> {
        let Some(field) = self.field(&c.lhs, text)? else { return Ok(Matcher::Unknown) };
        let err = |at: std::ops::Range<usize>, msg: String| Diagnostic::error(Some(text.span(at)), msg);
        let mut ty = field.ty();
        for t in c.lhs.transformers.iter().rev() {
            ty = match (t, ty) {
                (Transformer::Len, _) => FieldType::Int,
                (_, FieldType::Str) => FieldType::Str,
                (t, _) => {
                    return Err(err(
                        c.lhs.at.clone(),
                        format!("{t:?} applies to text fields only, not `{}`", c.lhs.name),
                    ));
                }
            };
        }
        let field_name = c.lhs.display_name();
        let (test, negate) = match (&c.op, &c.rhs) {
            (Op::Exists, _) => (Test::Exists, false),
            (op, Operand::Field(other)) => {
                let Some(of) = self.field(other, text)? else { return Ok(Matcher::Unknown) };
                if !matches!(
                    op,
                    Op::Eq
                        | Op::Ne
                        | Op::Lt
                        | Op::Le
                        | Op::Gt
                        | Op::Ge
                        | Op::Contains
                        | Op::StartsWith
                        | Op::EndsWith
                ) {
                    return Err(err(
                        c.at.clone(),
                        format!(
                            "`{}` cannot compare with val(); use =, !=, <, >, contains, startswith or endswith",
                            op.as_str()
                        ),
                    ));
                }
                let (op, negate) = if *op == Op::Ne { (Op::Eq, true) } else { (*op, false) };
                (Test::Field { op, other: Box::new((of, other.transformers.clone())) }, negate)
            }
            (op, Operand::List(items)) => {
                let items = self.resolve_list(items, text);
                let test = match op {
                    Op::PMatch => {
                        let mut trie = PathTrie::default();
                        for (item, _) in &items {
                            trie.insert(item);
                        }
                        Test::PMatch(trie)
                    }
                    _ if field.name() == "evt.type" => {
                        Test::Type(self.type_set(items.iter().map(|(v, _)| v.as_str())))
                    }
                    Op::In if c.lhs.name == "fd.name" && c.lhs.transformers.is_empty() => {
                        self.path_test(items.iter().map(|(v, _)| v.clone()).collect())
                    }
                    _ => self.in_list(&field_name, ty, &items)?,
                };
                (test, false)
            }
            (op, Operand::Value(lit)) => {
                let v = &lit.text;
                let ty_err = |expected: &str| {
                    err(lit.at.clone(), format!("expected {expected} for `{field_name}`, found `{v}`"))
                };
                let text_only = |op: Op| {
                    if ty != FieldType::Str {
                        Err(err(
                            c.at.clone(),
                            format!("`{}` applies to text fields; `{field_name}` is not text", op.as_str()),
                        ))
                    } else {
                        Ok(())
                    }
                };
                match op {
                    Op::Eq | Op::Ne => {
                        if field.ty() == FieldType::Str
                            && c.lhs.name == "evt.type"
                            && c.lhs.transformers.is_empty()
                        {
                            (Test::Type(self.type_set([v.as_str()])), *op == Op::Ne)
                        } else if c.lhs.name == "fd.name"
                            && c.lhs.transformers.is_empty()
                            && v.starts_with('/')
                        {
                            (self.path_test(vec![v.clone()]), *op == Op::Ne)
                        } else {
                            (Test::Eq(constant(ty, v).ok_or_else(|| ty_err(expected_of(ty)))?), *op == Op::Ne)
                        }
                    }
                    Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                        if matches!(ty, FieldType::Bool | FieldType::Ip | FieldType::Net) {
                            return Err(err(
                                c.at.clone(),
                                format!("`{}` cannot order `{field_name}`", op.as_str()),
                            ));
                        }
                        (Test::Ord(*op, constant(ty, v).ok_or_else(|| ty_err(expected_of(ty)))?), false)
                    }
                    Op::Contains => {
                        text_only(*op)?;
                        (Test::Contains(v.clone()), false)
                    }
                    Op::IContains => {
                        text_only(*op)?;
                        (Test::IContains(v.to_lowercase()), false)
                    }
                    Op::StartsWith => {
                        text_only(*op)?;
                        (Test::StartsWith(v.clone()), false)
                    }
                    Op::EndsWith => {
                        text_only(*op)?;
                        (Test::EndsWith(v.clone()), false)
                    }
                    Op::BContains | Op::BStartsWith => {
                        text_only(*op)?;
                        let bytes = hex_bytes(v).ok_or_else(|| ty_err("hex bytes (e.g. cafebabe)"))?;
                        (
                            if *op == Op::BContains {
                                Test::BContains(bytes)
                            } else {
                                Test::BStartsWith(bytes)
                            },
                            false,
                        )
                    }
                    Op::Glob | Op::IGlob => {
                        text_only(*op)?;
                        // fnmatch, which Falco uses, has no {a,b} alternatives: braces are literal.
                        let pattern = v.replace('{', "[{]").replace('}', "[}]");
                        let g = globset::GlobBuilder::new(&pattern)
                            .case_insensitive(*op == Op::IGlob)
                            .literal_separator(false)
                            .backslash_escape(true)
                            .build()
                            .map_err(|e| err(lit.at.clone(), format!("invalid glob `{v}`: {e}")))?;
                        (Test::Glob(g.compile_matcher()), false)
                    }
                    Op::Regex => {
                        text_only(*op)?;
                        let r = regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| {
                            err(
                                lit.at.clone(),
                                format!(
                                    "invalid regex `{v}`: {}",
                                    e.to_string().lines().last().unwrap_or("")
                                ),
                            )
                        })?;
                        (Test::Regex(r), false)
                    }
                    Op::In | Op::Intersects | Op::PMatch | Op::Exists => {
                        unreachable!("parsed with a list or no operand")
                    }
                }
            }
            (op, Operand::None) => return Err(err(c.at.clone(), format!("`{}` needs a value", op.as_str()))),
        };
        Ok(Matcher::Check(Arc::new(CheckMatcher {
            field,
            transformers: c.lhs.transformers.clone(),
            test,
            negate,
        })))
    }

    /// List items with list names replaced by their items, recursively.
    fn resolve_list(&self, items: &[Literal], text: &LocatedText) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for item in items {
            if !item.quoted && self.defs.lists.contains_key(&item.text) {
                self.defs.expand_list(&item.text, &mut out, &mut Vec::new());
            } else {
                out.push((item.text.clone(), text.span(item.at.clone())));
            }
        }
        out
    }

    fn path_test(&mut self, names: Vec<String>) -> Test {
        let ids = PathIdentities::new(names.iter().filter(|n| n.starts_with('/')).cloned().collect());
        self.identities.push(ids.clone());
        Test::Path(names.into_iter().collect(), ids)
    }

    fn in_list(&self, field_name: &str, ty: FieldType, items: &[(String, Span)]) -> Result<Test, Diagnostic> {
        let bad = |v: &str, at: &Span, expected: &str| {
            Diagnostic::error(
                Some(at.clone()),
                format!("expected {expected} in the list for `{field_name}`, found `{v}`"),
            )
        };
        Ok(match ty {
            FieldType::Str => Test::InStr(items.iter().map(|(v, _)| v.clone()).collect()),
            FieldType::Int => Test::InInt(
                items
                    .iter()
                    .map(|(v, at)| parse_int(v).ok_or_else(|| bad(v, at, "a number")))
                    .collect::<Result<_, _>>()?,
            ),
            FieldType::Bool => {
                let mut set = [false; 2];
                for (v, at) in items {
                    set[usize::from(parse_bool(v).ok_or_else(|| bad(v, at, "true or false"))?)] = true;
                }
                Test::InBool(set)
            }
            FieldType::Ip | FieldType::Net => Test::InNets(
                items
                    .iter()
                    .map(|(v, at)| parse_net(v).ok_or_else(|| bad(v, at, "an address or network")))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

fn parse_located(text: &LocatedText) -> Result<Expr, Diagnostic> {
    condition::parse(&text.text).map_err(|e| Diagnostic::error(Some(text.span(e.at)), e.message))
}

fn expected_of(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Str => "text",
        FieldType::Int => "a number",
        FieldType::Bool => "true or false",
        FieldType::Ip | FieldType::Net => "an address or network (e.g. 10.0.0.0/8)",
    }
}

fn parse_int(v: &str) -> Option<i64> {
    let v = v.trim();
    if let Some(h) = v.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    v.parse().ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn parse_net(v: &str) -> Option<IpNet> {
    let v = v.trim();
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(IpNet::from(canonical(ip)));
    }
    let net: IpNet = v.parse().ok()?;
    // A network written in IPv4-mapped form matches the IPv4 addresses it maps.
    if let IpNet::V6(n6) = net
        && let Some(v4) = n6.addr().to_ipv4_mapped()
        && n6.prefix_len() >= 96
    {
        return ipnet::Ipv4Net::new(v4, n6.prefix_len() - 96).ok().map(IpNet::V4);
    }
    Some(net.trunc())
}

fn constant(ty: FieldType, v: &str) -> Option<Const> {
    Some(match ty {
        FieldType::Str => Const::Str(v.to_owned()),
        FieldType::Int => Const::Int(parse_int(v)?),
        FieldType::Bool => Const::Bool(parse_bool(v)?),
        FieldType::Ip | FieldType::Net => Const::Net(parse_net(v)?),
    })
}

fn hex_bytes(v: &str) -> Option<Vec<u8>> {
    let v = v.trim();
    if v.len() % 2 != 0 {
        return None;
    }
    (0..v.len()).step_by(2).map(|i| u8::from_str_radix(v.get(i..i + 2)?, 16).ok()).collect()
}

fn transform<'e>(v: FieldValue<'e>, transformers: &[Transformer]) -> FieldValue<'e> {
    let mut v = v;
    for t in transformers.iter().rev() {
        v = match v {
            FieldValue::List(items) => {
                FieldValue::List(items.into_iter().map(|i| transform(i, &[*t])).collect())
            }
            FieldValue::Null => FieldValue::Null,
            FieldValue::Str(s) => match t {
                Transformer::ToLower => FieldValue::Str(s.to_lowercase().into()),
                Transformer::ToUpper => FieldValue::Str(s.to_uppercase().into()),
                Transformer::Basename => FieldValue::Str(crate::event::basename(&s).to_owned().into()),
                Transformer::Len => FieldValue::Int(s.len() as i64),
                Transformer::B64 => match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                    Ok(bytes) => FieldValue::Str(String::from_utf8_lossy(&bytes).into_owned().into()),
                    Err(_) => FieldValue::Null,
                },
            },
            other => other,
        };
    }
    v
}

impl Test {
    fn one(&self, v: &FieldValue, ev: &Event, cx: &FieldContext) -> bool {
        match (self, v) {
            (_, FieldValue::Null) => false,
            (Self::Exists, FieldValue::List(items)) => !items.is_empty(),
            (Self::Exists, _) => true,
            (_, FieldValue::List(items)) => items.iter().any(|i| self.one(i, ev, cx)),
            (Self::Eq(c), v) => eq(c, v),
            (Self::Ord(op, c), v) => {
                let ord = match (c, v) {
                    (Const::Int(c), FieldValue::Int(i)) => i.cmp(c),
                    (Const::Str(c), FieldValue::Str(s)) => s.as_ref().cmp(c.as_str()),
                    _ => return false,
                };
                ordered(*op, ord)
            }
            (Self::Contains(p), FieldValue::Str(s)) => s.contains(p.as_str()),
            (Self::IContains(p), FieldValue::Str(s)) => {
                if p.is_ascii() {
                    // No lowercased copy per event: ASCII case folding in place.
                    p.is_empty()
                        || s.as_bytes().windows(p.len()).any(|w| w.eq_ignore_ascii_case(p.as_bytes()))
                } else {
                    s.to_lowercase().contains(p.as_str())
                }
            }
            (Self::StartsWith(p), FieldValue::Str(s)) => s.starts_with(p.as_str()),
            (Self::EndsWith(p), FieldValue::Str(s)) => s.ends_with(p.as_str()),
            (Self::BContains(p), FieldValue::Str(s)) => {
                !p.is_empty() && s.as_bytes().windows(p.len()).any(|w| w == p.as_slice())
            }
            (Self::BStartsWith(p), FieldValue::Str(s)) => s.as_bytes().starts_with(p),
            (Self::Glob(g), FieldValue::Str(s)) => g.is_match(s.as_ref()),
            (Self::GlobSet(g, _), FieldValue::Str(s)) => g.is_match(s.as_ref()),
            (Self::Regex(r), FieldValue::Str(s)) => r.is_match(s),
            (Self::InStr(set), FieldValue::Str(s)) => set.contains(s.as_ref()),
            (Self::InInt(set), FieldValue::Int(i)) => set.contains(i),
            (Self::InBool(set), FieldValue::Bool(b)) => set[usize::from(*b)],
            (Self::InNets(nets), FieldValue::Ip(ip)) => nets.iter().any(|n| n.contains(ip)),
            (Self::PMatch(trie), FieldValue::Str(s)) => trie.matches(s),
            (Self::Path(names, ids), FieldValue::Str(s)) => {
                names.contains(s.as_ref())
                    || match &ev.detail {
                        crate::event::Detail::Open(o) if o.ino != 0 => ids.contains(u64::from(o.dev), o.ino),
                        _ => false,
                    }
            }
            (Self::Type(set), FieldValue::Str(s)) => TypeSet::index_of(s).is_some_and(|i| set.contains(i)),
            (Self::Field { op, other }, v) => {
                let (field, tr) = other.as_ref();
                let o = transform(field.extract(ev, cx), tr);
                compare_values(*op, v, &o)
            }
            _ => false,
        }
    }
}

fn ordered(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
        _ => ord == Equal,
    }
}

fn eq(c: &Const, v: &FieldValue) -> bool {
    match (c, v) {
        (Const::Str(c), FieldValue::Str(s)) => s.as_ref() == c.as_str(),
        (Const::Int(c), FieldValue::Int(i)) => i == c,
        (Const::Bool(c), FieldValue::Bool(b)) => b == c,
        (Const::Net(n), FieldValue::Ip(ip)) => n.contains(ip),
        _ => false,
    }
}

fn compare_values(op: Op, a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (_, FieldValue::Null) => false,
        (a, FieldValue::List(items)) => items.iter().any(|b| compare_values(op, a, b)),
        (FieldValue::Str(a), FieldValue::Str(b)) => match op {
            Op::Contains => a.contains(b.as_ref()),
            Op::StartsWith => a.starts_with(b.as_ref()),
            Op::EndsWith => a.ends_with(b.as_ref()),
            op => ordered(op, a.as_ref().cmp(b.as_ref())),
        },
        (FieldValue::Int(a), FieldValue::Int(b)) => ordered(op, a.cmp(b)),
        (FieldValue::Bool(a), FieldValue::Bool(b)) => op == Op::Eq && a == b,
        (FieldValue::Ip(a), FieldValue::Ip(b)) => op == Op::Eq && a == b,
        _ => false,
    }
}

impl CheckMatcher {
    fn eval(&self, ev: &Event, cx: &FieldContext) -> bool {
        let v = transform(self.field.extract(ev, cx), &self.transformers);
        match &v {
            FieldValue::Null => return false,
            // No ancestors (or no addresses): nothing to compare, as with a missing value.
            FieldValue::List(items) if items.is_empty() => return false,
            _ => {}
        }
        if let Test::Field { other, .. } = &self.test {
            // A missing right-hand field fails the check whatever the operator (Falco's rule).
            let (field, tr) = other.as_ref();
            if matches!(transform(field.extract(ev, cx), tr), FieldValue::Null) {
                return false;
            }
        }
        // Falco applies `!=` to each ancestor: proc.aname != bash holds when some ancestor is
        // not bash. For addresses and ports it means none is equal.
        if self.negate
            && self.field.is_multi()
            && let FieldValue::List(items) = &v
        {
            return items.iter().any(|i| !self.test.one(i, ev, cx));
        }
        self.test.one(&v, ev, cx) != self.negate
    }
}

impl Matcher {
    pub fn eval(&self, ev: &Event, cx: &FieldContext) -> bool {
        match self {
            Self::True => true,
            Self::False | Self::Unknown => false,
            Self::And(t) => t.iter().all(|m| m.eval(ev, cx)),
            Self::Or(t) => t.iter().any(|m| m.eval(ev, cx)),
            Self::Not(m) => !m.eval(ev, cx),
            Self::Check(c) => c.eval(ev, cx),
        }
    }

    /// This matcher for events of one type: `evt.type` tests and checks on fields the type
    /// never carries become constants, and constants fold away.
    pub fn specialize(&self, type_index: usize) -> Matcher {
        let evt_type = EVENT_TYPES[type_index];
        match self {
            Self::True => Self::True,
            Self::False => Self::False,
            Self::Unknown => Self::Unknown,
            Self::And(t) => junction(t, type_index, true),
            Self::Or(t) => junction(t, type_index, false),
            Self::Not(m) => match m.specialize(type_index) {
                Self::True => Self::False,
                Self::False => Self::True,
                Self::Not(inner) => *inner,
                Self::Unknown => Self::Unknown,
                m => Self::Not(Box::new(m)),
            },
            Self::Check(c) => {
                if !c.field.available_in(evt_type) {
                    return Self::False;
                }
                match &c.test {
                    Test::Type(set) if c.transformers.is_empty() => {
                        if set.contains(type_index) != c.negate {
                            Self::True
                        } else {
                            Self::False
                        }
                    }
                    _ => self.clone(),
                }
            }
        }
    }
}

/// An `and` (or an `or`) specialised: terms that fold to the identity drop out, one that folds
/// to the absorbing constant decides, nested junctions of the same kind flatten.
fn junction(terms: &[Matcher], type_index: usize, and: bool) -> Matcher {
    let (identity, absorbing) =
        if and { (Matcher::True, Matcher::False) } else { (Matcher::False, Matcher::True) };
    let mut out = Vec::with_capacity(terms.len());
    for m in terms {
        match (m.specialize(type_index), and) {
            (Matcher::True, true) | (Matcher::False, false) => {}
            (Matcher::False, true) | (Matcher::True, false) => return absorbing,
            (Matcher::And(inner), true) | (Matcher::Or(inner), false) => out.extend(inner),
            (m, _) => out.push(m),
        }
    }
    match out.len() {
        0 => identity,
        1 => out.pop().expect("one"),
        _ if and => Matcher::And(out),
        _ => Matcher::Or(out),
    }
}

/// `f glob a or f glob b or ...` -> one glob set on `f`, which matches all patterns in one pass
/// instead of one pass per pattern.
fn merge_globs(terms: &mut Vec<Matcher>) {
    let glob_field = |m: &Matcher| match m {
        Matcher::Check(c) if !c.negate && c.transformers.is_empty() && matches!(c.test, Test::Glob(_)) => {
            Some(c.field.name())
        }
        _ => None,
    };
    let mut fields: Vec<String> = terms.iter().filter_map(glob_field).collect();
    fields.sort();
    fields.dedup();
    for field in fields {
        let idx: Vec<usize> =
            (0..terms.len()).filter(|&i| glob_field(&terms[i]).as_ref() == Some(&field)).collect();
        if idx.len() < 2 {
            continue;
        }
        let mut builder = globset::GlobSetBuilder::new();
        let mut patterns = Vec::new();
        for &i in &idx {
            if let Matcher::Check(c) = &terms[i]
                && let Test::Glob(g) = &c.test
            {
                builder.add(g.glob().clone());
                patterns.push(g.glob().glob().to_owned());
            }
        }
        let Ok(set) = builder.build() else { continue };
        let Matcher::Check(first) = &terms[idx[0]] else { continue };
        let merged = Matcher::Check(Arc::new(CheckMatcher {
            field: first.field.clone(),
            transformers: Vec::new(),
            test: Test::GlobSet(set, patterns),
            negate: false,
        }));
        for &i in idx.iter().rev() {
            terms.remove(i);
        }
        terms.push(merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_trie_matches_whole_components() {
        let mut t = PathTrie::default();
        t.insert("/etc");
        t.insert("/usr/local/bin/");
        assert!(t.matches("/etc"));
        assert!(t.matches("/etc/shadow"));
        assert!(!t.matches("/etcx/shadow"));
        assert!(t.matches("/usr/local/bin/x"));
        assert!(!t.matches("/usr/local"));
    }

    #[test]
    fn networks_parse_mapped_and_plain() {
        assert_eq!(parse_net("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("::ffff:169.254.169.254").unwrap().to_string(), "169.254.169.254/32");
        assert_eq!(parse_net("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_net("nope").is_none());
    }
}
