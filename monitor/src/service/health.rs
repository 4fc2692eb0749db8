//! Whether the daemon is doing its job: probes attached and the event loop turning (it drains
//! the ring buffer; when it stalls the kernel starts dropping events). /healthz and systemd's
//! watchdog both ask this, so a wedged daemon is restarted rather than silently blind.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Health {
    started: Instant,
    attached: AtomicBool,
    stopping: AtomicBool,
    /// Milliseconds after `started` when the event loop last turned; 0: never.
    last_turn_ms: AtomicU64,
    max_stall: Duration,
}

impl Health {
    pub fn new(max_stall: Duration) -> Self {
        Self {
            started: Instant::now(),
            attached: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_turn_ms: AtomicU64::new(0),
            max_stall,
        }
    }

    pub fn set_attached(&self) {
        self.attached.store(true, Ordering::Release);
        self.turned();
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// The event loop calls this every time round its upkeep.
    pub fn turned(&self) {
        let ms = self.started.elapsed().as_millis().max(1) as u64;
        self.last_turn_ms.store(ms, Ordering::Release);
    }

    /// Ok, or why the daemon is not healthy.
    pub fn check(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Acquire) {
            return Err("stopping".to_owned());
        }
        if !self.attached.load(Ordering::Acquire) {
            return Err("starting: the probes are not attached yet".to_owned());
        }
        let last = self.last_turn_ms.load(Ordering::Acquire);
        let stalled = self.started.elapsed().saturating_sub(Duration::from_millis(last));
        if stalled > self.max_stall {
            return Err(format!(
                "the event loop has not drained the ring buffer for {:.1}s (limit {:.1}s)",
                stalled.as_secs_f64(),
                self.max_stall.as_secs_f64()
            ));
        }
        Ok(())
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// systemd's watchdog (WatchdogSec=): pinged from the event loop only while healthy, so a loop
/// that stops turning is killed and restarted by systemd.
pub struct Watchdog {
    interval: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    pub fn from_env() -> Self {
        // Pings at half the timeout systemd set, the cadence sd_watchdog_enabled(3) asks for.
        let interval = sd_notify::watchdog_enabled().map(|t| t / 2);
        if let Some(i) = interval {
            tracing::info!(interval_ms = i.as_millis() as u64, "systemd watchdog enabled");
        }
        Self { interval, last: None }
    }

    pub fn ping_if_due(&mut self, health: &Health) {
        let Some(interval) = self.interval else { return };
        if self.last.is_some_and(|l| l.elapsed() < interval) || health.check().is_err() {
            return;
        }
        self.last = Some(Instant::now());
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
            tracing::warn!("cannot ping systemd's watchdog: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_attached_and_turning() {
        let h = Health::new(Duration::from_millis(50));
        assert!(h.check().unwrap_err().contains("not attached"));
        h.set_attached();
        h.check().unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(h.check().unwrap_err().contains("has not drained"));
        h.turned();
        h.check().unwrap();
        h.set_stopping();
        assert_eq!(h.check().unwrap_err(), "stopping");
    }
}
