//! The in-kernel filter on the real kernel: `monitor events --filter` (what `monitor run`
//! receives) beside an unfiltered `monitor events`, on files of the test's own directory and a
//! rules file naming them.

use crate::common;

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

/// A directory of the test's own, removed with the value, and its canonical path (what the
/// kernel reports).
fn test_dir(prefix: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let path = canonical(tmp.path().to_str().unwrap());
    (tmp, path)
}

fn count(d: &Daemon, path: &str) -> usize {
    d.matching(|v| is_open_of(v, std::process::id(), path)).len()
}

#[test]
fn kernel_filter_dismisses_what_no_rule_needs_and_keeps_what_rules_need() {
    require_root!();
    let (_tmp, t) = test_dir("monitor-prefilter");
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

    // The same through io_uring, run by an io-wq worker (IOSQE_ASYNC) as a slow rename would be.
    let other3 = format!("{t}/other3");
    std::fs::create_dir(&other3).unwrap();
    std::fs::write(format!("{other3}/g"), "x").unwrap();
    let before = format!("{other3}/g");
    open(&before);
    // The write that made the file and the first read: each class's first open is judged.
    assert_eq!(wait_count(&filtered, &before, 2), 2, "the first opens in other3 are reported");
    open(&before);
    let moved3 = format!("{t}/watched/moved3");
    let ring = common::raw::Ring::new().expect("io_uring_setup");
    let from = std::ffi::CString::new(other3.clone()).unwrap();
    let to = std::ffi::CString::new(moved3.clone()).unwrap();
    let res = ring.run(common::raw::Sqe {
        opcode: common::raw::IORING_OP_RENAMEAT,
        flags: common::raw::IOSQE_ASYNC,
        fd: common::raw::AT_FDCWD,
        addr: from.as_ptr() as u64,
        len: common::raw::AT_FDCWD as u32,
        off: to.as_ptr() as u64,
        ..Default::default()
    });
    assert_eq!(res, 0, "IORING_OP_RENAMEAT failed");
    assert!(Path::new(&moved3).is_dir(), "the ring did not rename the directory");
    let after = format!("{moved3}/g");
    for _ in 0..5 {
        open(&after);
    }
    assert_eq!(wait_count(&filtered, &after, 5), 5, "a directory renamed through io_uring is judged afresh");
    assert_eq!(
        count(&filtered, &before),
        2,
        "the second read in other3 was dismissed (its verdict was Drop)"
    );

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

/// A rules file with one rule over a list of `n` file names in `dir` (`fd.name in (big)`), and
/// a second rule naming `n` ports: more than the kernel's sets hold by default.
fn big_rules(path: &Path, dir: &str, n: usize, rule: &str) {
    use std::fmt::Write as _;
    let mut text = String::from("- list: big_paths\n  items: [");
    for i in 0..n {
        let _ = write!(text, "{}{dir}/f{i}", if i > 0 { ", " } else { "" });
    }
    text.push_str("]\n- list: big_ports\n  items: [");
    for i in 0..n.min(60000) {
        let _ = write!(text, "{}{}", if i > 0 { ", " } else { "" }, 1024 + i);
    }
    let _ = write!(
        text,
        "]\n- rule: {rule}\n  desc: d\n  condition: evt.type in (open, openat, openat2) and fd.name in (big_paths)\n  \
         output: \"{rule} %fd.name\"\n  priority: WARNING\n\
         - rule: {rule} port\n  desc: d\n  condition: evt.type = connect and fd.sport in (big_ports)\n  \
         output: \"{rule} port %fd.sport\"\n  priority: WARNING\n"
    );
    std::fs::write(path, text).unwrap();
}

/// Opens `dir/f{i}` until the daemon raises `rule` for it (the first open of a directory may
/// come before its verdict); panics after TIMEOUT.
fn wait_alert(d: &Daemon, rule: &str, dir: &str, i: usize) {
    let path = format!("{dir}/f{i}");
    std::fs::write(&path, "x").unwrap();
    let me = std::process::id();
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        open(&path);
        let got = d.matching(|v| {
            common::rule(v) == rule
                && common::field(v, "fd.name").as_str() == Some(&path)
                && common::field(v, "proc.pid").as_u64() == Some(u64::from(me))
        });
        if !got.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "no `{rule}` alert for {path}:\n{}", d.stderr().join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rules_that_overflow_the_kernel_sets_widen_the_filter_at_start_and_on_reload() {
    require_root!();
    let (_tmp, t) = test_dir("monitor-bigsets");
    let dir = format!("{t}/names");
    std::fs::create_dir(&dir).unwrap();
    let rules = Path::new(&t).join("rules.yaml");
    big_rules(&rules, &dir, 5000, "Big list 5k");
    let config = Path::new(&t).join("monitor.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [{}]\nrate_limit: {{per_second: 0}}\nreload: {{watch: false}}\nself_alerts: {{heartbeat_interval_s: 0}}\n",
            rules.display()
        ),
    )
    .unwrap();
    // 5,000 names and ports: more than the default 4,096 entries of each set.
    let d = Daemon::start_run(&["--config", config.to_str().unwrap()]);
    let widened = d.wait_for_log("in-kernel filter widened");
    assert!(widened.contains("kernel_filter_sets.leaf_names"), "{widened}");
    d.wait_for_log("kernel_filter_sets.ports");
    // The first and the last of the list, and one a set of 4,096 could not have held.
    for i in [0, 4999, 4500] {
        wait_alert(&d, "Big list 5k", &dir, i);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (_, body) = d.http_get("/metrics");
        if common::metric(&body, "monitor_kernel_filter_widened{set=\"leaf_names\"}") == Some(1.0)
            || Instant::now() > deadline
        {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (set, want) in [("leaf_names", 1.0), ("ports", 1.0), ("file_identities", 0.0)] {
        let sample = format!("monitor_kernel_filter_widened{{set=\"{set}\"}}");
        assert_eq!(common::metric(&metrics, &sample), Some(want), "{sample}:\n{metrics}");
    }

    // A reload into 100,000 names keeps the daemon running, and the new rule fires.
    big_rules(&rules, &dir, 100_000, "Big list 100k");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    d.wait_for_log("rules reloaded: the new set is in force");
    for i in [99_999, 0, 50_000] {
        wait_alert(&d, "Big list 100k", &dir, i);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (_, metrics) = d.http_get("/metrics");
    assert_eq!(
        common::metric(&metrics, "monitor_rule_reloads_total{result=\"success\"}"),
        Some(1.0),
        "{metrics}"
    );
    let stopped = d.stop_and_collect();
    assert!(stopped.iter().any(|v| common::rule(v) == "Monitor stopped"), "no clean stop");

    // Sets made large enough hold 5,000 names: nothing is widened.
    big_rules(&rules, &dir, 5000, "Big list 5k");
    let d = Daemon::start_run(&[
        "--config",
        config.to_str().unwrap(),
        "--set",
        "kernel_filter_sets={leaf_names: 8192, ports: 8192, file_identities: 64}",
    ]);
    wait_alert(&d, "Big list 5k", &dir, 4999);
    let log = d.stop().join("\n");
    assert!(!log.contains("in-kernel filter widened"), "{log}");
}

#[test]
fn rules_that_overflow_the_kernel_sets_start_at_100k_names() {
    require_root!();
    let (_tmp, t) = test_dir("monitor-bigsets");
    let dir = format!("{t}/names");
    std::fs::create_dir(&dir).unwrap();
    let rules = Path::new(&t).join("rules.yaml");
    big_rules(&rules, &dir, 100_000, "Big list at start");
    let d = Daemon::start_run(&["--rules", rules.to_str().unwrap(), "--set", "rate_limit.per_second=0"]);
    d.wait_for_log("in-kernel filter widened");
    for i in [0, 99_999] {
        wait_alert(&d, "Big list at start", &dir, i);
    }
    d.stop();
}

/// struct open_how, as openat2 takes it; the flags word is rewritten by another thread.
#[repr(C)]
struct OpenHow {
    flags: std::sync::atomic::AtomicU64,
    mode: u64,
    resolve: u64,
}

#[test]
fn openat2_flags_rewritten_during_the_call_do_not_hide_a_read() {
    require_root!();
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_tmp, t) = test_dir("monitor-prefilter");
    let target = format!("{t}/target");
    std::fs::write(&target, "x").unwrap();
    let rules = Path::new(&t).join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: Target read\n  desc: d\n  condition: evt.type = openat2 and evt.is_open_read = true and fd.name = {target}\n  \
             output: o\n  priority: WARNING\n"
        ),
    )
    .unwrap();
    let d = Daemon::start_with(Options {
        command: &["events", "--json", "--filter", "--rules", rules.to_str().unwrap()],
        ..Default::default()
    });
    // openat2 copies open_how at entry; the exit program reads it again from user memory. A
    // thread flipping its flags between a read and O_PATH makes the two disagree: a real read
    // must not be dismissed as an O_PATH open.
    let how = OpenHow { flags: 0.into(), mode: 0, resolve: 0 };
    let path = std::ffi::CString::new(target.clone()).unwrap();
    let stop = AtomicBool::new(false);
    let mut reads = 0usize;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                how.flags.store(libc::O_PATH as u64, Ordering::Relaxed);
                how.flags.store(libc::O_RDONLY as u64, Ordering::Relaxed);
            }
        });
        for _ in 0..3000 {
            // SAFETY: the path and open_how outlive the call.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    &how as *const OpenHow,
                    24usize,
                )
            } as i32;
            if fd >= 0 {
                // What the kernel really opened, whatever the flags say now.
                if unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_PATH == 0 {
                    reads += 1;
                }
                unsafe { libc::close(fd) };
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(reads > 0, "no openat2 read the file");
    let me = std::process::id();
    let read_of = |v: &serde_json::Value| {
        is_open_of(v, me, &target) && common::s(v, "evt.type") == "openat2" && v["evt.is_open_read"] == true
    };
    let deadline = Instant::now() + common::TIMEOUT;
    let mut reported = 0;
    while Instant::now() < deadline {
        reported = d.matching(read_of).len();
        if reported >= reads {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        reported, reads,
        "every openat2 that read the file is reported as a read, however its flags were rewritten"
    );
}
