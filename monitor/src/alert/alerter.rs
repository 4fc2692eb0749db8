//! Events -> alerts: evaluates the ruleset, applies the minimum priority, the first-or-all
//! matching policy and the rate limit, and renders what passes.
//!
//! An alert about a container whose metadata is still being fetched waits for it, up to a bound,
//! so that the first events of a new container (where attacks start) name it; alerts of that
//! container stay in order, and nothing else waits.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{Alert, RateLimit, RateLimiter};
use crate::config::{OutputFormat, RuleMatching};
use crate::container::Lookup;
use crate::event::{Event, FieldContext};
use crate::rules::{Priority, Ruleset};

#[derive(Clone, Copy, Debug, Default)]
pub struct AlerterStats {
    /// Rule evaluations (one per event per rule that can match its type).
    pub evaluations: u64,
    pub matches: u64,
    pub alerts: u64,
    pub suppressed: u64,
    /// Alerts about containers, and how many of them went out without the container's name.
    pub container_alerts: u64,
    pub container_alerts_without_metadata: u64,
    /// Alerts that waited for metadata, and how many of those waits hit the bound.
    pub waited: u64,
    pub wait_timeouts: u64,
    /// Events of a new container evaluated without waiting because its queue was full.
    pub held_overflow: u64,
}

pub struct AlerterOptions {
    pub format: OutputFormat,
    pub rate_limit: RateLimit,
    pub matching: RuleMatching,
    pub min_priority: Priority,
    /// How long an alert may wait for its container's metadata.
    pub metadata_wait: Duration,
}

/// An event of a new container, waiting for the container's metadata.
struct Held {
    deadline: Instant,
    ev: Event,
}

/// Events held per container while its metadata is fetched; a container busier than this in its
/// first moments has its further events evaluated at once (counted as `held_overflow`).
const MAX_HELD_PER_CONTAINER: usize = 4096;

pub struct Alerter {
    ruleset: Ruleset,
    opts: AlerterOptions,
    limiter: RateLimiter,
    matched: Vec<usize>,
    /// Per container (full id), in arrival order.
    held: HashMap<String, VecDeque<Held>>,
    pub stats: AlerterStats,
}

impl Alerter {
    pub fn new(ruleset: Ruleset, opts: AlerterOptions) -> Self {
        let limiter = RateLimiter::new(opts.rate_limit, ruleset.rules.len());
        Self {
            ruleset,
            opts,
            limiter,
            matched: Vec::new(),
            held: HashMap::new(),
            stats: AlerterStats::default(),
        }
    }

    /// Appends the alerts `ev` raises now to `out`, one per line; returns how many. Events of a
    /// container whose metadata is being fetched are evaluated when it arrives (rules may test
    /// container and pod fields), at most `metadata_wait` later: they come out of
    /// [`Alerter::flush`].
    pub fn process(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64 {
        if let (Some(c), Some(dir)) = (&ev.container, &cx.containers) {
            let queued = self.held.get(&c.full).map_or(0, VecDeque::len);
            let wait = match dir.lookup_in(&c.full, c.runtime) {
                Lookup::Pending(age) if age < self.opts.metadata_wait => Some(self.opts.metadata_wait - age),
                _ => None,
            };
            if (queued > 0 || wait.is_some()) && queued < MAX_HELD_PER_CONTAINER {
                let deadline = Instant::now() + wait.unwrap_or(Duration::ZERO);
                self.held.entry(c.full.clone()).or_default().push_back(Held { deadline, ev: ev.clone() });
                return 0;
            }
            if queued >= MAX_HELD_PER_CONTAINER {
                self.stats.held_overflow += 1;
            }
        }
        self.evaluate(ev, cx, out)
    }

    fn evaluate(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64 {
        self.stats.evaluations += self.ruleset.rules_for_type(ev.evt_type) as u64;
        self.matched.clear();
        self.ruleset.matching(ev, cx, &mut self.matched);
        let min = self.opts.min_priority;
        let rules = &self.ruleset.rules;
        self.matched.retain(|&i| rules[i].priority <= min);
        if self.opts.matching == RuleMatching::First {
            self.matched.truncate(1);
        }
        self.stats.matches += self.matched.len() as u64;
        let matched = std::mem::take(&mut self.matched);
        let n = self.emit(ev, &matched, cx, out);
        self.matched = matched;
        n
    }

    /// Evaluates held events whose container metadata arrived or whose wait ran out (all of
    /// them when `all`, at shutdown); returns how many alerts were written.
    pub fn flush(&mut self, cx: &FieldContext, out: &mut Vec<u8>, all: bool) -> u64 {
        if self.held.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut ready: Vec<(Held, bool)> = Vec::new();
        self.held.retain(|id, queue| {
            let settled = match &cx.containers {
                Some(dir) => !matches!(dir.lookup(id), Lookup::Pending(_)),
                None => true,
            };
            while let Some(front) = queue.front() {
                if !(all || settled || front.deadline <= now) {
                    break;
                }
                ready.push((queue.pop_front().expect("front exists"), !settled));
            }
            !queue.is_empty()
        });
        let mut n = 0;
        for (held, timed_out) in ready {
            let alerts = self.evaluate(&held.ev, cx, out);
            if alerts > 0 {
                self.stats.waited += alerts;
                self.stats.wait_timeouts += if timed_out { alerts } else { 0 };
            }
            n += alerts;
        }
        n
    }

    fn emit(&mut self, ev: &Event, rules: &[usize], cx: &FieldContext, out: &mut Vec<u8>) -> u64 {
        let mut written = 0;
        let now = Instant::now();
        for &idx in rules {
            let rule = &self.ruleset.rules[idx];
            match self.limiter.admit(idx, now) {
                Some(suppressed) => {
                    let alert = Alert::new(rule, ev, cx, suppressed);
                    if ev.container.is_some() {
                        self.stats.container_alerts += 1;
                        if alert.output_fields.get("container.name").is_none_or(|v| v.is_null()) {
                            self.stats.container_alerts_without_metadata += 1;
                        }
                    }
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
        }
        written
    }

    /// About once a second.
    pub fn tick(&mut self) {
        self.ruleset.refresh_identities();
    }

    pub fn report(&self) -> String {
        let s = &self.stats;
        format!(
            "rules: {} enabled, {} skipped; evaluations: {}; alerts: {} raised, {} suppressed by the rate limit; \
             container alerts: {}, {} without container metadata; waited for metadata: {}, {} timed out",
            self.ruleset.enabled_count(),
            self.ruleset.skipped.len(),
            s.evaluations,
            s.alerts,
            s.suppressed,
            s.container_alerts,
            s.container_alerts_without_metadata,
            s.waited,
            s.wait_timeouts
        )
    }
}
