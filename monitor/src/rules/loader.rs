//! Rules files -> definitions: lists, macros and rules with Falco's override and append
//! semantics applied in load order (later files modify earlier ones).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::source::{Diagnostic, LocatedText, Node, SourceFile, Span, Value, parse_yaml};
use crate::alert::Priority;

#[derive(Clone, Debug)]
pub struct ListDef {
    pub items: Vec<(String, Span)>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct MacroDef {
    pub condition: LocatedText,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct ExceptionDef {
    pub name: String,
    pub node: Node,
    /// None: one field (`fields: proc.name`); Some: a tuple of fields.
    pub fields: Vec<String>,
    pub single_field: bool,
    pub comps: Vec<String>,
    pub values: Vec<Node>,
}

#[derive(Clone, Debug)]
pub struct RuleDef {
    pub name: String,
    pub span: Span,
    pub desc: String,
    pub condition: LocatedText,
    pub output: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub source: String,
    pub exceptions: Vec<ExceptionDef>,
}

#[derive(Default)]
pub struct Definitions {
    pub lists: HashMap<String, ListDef>,
    pub macros: HashMap<String, MacroDef>,
    /// In definition order: the order rules are listed and, with first-match, tried.
    pub rules: Vec<RuleDef>,
    rule_index: HashMap<String, usize>,
    pub files: Vec<Arc<SourceFile>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Name of the rules built into the binary, usable wherever a rules path is.
pub const BUNDLED: &str = "bundled";

/// Our default rules, compiled in so that `monitor run` works from any directory.
pub const BUNDLED_RULES: &[(&str, &str)] =
    &[("monitor_rules.yaml", include_str!("../../../rules/monitor_rules.yaml"))];

impl Definitions {
    /// Loads files and directories (their *.yaml and *.yml files, sorted) in order.
    pub fn load_paths(paths: &[PathBuf]) -> Self {
        let mut defs = Self::default();
        for path in paths {
            if path.as_os_str() == BUNDLED {
                for (name, text) in BUNDLED_RULES {
                    defs.load_source(SourceFile::new(format!("<bundled>/{name}"), *text));
                }
                continue;
            }
            match expand_path(path) {
                Ok(files) => {
                    for f in files {
                        match std::fs::read(&f) {
                            Ok(bytes) => {
                                let text = String::from_utf8_lossy(&bytes).into_owned();
                                defs.load_source(SourceFile::new(f.display().to_string(), text));
                            }
                            Err(e) => defs
                                .diagnostics
                                .push(Diagnostic::error(None, format!("{}: cannot read: {e}", f.display()))),
                        }
                    }
                }
                Err(e) => defs.diagnostics.push(Diagnostic::error(None, e)),
            }
        }
        defs
    }

    pub fn load_source(&mut self, file: Arc<SourceFile>) {
        self.files.push(file.clone());
        let root = match parse_yaml(&file) {
            Ok(r) => r,
            Err(d) => return self.diagnostics.push(d),
        };
        let items = match &root.value {
            Value::Null => return,
            Value::Seq(items) => items,
            _ => {
                return self.error(
                    &root,
                    format!("expected a list of rules, macros and lists at the top, found {}", root.kind()),
                );
            }
        };
        for item in items {
            if let Err(d) = self.item(item) {
                self.diagnostics.push(d);
            }
        }
    }

    fn error(&mut self, node: &Node, msg: String) {
        self.diagnostics.push(Diagnostic::error(Some(node.span.clone()), msg));
    }

    fn item(&mut self, item: &Node) -> Result<(), Diagnostic> {
        let Value::Map(entries) = &item.value else {
            return Err(err(
                item,
                format!(
                    "expected a mapping (`- rule: ...`, `- macro: ...` or `- list: ...`), found {}",
                    item.kind()
                ),
            ));
        };
        let key_of = |k: &str| entries.iter().any(|(key, _)| matches!(&key.value, Value::Str(s) if s == k));
        if key_of("rule") {
            self.rule(item)
        } else if key_of("macro") {
            self.macro_(item)
        } else if key_of("list") {
            self.list(item)
        } else if key_of("required_engine_version") || key_of("required_plugin_versions") {
            // The container plugin's fields are built in; engine versions are Falco's numbering.
            Ok(())
        } else {
            let first = entries.first().map(|(k, _)| k.scalar_text().unwrap_or_default()).unwrap_or_default();
            Err(err(
                item,
                format!(
                    "unknown item `{first}` (expected rule, macro, list, required_engine_version or required_plugin_versions)"
                ),
            ))
        }
    }

    fn warn_unknown_keys(&mut self, item: &Node, known: &[&str]) {
        if let Value::Map(entries) = &item.value {
            for (k, _) in entries {
                let name = k.scalar_text().unwrap_or_default();
                if !known.contains(&name.as_str()) {
                    self.diagnostics.push(Diagnostic::warning(
                        Some(k.span.clone()),
                        format!("unknown key `{name}` ignored (expected one of: {})", known.join(", ")),
                    ));
                }
            }
        }
    }

    fn list(&mut self, item: &Node) -> Result<(), Diagnostic> {
        self.warn_unknown_keys(item, &["list", "items", "append", "override"]);
        let name = string(item, "list")?;
        let mode = Mode::of(item, &["items"])?;
        let items = match item.get("items") {
            Some(n) => list_items(n)?,
            None if matches!(mode, Mode::Define) => {
                return Err(err(item, format!("list `{name}` has no `items`")));
            }
            None => Vec::new(),
        };
        match mode.for_key("items") {
            KeyMode::Replace => {
                self.lists.insert(name, ListDef { items, span: item.span.clone() });
            }
            KeyMode::Append => match self.lists.get_mut(&name) {
                Some(l) => l.items.extend(items),
                None => {
                    return Err(err(
                        item,
                        format!("cannot append to list `{name}`: no list of that name is defined before"),
                    ));
                }
            },
        }
        Ok(())
    }

    fn macro_(&mut self, item: &Node) -> Result<(), Diagnostic> {
        self.warn_unknown_keys(item, &["macro", "condition", "append", "override", "source"]);
        let name = string(item, "macro")?;
        let mode = Mode::of(item, &["condition"])?;
        let cond =
            item.get("condition").ok_or_else(|| err(item, format!("macro `{name}` has no `condition`")))?;
        let text = scalar(cond, "condition")?;
        match mode.for_key("condition") {
            KeyMode::Replace => {
                self.macros.insert(
                    name,
                    MacroDef { condition: LocatedText::new(cond, text), span: item.span.clone() },
                );
            }
            KeyMode::Append => match self.macros.get_mut(&name) {
                Some(m) => m.condition.append(cond, text),
                None => {
                    return Err(err(
                        item,
                        format!("cannot append to macro `{name}`: no macro of that name is defined before"),
                    ));
                }
            },
        }
        Ok(())
    }

    fn rule(&mut self, item: &Node) -> Result<(), Diagnostic> {
        const KEYS: &[&str] = &[
            "rule",
            "desc",
            "condition",
            "output",
            "priority",
            "tags",
            "enabled",
            "exceptions",
            "source",
            "append",
            "override",
            "warn_evttypes",
            "skip-if-unknown-filter",
            "capture",
            "capture_duration",
        ];
        self.warn_unknown_keys(item, KEYS);
        let name = string(item, "rule")?;
        let mode = Mode::of(
            item,
            &["desc", "condition", "output", "priority", "tags", "enabled", "exceptions", "source"],
        )?;
        let exists = self.rule_index.get(&name).copied();
        let only_enabled =
            matches!(&item.value, Value::Map(e) if e.len() == 2) && item.get("enabled").is_some();
        if let Mode::Define = mode
            && !(only_enabled && exists.is_some())
        {
            let def = new_rule(&name, item)?;
            match exists {
                Some(i) => self.rules[i] = def,
                None => {
                    self.rule_index.insert(name, self.rules.len());
                    self.rules.push(def);
                }
            }
            return Ok(());
        }
        let Some(i) = exists else {
            return Err(err(
                item,
                format!("cannot modify rule `{name}`: no rule of that name is defined before"),
            ));
        };
        if let Mode::Append = mode {
            // Falco's `append: true` extends a rule's condition and exceptions, nothing else.
            if item.get("condition").is_none() && item.get("exceptions").is_none() {
                return Err(err(
                    item,
                    format!("`append: true` on rule `{name}` needs a `condition` or `exceptions` to append"),
                ));
            }
            for (key, node) in keys(item) {
                if !matches!(key.as_str(), "rule" | "append" | "condition" | "exceptions") {
                    self.diagnostics.push(Diagnostic::warning(
                        Some(node.span.clone()),
                        format!(
                            "`{key}` is ignored in an `append: true` item (only condition and exceptions \
                             are appended; use `override:` to change it)"
                        ),
                    ));
                }
            }
        }
        let rule = &mut self.rules[i];
        for (key, node) in keys(item) {
            if matches!(
                key.as_str(),
                "rule" | "override" | "append" | "warn_evttypes" | "skip-if-unknown-filter"
            ) {
                continue;
            }
            if matches!(mode, Mode::Append) && !matches!(key.as_str(), "condition" | "exceptions") {
                continue;
            }
            let how = mode.for_key(&key);
            match (key.as_str(), how) {
                ("condition", KeyMode::Append) => rule.condition.append(node, scalar(node, "condition")?),
                ("condition", KeyMode::Replace) => {
                    rule.condition = LocatedText::new(node, scalar(node, "condition")?)
                }
                ("output", KeyMode::Append) => {
                    rule.output.push(' ');
                    rule.output.push_str(scalar(node, "output")?.trim_end());
                }
                ("output", KeyMode::Replace) => rule.output = scalar(node, "output")?.trim_end().to_owned(),
                ("desc", KeyMode::Append) => {
                    rule.desc.push(' ');
                    rule.desc.push_str(&scalar(node, "desc")?);
                }
                ("desc", KeyMode::Replace) => rule.desc = scalar(node, "desc")?,
                ("tags", KeyMode::Append) => {
                    for t in string_list(node, "tags")? {
                        if !rule.tags.contains(&t) {
                            rule.tags.push(t);
                        }
                    }
                }
                ("tags", KeyMode::Replace) => rule.tags = string_list(node, "tags")?,
                ("exceptions", KeyMode::Append) => {
                    for e in exceptions(node)? {
                        match rule.exceptions.iter_mut().find(|x| x.name == e.name) {
                            Some(x) => x.values.extend(e.values),
                            None => rule.exceptions.push(e),
                        }
                    }
                }
                ("exceptions", KeyMode::Replace) => rule.exceptions = exceptions(node)?,
                ("priority", KeyMode::Replace) => rule.priority = priority(node)?,
                ("enabled", KeyMode::Replace) => rule.enabled = boolean(node, "enabled")?,
                ("source", KeyMode::Replace) => rule.source = scalar(node, "source")?,
                (k, KeyMode::Append) => {
                    return Err(err(node, format!("`{k}` can only be replaced, not appended")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A list's items with nested list names expanded (a list may name other lists).
    pub fn expand_list(&self, name: &str, out: &mut Vec<(String, Span)>, stack: &mut Vec<String>) {
        if stack.iter().any(|n| n == name) {
            return;
        }
        stack.push(name.to_owned());
        for (item, span) in &self.lists[name].items {
            if self.lists.contains_key(item) && item != name {
                self.expand_list(item, out, stack);
            } else {
                out.push((item.clone(), span.clone()));
            }
        }
        stack.pop();
    }
}

fn expand_path(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: cannot read rules: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: cannot list rules directory: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn err(node: &Node, msg: String) -> Diagnostic {
    Diagnostic::error(Some(node.span.clone()), msg)
}

fn keys(item: &Node) -> Vec<(String, &Node)> {
    match &item.value {
        Value::Map(entries) => {
            entries.iter().map(|(k, v)| (k.scalar_text().unwrap_or_default(), v)).collect()
        }
        _ => Vec::new(),
    }
}

fn scalar(node: &Node, what: &str) -> Result<String, Diagnostic> {
    match &node.value {
        Value::Seq(_) | Value::Map(_) => {
            Err(err(node, format!("expected text for `{what}`, found {}", node.kind())))
        }
        Value::Null => Ok(String::new()),
        _ => Ok(node.scalar_text().unwrap_or_default()),
    }
}

fn string(item: &Node, key: &str) -> Result<String, Diagnostic> {
    let node = item.get(key).ok_or_else(|| err(item, format!("missing `{key}`")))?;
    let s = scalar(node, key)?;
    if s.trim().is_empty() {
        return Err(err(node, format!("`{key}` needs a name")));
    }
    Ok(s)
}

fn boolean(node: &Node, what: &str) -> Result<bool, Diagnostic> {
    match &node.value {
        Value::Bool(b) => Ok(*b),
        Value::Str(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(err(node, format!("expected true or false for `{what}`, found {}", node.kind()))),
    }
}

fn priority(node: &Node) -> Result<Priority, Diagnostic> {
    let text = scalar(node, "priority")?;
    Priority::parse(&text)
        .ok_or_else(|| err(node, format!("unknown priority `{text}` (expected one of {})", Priority::NAMES)))
}

fn list_items(node: &Node) -> Result<Vec<(String, Span)>, Diagnostic> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| match i.scalar_text() {
                Some(s) => Ok((unquote(s), i.span.clone())),
                None => Err(err(i, format!("expected a list item (text or number), found {}", i.kind()))),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(err(node, format!("expected a list of items, found {}", node.kind()))),
    }
}

/// Falco splices list items into conditions as text, so an item written with quotes inside
/// (`'"10.0.0.0/8"'`) is that quoted string.
fn unquote(s: String) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].replace(&format!("\\{q}"), &q.to_string());
        }
    }
    s
}

fn string_list(node: &Node, what: &str) -> Result<Vec<String>, Diagnostic> {
    match &node.value {
        Value::Seq(items) => items.iter().map(|i| scalar(i, what)).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(err(node, format!("expected a list for `{what}`, found {}", node.kind()))),
    }
}

fn exceptions(node: &Node) -> Result<Vec<ExceptionDef>, Diagnostic> {
    let Value::Seq(items) = &node.value else {
        if matches!(node.value, Value::Null) {
            return Ok(Vec::new());
        }
        return Err(err(node, format!("expected a list of exceptions, found {}", node.kind())));
    };
    items
        .iter()
        .map(|e| {
            let name = string(e, "name")?;
            let (fields, single_field) = match e.get("fields") {
                Some(f @ Node { value: Value::Seq(_), .. }) => (string_list(f, "fields")?, false),
                Some(f) => (vec![scalar(f, "fields")?], true),
                None => (Vec::new(), false),
            };
            let mut comps = match e.get("comps") {
                Some(c @ Node { value: Value::Seq(_), .. }) => string_list(c, "comps")?,
                Some(c) => vec![scalar(c, "comps")?],
                None => Vec::new(),
            };
            if comps.is_empty() {
                comps = if single_field { vec!["in".to_owned()] } else { vec!["=".to_owned(); fields.len()] };
            }
            if !single_field && comps.len() != fields.len() {
                return Err(err(
                    e,
                    format!("exception `{name}` has {} fields but {} comps", fields.len(), comps.len()),
                ));
            }
            let values = match e.get("values") {
                Some(Node { value: Value::Seq(v), .. }) => v.clone(),
                Some(Node { value: Value::Null, .. }) | None => Vec::new(),
                Some(v) => return Err(err(v, format!("expected a list of values, found {}", v.kind()))),
            };
            Ok(ExceptionDef { name, node: e.clone(), fields, single_field, comps, values })
        })
        .collect()
}

fn new_rule(name: &str, item: &Node) -> Result<RuleDef, Diagnostic> {
    let need = |key: &str| item.get(key).ok_or_else(|| err(item, format!("rule `{name}` has no `{key}`")));
    let cond = need("condition")?;
    Ok(RuleDef {
        name: name.to_owned(),
        span: item.get("rule").map_or_else(|| item.span.clone(), |n| n.span.clone()),
        desc: item
            .get("desc")
            .map(|d| scalar(d, "desc"))
            .transpose()?
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
        condition: LocatedText::new(cond, scalar(cond, "condition")?),
        // Folded scalars (`output: >`) end in a newline that is not part of the message.
        output: scalar(need("output")?, "output")?.trim_end().to_owned(),
        priority: priority(need("priority")?)?,
        tags: item.get("tags").map(|t| string_list(t, "tags")).transpose()?.unwrap_or_default(),
        enabled: item.get("enabled").map(|e| boolean(e, "enabled")).transpose()?.unwrap_or(true),
        source: item
            .get("source")
            .map(|s| scalar(s, "source"))
            .transpose()?
            .unwrap_or_else(|| "syscall".to_owned()),
        exceptions: item.get("exceptions").map(exceptions).transpose()?.unwrap_or_default(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyMode {
    Replace,
    Append,
}

/// How an item relates to an earlier one of the same name.
enum Mode {
    /// A new definition (or a redefinition that replaces the earlier one).
    Define,
    /// Legacy `append: true`: appendable keys append, others are refused.
    Append,
    /// `override:` with a mode per key.
    Override(HashMap<String, KeyMode>),
}

impl Mode {
    fn of(item: &Node, keys_allowed: &[&str]) -> Result<Self, Diagnostic> {
        if let Some(ov) = item.get("override") {
            let Value::Map(entries) = &ov.value else {
                return Err(err(
                    ov,
                    format!(
                        "expected a mapping of key: append|replace under `override`, found {}",
                        ov.kind()
                    ),
                ));
            };
            let mut modes = HashMap::new();
            for (k, v) in entries {
                let key = k.scalar_text().unwrap_or_default();
                if !keys_allowed.contains(&key.as_str()) {
                    return Err(err(
                        k,
                        format!(
                            "`{key}` cannot be overridden (expected one of: {})",
                            keys_allowed.join(", ")
                        ),
                    ));
                }
                let mode = match v.scalar_text().as_deref() {
                    Some("append") => KeyMode::Append,
                    Some("replace") => KeyMode::Replace,
                    _ => return Err(err(v, format!("expected append or replace for `{key}`"))),
                };
                if item.get(&key).is_none() {
                    return Err(err(
                        k,
                        format!("`override` names `{key}`, but the item has no `{key}` to apply"),
                    ));
                }
                modes.insert(key, mode);
            }
            for (key, node) in keys(item) {
                let structural = matches!(key.as_str(), "rule" | "macro" | "list" | "override");
                if !structural && !modes.contains_key(&key) && keys_allowed.contains(&key.as_str()) {
                    return Err(err(
                        node,
                        format!("`{key}` needs an `override` entry (append or replace) in an override item"),
                    ));
                }
            }
            return Ok(Self::Override(modes));
        }
        match item.get("append") {
            Some(a) if boolean(a, "append")? => Ok(Self::Append),
            _ => Ok(Self::Define),
        }
    }

    fn for_key(&self, key: &str) -> KeyMode {
        match self {
            Self::Define => KeyMode::Replace,
            Self::Append => match key {
                "condition" | "items" | "exceptions" => KeyMode::Append,
                _ => KeyMode::Replace,
            },
            Self::Override(m) => m.get(key).copied().unwrap_or(KeyMode::Replace),
        }
    }
}
