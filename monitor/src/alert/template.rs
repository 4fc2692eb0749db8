//! A rule's output: text with `%field` placeholders, parsed once when the rule loads.

use crate::event::text::{escape, escape_controls};
use crate::event::{Event, Field, FieldContext, FieldValue};

#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    /// The field as written, and the field when the monitor supports it (else it renders null).
    Field(String, Option<Field>),
}

#[derive(Debug, Clone)]
pub struct OutputTemplate {
    segments: Vec<Segment>,
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

impl OutputTemplate {
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('%') {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let mut len = after.find(|c: char| !is_field_char(c)).unwrap_or(after.len());
            // A sentence may end right after a field: "file=%fd.name."
            while len > 0 && after[..len].ends_with('.') {
                len -= 1;
            }
            if len == 0 || !after[..len].contains('.') {
                literal.push('%');
                rest = after;
                continue;
            }
            let mut name = after[..len].to_owned();
            let mut arg = None;
            // Only fields that take an argument take `[...]`: "%proc.name[%proc.pid]" is two fields.
            let takes_arg = Field::lookup(&name, None).map_or(true, |f| f.is_multi());
            if takes_arg
                && after[len..].starts_with('[')
                && let Some(end) = after[len..].find(']')
            {
                arg = Some(after[len + 1..len + end].to_owned());
                name = format!("{name}[{}]", &after[len + 1..len + end]);
                len += end + 1;
            }
            if !literal.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut literal)));
            }
            let base = name.split('[').next().unwrap_or(&name).to_owned();
            segments.push(Segment::Field(name, Field::lookup(&base, arg.as_deref()).ok()));
            rest = &after[len..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Self { segments }
    }

    /// The fields the output names, as written, with their values for `ev`.
    pub fn fields<'e>(&self, ev: &'e Event, cx: &FieldContext) -> Vec<(&str, FieldValue<'e>)> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Field(name, f) => {
                    Some((name.as_str(), f.as_ref().map_or(FieldValue::Null, |f| f.extract(ev, cx))))
                }
                Segment::Text(_) => None,
            })
            .collect()
    }

    /// The output with fields substituted. Values from the event are escaped
    /// ([`crate::event::text::escape`]), so a hostile process name or argument cannot start a
    /// new line, forge one, or pass for another value.
    pub fn render(&self, ev: &Event, cx: &FieldContext) -> String {
        let mut out = String::new();
        let mut value = String::new();
        for s in &self.segments {
            match s {
                Segment::Text(t) => escape_controls(t, &mut out),
                Segment::Field(_, f) => {
                    value.clear();
                    f.as_ref().map_or(FieldValue::Null, |f| f.extract(ev, cx)).write_text(&mut value);
                    escape(&value, &mut out);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_plain_percent_signs() {
        let t = OutputTemplate::parse("100% sure: file=%fd.name. by %proc.aname[2] (%user.name)%");
        let names: Vec<_> = t
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Field(n, f) => Some((n.clone(), f.is_some())),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [("fd.name".into(), true), ("proc.aname[2]".into(), true), ("user.name".into(), true)]
        );
        assert!(matches!(&t.segments[0], Segment::Text(s) if s == "100% sure: file="));
        assert!(matches!(t.segments.last(), Some(Segment::Text(s)) if s == ")%"));
        // Fields the monitor does not know are kept as placeholders with no definition.
        let t = OutputTemplate::parse("%thread.vmrss[1] %proc.vpgid.name");
        assert!(t.segments.iter().all(|s| !matches!(s, Segment::Field(_, Some(_)))));
    }
}
