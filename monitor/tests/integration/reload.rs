//! Live reload on SIGHUP and on file changes: a broken file keeps the old rules, a good one is
//! swapped in atomically under load.

use std::time::Duration;

use crate::common::{self, Daemon, Markers, open_markers};

#[test]
fn reload_keeps_the_old_rules_on_error_and_swaps_atomically_under_load() {
    require_root!();
    let m = Markers::new();
    let rules = m.write_rule("rules.d/test.yaml", "Reload test old rule");
    let rules_dir = rules.parent().unwrap();
    let config = m.dir.path().join("monitor.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [{}]\nrate_limit: {{per_second: 0}}\nreload: {{debounce_ms: 200}}\n",
            rules_dir.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_run(&["--config", config.to_str().unwrap()]);
    // A steady load: one marker open every 2 ms, numbered, for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load = {
        let (stop, opened, markers) = (stop.clone(), opened.clone(), m.markers.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = opened.load(std::sync::atomic::Ordering::Relaxed);
                open_markers(&markers, i, i + 1);
                opened.store(i + 1, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let count = |rule: &str| d.matching(|v| common::rule(v) == rule).len();
    d.wait_for("old rule fires", |v| common::rule(v) == "Reload test old rule");

    // A broken file: the reload fails with its location, and the old rule keeps firing.
    std::fs::write(
        &rules,
        "- rule: Broken\n  condition: evt.type = open and (\n  output: x\n  priority: WARNING\n  desc: x\n",
    )
    .unwrap();
    let failed = d.wait_for_log("reload (changed");
    let located = d.wait_for_log(&format!("{}:2:", rules.display()));
    assert!(failed.contains("failed"), "{failed}");
    assert!(!located.is_empty());
    let before = count("Reload test old rule");
    std::thread::sleep(Duration::from_millis(500));
    assert!(count("Reload test old rule") > before, "the old rule stopped firing after a failed reload");

    // A good file: the new rule fires, the old one stops.
    m.write_rule("rules.d/test.yaml", "Reload test new rule");
    d.wait_for_log("rules reloaded: the new set is in force");
    let swapped_at = opened.load(std::sync::atomic::Ordering::Relaxed);
    d.wait_for("new rule fires", |v| common::rule(v) == "Reload test new rule");
    std::thread::sleep(Duration::from_millis(300));

    // SIGHUP reloads too.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    d.wait_for_log("SIGHUP: reloading");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let total = opened.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));

    // Every open raised exactly one alert, from one rule or the other: none lost in the swaps.
    let mut seen = vec![0u32; total as usize];
    let mut old_after_swap = Vec::new();
    for v in d.matching(|v| common::rule(v).starts_with("Reload test")) {
        let name = common::field(&v, "fd.name").as_str().unwrap().to_owned();
        let i: usize = name.rsplit('m').next().unwrap().parse().unwrap();
        seen[i] += 1;
        if common::rule(&v) == "Reload test old rule" && i as u64 > swapped_at {
            old_after_swap.push(i);
        }
    }
    let missing: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let doubled: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    assert!(missing.is_empty(), "{} of {total} opens raised no alert: {missing:?}", missing.len());
    assert!(doubled.is_empty(), "opens that raised two alerts: {doubled:?}");
    assert!(old_after_swap.is_empty(), "the removed rule fired after the swap: {old_after_swap:?}");
    let (_, metrics) = d.http_get("/metrics");
    assert_eq!(
        common::metric(&metrics, "monitor_rule_reloads_total{result=\"failure\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        common::metric(&metrics, "monitor_rule_reloads_total{result=\"success\"}"),
        Some(2.0),
        "{metrics}"
    );
    d.stop();
}
