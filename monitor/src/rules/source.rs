//! YAML source files as trees of located nodes, and diagnostics that point into them.
//!
//! Every node keeps its byte span in the file, so an error found long after parsing (an unknown
//! macro in a condition, a bad priority) still names file:line:column and shows the line.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One loaded file: its name as the user gave it, and its text.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        let text = text.into();
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect::<Vec<_>>();
        Arc::new(Self { name: name.into(), text, line_starts })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, byte: usize) -> (usize, usize) {
        let byte = byte.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= byte).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..byte).map_or(byte - start, |s| s.chars().count()) + 1;
        (line, col)
    }

    fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self.line_starts.get(line).map_or(self.text.len(), |&e| e - 1);
        self.text.get(start..end).unwrap_or("").trim_end_matches('\r')
    }
}

/// A place in a source file: a byte range.
#[derive(Clone, Debug)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn line_col(&self) -> (usize, usize) {
        self.file.line_col(self.start)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, col) = self.line_col();
        write!(f, "{}:{line}:{col}", self.file.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// A located message about the user's input: what is wrong, where, and what was expected.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Option<Span>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(span: Option<Span>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, span, message: message.into() }
    }

    pub fn warning(span: Option<Span>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, span, message: message.into() }
    }

    /// The one-line form: `file:line:col: message`.
    pub fn headline(&self) -> String {
        match &self.span {
            Some(s) => format!("{s}: {}", self.message),
            None => self.message.clone(),
        }
    }

    /// The headline, then the source line with the offending text underlined.
    pub fn render(&self) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{kind}: {}", self.headline());
        if let Some(s) = &self.span {
            let (line, col) = s.line_col();
            let text = s.file.line_text(line);
            let width = s
                .file
                .text
                .get(s.start..s.start + s.len)
                .map_or(1, |t| t.lines().next().unwrap_or("").chars().count())
                .clamp(1, text.chars().count().saturating_sub(col - 1).max(1));
            let gutter = line.to_string().len();
            out.push_str(&format!(
                "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {}{}",
                "",
                "",
                " ".repeat(col - 1),
                "^".repeat(width)
            ));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// A YAML value with its place in the file.
#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A scalar as text: YAML's untyped scalars (`- 22`, `- true`) are strings to the rules
    /// language.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            // As written: `yes`, `0x1F` and `1_000` are names and numbers to the rules language,
            // not YAML's booleans and integers.
            Value::Int(i) => Some(self.raw_text().map_or_else(|| i.to_string(), |t| t.trim().to_owned())),
            Value::Float(f) => Some(self.raw_text().map_or_else(|| f.to_string(), |t| t.trim().to_owned())),
            Value::Bool(b) => Some(self.raw_text().map_or_else(|| b.to_string(), |t| t.trim().to_owned())),
            _ => None,
        }
    }

    fn raw_text(&self) -> Option<&str> {
        self.span.file.text.get(self.span.start..self.span.start + self.span.len)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => {
                m.iter().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The span of the character at `offset` (in bytes) of this scalar's value, mapped back into
    /// the file. Folding and quoting change whitespace, not the other characters, so the n-th
    /// non-blank character of the value is the n-th non-blank character of the raw scalar.
    pub fn span_in_value(&self, value: &str, offset: usize, len: usize) -> Span {
        let Some(raw) = self.raw_text() else { return self.span.clone() };
        let nth = value.get(..offset).map_or(0, |v| v.chars().filter(|c| !c.is_whitespace()).count());
        let skip_quote = usize::from(raw.starts_with('"') || raw.starts_with('\''));
        let mut seen = 0;
        for (i, c) in raw.char_indices().skip(skip_quote) {
            if c.is_whitespace() {
                continue;
            }
            if seen == nth {
                return Span { file: self.span.file.clone(), start: self.span.start + i, len: len.max(1) };
            }
            seen += 1;
        }
        self.span.clone()
    }
}

/// Text assembled from one or more YAML scalars (a condition and what overrides appended to
/// it), with the way back from a byte range of the text to the file.
#[derive(Clone, Debug)]
pub struct LocatedText {
    pub text: String,
    /// (start in `text`, the scalar, the scalar's value)
    pieces: Vec<(usize, Node, String)>,
}

impl LocatedText {
    pub fn new(node: &Node, value: String) -> Self {
        Self { text: value.clone(), pieces: vec![(0, node.clone(), value)] }
    }

    /// Text made up by the loader (exceptions): errors point at `node`.
    pub fn synthetic(node: &Node, text: String) -> Self {
        Self { text, pieces: vec![(0, node.clone(), String::new())] }
    }

    /// Appends with a space between, as Falco's append does.
    pub fn append(&mut self, node: &Node, value: String) {
        self.text.push(' ');
        let start = self.text.len();
        self.text.push_str(&value);
        self.pieces.push((start, node.clone(), value));
    }

    /// `(self) and not (extra)`: a rule's condition with its exceptions.
    pub fn and_not(&self, node: &Node, extra: String) -> Self {
        let mut pieces: Vec<_> = self.pieces.iter().map(|(s, n, v)| (s + 1, n.clone(), v.clone())).collect();
        let text = format!("({}) and not ({extra})", self.text);
        pieces.push((self.text.len() + 1, node.clone(), String::new()));
        Self { text, pieces }
    }

    pub fn span(&self, range: std::ops::Range<usize>) -> Span {
        let (start, node, value) =
            self.pieces.iter().rev().find(|(s, _, _)| *s <= range.start).unwrap_or(&self.pieces[0]);
        if value.is_empty() {
            return node.span.clone();
        }
        node.span_in_value(value, range.start.saturating_sub(*start).min(value.len()), range.len())
    }

    /// Where the text starts, for messages about the whole of it.
    pub fn start(&self) -> Span {
        self.pieces[0].1.span.clone()
    }
}

/// What serde-saphyr hands us before spans are resolved against the file.
enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawValue>>),
    Map(Vec<(Spanned<RawValue>, Spanned<RawValue>)>),
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_none<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
                Ok(i64::try_from(v).map_or(RawValue::Float(v as f64), RawValue::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
                Ok(RawValue::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawValue, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(RawValue::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawValue, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_entry()? {
                    v.push(x);
                }
                Ok(RawValue::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn resolve(file: &Arc<SourceFile>, raw: Spanned<RawValue>) -> Node {
    let loc = raw.referenced;
    let span = loc.span();
    let start = span.byte_offset().map_or_else(
        || {
            // Without byte offsets, fall back to the start of the line and column.
            let line = (loc.line() as usize).clamp(1, file.line_starts.len());
            file.line_starts[line - 1] + (loc.column() as usize).saturating_sub(1)
        },
        |b| b as usize,
    );
    let len = span.byte_len().unwrap_or(0) as usize;
    let value = match raw.value {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        RawValue::Float(f) => Value::Float(f),
        RawValue::Str(s) => Value::Str(s),
        RawValue::Seq(items) => Value::Seq(items.into_iter().map(|i| resolve(file, i)).collect()),
        RawValue::Map(entries) => {
            Value::Map(entries.into_iter().map(|(k, v)| (resolve(file, k), resolve(file, v))).collect())
        }
    };
    Node { value, span: Span { file: file.clone(), start, len } }
}

/// Parses a YAML file into located nodes; a YAML syntax error becomes a located diagnostic.
pub fn parse_yaml(file: &Arc<SourceFile>) -> Result<Node, Diagnostic> {
    if file.text.trim().is_empty() {
        return Ok(Node { value: Value::Null, span: Span { file: file.clone(), start: 0, len: 0 } });
    }
    match serde_saphyr::from_str::<Spanned<RawValue>>(&file.text) {
        Ok(raw) => Ok(resolve(file, raw)),
        Err(e) => {
            let span = e.location().map(|loc| {
                let line = (loc.line() as usize).clamp(1, file.line_starts.len());
                let start = file.line_starts[line - 1] + (loc.column() as usize).saturating_sub(1);
                Span { file: file.clone(), start: start.min(file.text.len()), len: 1 }
            });
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("invalid YAML");
            // The position is in our prefix already.
            let first = match first.split_once(": ") {
                Some((_, rest)) if first.starts_with("error: line ") => {
                    rest.split_once(": ").filter(|(pos, _)| pos.contains("column")).map_or(rest, |(_, m)| m)
                }
                _ => first,
            };
            let first = first.to_owned();
            Err(Diagnostic::error(span, format!("invalid YAML: {first}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_scalar_positions_map_back_into_the_file() {
        let file = SourceFile::new("t.yaml", "- rule: x\n  condition: >\n    evt.type = open\n    and foo\n");
        let root = parse_yaml(&file).unwrap();
        let Value::Seq(items) = &root.value else { panic!() };
        let cond = items[0].get("condition").unwrap();
        let Value::Str(text) = &cond.value else { panic!() };
        let at = text.find("foo").unwrap();
        let span = cond.span_in_value(text, at, 3);
        assert_eq!(span.to_string(), "t.yaml:4:9");
        let rendered = Diagnostic::error(Some(span), "unknown macro `foo`").render();
        assert!(rendered.contains("4 |     and foo\n  |         ^^^"), "{rendered}");
    }

    #[test]
    fn yaml_syntax_errors_are_located() {
        let file = SourceFile::new("bad.yaml", "- rule: x\n  condition: [a\n");
        let e = parse_yaml(&file).unwrap_err();
        assert!(e.headline().starts_with("bad.yaml:"), "{}", e.headline());
    }
}
