//! `monitor rules` and `monitor replay`, no root needed: Falco's stock rulesets load, errors are
//! located and fail the check, and recorded events raise the alerts they should.

use crate::common;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn monitor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(args)
        .env("MONITOR_LOG_FORMAT", "text")
        .output()
        .expect("run monitor")
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (loaded, skipped, errors) from `monitor rules check`'s summary line.
fn check_counts(out: &Output) -> (u64, u64, u64) {
    let stdout = utf8(&out.stdout);
    let line = stdout.lines().find(|l| l.contains("rules loaded")).unwrap_or_else(|| {
        panic!("no summary:\n{stdout}\n{}", utf8(&out.stderr));
    });
    let num = |before: &str| -> u64 {
        let head = line.split(before).next().unwrap();
        head.split(|c: char| !c.is_ascii_digit()).rfind(|s| !s.is_empty()).unwrap().parse().unwrap()
    };
    (num(" rules loaded"), num(" skipped"), num(" errors"))
}

#[test]
fn falco_stock_rulesets_load_without_errors() {
    let dir = common::falco_dir();
    let stable = dir.join("falco_rules.yaml");
    let incubating = dir.join("falco-incubating_rules.yaml");
    let sandbox = dir.join("falco-sandbox_rules.yaml");
    // Every rule of Falco rules 5.1.0 loads: none is skipped for a field or event type the
    // monitor lacks.
    let cases: [(&str, Vec<&PathBuf>, u64); 4] = [
        ("falco_rules.yaml", vec![&stable], 25),
        ("falco-incubating_rules.yaml", vec![&incubating], 31),
        ("falco-sandbox_rules.yaml", vec![&sandbox], 37),
        ("all three in Falco's order", vec![&stable, &incubating, &sandbox], 93),
    ];
    for (name, files, all) in cases {
        let mut args = vec!["rules", "check"];
        args.extend(files.iter().map(|p| p.to_str().unwrap()));
        let out = monitor(&args);
        let (loaded, skipped, errors) = check_counts(&out);
        eprintln!("{name}: {loaded} rules loaded, {skipped} skipped");
        assert!(out.status.success(), "{name}: check failed:\n{}", utf8(&out.stderr));
        assert_eq!(errors, 0, "{name}:\n{}", utf8(&out.stderr));
        let stderr = utf8(&out.stderr);
        assert_eq!((loaded, skipped), (all, 0), "{name}: every rule loads:\n{stderr}");
        assert!(!stderr.contains("skipped:"), "{name}:\n{stderr}");
    }
}

#[test]
fn user_rules_on_top_of_falco_rules_use_its_macros_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("falco_rules.local.yaml");
    std::fs::write(
        &local,
        "- list: my_shells\n  items: [shell_binaries, nu]\n\
         - rule: My shell rule\n  desc: uses Falco's macros\n  condition: spawned_process and proc.name in (my_shells) and not user_known_shell_spawn_activities\n  output: shell %proc.name\n  priority: NOTICE\n\
         - macro: user_known_shell_spawn_activities\n  condition: (proc.pname = make)\n  override:\n    condition: replace\n\
         - rule: Terminal shell in container\n  enabled: false\n",
    )
    .unwrap();
    let falco = common::falco_dir().join("falco_rules.yaml");
    let out = monitor(&["rules", "list", "--json", falco.to_str().unwrap(), local.to_str().unwrap()]);
    assert!(out.status.success(), "{}", utf8(&out.stderr));
    let rules: Vec<Value> = utf8(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find =
        |name: &str| rules.iter().find(|r| r["rule"] == name).unwrap_or_else(|| panic!("{name} not listed"));
    assert_eq!(find("My shell rule")["status"], "enabled");
    assert_eq!(find("My shell rule")["event_types"], serde_json::json!(["execve", "execveat"]));
    assert_eq!(find("Terminal shell in container")["status"], "disabled");
    assert_eq!(find("Directory traversal monitored file read")["status"], "enabled");
    assert_eq!(find("PTRACE attached to process")["event_types"], serde_json::json!(["ptrace"]));
}

#[test]
fn errors_fail_the_check_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: Broken\n  desc: d\n  condition: proc.name = bash and not_a_macro\n  output: o\n  priority: WARNING\n\
         - rule: Fine\n  desc: d\n  condition: proc.name = zsh\n  output: o\n  priority: WARNING\n",
    )
    .unwrap();
    let out = monitor(&["rules", "check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = utf8(&out.stderr);
    assert!(stderr.contains(&format!("{}:3:35: unknown macro `not_a_macro`", bad.display())), "{stderr}");
    assert!(stderr.contains("3 |   condition: proc.name = bash and not_a_macro"), "{stderr}");
    // One bad rule does not hide the others.
    assert_eq!(check_counts(&out), (1, 0, 1));
}

#[test]
fn bundled_rules_load_cleanly() {
    let out = monitor(&["rules", "check", "bundled"]);
    assert!(out.status.success(), "{}", utf8(&out.stderr));
    let (loaded, skipped, errors) = check_counts(&out);
    assert!(loaded >= 20, "{loaded}");
    assert_eq!((skipped, errors), (0, 0), "{}", utf8(&out.stderr));
    // Every bundled rule carries a MITRE ATT&CK technique id.
    let out = monitor(&["rules", "list", "--json", "bundled"]);
    for line in utf8(&out.stdout).lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let tags = r["tags"].as_array().unwrap();
        assert!(tags.iter().any(|t| t.as_str().unwrap().starts_with('T')), "{line}");
    }
}

#[test]
fn replay_raises_the_alerts_recorded_events_call_for() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/recorded_events.jsonl");
    let out = monitor(&["replay", fixture, "--rules", "bundled"]);
    assert!(out.status.success(), "{}", utf8(&out.stderr));
    let alerts: Vec<Value> = utf8(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut rules: Vec<&str> = alerts.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    rules.sort();
    rules.dedup();
    // The recording: cat /etc/shadow, cat /etc/hostname, id, uname, a connect to :4444,
    // `echo hi | tr`, ls /etc, and `curl file:///dev/null | sh`.
    assert_eq!(
        rules,
        [
            "Connection to a port used by miners or reverse shells",
            "Downloaded script piped into a shell",
            "Sensitive file read by an unexpected program"
        ],
        "{}",
        utf8(&out.stdout)
    );
    let shadow = alerts.iter().find(|a| a["rule"] == "Sensitive file read by an unexpected program").unwrap();
    assert_eq!(shadow["output_fields"]["fd.name"], "/etc/shadow");
    assert_eq!(shadow["output_fields"]["proc.name"], "cat");
    assert_eq!(shadow["source"], "syscall");
    assert_eq!(shadow["priority"], "Warning");
    assert!(shadow["time"].as_str().unwrap().ends_with('Z'));
    assert!(utf8(&out.stderr).contains("rule evaluations/s"));
}

#[test]
fn a_bad_config_is_refused_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.yaml");
    std::fs::write(&config, "rules: [bundled]\nrate_limit:\n  per_second: 10\n  burts: 5\n").unwrap();
    for args in [vec!["rules", "check"], vec!["replay", "/dev/null"], vec!["run"]] {
        let mut args = args.clone();
        args.extend(["--config", config.to_str().unwrap()]);
        let out = monitor(&args);
        assert!(!out.status.success(), "{args:?} accepted a bad config");
        let stderr = utf8(&out.stderr);
        assert!(
            stderr.contains(&format!("{}:4:3", config.display())) && stderr.contains("burts"),
            "{args:?}: {stderr}"
        );
        // Refused before anything was loaded or attached.
        assert!(!stderr.contains("sensors attached"), "{stderr}");
    }
    // A rules path the config names must exist.
    std::fs::write(&config, "rules: [/nonexistent/rules.yaml]\n").unwrap();
    let out = monitor(&["rules", "check", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        utf8(&out.stderr).contains("/nonexistent/rules.yaml: cannot read rules"),
        "{}",
        utf8(&out.stderr)
    );
}
