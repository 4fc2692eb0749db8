//! Project tasks: `cargo xtask setup | build | run | test | bench | package | check-deploy`.
//!
//! Everything a fresh Debian machine needs beyond the Rust toolchains is installed by `setup`,
//! which `run`, `test` and `bench` call first, so the README's two commands are all a new
//! developer or CI types. `package` builds the release tarball and .deb into target/package/ and
//! installs both into throwaway roots to check them.

mod bench;
mod bench_bpftrace;
mod bench_programs;
mod bench_sinks;
mod bench_sweep;
mod bench_syscalls;
mod deploy_check;
mod package;
mod setup;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing (Debian packages, nightly rust-src, bpf-linker); idempotent.
    Setup,
    /// Build the daemon (release) with its kernel programs.
    Build,
    /// Set up, build, and run `monitor run` with the bundled rules (needs root); extra arguments go
    /// to monitor instead (`cargo xtask run -- events --json`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run every test (the kernel tests need root and say so when skipped).
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Validate deploy/kubernetes and the Helm chart against the Kubernetes schemas, lint and
    /// render the chart, compare it with the manifests, check deploy/Dockerfile's pins.
    CheckDeploy,
    /// Set up, build, and run the benchmarks: syscalls with no monitor, `monitor run`, `monitor
    /// events` and a naive bpftrace script, the highest event rate without drops, the rule engine
    /// on recorded events (rulesets, and 10 to 1,000 rules), and alert delivery per sink.
    Bench(bench::BenchArgs),
    /// Set up, build, and pack the release binary, unit, default config and rules as a tarball
    /// and a .deb in target/package/, then install both into throwaway roots and check them.
    Package,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Runs cargo test, passing its output through, and ends with one line that totals every
/// test binary's results (cargo's own last lines are the doc-test binaries, usually empty).
/// Tests that skip themselves (no root, a tool missing) pass in cargo's eyes; they write their
/// names to the file `MONITOR_TEST_SKIPS` names, and count as skipped here.
fn run_tests(cmd: &mut Command) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let skips = std::env::temp_dir().join(format!("monitor-test-skips-{}", std::process::id()));
    let _ = std::fs::remove_file(&skips);
    let mut child = cmd
        .env("MONITOR_TEST_SKIPS", &skips)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(what), Some(n)) = (words.next(), words.next()) else { continue };
                let n: u64 = n.parse().unwrap_or(0);
                match what {
                    "passed" => passed += n,
                    "failed" => failed += n,
                    "ignored" => ignored += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    let skipped_lines = std::fs::read_to_string(&skips).unwrap_or_default();
    let _ = std::fs::remove_file(&skips);
    let skipped = skipped_lines.lines().count() as u64;
    for l in skipped_lines.lines() {
        println!("skipped: {l}");
    }
    let passed = passed.saturating_sub(skipped);
    println!("tests: {passed} passed, {failed} failed, {} skipped", ignored + skipped);
    if !status.success() {
        bail!("cargo test failed with {status}");
    }
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

pub fn build_release() -> Result<PathBuf> {
    run_checked(cargo().args(["build", "--release", "--package", "monitor", "--bin", "monitor"]))?;
    Ok(workspace_root().join("target/release/monitor"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::setup(),
        Task::Build => {
            setup::setup()?;
            build_release().map(|_| ())
        }
        Task::Run { args } => {
            setup::setup()?;
            let bin = build_release()?;
            if !is_root() {
                bail!("the daemon loads eBPF programs and needs root: run `sudo -E cargo xtask run`");
            }
            let args = if args.is_empty() {
                vec!["run".to_owned(), "--format".to_owned(), "text".to_owned()]
            } else {
                args
            };
            eprintln!("xtask: running {} {}", bin.display(), args.join(" "));
            run_checked(Command::new(bin).args(args))
        }
        Task::Test { args } => {
            setup::setup()?;
            setup::test_runtimes()?;
            deploy_check::run().context("cargo xtask check-deploy")?;
            if !is_root() {
                eprintln!(
                    "xtask: WARNING: not root; the tests that load kernel programs will be SKIPPED. \
                     Run `sudo -E cargo xtask test` to run them."
                );
            }
            run_checked(cargo().args(["fmt", "--all", "--", "--check"]))
                .context("the code is not formatted: run `cargo fmt --all`")?;
            run_tests(cargo().args(["test", "--workspace", "--exclude", "monitor-ebpf"]).args(args))
        }
        Task::Package => package::run(),
        Task::CheckDeploy => deploy_check::run(),
        Task::Bench(args) => {
            setup::setup()?;
            // The sink benchmark delivers to rsyslog and nats-server.
            setup::test_runtimes()?;
            let bin = build_release()?;
            bench::run(&bin, &args)
        }
    }
}
