//! Draining the ring buffer on an async task: woken by the kernel when the ring fills past the
//! wake-up mark, and by a short timer otherwise, so records never wait longer than the tick.

use std::time::Duration;

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

/// Longest a record waits in the ring before the reader looks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    tick: tokio::time::Interval,
}

impl Reader {
    pub fn new(ring: RingBuf<MapData>) -> Result<Self> {
        // SAFETY: the ring buffer owns its fd for as long as the AsyncFd owns the ring buffer.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self { ring, tick })
    }

    /// Hands up to `max` records to `f`, waiting for some first when the ring is empty;
    /// returns how many there were.
    pub async fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize> {
        let n = self.drain_ready(max, &mut f);
        if n > 0 {
            return Ok(n);
        }
        tokio::select! {
            guard = self.ring.readable_mut() => guard?.clear_ready(),
            _ = self.tick.tick() => {}
        }
        Ok(self.drain_ready(max, &mut f))
    }

    /// Hands up to `max` records already in the ring to `f`, without waiting.
    pub fn drain_ready(&mut self, max: usize, f: &mut impl FnMut(&[u8])) -> usize {
        let ring = self.ring.get_mut();
        let mut n = 0;
        while n < max {
            let Some(item) = ring.next() else { break };
            f(&item);
            n += 1;
        }
        n
    }
}
