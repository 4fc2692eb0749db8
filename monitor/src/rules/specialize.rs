//! A matcher specialised for events of one type: `evt.type` tests and checks on fields the
//! type never carries become constants, and constants fold away, so an event is only tested
//! against what can still decide.

use monitor_common::EventType;

use super::matcher::{Matcher, Test};

impl Matcher {
    /// This matcher for events of one type: `evt.type` tests and checks on fields the type
    /// never carries become constants, and constants fold away.
    pub fn specialize(&self, evt_type: EventType) -> Matcher {
        match self {
            Self::True => Self::True,
            Self::False => Self::False,
            Self::Unknown => Self::Unknown,
            Self::And(t) => junction(t, evt_type, true),
            Self::Or(t) => junction(t, evt_type, false),
            Self::Not(m) => match m.specialize(evt_type) {
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
                        if set.contains(evt_type) != c.negate {
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
fn junction(terms: &[Matcher], evt_type: EventType, and: bool) -> Matcher {
    let (identity, absorbing) =
        if and { (Matcher::True, Matcher::False) } else { (Matcher::False, Matcher::True) };
    let mut out = Vec::with_capacity(terms.len());
    for m in terms {
        match (m.specialize(evt_type), and) {
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
