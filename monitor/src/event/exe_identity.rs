//! Which system binary an executable really is: a copy of /usr/bin/bash renamed to /tmp/x, or
//! loaded into a memfd and run from there, is still bash. Rules see it as `proc.exe_original`.
//!
//! Only byte-identical copies are recognised (a modified binary is a different program).
//! Candidates are found by size among the files of the system binary directories, then compared
//! byte for byte; results are cached per file identity, so each new executable is read at most
//! once, and only when its size matches a system binary's.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SYSTEM_DIRS: &[&str] = &["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin"];
/// Executables larger than this are not compared (a copy of a shell or tool is far smaller).
const MAX_COMPARE_BYTES: u64 = 16 << 20;
/// How long the index of system binaries is trusted before a miss rebuilds it.
const INDEX_TTL: Duration = Duration::from_secs(600);
const CACHE_MAX: usize = 16384;

/// (dev, ino, size, mtime): a file's content identity, short of reading it.
type FileKey = (u64, u64, u64, i64);

#[derive(Default)]
pub struct ExeIdentity {
    dirs: Vec<PathBuf>,
    /// size -> system binaries of that size.
    by_size: HashMap<u64, Vec<PathBuf>>,
    built_at: Option<Instant>,
    /// Executable -> the system binary it is a copy of (None: not a copy of any).
    cache: HashMap<FileKey, Option<String>>,
}

fn key(m: &std::fs::Metadata) -> FileKey {
    (m.dev(), m.ino(), m.size(), m.mtime())
}

fn same_content(mut a: File, b: &Path) -> bool {
    let Ok(mut b) = File::open(b) else { return false };
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = a.read(&mut ba) else { return false };
        if n == 0 {
            // Equal sizes were checked first: both ended together or `b` changed under us.
            return b.read(&mut bb).is_ok_and(|m| m == 0);
        }
        if b.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

impl ExeIdentity {
    fn build(&mut self) {
        let mut dirs: Vec<PathBuf> =
            SYSTEM_DIRS.iter().filter_map(|d| std::fs::canonicalize(d).ok()).collect();
        dirs.sort();
        dirs.dedup();
        let mut by_size: HashMap<u64, Vec<PathBuf>> = HashMap::new();
        for dir in &dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for e in entries.flatten() {
                // Symlinks point at files indexed under their own name.
                let Ok(m) = e.metadata() else { continue };
                if m.is_file() && m.mode() & 0o111 != 0 && m.size() > 0 {
                    by_size.entry(m.size()).or_default().push(e.path());
                }
            }
        }
        self.dirs = dirs;
        self.by_size = by_size;
        self.built_at = Some(Instant::now());
    }

    fn is_system_path(&self, path: &str) -> bool {
        let p = Path::new(path);
        p.parent().is_some_and(|parent| self.dirs.iter().any(|d| d == parent))
    }

    /// The system binary `pid`'s executable is a byte-identical copy of, or None. `exepath` and
    /// `exe_ino` are what the kernel reported at exec; the file is read through
    /// /proc/<pid>/exe (which works for memfds and deleted files) or, if the process is gone,
    /// through `exepath` when it is still the same file.
    pub fn original_of(&mut self, pid: u32, exepath: &str, exe_ino: u64) -> Option<String> {
        if self.built_at.is_none_or(|t| t.elapsed() > INDEX_TTL) {
            self.build();
        }
        if self.is_system_path(exepath) {
            return None;
        }
        let file = File::open(format!("/proc/{pid}/exe"))
            .ok()
            .filter(|f| f.metadata().is_ok_and(|m| exe_ino == 0 || m.ino() == exe_ino))
            .or_else(|| {
                File::open(exepath).ok().filter(|f| f.metadata().is_ok_and(|m| m.ino() == exe_ino))
            })?;
        let meta = file.metadata().ok()?;
        let k = key(&meta);
        if let Some(hit) = self.cache.get(&k) {
            return hit.clone();
        }
        let found = if meta.size() > MAX_COMPARE_BYTES {
            None
        } else {
            self.by_size.get(&meta.size()).and_then(|candidates| {
                candidates.iter().find(|c| file.try_clone().is_ok_and(|f| same_content_from_start(f, c)))
            })
        };
        let found = found.map(|p| super::text::from_os(p.as_os_str()));
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(k, found.clone());
        found
    }
}

fn same_content_from_start(mut f: File, candidate: &Path) -> bool {
    use std::io::Seek as _;
    f.rewind().is_ok() && same_content(f, candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_copy_is_its_original_and_the_original_is_itself() {
        let mut ids = ExeIdentity::default();
        let original = std::fs::canonicalize("/bin/sh").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("innocent");
        std::fs::copy(&original, &copy).unwrap();
        let ino = std::fs::metadata(&copy).unwrap().ino();
        // Our own pid's exe is not the copy: the path is used.
        let got = ids.original_of(u32::MAX, copy.to_str().unwrap(), ino);
        let got = PathBuf::from(got.expect("copy recognised"));
        assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&original).unwrap());
        assert_eq!(ids.original_of(u32::MAX, original.to_str().unwrap(), 0), None);
        // One changed byte makes another program.
        let mut bytes = std::fs::read(&copy).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let changed = dir.path().join("changed");
        std::fs::write(&changed, &bytes).unwrap();
        let ino = std::fs::metadata(&changed).unwrap().ino();
        assert_eq!(ids.original_of(u32::MAX, changed.to_str().unwrap(), ino), None);
    }
}
