//! A sink's buffer: alerts accepted for the sink and not yet acknowledged by its receiver, in
//! order. In memory (bounded by count) or in the write-ahead spool (bounded by bytes); either
//! way, what does not fit drops the oldest and is counted.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::Record;
use super::config::FsyncPolicy;
use super::delivery::SinkStats;
use super::spool::Spool;

pub struct MemoryQueue {
    records: VecDeque<Record>,
    next: u64,
    max: usize,
    /// The sink stopped (its leftovers were saved): what still arrives is counted as dropped.
    closed: bool,
}

impl MemoryQueue {
    pub fn new(max: usize) -> Self {
        Self { records: VecDeque::new(), next: 0, max: max.max(1), closed: false }
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
    run_id: String,
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
            run_id: format!("{:016x}", fastrand::u64(..)),
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
            Store::Memory(q) if q.closed => {
                tracing::error!(sink = %self.sink, alerts = records.len(), "alerts arrived after the sink stopped; they are dropped and counted");
                records.len() as u64
            }
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

    /// A memory buffer with the alerts a previous run saved in `dir` at shutdown (see
    /// [`Buffer::spill`]) at its head; returns it and how many there were.
    pub fn memory_with_saved(sink: &str, max: usize, dir: &Path) -> std::io::Result<(Self, u64)> {
        let mut q = MemoryQueue::new(max);
        if dir.exists() {
            let (mut spool, _) = Spool::open(dir, u64::MAX, FsyncPolicy::Batch)?;
            let saved = spool.read(usize::MAX)?;
            for r in &saved {
                q.records.push_back(Record { seq: q.next, data: r.data.clone() });
                q.next += 1;
            }
            if let Some(last) = saved.last() {
                spool.ack_through(last.seq)?;
            }
        }
        let n = q.records.len() as u64;
        Ok((Self::new(sink, Store::Memory(q)), n))
    }

    /// At shutdown, for a memory buffer: writes what is left to a spool in `dir` (sent first
    /// at the next start) and refuses further alerts. Returns how many were saved, or how many
    /// were lost and why.
    pub fn spill(&self, dir: &Path) -> Result<u64, (u64, std::io::Error)> {
        let records: Vec<Arc<[u8]>> = match &mut *self.lock() {
            Store::Memory(q) => {
                q.closed = true;
                q.records.drain(..).map(|r| r.data).collect()
            }
            Store::Spool(_) => return Ok(0),
        };
        if records.is_empty() {
            return Ok(0);
        }
        let n = records.len() as u64;
        let save = || -> std::io::Result<()> {
            let (mut spool, _) = Spool::open(dir, u64::MAX, FsyncPolicy::Batch)?;
            spool.append(&records)?;
            spool.sync_all()
        };
        save().map(|()| n).map_err(|e| (n, e))
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

    /// Names this buffer's sequence numbers for receivers that de-duplicate: the spool's id
    /// (stable across restarts), or one for this run.
    pub fn instance(&self) -> String {
        match &*self.lock() {
            Store::Memory(_) => self.run_id.clone(),
            Store::Spool(s) => s.instance().to_owned(),
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

    #[test]
    fn leftovers_saved_at_shutdown_come_first_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("stdout");
        let stats = SinkStats::default();
        let b = Buffer::memory("t", 10);
        b.push(&[Arc::from(&b"a"[..]), Arc::from(&b"b"[..])], &stats);
        assert_eq!(b.spill(&spill).unwrap(), 2);
        b.push(&[Arc::from(&b"late"[..])], &stats);
        assert_eq!(stats.snapshot().dropped, 1, "what comes after the spill is counted");
        let (b, saved) = Buffer::memory_with_saved("t", 10, &spill).unwrap();
        assert_eq!(saved, 2);
        b.push(&[Arc::from(&b"c"[..])], &stats);
        let all: Vec<Vec<u8>> = b.peek(10).unwrap().iter().map(|r| r.data.to_vec()).collect();
        assert_eq!(all, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        drop(b);
        let (_, again) = Buffer::memory_with_saved("t", 10, &spill).unwrap();
        assert_eq!(again, 0, "saved alerts are loaded once");
    }
}
