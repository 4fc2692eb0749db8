use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Process, ProcessRef, procfs_seed};

/// How long an exited process stays resolvable for events that arrive after its exit.
pub const EXITED_LINGER: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_PROCESSES: usize = 65536;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub live: usize,
    pub exited: usize,
    /// Entries removed because the table was full.
    pub evictions: u64,
    /// Events whose process was unknown and read from /proc.
    pub proc_lookups: u64,
}

pub struct ProcessTable {
    procs: HashMap<u32, ProcessRef>,
    /// (pid, start_ns, when) of exited processes, oldest first.
    exited: VecDeque<(u32, u64, Instant)>,
    max: usize,
    tick_ns: u64,
    stats: TableStats,
}

impl ProcessTable {
    pub fn new(max: usize) -> Self {
        Self {
            procs: HashMap::new(),
            exited: VecDeque::new(),
            max: max.max(16),
            tick_ns: procfs_seed::ticks_to_ns(1).max(1),
            stats: TableStats::default(),
        }
    }

    /// Start times from /proc have clock-tick precision; the kernel's have nanoseconds.
    fn same_start(&self, a: u64, b: u64) -> bool {
        a / self.tick_ns == b / self.tick_ns
    }

    /// Loads every process that exists now.
    pub fn seed_from_proc(&mut self) {
        let mut pass = procfs_seed::Pass::default();
        for pid in procfs_seed::all_pids() {
            if let Some(p) = pass.read(pid) {
                self.insert(p);
            }
        }
        // Parents' start times, now that all are loaded.
        let starts: HashMap<u32, u64> = self.procs.iter().map(|(k, v)| (*k, v.start_ns)).collect();
        for p in self.procs.values_mut() {
            if let Some(s) = starts.get(&p.ppid) {
                Arc::make_mut(p).parent_start_ns = *s;
            }
        }
    }

    /// Brings the table back in line with /proc after the kernel lost fork, exec or exit
    /// records: processes it missed (or whose pid was reused unseen) are read from /proc, and
    /// entries whose process is gone are retired. Returns (added, retired).
    pub fn resync_from_proc(&mut self, now: Instant) -> (usize, usize) {
        let live: HashMap<u32, u64> = procfs_seed::all_pids()
            .into_iter()
            .filter_map(|pid| Some((pid as u32, procfs_seed::start_ns(pid)?)))
            .collect();
        let mut added = 0;
        let mut pass = procfs_seed::Pass::default();
        for (&pid, &start) in &live {
            let known = self.procs.get(&pid).is_some_and(|p| self.same_start(p.start_ns, start));
            if !known && let Some(p) = pass.read(pid as i32) {
                self.insert(p);
                added += 1;
            }
        }
        let exited: std::collections::HashSet<(u32, u64)> =
            self.exited.iter().map(|&(pid, start, _)| (pid, start)).collect();
        let gone: Vec<(u32, u64)> = self
            .procs
            .values()
            .filter(|p| !live.contains_key(&p.pid) && !exited.contains(&(p.pid, p.start_ns)))
            .map(|p| (p.pid, p.start_ns))
            .collect();
        for &(pid, start) in &gone {
            self.on_exit(pid, start, now);
        }
        (added, gone.len())
    }

    fn insert(&mut self, p: Process) -> ProcessRef {
        if self.procs.len() >= self.max && !self.procs.contains_key(&p.pid) {
            self.evict_one();
        }
        let p = Arc::new(p);
        self.procs.insert(p.pid, p.clone());
        p
    }

    fn evict_one(&mut self) {
        // Exited entries go first; a live one only when the table is full of live processes.
        while let Some((pid, start, _)) = self.exited.pop_front() {
            if self.procs.get(&pid).is_some_and(|p| p.start_ns == start) {
                self.procs.remove(&pid);
                self.stats.evictions += 1;
                return;
            }
        }
        if let Some(&pid) = self.procs.keys().next() {
            self.procs.remove(&pid);
            self.stats.evictions += 1;
        }
    }

    /// The process a new event of `pid` belongs to; read from /proc when the table lacks it.
    pub fn get_or_load(&mut self, pid: u32) -> Option<ProcessRef> {
        if let Some(p) = self.procs.get(&pid) {
            return Some(p.clone());
        }
        let p = procfs_seed::Pass::default().read(pid as i32)?;
        self.stats.proc_lookups += 1;
        Some(self.insert(p))
    }

    pub fn get(&self, pid: u32) -> Option<ProcessRef> {
        self.procs.get(&pid).cloned()
    }

    /// The parent of `p`, if the table still has that exact process.
    pub fn parent(&self, p: &Process) -> Option<ProcessRef> {
        let parent = self.procs.get(&p.ppid)?;
        (p.parent_start_ns == 0 || self.same_start(parent.start_ns, p.parent_start_ns))
            .then(|| parent.clone())
    }

    /// Ancestors of `p`, parent first, at most `max`.
    pub fn ancestors(&self, p: &Process, max: usize) -> Vec<ProcessRef> {
        let mut out = Vec::new();
        let mut cur = self.parent(p);
        while let Some(a) = cur {
            if out.len() >= max || a.pid == p.pid || a.pid == 0 {
                break;
            }
            cur = if a.ppid == a.pid { None } else { self.parent(&a) };
            out.push(a);
        }
        out
    }

    /// A new process: it starts as a copy of its parent (fork inherits everything exec replaces).
    pub fn on_fork(
        &mut self,
        pid: u32,
        start_ns: u64,
        ppid: u32,
        parent_start_ns: u64,
        comm: &str,
    ) -> ProcessRef {
        let mut child = match self.procs.get(&ppid) {
            Some(parent) if parent_start_ns == 0 || self.same_start(parent.start_ns, parent_start_ns) => {
                (**parent).clone()
            }
            _ => Process { comm: comm.to_owned(), ..Default::default() },
        };
        child.pid = pid;
        child.vpid = 0;
        child.start_ns = start_ns;
        child.ppid = ppid;
        child.parent_start_ns = parent_start_ns;
        child.source = super::ProcSource::Fork;
        self.insert(child)
    }

    /// exec replaced the process image; `p` is the complete new state.
    pub fn on_exec(&mut self, p: Process) -> ProcessRef {
        self.insert(p)
    }

    /// The process ended; it stays resolvable for a while for late events.
    pub fn on_exit(&mut self, pid: u32, start_ns: u64, now: Instant) {
        if self.procs.get(&pid).is_some_and(|p| self.same_start(p.start_ns, start_ns)) {
            self.exited.push_back((pid, start_ns, now));
        }
    }

    /// Forgets processes that exited more than the linger time ago.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(pid, start, at)) = self.exited.front() {
            if now.duration_since(at) < EXITED_LINGER {
                break;
            }
            self.exited.pop_front();
            if self.procs.get(&pid).is_some_and(|p| self.same_start(p.start_ns, start)) {
                self.procs.remove(&pid);
            }
        }
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            live: self.procs.len() - self.exited.len().min(self.procs.len()),
            exited: self.exited.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, start: u64, comm: &str) -> Process {
        Process {
            pid,
            ppid,
            start_ns: start,
            comm: comm.into(),
            source: crate::process::ProcSource::Exec,
            ..Default::default()
        }
    }

    #[test]
    fn pid_reuse_does_not_inherit_the_old_ancestry() {
        let mut t = ProcessTable::new(100);
        t.on_exec(proc(10, 1, 1_000_000_000, "bash"));
        let child = t.on_fork(20, 2_000_000_000, 10, 1_000_000_000, "bash");
        assert_eq!(t.parent(&child).unwrap().comm, "bash");
        // pid 10 exits and is reused by an unrelated process.
        t.on_exit(10, 1_000_000_000, Instant::now());
        t.on_exec(proc(10, 1, 9_000_000_000, "nginx"));
        assert!(t.parent(&child).is_none(), "child must not claim the new pid 10 as parent");
    }

    #[test]
    fn fork_copies_the_parent_and_exit_lingers() {
        let mut t = ProcessTable::new(100);
        let mut p = proc(10, 1, 5, "sh");
        p.exe_path = "/usr/bin/dash".into();
        t.on_exec(p);
        let c = t.on_fork(11, 6, 10, 5, "sh");
        assert_eq!(c.exe_path, "/usr/bin/dash");
        let now = Instant::now();
        t.on_exit(11, 6, now);
        t.expire(now);
        assert!(t.get(11).is_some(), "exited entries stay for late events");
        t.expire(now + EXITED_LINGER + Duration::from_millis(1));
        assert!(t.get(11).is_none());
    }

    #[test]
    fn resync_adds_missed_processes_and_retires_vanished_ones() {
        let mut t = ProcessTable::new(100);
        // A process whose exit record was lost: no such pid exists.
        t.on_exec(proc(u32::MAX - 7, 1, 5, "ghost"));
        let me = std::process::id();
        assert!(t.get(me).is_none());
        let now = Instant::now();
        let (added, retired) = t.resync_from_proc(now);
        assert!(added >= 1 && retired == 1, "added {added}, retired {retired}");
        assert_eq!(t.get(me).unwrap().pid, me, "this test process, missed by the table, is back");
        t.expire(now + EXITED_LINGER + Duration::from_millis(1));
        assert!(t.get(u32::MAX - 7).is_none());
        // A second pass keeps what it already knows (other processes may come and go meanwhile:
        // tests run in parallel).
        let known = t.get(me).unwrap();
        t.resync_from_proc(now);
        assert!(Arc::ptr_eq(&known, &t.get(me).unwrap()), "a known process was replaced");
    }

    #[test]
    fn the_table_is_bounded_and_counts_evictions() {
        let mut t = ProcessTable::new(16);
        for pid in 0..100 {
            t.on_exec(proc(1000 + pid, 1, u64::from(pid) + 1, "x"));
        }
        assert!(t.stats().live + t.stats().exited <= 16);
        assert_eq!(t.stats().evictions, 84);
    }
}
