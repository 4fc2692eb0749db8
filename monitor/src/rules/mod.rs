//! Falco-compatible rules: YAML files of lists, macros and rules -> a compiled ruleset that
//! evaluates enriched events.
//!
//! [`source`] (located YAML) -> [`loader`] (definitions, overrides) -> [`condition`] (syntax)
//! -> [`compile`] (matchers, specialised per event type) -> [`ruleset`] (the index used per event)
//! -> [`prefilter`] (what the kernel may dismiss).

pub mod compile;
pub mod condition;
pub mod loader;
pub mod output;
pub mod prefilter;
pub mod ruleset;
pub mod source;
pub mod types;

pub use loader::{BUNDLED, Priority};
pub use prefilter::Prefilter;
pub use ruleset::{CompiledRule, Loaded, Ruleset, SkippedRule};
pub use source::{Diagnostic, Severity};
pub use types::{EVENT_TYPES, TypeSet};

#[cfg(test)]
mod prefilter_tests;
#[cfg(test)]
mod tests;
