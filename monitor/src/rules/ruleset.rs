//! The compiled ruleset: every loadable rule compiled, indexed by the event types it can match,
//! with the rules that could not load and why. Immutable once built; reloads build a new one.

use std::path::PathBuf;

use monitor_common::{EventType, TypeSet};

use super::compile::{Compiled, Compiler, Problem};
use super::condition::Op;
use super::loader::{Definitions, ExceptionDef, RuleDef};
use super::matcher::{CheckMatcher, Constant, Constraint, Matcher, PathIdentities};
use super::source::{Diagnostic, Node, Severity, Span, Value};
use crate::alert::{OutputTemplate, Priority, RuleView};
use crate::event::{Event, FieldContext, FieldId};

pub struct CompiledRule {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub source: String,
    pub output: OutputTemplate,
    pub enabled: bool,
    /// The event types the rule can match.
    pub types: TypeSet,
    pub span: Span,
}

impl CompiledRule {
    /// What an alert of this rule carries of it.
    pub fn view(&self) -> RuleView<'_> {
        RuleView { name: &self.name, priority: self.priority, tags: &self.tags, output: &self.output }
    }
}

/// A rule that is not evaluated, and why.
pub struct SkippedRule {
    pub name: String,
    pub reason: String,
    pub span: Span,
}

pub struct Ruleset {
    pub rules: Vec<CompiledRule>,
    /// Per event type: (index into `rules`, the rule's matcher specialised for that type).
    by_type: Vec<Vec<(usize, Matcher)>>,
    pub skipped: Vec<SkippedRule>,
    identities: Vec<std::sync::Arc<PathIdentities>>,
    /// A digest of the loaded sources, to tell rulesets apart in logs and metrics.
    pub digest: String,
}

/// The outcome of loading: a ruleset (possibly empty), with every error and warning.
pub struct Loaded {
    pub ruleset: Ruleset,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Quotes a value for a synthesised condition so the parser reads it back unchanged.
fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A scalar value for a condition: quoted, except the name of a list, which Falco expands.
fn quoted_scalar(v: &Node, is_list: &dyn Fn(&str) -> bool) -> Result<String, Diagnostic> {
    v.scalar_text().map(|t| if is_list(&t) { t } else { quote(&t) }).ok_or_else(|| {
        Diagnostic::error(Some(v.span.clone()), format!("expected a value, found {}", v.kind()))
    })
}

/// Values as a condition list: `("a", "b", some_list)`.
fn quoted_list(items: &[Node], is_list: &dyn Fn(&str) -> bool) -> Result<String, Diagnostic> {
    let parts = items.iter().map(|i| quoted_scalar(i, is_list)).collect::<Result<Vec<_>, _>>()?;
    Ok(format!("({})", parts.join(", ")))
}

/// Whether an exception's comparison takes a list of values.
fn takes_list(comp: &str) -> bool {
    Op::parse(comp).is_some_and(Op::takes_list)
}

/// Falco's exceptions as condition text: `(f1 c1 v1 and f2 c2 v2) or ...`.
fn exception_text(e: &ExceptionDef, is_list: &dyn Fn(&str) -> bool) -> Result<Option<String>, Diagnostic> {
    let value_text = |comp: &str, v: &Node| -> Result<String, Diagnostic> {
        match &v.value {
            Value::Seq(items) => quoted_list(items, is_list),
            _ if takes_list(comp) => quoted_list(std::slice::from_ref(v), is_list),
            // A list name only means its items where a list is expected.
            _ => quoted_scalar(v, &|_| false),
        }
    };
    if e.values.is_empty() || e.fields.is_empty() {
        return Ok(None);
    }
    let mut alternatives = Vec::new();
    if e.single_field {
        let comp = e.comps.first().map_or("in", String::as_str);
        if takes_list(comp) {
            alternatives.push(format!("{} {comp} {}", e.fields[0], quoted_list(&e.values, is_list)?));
        } else {
            for v in &e.values {
                alternatives.push(format!("{} {comp} {}", e.fields[0], value_text(comp, v)?));
            }
        }
    } else {
        for tuple in &e.values {
            let Value::Seq(vals) = &tuple.value else {
                return Err(Diagnostic::error(
                    Some(tuple.span.clone()),
                    format!(
                        "exception `{}`: expected a list of {} values, found {}",
                        e.name,
                        e.fields.len(),
                        tuple.kind()
                    ),
                ));
            };
            if vals.len() != e.fields.len() {
                return Err(Diagnostic::error(
                    Some(tuple.span.clone()),
                    format!(
                        "exception `{}`: expected {} values (one per field), found {}",
                        e.name,
                        e.fields.len(),
                        vals.len()
                    ),
                ));
            }
            let terms: Result<Vec<_>, _> = e
                .fields
                .iter()
                .zip(&e.comps)
                .zip(vals)
                .map(|((f, c), v)| value_text(c, v).map(|t| format!("{f} {c} {t}")))
                .collect();
            alternatives.push(format!("({})", terms?.join(" and ")));
        }
    }
    Ok(Some(alternatives.join(" or ")))
}

impl Ruleset {
    pub fn empty() -> Self {
        Self {
            rules: Vec::new(),
            by_type: vec![Vec::new(); EventType::ALL.len()],
            skipped: Vec::new(),
            identities: Vec::new(),
            digest: String::new(),
        }
    }

    /// Loads and compiles rules files and directories, in order.
    pub fn load(paths: &[PathBuf]) -> Loaded {
        Self::from_definitions(Definitions::load_paths(paths))
    }

    pub fn from_definitions(mut defs: Definitions) -> Loaded {
        let mut diagnostics = std::mem::take(&mut defs.diagnostics);
        let mut ruleset = Self::empty();
        ruleset.digest = digest(&defs);
        let mut compiler = Compiler::new(&defs);
        let mut macro_names: Vec<&String> = defs.macros.keys().collect();
        macro_names.sort();
        for name in macro_names {
            if let Some(d) = compiler.check_macro_syntax(name) {
                diagnostics.push(d);
            }
        }
        for rule in &defs.rules {
            let skip = |reason: String, span: Span| SkippedRule { name: rule.name.clone(), reason, span };
            match compile_rule(&mut compiler, rule) {
                Ok((compiled, Compiled { matcher, foreign_types })) => {
                    let idx = ruleset.rules.len();
                    let per_type = per_type(&matcher);
                    let types = types_of(&per_type);
                    if types.is_empty() {
                        ruleset.skipped.push(skip(no_types_reason(&foreign_types), rule.span.clone()));
                        continue;
                    }
                    if compiled.enabled {
                        for (t, m) in EventType::ALL.into_iter().zip(per_type) {
                            if !matches!(m, Matcher::False) {
                                ruleset.by_type[t.index()].push((idx, m));
                            }
                        }
                    }
                    ruleset.rules.push(CompiledRule { types, ..compiled });
                }
                Err(Problem::Error(d)) => diagnostics.push(d),
                Err(Problem::Unsupported { reason, at, matcher, foreign_types }) => {
                    // A rule for events we never see is skipped for that, whatever its fields.
                    let reason = if types_of(&per_type(&matcher)).is_empty() {
                        no_types_reason(&foreign_types)
                    } else {
                        reason
                    };
                    ruleset.skipped.push(skip(reason, at));
                }
            }
        }
        ruleset.identities = std::mem::take(&mut compiler.identities);
        for s in &ruleset.skipped {
            diagnostics.push(Diagnostic::warning(
                Some(s.span.clone()),
                format!("rule `{}` skipped: {}", s.name, s.reason),
            ));
        }
        Loaded { ruleset, diagnostics }
    }

    /// Indices of the enabled rules that match `ev`, in rule order.
    pub fn matching(&self, ev: &Event, cx: &FieldContext, out: &mut Vec<usize>) {
        for (idx, m) in &self.by_type[ev.evt_type.index()] {
            if m.eval(ev, cx) {
                out.push(*idx);
            }
        }
    }

    /// The enabled rules' matchers specialised for type `t`.
    pub fn matchers_for_type(&self, t: EventType) -> impl Iterator<Item = &Matcher> {
        self.by_type[t.index()].iter().map(|(_, m)| m)
    }

    /// Every check of every enabled rule's compiled condition, once per event type it is
    /// indexed under.
    fn checks(&self) -> impl Iterator<Item = &CheckMatcher> {
        fn walk<'m>(m: &'m Matcher, out: &mut Vec<&'m CheckMatcher>) {
            match m {
                Matcher::And(v) | Matcher::Or(v) => v.iter().for_each(|m| walk(m, out)),
                Matcher::Not(m) => walk(m, out),
                Matcher::Check(c) => out.push(c),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (_, m) in self.by_type.iter().flatten() {
            walk(m, &mut out);
        }
        out.into_iter()
    }

    /// The host names the enabled rules compare `fd.sip.name` and `fd.cip.name` with: the
    /// daemon resolves them, since an address has no name of its own.
    pub fn host_names(&self) -> std::collections::BTreeSet<String> {
        let name_checks =
            self.checks().filter(|c| matches!(c.field().id(), FieldId::FdSipName | FieldId::FdCipName));
        let mut out = std::collections::BTreeSet::new();
        for c in name_checks {
            if let Constraint::OneOf(items) = c.constraint() {
                out.extend(items.iter().filter_map(|k| match k {
                    Constant::Str(s) => Some((*s).to_owned()),
                    _ => None,
                }));
            }
        }
        out
    }

    /// Whether an enabled rule's condition reads this field.
    pub fn uses_field(&self, id: FieldId) -> bool {
        self.checks().any(|c| c.field().id() == id)
    }

    /// How many rule evaluations an event of type `t` costs.
    pub fn rules_for_type(&self, t: EventType) -> usize {
        self.by_type[t.index()].len()
    }

    /// Keeps the identities of files rules name by path current, once a second, on a thread of
    /// its own: a list of 100,000 paths is 100,000 stat calls, which must not stall the event
    /// path. The thread ends once the ruleset is gone.
    pub fn follow_identities(&self) {
        if self.identities.is_empty() {
            return;
        }
        let watched: Vec<std::sync::Weak<PathIdentities>> =
            self.identities.iter().map(std::sync::Arc::downgrade).collect();
        let spawned = std::thread::Builder::new().name("monitor-identities".into()).spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let live: Vec<_> = watched.iter().filter_map(std::sync::Weak::upgrade).collect();
                if live.is_empty() {
                    return;
                }
                for i in live {
                    i.refresh();
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot follow the files rules name by path ({e}): a replaced file keeps its old identity"
            );
        }
    }

    pub fn enabled_count(&self) -> usize {
        self.rules.iter().filter(|r| r.enabled).count()
    }
}

fn digest(defs: &Definitions) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &defs.files {
        f.name.hash(&mut h);
        f.text.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// The matcher specialised for each event type, in type order.
fn per_type(m: &Matcher) -> Vec<Matcher> {
    EventType::ALL.iter().map(|t| m.specialize(*t)).collect()
}

/// The types whose specialised matcher can be true.
fn types_of(per_type: &[Matcher]) -> TypeSet {
    let mut types = TypeSet::EMPTY;
    for (t, m) in EventType::ALL.into_iter().zip(per_type) {
        if !matches!(m, Matcher::False) {
            types.insert(t);
        }
    }
    types
}

fn no_types_reason(foreign: &[String]) -> String {
    if foreign.is_empty() {
        "matches no event type the monitor traces".to_owned()
    } else {
        format!("matches only event types the monitor does not trace ({})", foreign.join(", "))
    }
}

fn compile_rule(compiler: &mut Compiler, rule: &RuleDef) -> Result<(CompiledRule, Compiled), Problem> {
    if rule.source != "syscall" {
        return Err(Problem::Unsupported {
            reason: format!("source `{}` (this monitor evaluates syscall rules)", rule.source),
            at: rule.span.clone(),
            matcher: Matcher::True,
            foreign_types: Vec::new(),
        });
    }
    let mut text = rule.condition.clone();
    let mut extra = Vec::new();
    for e in &rule.exceptions {
        if let Some(t) = exception_text(e, &|n| compiler.is_list(n)).map_err(Problem::Error)? {
            extra.push((e.node.clone(), t));
        }
    }
    if let Some((node, _)) = extra.first() {
        let joined = extra.iter().map(|(_, t)| format!("({t})")).collect::<Vec<_>>().join(" or ");
        text = text.and_not(node, joined);
    }
    let compiled_condition = compiler.compile(&text)?;
    let compiled = CompiledRule {
        name: rule.name.clone(),
        desc: rule.desc.clone(),
        priority: rule.priority,
        tags: rule.tags.clone(),
        source: rule.source.clone(),
        output: OutputTemplate::parse(&rule.output),
        enabled: rule.enabled,
        types: TypeSet::EMPTY,
        span: rule.span.clone(),
    };
    Ok((compiled, compiled_condition))
}
