//! Config errors name the file position or the override that caused them.

#[test]
fn config_errors_name_the_file_position_or_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.yaml");
    std::fs::write(&config, "rate_limit:\n  burst: 5\nmetrics:\n  adress: 127.0.0.1:1\n").unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_monitor"))
            .arg("run")
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with a bad config");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--config", config.to_str().unwrap()], &[]);
    assert!(err.contains(&format!("{}:4:3", config.display())) && err.contains("adress"), "{err}");
    let err = run(&["--set", "rate_limit.burst=lots"], &[]);
    assert!(err.contains("--set rate_limit.burst=lots"), "{err}");
    let err = run(&[], &[("MONITOR_METRICS__ADDRESS", "nowhere")]);
    assert!(err.contains("MONITOR_METRICS__ADDRESS"), "{err}");
    let err = run(&["--set", "ratelimit.burst=1"], &[]);
    assert!(err.contains("unknown key `ratelimit`"), "{err}");
    let err = run(&["--set", "min_priority=loud"], &[]);
    assert!(err.contains("unknown priority `loud`"), "{err}");
}
