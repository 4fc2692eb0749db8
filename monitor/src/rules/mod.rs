//! Falco-compatible rules: YAML files of lists, macros and rules -> a compiled ruleset that
//! evaluates enriched events.
//!
//! [`source`] (located YAML) -> [`loader`] (definitions, overrides) -> [`condition`] (syntax)
//! -> [`compile`] (conditions to [`matcher`]s, literals read by [`literal`]) -> [`specialize`]
//! (one matcher per event type) -> [`ruleset`] (the index used per event) -> [`eval`] (what
//! each operator means) and [`prefilter`] (what the kernel may dismiss).

pub mod compile;
pub mod condition;
pub mod eval;
pub mod literal;
pub mod loader;
pub mod matcher;
pub mod prefilter;
pub mod ruleset;
pub mod source;
pub mod specialize;

pub use loader::BUNDLED;
pub use ruleset::{CompiledRule, Loaded, Ruleset, SkippedRule};
pub use source::{Diagnostic, Severity};

#[cfg(test)]
mod prefilter_tests;
#[cfg(test)]
mod tests;
