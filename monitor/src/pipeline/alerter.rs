//! Events -> alerts: evaluates the ruleset, applies the minimum priority, the first-or-all
//! matching policy and the rate limit, and renders what passes.
//!
//! An alert about a container whose metadata is still being fetched waits for it, up to a bound,
//! so that the first events of a new container (where attacks start) name it; alerts of that
//! container stay in order, and nothing else waits.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use monitor_common::EventType;

use crate::alert::{Alert, Priority, RateLimit, RateLimiter};
use crate::config::{OutputFormat, RuleMatching};
use crate::container::Lookup;
use crate::event::{Event, FieldContext};
use crate::rules::Ruleset;
use crate::service::RuleCounters;

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

/// Per-rule counters of the ruleset in force, indexed like its rules. Evaluations are not
/// counted per rule and event: they follow from the events evaluated per type.
struct RuleTally {
    evaluated_per_type: [u64; EventType::ALL.len()],
    matches: Vec<u64>,
    alerts: Vec<u64>,
    suppressed: Vec<u64>,
}

impl Default for RuleTally {
    fn default() -> Self {
        Self {
            evaluated_per_type: [0; EventType::ALL.len()],
            matches: Vec::new(),
            alerts: Vec::new(),
            suppressed: Vec::new(),
        }
    }
}

impl RuleTally {
    fn new(rules: usize) -> Self {
        Self {
            matches: vec![0; rules],
            alerts: vec![0; rules],
            suppressed: vec![0; rules],
            ..Self::default()
        }
    }
}

pub struct Alerter {
    ruleset: Ruleset,
    opts: AlerterOptions,
    limiter: RateLimiter,
    matched: Vec<usize>,
    /// Per container (full id), in arrival order.
    held: HashMap<String, VecDeque<Held>>,
    pub stats: AlerterStats,
    tally: RuleTally,
    /// Counts of rules of replaced rulesets, by name, so per-rule counters never go back.
    retired: HashMap<String, RuleCounters>,
}

impl Alerter {
    pub fn new(ruleset: Ruleset, opts: AlerterOptions) -> Self {
        let limiter = RateLimiter::new(opts.rate_limit, ruleset.rules.len());
        let tally = RuleTally::new(ruleset.rules.len());
        Self {
            ruleset,
            opts,
            limiter,
            matched: Vec::new(),
            held: HashMap::new(),
            stats: AlerterStats::default(),
            tally,
            retired: HashMap::new(),
        }
    }

    /// Puts a newly loaded ruleset and options in force between two events: every event is
    /// evaluated against one whole ruleset, and events held for container metadata are
    /// evaluated against the new one. Rate-limit buckets of rules that kept their name carry over.
    pub fn replace(&mut self, ruleset: Ruleset, opts: AlerterOptions) {
        for (name, c) in self.rule_counters() {
            self.retired.insert(name, c);
        }
        let old_names: HashMap<&str, usize> =
            self.ruleset.rules.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect();
        let carried: Vec<Option<usize>> =
            ruleset.rules.iter().map(|r| old_names.get(r.name.as_str()).copied()).collect();
        self.limiter = if opts.rate_limit == self.opts.rate_limit {
            self.limiter.remap(&carried)
        } else {
            RateLimiter::new(opts.rate_limit, ruleset.rules.len())
        };
        self.tally = RuleTally::new(ruleset.rules.len());
        self.ruleset = ruleset;
        self.opts = opts;
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// Counters per rule name: of the ruleset in force, plus those of replaced rulesets.
    pub fn rule_counters(&self) -> Vec<(String, RuleCounters)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(self.ruleset.rules.len() + self.retired.len());
        for (i, rule) in self.ruleset.rules.iter().enumerate() {
            let mut c = self.retired.get(&rule.name).cloned().unwrap_or_default();
            c.priority = rule.priority.as_str();
            if rule.enabled {
                let evaluated = EventType::ALL.into_iter().zip(self.tally.evaluated_per_type);
                c.evaluations +=
                    evaluated.filter(|(t, _)| rule.types.contains(*t)).map(|(_, n)| n).sum::<u64>();
            }
            c.matches += self.tally.matches[i];
            c.alerts += self.tally.alerts[i];
            c.suppressed += self.tally.suppressed[i];
            seen.insert(rule.name.as_str());
            out.push((rule.name.clone(), c));
        }
        let mut gone: Vec<_> = self.retired.iter().filter(|(n, _)| !seen.contains(n.as_str())).collect();
        gone.sort_by(|a, b| a.0.cmp(b.0));
        out.extend(gone.into_iter().map(|(n, c)| (n.clone(), c.clone())));
        out
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
        let t = ev.evt_type;
        self.stats.evaluations += self.ruleset.rules_for_type(t) as u64;
        self.tally.evaluated_per_type[t.index()] += 1;
        self.matched.clear();
        self.ruleset.matching(ev, cx, &mut self.matched);
        for &i in &self.matched {
            self.tally.matches[i] += 1;
        }
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
                    let alert = Alert::new(rule.view(), ev, cx, suppressed);
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
                    self.tally.alerts[idx] += 1;
                }
                None => {
                    self.stats.suppressed += 1;
                    self.tally.suppressed[idx] += 1;
                }
            }
        }
        written
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
