//! Events -> alerts: evaluates the ruleset, applies the minimum priority, the first-or-all
//! matching policy and the rate limit, and renders what passes.

use std::time::Instant;

use super::{Alert, RateLimit, RateLimiter};
use crate::config::{OutputFormat, RuleMatching};
use crate::event::{Event, FieldContext};
use crate::rules::{Priority, Ruleset};

#[derive(Clone, Copy, Debug, Default)]
pub struct AlerterStats {
    /// Rule evaluations (one per event per rule that can match its type).
    pub evaluations: u64,
    pub matches: u64,
    pub alerts: u64,
    pub suppressed: u64,
}

pub struct AlerterOptions {
    pub format: OutputFormat,
    pub rate_limit: RateLimit,
    pub matching: RuleMatching,
    pub min_priority: Priority,
}

pub struct Alerter {
    ruleset: Ruleset,
    opts: AlerterOptions,
    limiter: RateLimiter,
    matched: Vec<usize>,
    pub stats: AlerterStats,
}

impl Alerter {
    pub fn new(ruleset: Ruleset, opts: AlerterOptions) -> Self {
        let limiter = RateLimiter::new(opts.rate_limit, ruleset.rules.len());
        Self { ruleset, opts, limiter, matched: Vec::new(), stats: AlerterStats::default() }
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// Appends the alerts `ev` raises to `out`, one per line; returns how many.
    pub fn process(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64 {
        self.stats.evaluations += self.ruleset.rules_for_type(ev.evt_type) as u64;
        self.matched.clear();
        self.ruleset.matching(ev, cx, &mut self.matched);
        let mut written = 0;
        let now = Instant::now();
        for &idx in &self.matched {
            let rule = &self.ruleset.rules[idx];
            if rule.priority > self.opts.min_priority {
                continue;
            }
            self.stats.matches += 1;
            match self.limiter.admit(idx, now) {
                Some(suppressed) => {
                    let alert = Alert::new(rule, ev, cx, suppressed);
                    match self.opts.format {
                        OutputFormat::Json => alert.write_json(out),
                        OutputFormat::Text => alert.write_text(out),
                    }
                    out.push(b'\n');
                    written += 1;
                    self.stats.alerts += 1;
                }
                None => self.stats.suppressed += 1,
            }
            if self.opts.matching == RuleMatching::First {
                break;
            }
        }
        written
    }

    /// About once a second.
    pub fn tick(&mut self) {
        self.ruleset.refresh_identities();
    }

    pub fn report(&self) -> String {
        format!(
            "rules: {} enabled, {} skipped; evaluations: {}; alerts: {} raised, {} suppressed by the rate limit",
            self.ruleset.enabled_count(),
            self.ruleset.skipped.len(),
            self.stats.evaluations,
            self.stats.alerts,
            self.stats.suppressed
        )
    }
}
