//! A sink's write-ahead spool: an append-only log of alerts in segment files, trimmed as the
//! receiver acknowledges, bounded in bytes (the oldest segment goes when full, its unsent
//! alerts counted), and read back after a restart.
//!
//! Layout of the directory: `instance` (a random id, so receivers that de-duplicate can tell
//! this spool's sequence numbers from another's), `acked` (the next unacknowledged sequence
//! number, 8 bytes little-endian; losing an update only resends), and `<first seq>.seg` files
//! holding records `[len u32 LE][crc32 u32 LE][payload]`. A torn or corrupt tail (a crash
//! mid-write) is cut off at the first record whose length or checksum does not hold.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Record;
use super::config::FsyncPolicy;

const HEADER: usize = 8;
/// Larger records are refused (an alert is a few KiB; this bounds what a corrupt length can make
/// us read).
pub const MAX_RECORD: usize = 16 << 20;
const SEGMENT_MAX: u64 = 64 << 20;
const SEGMENT_MIN: u64 = 64 << 10;
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

struct Segment {
    first: u64,
    /// Start offset of each record.
    offsets: Vec<u64>,
    bytes: u64,
    file: File,
    path: PathBuf,
}

impl Segment {
    fn end_seq(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }
}

/// What opening an existing spool found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Alerts waiting to be sent.
    pub pending: u64,
    /// Bytes cut off because they did not form whole, intact records.
    pub corrupt_bytes: u64,
    /// Alerts known lost: sequence numbers missing between the segments that remain (a damaged
    /// middle segment, cut short or deleted).
    pub lost: u64,
}

pub struct Spool {
    /// Held (flock) while the spool is open.
    _lock: File,
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// The next unacknowledged sequence number.
    head: u64,
    /// The sequence number the next appended record gets.
    next: u64,
    max_bytes: u64,
    segment_bytes: u64,
    total_bytes: u64,
    fsync: FsyncPolicy,
    last_sync: Instant,
    unsynced: bool,
    acked_file: File,
    instance: String,
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// Parses records from `data`; returns their offsets and where the intact prefix ends.
fn scan(data: &[u8]) -> (Vec<u64>, usize) {
    let mut offsets = Vec::new();
    let mut at = 0;
    while data.len() - at >= HEADER {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + HEADER + len;
        if len > MAX_RECORD || end > data.len() || crc32fast::hash(&data[at + HEADER..end]) != crc {
            break;
        }
        offsets.push(at as u64);
        at = end;
    }
    (offsets, at)
}

/// Records at or after `head` (segments may have gaps between them after a damaged spool).
fn pending(segments: &VecDeque<Segment>, head: u64) -> u64 {
    segments.iter().map(|s| s.end_seq().saturating_sub(head.max(s.first))).sum()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64, fsync: FsyncPolicy) -> io::Result<(Self, Recovered)> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let lock =
            OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(dir.join("lock"))?;
        // Two processes appending to one spool would interleave sequence numbers and trim each
        // other's segments.
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0
        {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("the spool {} is in use by another monitor process", dir.display()),
            ));
        }
        let instance_path = dir.join("instance");
        let instance = match std::fs::read_to_string(&instance_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                let id = format!("{:016x}", fastrand::u64(..));
                std::fs::write(&instance_path, &id)?;
                id
            }
        };
        let acked_file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join("acked"))?;
        let mut acked = [0u8; 8];
        let acked = match acked_file.read_exact_at(&mut acked, 0) {
            Ok(()) => u64::from_le_bytes(acked),
            Err(_) => 0,
        };

        let mut firsts: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        firsts.sort_unstable();
        let mut recovered = Recovered::default();
        let mut segments = VecDeque::new();
        for first in firsts {
            let path = segment_path(dir, first);
            let data = std::fs::read(&path)?;
            let (offsets, intact) = scan(&data);
            let file = OpenOptions::new().read(true).append(true).open(&path)?;
            if intact < data.len() {
                recovered.corrupt_bytes += (data.len() - intact) as u64;
                file.set_len(intact as u64)?;
            }
            let seg = Segment { first, offsets, bytes: intact as u64, file, path };
            if seg.offsets.is_empty() || seg.end_seq() <= acked {
                std::fs::remove_file(&seg.path)?;
                continue;
            }
            segments.push_back(seg);
        }
        let head = segments.front().map_or(acked, |s: &Segment| s.first.max(acked));
        let next = segments.back().map_or(acked, |s| s.end_seq());
        let total_bytes = segments.iter().map(|s| s.bytes).sum();
        let mut expected = acked;
        for seg in &segments {
            recovered.lost += seg.first.saturating_sub(expected);
            expected = seg.end_seq();
        }
        recovered.pending = pending(&segments, head);
        let spool = Self {
            _lock: lock,
            dir: dir.to_owned(),
            segments,
            head,
            next,
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(SEGMENT_MIN, SEGMENT_MAX),
            total_bytes,
            fsync,
            last_sync: Instant::now(),
            unsynced: false,
            acked_file,
            instance,
        };
        Ok((spool, recovered))
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Alerts not yet acknowledged.
    pub fn len(&self) -> u64 {
        pending(&self.segments, self.head)
    }

    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Appends `records` (durably, per the fsync policy) and returns how many of the oldest
    /// unacknowledged alerts were dropped to stay within the size limit.
    pub fn append(&mut self, records: &[Arc<[u8]>]) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.len() + HEADER).sum());
        let mut offsets = Vec::with_capacity(records.len());
        let mut dropped = 0;
        for r in records {
            if r.len() > MAX_RECORD {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "alert larger than 16 MiB"));
            }
            let needs_new = match self.segments.back() {
                None => true,
                Some(s) => {
                    s.bytes + (buf.len() + r.len() + HEADER) as u64 > self.segment_bytes
                        && s.bytes + buf.len() as u64 > 0
                }
            };
            if needs_new {
                self.write_out(&mut buf, &mut offsets)?;
                self.start_segment()?;
                dropped += self.enforce_limit(self.segment_bytes)?;
            }
            let base = self.segments.back().expect("a segment").bytes;
            offsets.push(base + buf.len() as u64);
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
            buf.extend_from_slice(r);
        }
        self.write_out(&mut buf, &mut offsets)?;
        self.sync(false)?;
        Ok(dropped)
    }

    fn write_out(&mut self, buf: &mut Vec<u8>, offsets: &mut Vec<u64>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let seg = self.segments.back_mut().expect("a segment");
        if let Err(e) = seg.file.write_all(buf) {
            // A partial write would leave a torn record in the middle of the log.
            let _ = seg.file.set_len(seg.bytes);
            return Err(e);
        }
        seg.bytes += buf.len() as u64;
        self.total_bytes += buf.len() as u64;
        self.next += offsets.len() as u64;
        seg.offsets.append(offsets);
        buf.clear();
        self.unsynced = true;
        Ok(())
    }

    fn start_segment(&mut self) -> io::Result<()> {
        // The segment being closed gets no later fsync: sync its tail now.
        if self.fsync != FsyncPolicy::Never {
            self.sync(true)?;
        }
        let path = segment_path(&self.dir, self.next);
        let file = OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&path)?;
        file.set_len(0)?;
        if self.fsync == FsyncPolicy::Batch {
            sync_dir(&self.dir)?;
        }
        self.segments.push_back(Segment { first: self.next, offsets: Vec::new(), bytes: 0, file, path });
        Ok(())
    }

    /// Drops whole old segments until `incoming` more bytes (a whole segment, so the new one
    /// can fill) fit; returns the unacknowledged alerts that went with them.
    fn enforce_limit(&mut self, incoming: u64) -> io::Result<u64> {
        let mut dropped = 0;
        while self.total_bytes + incoming > self.max_bytes && self.segments.len() > 1 {
            let seg = self.segments.pop_front().expect("more than one segment");
            let end = seg.end_seq();
            dropped += end.saturating_sub(self.head.max(seg.first));
            self.head = self.head.max(end);
            self.total_bytes -= seg.bytes;
            std::fs::remove_file(&seg.path)?;
        }
        if dropped > 0 {
            self.write_acked()?;
        }
        Ok(dropped)
    }

    fn sync(&mut self, force: bool) -> io::Result<()> {
        let due = match self.fsync {
            FsyncPolicy::Batch => true,
            FsyncPolicy::Interval => force || self.last_sync.elapsed() >= SYNC_INTERVAL,
            FsyncPolicy::Never => force,
        };
        if self.unsynced && due {
            if let Some(seg) = self.segments.back() {
                seg.file.sync_data()?;
            }
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// For the `interval` policy: syncs what was written in the last second.
    pub fn tick(&mut self) -> io::Result<()> {
        self.sync(false)
    }

    /// Up to `max` unacknowledged alerts, oldest first.
    pub fn read(&self, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut seq = self.head;
        for seg in &self.segments {
            if out.len() >= max {
                break;
            }
            if seg.end_seq() <= seq {
                continue;
            }
            // Past a gap (a damaged segment cut short) reading goes on at the next segment.
            seq = seq.max(seg.first);
            let from = (seq - seg.first) as usize;
            let to = from.saturating_add(max - out.len()).min(seg.offsets.len());
            let start = seg.offsets[from];
            let end = seg.offsets.get(to).copied().unwrap_or(seg.bytes);
            let mut data = vec![0u8; (end - start) as usize];
            seg.file.read_exact_at(&mut data, start)?;
            let mut at = 0usize;
            for _ in from..to {
                let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
                let payload = data.get(at + HEADER..at + HEADER + len).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("spool segment {} is damaged", seg.path.display()),
                    )
                })?;
                out.push(Record { seq, data: Arc::from(payload) });
                seq += 1;
                at += HEADER + len;
            }
        }
        Ok(out)
    }

    /// Everything up to and including `seq` was acknowledged.
    pub fn ack_through(&mut self, seq: u64) -> io::Result<()> {
        if seq < self.head {
            return Ok(());
        }
        self.head = (seq + 1).min(self.next);
        while let Some(seg) = self.segments.front() {
            if seg.end_seq() > self.head {
                break;
            }
            let seg = self.segments.pop_front().expect("front exists");
            self.total_bytes -= seg.bytes;
            std::fs::remove_file(&seg.path)?;
        }
        self.write_acked()
    }

    fn write_acked(&self) -> io::Result<()> {
        self.acked_file.write_all_at(&self.head.to_le_bytes(), 0)
    }

    /// Makes everything written durable (at shutdown).
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.sync(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(range: std::ops::Range<u32>) -> Vec<Arc<[u8]>> {
        range.map(|i| Arc::from(format!("{{\"n\":{i}}}").into_bytes())).collect()
    }

    fn numbers(records: &[Record]) -> Vec<u32> {
        records
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
                v["n"].as_u64().unwrap() as u32
            })
            .collect()
    }

    #[test]
    fn survives_reopen_and_resumes_after_the_last_ack() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Batch).unwrap();
        assert_eq!(r, Recovered::default());
        s.append(&recs(0..10)).unwrap();
        let first = s.read(4).unwrap();
        assert_eq!(numbers(&first), [0, 1, 2, 3]);
        s.ack_through(first[3].seq).unwrap();
        let instance = s.instance().to_owned();
        drop(s);
        let (mut s, r) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Batch).unwrap();
        assert_eq!(r.pending, 6);
        assert_eq!(s.instance(), instance);
        let rest = s.read(100).unwrap();
        assert_eq!(numbers(&rest), [4, 5, 6, 7, 8, 9]);
        assert_eq!(rest[0].seq, 4, "sequence numbers carry over restarts");
        s.ack_through(rest.last().unwrap().seq).unwrap();
        s.append(&recs(10..11)).unwrap();
        assert_eq!(s.read(10).unwrap()[0].seq, 10);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        s.append(&recs(0..3)).unwrap();
        drop(s);
        let seg = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        // A crash mid-write: a header promising more than was written.
        f.write_all(&100u32.to_le_bytes()).unwrap();
        f.write_all(&[1, 2, 3, 4, 5]).unwrap();
        drop(f);
        let (mut s, r) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        assert_eq!(r, Recovered { pending: 3, corrupt_bytes: 9, lost: 0 });
        s.append(&recs(3..4)).unwrap();
        assert_eq!(numbers(&s.read(10).unwrap()), [0, 1, 2, 3]);
    }

    #[test]
    fn a_damaged_middle_segment_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never).unwrap();
        let big: Vec<Arc<[u8]>> = (0..150u32)
            .map(|i| Arc::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(1000)).into_bytes()))
            .collect();
        s.append(&big).unwrap();
        assert!(s.segments.len() >= 3);
        let middle = s.segments[1].path.clone();
        let (first, count) = (s.segments[1].first, s.segments[1].offsets.len() as u64);
        drop(s);
        let mut data = std::fs::read(&middle).unwrap();
        data[20] ^= 1;
        std::fs::write(&middle, data).unwrap();
        let (s, r) = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never).unwrap();
        assert_eq!(r.lost, count, "{r:?}");
        assert_eq!(r.pending, 150 - count);
        assert_eq!(s.len(), 150 - count);
        let all = numbers(&s.read(1000).unwrap());
        assert_eq!(all.len() as u64, 150 - count);
        assert!(!all.contains(&(first as u32)));
        assert_eq!(all.last().copied(), Some(149));
        let again = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never);
        assert!(again.is_err_and(|e| e.to_string().contains("in use by another monitor process")));
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        s.append(&recs(0..3)).unwrap();
        drop(s);
        let seg = segment_path(dir.path(), 0);
        let mut data = std::fs::read(&seg).unwrap();
        let last = data.len() - 2;
        data[last] ^= 0x40;
        std::fs::write(&seg, data).unwrap();
        let (s, r) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        assert_eq!(r.pending, 2);
        assert!(r.corrupt_bytes > 0);
        assert_eq!(numbers(&s.read(10).unwrap()), [0, 1]);
    }

    #[test]
    fn when_full_the_oldest_go_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        // 64 KiB segments (the minimum), 256 KiB in all.
        let (mut s, _) = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never).unwrap();
        let big: Vec<Arc<[u8]>> = (0..400u32)
            .map(|i| Arc::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(1000)).into_bytes()))
            .collect();
        let mut dropped = 0;
        for chunk in big.chunks(10) {
            dropped += s.append(chunk).unwrap();
        }
        assert!(dropped > 0, "400 KiB into 256 KiB must drop");
        assert!(s.bytes() <= 256 << 10, "{} bytes", s.bytes());
        assert_eq!(s.len() + dropped, 400, "every alert is either kept or counted as dropped");
        let kept = numbers(&s.read(1000).unwrap());
        assert_eq!(kept.first().copied(), Some(dropped as u32), "the oldest went first");
        assert_eq!(kept.last().copied(), Some(399));
        drop(s);
        let (s, r) = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never).unwrap();
        assert_eq!(r.pending, 400 - dropped);
        assert_eq!(s.read(1).unwrap()[0].seq, dropped);
    }

    #[test]
    fn acknowledged_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 512 << 10, FsyncPolicy::Never).unwrap();
        let big: Vec<Arc<[u8]>> = (0..200u32).map(|_| Arc::from(vec![b'x'; 1000])).collect();
        s.append(&big).unwrap();
        let files = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
                .count()
        };
        assert!(files() > 1);
        s.ack_through(199).unwrap();
        assert_eq!(files(), 0);
        assert_eq!(s.len(), 0);
        assert_eq!(s.bytes(), 0);
    }
}
