//! A sink's write-ahead spool: an append-only log of alerts in segment files, trimmed as the
//! receiver acknowledges, bounded in bytes (the oldest segment goes when full, its unsent
//! alerts counted), and read back after a restart.
//!
//! Layout of the directory: `instance` (a random id, so receivers that de-duplicate can tell
//! this spool's sequence numbers from another's), `acked` (the next unacknowledged sequence
//! number, 8 bytes little-endian; losing an update only resends), and `<first seq>.seg` files.
//! A segment starts with [`MAGIC`] and holds records `[len u32 LE][crc32 u32 LE][seq u64
//! LE][payload]`, the checksum over seq and payload. Each record names its own sequence
//! number, so a damaged record in the middle is skipped (its number is missing, and counted as
//! lost) and the intact records after it are still read; only a damaged tail with no intact
//! record after it (a crash mid-write) is cut off. Segments of the first format (no magic,
//! `[len][crc][payload]`, numbered by position) are still read, never appended to.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Record;
use super::config::FsyncPolicy;

/// The first bytes of a segment in the current format.
pub const MAGIC: &[u8; 8] = b"MONSPL2\n";
const HEADER: usize = 16;
const V1_HEADER: usize = 8;
/// Larger records are refused (an alert is a few KiB; this bounds what a corrupt length can make
/// us read).
pub const MAX_RECORD: usize = 16 << 20;
const SEGMENT_MAX: u64 = 64 << 20;
const SEGMENT_MIN: u64 = 64 << 10;
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `[len][crc][payload]`, numbered from the file name by position.
    V1,
    /// `[len][crc][seq][payload]` after [`MAGIC`].
    V2,
}

impl Format {
    fn header(self) -> usize {
        match self {
            Self::V1 => V1_HEADER,
            Self::V2 => HEADER,
        }
    }
}

struct Segment {
    first: u64,
    format: Format,
    /// (sequence number, start offset) of each intact record, in order.
    index: Vec<(u64, u64)>,
    bytes: u64,
    file: File,
    path: PathBuf,
}

impl Segment {
    fn end_seq(&self) -> u64 {
        self.index.last().map_or(self.first, |(seq, _)| seq + 1)
    }

    /// Records at or after `head`.
    fn pending(&self, head: u64) -> u64 {
        (self.index.len() - self.index.partition_point(|(seq, _)| *seq < head)) as u64
    }
}

/// What opening an existing spool found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Alerts waiting to be sent.
    pub pending: u64,
    /// Bytes of torn tails cut off (a crash mid-write).
    pub torn_bytes: u64,
    /// Bytes of damaged records skipped, with intact records after them.
    pub damaged_bytes: u64,
    /// Alerts known lost: sequence numbers missing between the records that remain (a damaged
    /// record, or a damaged segment cut short or deleted).
    pub lost: u64,
}

/// `path`, created if missing and locked (flock) for as long as the returned file is held;
/// WouldBlock when another process holds it.
pub fn lock_exclusive(path: &Path) -> io::Result<nix::fcntl::Flock<File>> {
    let file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| io::Error::from(errno))
}

pub struct Spool {
    /// Held (flock) while the spool is open.
    _lock: nix::fcntl::Flock<File>,
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

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// The record at `at` if it is whole and intact: (seq, end). `min_seq`: a record of the current
/// format must come after the one before it (numbers only grow), which also keeps a stray
/// match inside a damaged region from passing for a record.
fn record_at(
    data: &[u8],
    at: usize,
    format: Format,
    seq_by_position: u64,
    min_seq: u64,
) -> Option<(u64, usize)> {
    let h = format.header();
    let head = data.get(at..at + h)?;
    let len = le_u32(head) as usize;
    let end = (at + h).checked_add(len)?;
    if len > MAX_RECORD || end > data.len() {
        return None;
    }
    let crc = le_u32(&head[4..]);
    match format {
        Format::V1 => (crc32fast::hash(&data[at + h..end]) == crc).then_some((seq_by_position, end)),
        Format::V2 => {
            let seq = le_u64(&head[8..]);
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&head[8..]);
            hasher.update(&data[at + h..end]);
            (hasher.finalize() == crc && seq >= min_seq).then_some((seq, end))
        }
    }
}

/// What a segment's bytes hold.
struct Scan {
    index: Vec<(u64, u64)>,
    /// Where the intact part ends; bytes after it are a torn tail.
    intact: usize,
    damaged_bytes: u64,
}

/// Parses a segment: intact records, damaged ones skipped up to the next intact record, and
/// where a torn tail (no intact record after it) begins.
fn scan(data: &[u8], format: Format, first: u64) -> Scan {
    let mut index = Vec::new();
    let mut at = if format == Format::V2 { MAGIC.len() } else { 0 };
    let mut damaged_bytes = 0;
    let mut next_seq = first;
    while at < data.len() {
        if let Some((seq, end)) = record_at(data, at, format, next_seq, next_seq) {
            index.push((seq, at as u64));
            next_seq = seq + 1;
            at = end;
            continue;
        }
        // Damaged here: an intact record further on means the damage is in the middle.
        let resume = (at + 1..data.len()).find(|&p| record_at(data, p, format, next_seq, next_seq).is_some());
        match resume {
            Some(p) => {
                damaged_bytes += (p - at) as u64;
                // The first format cannot tell how many records the damage took: at least one.
                if format == Format::V1 {
                    next_seq += 1;
                }
                at = p;
            }
            None => break,
        }
    }
    Scan { index, intact: at.min(data.len()), damaged_bytes }
}

/// Records at or after `head` (segments may have gaps after a damaged spool).
fn pending(segments: &VecDeque<Segment>, head: u64) -> u64 {
    segments.iter().map(|s| s.pending(head)).sum()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64, fsync: FsyncPolicy) -> io::Result<(Self, Recovered)> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        // Two processes appending to one spool would interleave sequence numbers and trim each
        // other's segments.
        let lock = lock_exclusive(&dir.join("lock")).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("the spool {} is in use by another monitor process", dir.display()),
            ),
            _ => e,
        })?;
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
            let format = if data.starts_with(MAGIC) { Format::V2 } else { Format::V1 };
            let found = scan(&data, format, first);
            let file = OpenOptions::new().read(true).append(true).open(&path)?;
            if found.intact < data.len() {
                recovered.torn_bytes += (data.len() - found.intact) as u64;
                file.set_len(found.intact as u64)?;
            }
            recovered.damaged_bytes += found.damaged_bytes;
            let seg = Segment { first, format, index: found.index, bytes: found.intact as u64, file, path };
            if seg.index.is_empty() || seg.end_seq() <= acked {
                std::fs::remove_file(&seg.path)?;
                continue;
            }
            segments.push_back(seg);
        }
        let head = segments.front().map_or(acked, |s: &Segment| s.first.max(acked));
        let next = segments.back().map_or(acked, |s| s.end_seq());
        let total_bytes = segments.iter().map(|s| s.bytes).sum();
        // Every number from the acknowledged one on is either a record that remains or lost.
        let mut expected = acked;
        for (seq, _) in segments.iter().flat_map(|s| s.index.iter()) {
            if *seq >= expected {
                recovered.lost += seq - expected;
                expected = seq + 1;
            }
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
                // Only segments of the current format are appended to.
                Some(s) if s.format == Format::V2 => {
                    s.bytes + (buf.len() + r.len() + HEADER) as u64 > self.segment_bytes
                        && s.bytes + buf.len() as u64 > MAGIC.len() as u64
                }
                _ => true,
            };
            if needs_new {
                self.write_out(&mut buf, &mut offsets)?;
                self.start_segment()?;
                dropped += self.enforce_limit(self.segment_bytes)?;
            }
            let base = self.segments.back().expect("a segment").bytes;
            let seq = self.next + offsets.len() as u64;
            offsets.push((seq, base + buf.len() as u64));
            let seq = seq.to_le_bytes();
            let mut crc = crc32fast::Hasher::new();
            crc.update(&seq);
            crc.update(r);
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc.finalize().to_le_bytes());
            buf.extend_from_slice(&seq);
            buf.extend_from_slice(r);
        }
        self.write_out(&mut buf, &mut offsets)?;
        self.sync(false)?;
        Ok(dropped)
    }

    fn write_out(&mut self, buf: &mut Vec<u8>, index: &mut Vec<(u64, u64)>) -> io::Result<()> {
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
        self.next += index.len() as u64;
        seg.index.append(index);
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
        let mut file = OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&path)?;
        file.set_len(0)?;
        file.write_all(MAGIC)?;
        if self.fsync == FsyncPolicy::Batch {
            sync_dir(&self.dir)?;
        }
        let bytes = MAGIC.len() as u64;
        self.total_bytes += bytes;
        self.segments.push_back(Segment {
            first: self.next,
            format: Format::V2,
            index: Vec::new(),
            bytes,
            file,
            path,
        });
        Ok(())
    }

    /// Drops whole old segments until `incoming` more bytes (a whole segment, so the new one
    /// can fill) fit; returns the unacknowledged alerts that went with them.
    fn enforce_limit(&mut self, incoming: u64) -> io::Result<u64> {
        let mut dropped = 0;
        while self.total_bytes + incoming > self.max_bytes && self.segments.len() > 1 {
            let seg = self.segments.pop_front().expect("more than one segment");
            dropped += seg.pending(self.head);
            self.head = self.head.max(seg.end_seq());
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
        for seg in &self.segments {
            if out.len() >= max {
                break;
            }
            // Past a gap (a damaged record skipped) reading goes on at the next record there is.
            let from = seg.index.partition_point(|(seq, _)| *seq < self.head);
            let to = from.saturating_add(max - out.len()).min(seg.index.len());
            if from >= to {
                continue;
            }
            let start = seg.index[from].1;
            let end = seg.index.get(to).map_or(seg.bytes, |(_, o)| *o);
            let mut data = vec![0u8; (end - start) as usize];
            seg.file.read_exact_at(&mut data, start)?;
            let h = seg.format.header();
            for &(seq, offset) in &seg.index[from..to] {
                let at = (offset - start) as usize;
                let damaged = || {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("spool segment {} is damaged", seg.path.display()),
                    )
                };
                let len = le_u32(data.get(at..at + 4).ok_or_else(damaged)?) as usize;
                let payload = data.get(at + h..at + h + len).ok_or_else(damaged)?;
                out.push(Record { seq, data: Arc::from(payload) });
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
        assert_eq!(r, Recovered { pending: 3, torn_bytes: 9, damaged_bytes: 0, lost: 0 });
        s.append(&recs(3..4)).unwrap();
        assert_eq!(numbers(&s.read(10).unwrap()), [0, 1, 2, 3]);
    }

    #[test]
    fn a_damaged_record_at_the_start_of_a_middle_segment_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never).unwrap();
        let big: Vec<Arc<[u8]>> = (0..150u32)
            .map(|i| Arc::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(1000)).into_bytes()))
            .collect();
        s.append(&big).unwrap();
        assert!(s.segments.len() >= 3);
        let middle = s.segments[1].path.clone();
        let first = s.segments[1].first;
        drop(s);
        let mut data = std::fs::read(&middle).unwrap();
        // In the first record's header (its sequence number).
        data[20] ^= 1;
        std::fs::write(&middle, data).unwrap();
        let (s, r) = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never).unwrap();
        assert_eq!(r.lost, 1, "{r:?}");
        assert_eq!(r.torn_bytes, 0, "{r:?}");
        assert!(r.damaged_bytes > 1000, "{r:?}");
        assert_eq!(r.pending, 149);
        assert_eq!(s.len(), 149);
        let all = numbers(&s.read(1000).unwrap());
        assert_eq!(all.len(), 149);
        assert!(!all.contains(&(first as u32)));
        assert_eq!(all.last().copied(), Some(149));
        let again = Spool::open(dir.path(), 256 << 10, FsyncPolicy::Never);
        assert!(again.is_err_and(|e| e.to_string().contains("in use by another monitor process")));
    }

    /// The offset of record `i` (counting from 0) in a segment of equal-sized records.
    fn record_offset(seg: &Path, i: usize) -> usize {
        let data = std::fs::read(seg).unwrap();
        let mut at = MAGIC.len();
        for _ in 0..i {
            at += HEADER + le_u32(&data[at..]) as usize;
        }
        at
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_skipped_and_the_ones_after_it_kept() {
        // A flipped byte in the payload, in the length and in the checksum of record 11 of 101.
        for (what, within) in [("payload", HEADER + 3), ("length", 1), ("checksum", 5)] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, _) = Spool::open(dir.path(), 64 << 20, FsyncPolicy::Never).unwrap();
            s.append(&recs(0..101)).unwrap();
            drop(s);
            let seg = segment_path(dir.path(), 0);
            let at = record_offset(&seg, 10) + within;
            let mut data = std::fs::read(&seg).unwrap();
            data[at] ^= 0x10;
            std::fs::write(&seg, data).unwrap();
            let (s, r) = Spool::open(dir.path(), 64 << 20, FsyncPolicy::Never).unwrap();
            assert_eq!((r.pending, r.lost, r.torn_bytes), (100, 1, 0), "{what}: {r:?}");
            assert!(r.damaged_bytes > 0, "{what}: {r:?}");
            let all = numbers(&s.read(1000).unwrap());
            let want: Vec<u32> = (0..101).filter(|&i| i != 10).collect();
            assert_eq!(all, want, "{what}");
            assert_eq!(s.read(1000).unwrap()[10].seq, 11, "{what}: numbers stay the records' own");
        }
    }

    #[test]
    fn segments_of_the_first_format_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        for r in recs(0..5) {
            data.extend_from_slice(&(r.len() as u32).to_le_bytes());
            data.extend_from_slice(&crc32fast::hash(&r).to_le_bytes());
            data.extend_from_slice(&r);
        }
        std::fs::write(segment_path(dir.path(), 7), &data).unwrap();
        let (mut s, r) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        assert_eq!(r.pending, 5);
        let read = s.read(10).unwrap();
        assert_eq!(numbers(&read), [0, 1, 2, 3, 4]);
        assert_eq!(read[0].seq, 7);
        s.append(&recs(5..6)).unwrap();
        let read = s.read(10).unwrap();
        assert_eq!(numbers(&read), [0, 1, 2, 3, 4, 5]);
        assert_eq!(read[5].seq, 12, "appends go to a new segment, numbered on");
        s.ack_through(11).unwrap();
        assert!(!segment_path(dir.path(), 7).exists());
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
        assert!(r.torn_bytes > 0);
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
