//! Compiled conditions: a tree of checks on fields, each with its test parsed to the field's
//! type (hash sets for lists, path tries for pmatch, compiled globs and regexes). Evaluation is
//! in [`super::eval`], per-type specialisation in [`super::specialize`]; the kernel filter's
//! analysis reads checks through [`CheckMatcher::constraint`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ipnet::IpNet;
use monitor_common::TypeSet;

use super::condition::{Op, Transformer};
use crate::event::Field;
pub use crate::sensor::filter::FileIdentities as PathIdentities;

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

/// A constant a check compares with, as the kernel filter's analysis sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Constant<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
}

/// What a check requires of its field's value, for analyses that narrow by it; `Other` for
/// what they cannot use.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint<'a> {
    /// One of these values (`=`, `in`; literal paths included).
    OneOf(Vec<Constant<'a>>),
    /// Ordered against a number (`<`, `<=`, `>`, `>=`).
    Ordered(Op, i64),
    StartsWith(&'a str),
    /// Below one of these directories, by whole components (`pmatch`).
    Under(Vec<String>),
    /// One of these globs.
    Globs(Vec<&'a str>),
    Other,
}

impl CheckMatcher {
    pub fn field(&self) -> &Field {
        &self.field
    }

    /// `!=` (or a negated list): the check holds when the constraint does not.
    pub fn negated(&self) -> bool {
        self.negate
    }

    /// Whether the field's value is transformed (tolower, len, ...) before the test.
    pub fn transformed(&self) -> bool {
        !self.transformers.is_empty()
    }

    pub fn constraint(&self) -> Constraint<'_> {
        fn str_const(c: &Const) -> Option<Constant<'_>> {
            Some(match c {
                Const::Str(s) => Constant::Str(s),
                Const::Int(i) => Constant::Int(*i),
                Const::Bool(b) => Constant::Bool(*b),
                Const::Net(_) => return None,
            })
        }
        match &self.test {
            Test::Eq(c) => str_const(c).map_or(Constraint::Other, |c| Constraint::OneOf(vec![c])),
            Test::InStr(items) | Test::Path(items, _) => {
                Constraint::OneOf(items.iter().map(|s| Constant::Str(s)).collect())
            }
            Test::InInt(items) => Constraint::OneOf(items.iter().map(|i| Constant::Int(*i)).collect()),
            Test::InBool(set) => Constraint::OneOf(
                [false, true].into_iter().filter(|b| set[usize::from(*b)]).map(Constant::Bool).collect(),
            ),
            Test::Ord(op, Const::Int(k)) => Constraint::Ordered(*op, *k),
            Test::StartsWith(s) => Constraint::StartsWith(s),
            Test::PMatch(trie) => Constraint::Under(trie.prefixes()),
            Test::Glob(g) => Constraint::Globs(vec![g.glob().glob()]),
            Test::GlobSet(_, patterns) => Constraint::Globs(patterns.iter().map(String::as_str).collect()),
            _ => Constraint::Other,
        }
    }

    /// The identities of the files a check on literal paths names (a hard link to one of them
    /// is that file too).
    pub fn path_identities(&self) -> Option<&Arc<PathIdentities>> {
        match &self.test {
            Test::Path(_, ids) => Some(ids),
            _ => None,
        }
    }
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

/// Path prefixes by component: `/etc` matches /etc and /etc/x, not /etcx.
#[derive(Debug, Clone, Default)]
pub(super) struct PathTrie {
    terminal: bool,
    children: HashMap<String, PathTrie>,
}

impl PathTrie {
    pub(super) fn insert(&mut self, path: &str) {
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

    pub(super) fn matches(&self, path: &str) -> bool {
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
}
