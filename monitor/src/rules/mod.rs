//! Falco-compatible rules: YAML files of lists, macros and rules -> a compiled ruleset that
//! evaluates enriched events.
//!
//! [`source`] (located YAML) -> [`loader`] (definitions, overrides) -> [`condition`] (syntax)
//! -> [`compile`] (matchers, specialised per event type) -> [`ruleset`] (the index used per event).

pub mod compile;
pub mod condition;
pub mod loader;
pub mod output;
pub mod ruleset;
pub mod source;
pub mod types;

pub use loader::{BUNDLED, Priority};
pub use ruleset::{CompiledRule, Loaded, Ruleset, SkippedRule};
pub use source::{Diagnostic, Severity};
pub use types::{EVENT_TYPES, TypeSet};

#[cfg(test)]
mod tests;
