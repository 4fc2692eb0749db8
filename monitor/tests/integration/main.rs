//! The integration tests: one binary, one helper module ([`common`]), one file per capability.
//! Tests that load kernel programs need root; without it they are skipped, loudly, and
//! `cargo xtask test` counts them as skipped.

#[macro_use]
mod common;

mod config;
mod containers;
mod default_rules;
mod falco_rules;
mod metrics;
mod prefilter;
mod reload;
mod rules_cli;
mod self_alerts;
mod sensors;
mod side_doors;
mod sinks;
mod systemd;
