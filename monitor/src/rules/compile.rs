//! Conditions -> matchers: macros expanded, lists resolved, literals parsed to the field's type
//! ([`super::literal`]), large lists turned into hash sets and path tries.

use std::collections::HashMap;
use std::sync::Arc;

use monitor_common::{EventType, TypeSet};

use super::condition::{self, Check, Expr, FieldExpr, Literal, Op, Operand, Transformer};
use super::literal::{constant, expected_of, hex_bytes, parse_bool, parse_int, parse_net};
use super::loader::Definitions;
use super::matcher::{CheckMatcher, Matcher, PathIdentities, PathTrie, Test};
use super::source::{Diagnostic, LocatedText, Span};
use crate::event::{Field, FieldError, FieldId, FieldType};

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
            match EventType::from_name(n) {
                Some(t) => set.insert(t),
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
                    _ if field.id() == FieldId::EvtType => {
                        Test::Type(self.type_set(items.iter().map(|(v, _)| v.as_str())))
                    }
                    Op::In if field.id() == FieldId::FdName && c.lhs.transformers.is_empty() => {
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
                        if field.id() == FieldId::EvtType && c.lhs.transformers.is_empty() {
                            (Test::Type(self.type_set([v.as_str()])), *op == Op::Ne)
                        } else if field.id() == FieldId::FdName
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
