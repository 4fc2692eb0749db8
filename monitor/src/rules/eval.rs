//! Evaluating compiled conditions against an event: every operator's semantics, Falco's rules
//! for missing values, ancestor lists and `!=`, and the transformers.

use base64::Engine as _;

use super::condition::{Op, Transformer};
use super::matcher::{CheckMatcher, Const, Matcher, Test};
use crate::event::{Event, FieldContext, FieldValue};

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
    pub(super) fn one(&self, v: &FieldValue, ev: &Event, cx: &FieldContext) -> bool {
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
            (Self::BContains(p), FieldValue::Bytes(b)) => {
                !p.is_empty() && b.windows(p.len()).any(|w| w == p.as_slice())
            }
            (Self::Contains(p), FieldValue::Bytes(b)) => {
                p.is_empty() || b.windows(p.len()).any(|w| w == p.as_bytes())
            }
            (Self::BStartsWith(p), FieldValue::Bytes(b)) => b.starts_with(p),
            (Self::StartsWith(p), FieldValue::Bytes(b)) => b.starts_with(p.as_bytes()),
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
            (Self::Type(set), FieldValue::Str(s)) => {
                monitor_common::EventType::from_name(s).is_some_and(|t| set.contains(t))
            }
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
    pub(super) fn eval(&self, ev: &Event, cx: &FieldContext) -> bool {
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
}
