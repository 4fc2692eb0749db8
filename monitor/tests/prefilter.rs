//! The in-kernel filter on the real kernel: `monitor events --filter` (what `monitor run`
//! receives) beside an unfiltered `monitor events`, on files of the test's own directory and a
//! rules file naming them.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Options, canonical, is_open_of};

fn open(path: &str) {
    let _ = std::fs::File::open(path);
}

/// Waits until `d` has reported `n` opens of `path` by this process; returns how many it has.
fn wait_count(d: &Daemon, path: &str, n: usize) -> usize {
    let me = std::process::id();
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let c = d.matching(|v| is_open_of(v, me, path)).len();
        if c >= n || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(d: &Daemon, path: &str) -> usize {
    d.matching(|v| is_open_of(v, std::process::id(), path)).len()
}

#[test]
fn kernel_filter_dismisses_what_no_rule_needs_and_keeps_what_rules_need() {
    require_root!();
    let tmp = tempfile::Builder::new().prefix("monitor-prefilter").tempdir().unwrap();
    let t = canonical(tmp.path().to_str().unwrap());
    for d in ["watched", "other", "other2"] {
        std::fs::create_dir(Path::new(&t).join(d)).unwrap();
    }
    for f in ["watched/sync", "other/f", "other2/x", "secret"] {
        std::fs::write(Path::new(&t).join(f), "x").unwrap();
    }
    let rules = Path::new(&t).join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: Watched read\n  desc: d\n  condition: evt.type in (open, openat, openat2) and evt.is_open_read = true \
             and fd.num >= 0 and fd.name pmatch ({t}/watched)\n  output: o\n  priority: WARNING\n\
             - rule: Secret opened\n  desc: d\n  condition: evt.type in (open, openat, openat2) and evt.rawres >= 0 and fd.name = {t}/secret\n  \
             output: o\n  priority: WARNING\n"
        ),
    )
    .unwrap();
    let rules = rules.to_str().unwrap();
    let filtered = Daemon::start_with(Options {
        command: &["events", "--json", "--filter", "--rules", rules],
        ..Default::default()
    });
    let all = Daemon::start();
    let sync = format!("{t}/watched/sync");
    let other = format!("{t}/other/f");

    // A directory no rule watches: its first open reaches userspace and makes the verdict;
    // once that open was seen, the kernel dismisses the rest.
    open(&other);
    assert_eq!(wait_count(&filtered, &other, 1), 1, "the first open in a directory is reported");
    for _ in 0..200 {
        open(&other);
    }
    // A failed open where the rule needs success.
    let missing = format!("{t}/watched/missing");
    open(&missing);
    open(&sync);
    assert_eq!(wait_count(&filtered, &sync, 1), 1);
    assert_eq!(wait_count(&all, &sync, 1), 1);
    assert_eq!(wait_count(&all, &other, 201), 201, "the unfiltered stream has every open");
    assert_eq!(count(&filtered, &other), 1, "opens after the verdict are dismissed in the kernel");
    assert_eq!(wait_count(&all, &missing, 1), 1);
    assert_eq!(count(&filtered, &missing), 0, "no rule wants a failed open");

    // The dismissed directory moves under the watched one: its old verdict must not hide it.
    let moved_dir = format!("{t}/watched/moved");
    std::fs::rename(format!("{t}/other"), &moved_dir).unwrap();
    let moved = format!("{moved_dir}/f");
    for _ in 0..5 {
        open(&moved);
    }
    assert_eq!(wait_count(&filtered, &moved, 5), 5, "a renamed directory's opens are judged afresh");

    // A hard link to a file a rule names by path, in a directory whose verdict is Drop.
    let x = format!("{t}/other2/x");
    open(&x);
    assert_eq!(wait_count(&filtered, &x, 1), 1);
    let alias = format!("{t}/other2/alias");
    std::fs::hard_link(format!("{t}/secret"), &alias).unwrap();
    open(&x);
    open(&alias);
    assert_eq!(wait_count(&filtered, &alias, 1), 1, "a file named by a rule passes under another name");
    open(&sync);
    assert_eq!(wait_count(&filtered, &sync, 2), 2);
    assert_eq!(count(&filtered, &x), 1, "other files of that directory stay dismissed");

    let log = filtered.stop();
    let report = log.iter().rev().find(|l| l.contains("filtered in the kernel:")).expect("a final report");
    let n: u64 = report
        .split("filtered in the kernel: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n >= 200, "the report counts dismissed events: {report}");
    let all_log = all.stop();
    assert!(
        all_log.iter().any(|l| l.contains("filtered in the kernel: 0 (no filter in force")),
        "plain `monitor events` filters nothing:\n{}",
        all_log.join("\n")
    );
}
