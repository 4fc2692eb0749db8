//! The event types the sensors produce, as a small bit set: rules are indexed by the types they
//! can match, so an event is only tested against rules that can match it.

/// Falco's names for the events we produce, in index order.
pub const EVENT_TYPES: [&str; 11] = [
    "execve", "execveat", "clone", "procexit", "open", "openat", "openat2", "creat", "connect", "sendto",
    "sendmsg",
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TypeSet(u16);

impl TypeSet {
    pub const EMPTY: Self = Self(0);
    pub const ALL: Self = Self((1 << EVENT_TYPES.len()) - 1);

    pub fn index_of(evt_type: &str) -> Option<usize> {
        EVENT_TYPES.iter().position(|t| *t == evt_type)
    }

    pub fn single(index: usize) -> Self {
        Self(1 << index)
    }

    pub fn insert(&mut self, index: usize) {
        self.0 |= 1 << index;
    }

    pub fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }

    pub fn intersect(self, o: Self) -> Self {
        Self(self.0 & o.0)
    }

    pub fn complement(self) -> Self {
        Self(!self.0 & Self::ALL.0)
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        EVENT_TYPES.iter().enumerate().filter(move |(i, _)| self.contains(*i)).map(|(_, n)| *n)
    }
}

impl std::fmt::Display for TypeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        let names: Vec<_> = self.names().collect();
        f.write_str(&names.join(","))
    }
}
