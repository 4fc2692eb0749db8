//! A sink's buffer: alerts accepted for the sink and not yet acknowledged by its receiver, in
//! order. In memory (bounded by count) or in the write-ahead spool (bounded by bytes); either
//! way, what does not fit drops the oldest and is counted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::Record;
use super::delivery::SinkStats;
use super::spool::Spool;

pub struct MemoryQueue {
    records: VecDeque<Record>,
    next: u64,
    max: usize,
}

impl MemoryQueue {
    pub fn new(max: usize) -> Self {
        Self { records: VecDeque::new(), next: 0, max: max.max(1) }
    }
}

enum Store {
    Memory(MemoryQueue),
    Spool(Spool),
}

pub struct Buffer {
    store: Mutex<Store>,
    /// Woken when alerts arrive.
    pub arrived: Notify,
    sink: String,
    /// Set once the spool cannot be written, so the log says it once per outage.
    spool_failing: std::sync::atomic::AtomicBool,
}

impl Buffer {
    pub fn memory(sink: &str, max: usize) -> Self {
        Self::new(sink, Store::Memory(MemoryQueue::new(max)))
    }

    pub fn spool(sink: &str, spool: Spool) -> Self {
        Self::new(sink, Store::Spool(spool))
    }

    fn new(sink: &str, store: Store) -> Self {
        Self {
            store: Mutex::new(store),
            arrived: Notify::new(),
            sink: sink.to_owned(),
            spool_failing: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock leaves consistent data (every update is a single
        // push/pop or a file write already accounted), so the poison is ignored.
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Accepts alerts for delivery; never blocks on the receiver.
    pub fn push(&self, records: &[Arc<[u8]>], stats: &SinkStats) {
        use std::sync::atomic::Ordering::Relaxed;
        if records.is_empty() {
            return;
        }
        stats.accepted.fetch_add(records.len() as u64, Relaxed);
        let dropped = match &mut *self.lock() {
            Store::Memory(q) => {
                for data in records {
                    q.records.push_back(Record { seq: q.next, data: data.clone() });
                    q.next += 1;
                }
                let excess = q.records.len().saturating_sub(q.max);
                q.records.drain(..excess);
                excess as u64
            }
            Store::Spool(s) => match s.append(records) {
                Ok(dropped) => {
                    stats.spooled.fetch_add(records.len() as u64, Relaxed);
                    if self.spool_failing.swap(false, Relaxed) {
                        tracing::info!(sink = %self.sink, "the spool is writable again");
                    }
                    dropped
                }
                Err(e) => {
                    if !self.spool_failing.swap(true, Relaxed) {
                        tracing::error!(sink = %self.sink, "cannot write alerts to the spool: {e}; they are dropped and counted until it recovers");
                    }
                    records.len() as u64
                }
            },
        };
        if dropped > 0 {
            let total = stats.dropped.fetch_add(dropped, Relaxed) + dropped;
            tracing::warn!(
                sink = %self.sink,
                dropped,
                total,
                "the sink's buffer is full: dropped its oldest alerts (raise its queue_max_alerts or spool max_bytes, or fix the receiver)"
            );
        }
        self.arrived.notify_one();
    }

    /// Up to `max` unacknowledged alerts, oldest first.
    pub fn peek(&self, max: usize) -> std::io::Result<Vec<Record>> {
        match &*self.lock() {
            Store::Memory(q) => Ok(q.records.iter().take(max).cloned().collect()),
            Store::Spool(s) => s.read(max),
        }
    }

    /// The receiver is done with everything up to and including `seq`.
    pub fn ack_through(&self, seq: u64) -> std::io::Result<()> {
        match &mut *self.lock() {
            Store::Memory(q) => {
                while q.records.front().is_some_and(|r| r.seq <= seq) {
                    q.records.pop_front();
                }
                Ok(())
            }
            Store::Spool(s) => s.ack_through(seq),
        }
    }

    pub fn len(&self) -> u64 {
        match &*self.lock() {
            Store::Memory(q) => q.records.len() as u64,
            Store::Spool(s) => s.len(),
        }
    }

    /// Bytes the spool holds on disk (0 in memory).
    pub fn spool_bytes(&self) -> u64 {
        match &*self.lock() {
            Store::Memory(_) => 0,
            Store::Spool(s) => s.bytes(),
        }
    }

    pub fn is_spool(&self) -> bool {
        matches!(&*self.lock(), Store::Spool(_))
    }

    /// Names this buffer's sequence numbers across restarts (the spool's id), or this run's.
    pub fn instance(&self) -> Option<String> {
        match &*self.lock() {
            Store::Memory(_) => None,
            Store::Spool(s) => Some(s.instance().to_owned()),
        }
    }

    /// About once a second: the spool's interval fsync.
    pub fn tick(&self) {
        if let Store::Spool(s) = &mut *self.lock()
            && let Err(e) = s.tick()
        {
            tracing::warn!(sink = %self.sink, "cannot sync the spool: {e}");
        }
    }

    /// At shutdown: what stays in memory is lost (and counted by the caller); the spool is
    /// made durable.
    pub fn close(&self) -> std::io::Result<()> {
        match &mut *self.lock() {
            Store::Memory(_) => Ok(()),
            Store::Spool(s) => s.sync_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memory_queue_drops_the_oldest_and_counts_them() {
        let b = Buffer::memory("t", 3);
        let stats = SinkStats::default();
        let recs: Vec<Arc<[u8]>> = (0..5u8).map(|i| Arc::from(vec![i])).collect();
        b.push(&recs, &stats);
        let kept = b.peek(10).unwrap();
        assert_eq!(kept.iter().map(|r| r.data[0]).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(stats.snapshot().dropped, 2);
        assert_eq!(stats.snapshot().accepted, 5);
        b.ack_through(kept[1].seq).unwrap();
        assert_eq!(b.peek(10).unwrap()[0].data[0], 4);
    }
}
