//! io_uring requests between their submission and their completion. The kernel reports a
//! request at submission (what the caller asked for) and again at completion (the result, and
//! for an open the file it opened, resolved); the event at submission waits here for the
//! completion's record and leaves as one event. A completion that is slow to come (an open of
//! a FIFO, a connect to a silent host) does not hold the event back for long: it leaves with
//! its result unknown, and a later completion of an open still reports the file it opened.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{Detail, Event, OpenInfo};

/// How long an event waits for its request's completion.
pub const COMPLETION_WAIT: Duration = Duration::from_millis(500);
/// Requests awaited at once; the kernel's own table holds as many.
const MAX_AWAITED: usize = 8192;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompletionStats {
    /// Events that left without their result (completion slower than [`COMPLETION_WAIT`], or
    /// more requests in flight than are awaited).
    pub unanswered: u64,
    /// Completions whose submission had left already (or was lost in the kernel): an open's is
    /// reported on its own, with the file it opened; a connect's or send's result is counted.
    pub late: u64,
}

/// What the completion of a request tells.
pub enum Completion {
    /// An open's result, and the file it opened when it succeeded and the kernel resolved it.
    Open {
        res: i64,
        opened: Option<OpenInfo>,
    },
    Net {
        res: i64,
    },
}

#[derive(Default)]
pub struct AwaitedCompletions {
    awaited: HashMap<u64, Event>,
    /// Submission order, with the time each must leave by; entries whose request completed
    /// are skipped when they come up.
    deadlines: VecDeque<(Instant, u64)>,
    pub stats: CompletionStats,
}

impl AwaitedCompletions {
    /// Holds the event of request `req` until its completion. Returns an event that had to
    /// leave early to make room.
    pub fn wait(&mut self, req: u64, mut ev: Event, now: Instant) -> Option<Event> {
        ev.result_unknown = true;
        let evicted = if self.awaited.len() >= MAX_AWAITED { self.pop_oldest() } else { None };
        // The kernel reuses a request's memory once it completed: a second submission at the
        // same address means the first one's completion is not coming.
        let replaced = self.awaited.insert(req, ev);
        self.deadlines.push_back((now + COMPLETION_WAIT, req));
        if let Some(old) = replaced {
            self.stats.unanswered += 1;
            return Some(old);
        }
        evicted
    }

    fn pop_oldest(&mut self) -> Option<Event> {
        while let Some((_, req)) = self.deadlines.pop_front() {
            if let Some(ev) = self.awaited.remove(&req) {
                self.stats.unanswered += 1;
                return Some(ev);
            }
        }
        None
    }

    /// The event of request `req` with its result, if it is still waiting.
    pub fn complete(&mut self, req: u64, c: Completion) -> Option<Event> {
        let Some(mut ev) = self.awaited.remove(&req) else {
            self.stats.late += 1;
            return None;
        };
        ev.result_unknown = false;
        match (c, &mut ev.detail) {
            (Completion::Open { res, opened }, Detail::Open(info)) => {
                ev.res = res;
                if let Some(o) = opened {
                    // The file opened, resolved by the kernel: the caller's string may have
                    // named it through a symlink or `..`.
                    info.path = o.path;
                    info.resolved = true;
                    info.truncated = o.truncated;
                    info.ino = o.ino;
                    info.dev = o.dev;
                }
            }
            (Completion::Net { res }, _) | (Completion::Open { res, .. }, _) => ev.res = res,
        }
        Some(ev)
    }

    /// Events whose completion has not come in time (all of them when `all`).
    pub fn expired(&mut self, now: Instant, all: bool, out: &mut Vec<Event>) {
        while let Some(&(deadline, req)) = self.deadlines.front() {
            if !all && deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(ev) = self.awaited.remove(&req) {
                self.stats.unanswered += 1;
                out.push(ev);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.awaited.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_common::{Call, EventType, Via};

    fn open_event(path: &str) -> Event {
        Event {
            evt_type: EventType::Openat,
            via: Via::IoUring,
            call: Call::IoUringOpenat,
            num: 0,
            time_ns: 0,
            cpu: 0,
            pid: 1,
            tid: 1,
            uid: 0,
            gid: 0,
            res: 0,
            result_unknown: false,
            cgroup_id: 1,
            cgroup_path: None,
            container: None,
            process: None,
            ancestors: Vec::new(),
            detail: Detail::Open(OpenInfo { path: path.to_owned(), ..OpenInfo::default() }),
        }
    }

    fn path(ev: &Event) -> &str {
        match &ev.detail {
            Detail::Open(o) => &o.path,
            _ => panic!("not an open"),
        }
    }

    #[test]
    fn a_completion_brings_the_result_and_the_resolved_file() {
        let mut a = AwaitedCompletions::default();
        let now = Instant::now();
        assert!(a.wait(7, open_event("/tmp/link"), now).is_none());
        let resolved = OpenInfo { path: "/etc/shadow".into(), ino: 42, ..OpenInfo::default() };
        let ev = a.complete(7, Completion::Open { res: 5, opened: Some(resolved) }).unwrap();
        assert_eq!((ev.res, path(&ev), ev.result_unknown), (5, "/etc/shadow", false));
        let Detail::Open(o) = &ev.detail else { unreachable!() };
        assert!(o.resolved);
        assert_eq!(a.len(), 0);
        // A failed open keeps the caller's string.
        a.wait(8, open_event("/nope"), now);
        let ev = a.complete(8, Completion::Open { res: -2, opened: None }).unwrap();
        assert_eq!((ev.res, path(&ev)), (-2, "/nope"));
    }

    #[test]
    fn an_unanswered_request_leaves_with_its_result_unknown_and_a_late_completion_is_counted() {
        let mut a = AwaitedCompletions::default();
        let now = Instant::now();
        a.wait(1, open_event("/fifo"), now);
        let mut out = Vec::new();
        a.expired(now, false, &mut out);
        assert!(out.is_empty(), "left before its time");
        a.expired(now + COMPLETION_WAIT, false, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].result_unknown);
        assert!(a.complete(1, Completion::Net { res: 0 }).is_none());
        assert_eq!(a.stats, CompletionStats { unanswered: 1, late: 1 });
    }

    #[test]
    fn a_reused_request_address_lets_the_first_event_go() {
        let mut a = AwaitedCompletions::default();
        let now = Instant::now();
        a.wait(1, open_event("/a"), now);
        let first = a.wait(1, open_event("/b"), now).expect("the first one leaves");
        assert_eq!(path(&first), "/a");
        let mut out = Vec::new();
        a.expired(now, true, &mut out);
        assert_eq!(out.iter().map(path).collect::<Vec<_>>(), ["/b"]);
    }

    #[test]
    fn a_full_table_lets_the_oldest_go_first() {
        let mut a = AwaitedCompletions::default();
        let now = Instant::now();
        for req in 0..MAX_AWAITED as u64 {
            assert!(a.wait(req, open_event(&format!("/{req}")), now).is_none());
        }
        let out = a.wait(u64::MAX, open_event("/new"), now).expect("room is made");
        assert_eq!(path(&out), "/0");
        assert_eq!(a.len(), MAX_AWAITED);
    }
}
