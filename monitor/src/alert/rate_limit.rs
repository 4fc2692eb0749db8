//! A token bucket per rule: bursts pass, floods are held to a steady rate, and the number held
//! back is reported with the next alert that passes.

use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Alerts per second each rule may raise on average; 0 disables the limit.
    pub per_second: f64,
    /// Alerts a rule may raise at once before the rate applies.
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { per_second: 10.0, burst: 100.0 }
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

pub struct RateLimiter {
    limit: RateLimit,
    buckets: Vec<Option<Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit, rules: usize) -> Self {
        Self { limit, buckets: vec![None; rules] }
    }

    /// Whether rule `rule` may raise an alert now; when it may, also how many were suppressed
    /// since its last one.
    pub fn admit(&mut self, rule: usize, now: Instant) -> Option<u64> {
        if self.limit.per_second <= 0.0 {
            return Some(0);
        }
        if rule >= self.buckets.len() {
            self.buckets.resize(rule + 1, None);
        }
        let b = self.buckets[rule].get_or_insert(Bucket {
            tokens: self.limit.burst.max(1.0),
            at: now,
            suppressed: 0,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.limit.per_second).min(self.limit.burst.max(1.0));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            None
        }
    }

    /// The buckets for a new ruleset: `carried[i]` is the old index of new rule `i`, if it had
    /// one, so a reload neither refills a flooding rule's bucket nor forgets what it held back.
    pub fn remap(&self, carried: &[Option<usize>]) -> Self {
        let buckets =
            carried.iter().map(|old| old.and_then(|o| self.buckets.get(o).copied().flatten())).collect();
        Self { limit: self.limit, buckets }
    }

    /// Alerts currently held back and not yet reported with a later alert.
    pub fn pending(&self) -> u64 {
        self.buckets.iter().flatten().map(|b| b.suppressed).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_pass_floods_are_counted_and_reported() {
        let mut r = RateLimiter::new(RateLimit { per_second: 2.0, burst: 3.0 }, 2);
        let t0 = Instant::now();
        assert_eq!((0..3).filter_map(|_| r.admit(0, t0)).count(), 3);
        assert_eq!(r.admit(0, t0), None);
        assert_eq!(r.admit(0, t0), None);
        // Another rule has its own bucket.
        assert_eq!(r.admit(1, t0), Some(0));
        assert_eq!(r.pending(), 2);
        // Half a second later one token is back; the alert carries the count held back.
        assert_eq!(r.admit(0, t0 + Duration::from_millis(500)), Some(2));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn zero_rate_disables() {
        let mut r = RateLimiter::new(RateLimit { per_second: 0.0, burst: 0.0 }, 1);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| r.admit(0, t0) == Some(0)));
    }
}
