//! What the event loop hands each event to, and how a stage's rules are swapped while it runs.

use std::sync::Arc;

use crate::event::{Event, FieldContext};
use crate::sensor::KernelDrops;
use crate::sensor::filter::FilterPlan;

/// How far the pipeline has got, for the stage's periodic work.
pub struct Progress<'a> {
    pub events: u64,
    pub drops: &'a KernelDrops,
}

/// What the pipeline does with each enriched event: append the records it produces (event
/// lines, alerts) to `out`, returning how many.
pub trait Stage {
    fn on_event(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64;
    /// This stage's part of the periodic report, given how many of its records were written.
    fn report(&self, written: u64) -> String;
    /// Called once the probes are attached, before any event.
    fn started(&mut self, _progress: &Progress, _out: &mut Vec<u8>) -> u64 {
        0
    }
    /// Called about once a second.
    fn tick(&mut self, _progress: &Progress, _out: &mut Vec<u8>) -> u64 {
        0
    }
    /// Called at shutdown, after the last events were handled.
    fn stopping(&mut self, _progress: &Progress, _out: &mut Vec<u8>) -> u64 {
        0
    }
    /// Output the stage held back (alerts waiting for container metadata): called every few
    /// milliseconds, and at shutdown with `all`.
    fn flush(&mut self, _cx: &FieldContext, _out: &mut Vec<u8>, _all: bool) -> u64 {
        0
    }
    /// What the kernel may dismiss for the rules in force; None: every event is wanted.
    fn filter(&self) -> Option<Arc<FilterPlan>> {
        None
    }
    /// The stage's live reload, if it has one.
    fn reload(&mut self) -> Option<&mut dyn Reload> {
        None
    }
}

/// Putting a newly loaded set of rules in force. When one is pending, the pipeline widens the
/// kernel's filter, drains the ring with the rules in force, installs the new set's filter,
/// then calls `apply`, or `reject` when the kernel refused the filter.
pub trait Reload {
    /// SIGHUP: load the rules and config again.
    fn request(&mut self);
    /// When a loaded set waits to be put in force, the kernel filter it needs.
    fn pending(&mut self) -> Option<Option<Arc<FilterPlan>>>;
    /// Puts the pending set in force, between two events.
    fn apply(&mut self);
    /// Drops the pending set: the set in force stays.
    fn reject(&mut self, why: &anyhow::Error);
}
