//! The file sink: alert lines appended to a file that rotates by size (path.1 is the newest
//! old file, `keep` of them are kept), synced per the fsync policy. A file moved away by
//! another tool (logrotate) is noticed and a new one opened.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::config::{FileConfig, FsyncPolicy};
use super::console::render_lines;
use super::{Progress, Record, Sink};
use crate::config::OutputFormat;

pub struct FileSink {
    path: PathBuf,
    format: OutputFormat,
    max_bytes: u64,
    keep: u32,
    fsync: FsyncPolicy,
    file: Option<(File, u64, u64)>,
    last_sync: Instant,
    buf: Vec<u8>,
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

impl FileSink {
    pub fn new(c: &FileConfig) -> anyhow::Result<Self> {
        let mut sink = Self {
            path: c.path.clone(),
            format: c.format,
            max_bytes: c.max_bytes,
            keep: c.keep,
            fsync: c.fsync,
            file: None,
            last_sync: Instant::now(),
            buf: Vec::new(),
        };
        // Fail at start-up, not at the first alert, when the file cannot be written.
        sink.open()?;
        Ok(sink)
    }

    /// The open file, its inode and its size; reopened when the path no longer names it.
    fn open(&mut self) -> anyhow::Result<&mut (File, u64, u64)> {
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if self.file.as_ref().is_some_and(|(_, ino, _)| Some(*ino) != current) {
            self.file = None;
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(&self.path)
                .with_context(|| format!("cannot open {} for appending", self.path.display()))?;
            let m = f.metadata()?;
            self.file = Some((f, m.ino(), m.len()));
        }
        Ok(self.file.as_mut().expect("opened"))
    }

    fn rotate(&mut self) -> anyhow::Result<()> {
        if let Some((f, _, _)) = self.file.take() {
            let _ = f.sync_data();
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)
                .with_context(|| format!("cannot rotate {}", self.path.display()))?;
            return Ok(());
        }
        let _ = std::fs::remove_file(numbered(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))
            .with_context(|| format!("cannot rotate {}", self.path.display()))?;
        Ok(())
    }

    fn write(&mut self, batch: &[Record]) -> anyhow::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        render_lines(self.format, batch, &mut buf);
        let size = self.open()?.2;
        if self.max_bytes > 0 && size > 0 && size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let fsync = self.fsync;
        let due = match fsync {
            FsyncPolicy::Batch => true,
            FsyncPolicy::Interval => self.last_sync.elapsed() >= Duration::from_secs(1),
            FsyncPolicy::Never => false,
        };
        let (f, _, size) = self.open()?;
        let mut result = f.write_all(&buf);
        if result.is_err() {
            // No torn line for the retry to append to (a full disk).
            let _ = f.set_len(*size);
        } else {
            *size += buf.len() as u64;
            if due {
                result = f.sync_data();
            }
        }
        self.buf = buf;
        if due {
            self.last_sync = Instant::now();
        }
        result.with_context(|| format!("cannot write {}", self.path.display()))
    }
}

impl Sink for FileSink {
    async fn deliver(&mut self, batch: &[Record]) -> anyhow::Result<Progress> {
        self.write(batch)?;
        Ok(Progress::all(batch.len()))
    }

    async fn close(&mut self) {
        if let Some((f, _, _)) = &self.file {
            let _ = f.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let c = FileConfig {
            name: None,
            path: path.clone(),
            format: OutputFormat::Json,
            max_bytes: 1000,
            keep: 2,
            fsync: FsyncPolicy::Never,
            delivery: Default::default(),
        };
        let mut sink = FileSink::new(&c).unwrap();
        for i in 0..40u64 {
            let data: Arc<[u8]> =
                Arc::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(80)).into_bytes());
            sink.write(&[Record { seq: i, data }]).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        assert!(current.len() <= 1000);
        assert!(current.ends_with("}\n") && current.contains("\"n\":39"));
        assert!(!read(&numbered(&path, 1)).is_empty());
        assert!(!read(&numbered(&path, 2)).is_empty());
        assert!(!numbered(&path, 3).exists(), "only `keep` old files are kept");
        // Moved away by logrotate: a new file is started.
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        sink.write(&[Record { seq: 40, data: Arc::from(&b"{\"n\":40}"[..]) }]).unwrap();
        assert_eq!(read(&path), "{\"n\":40}\n");
    }
}
