//! Checks, before loading anything, that this host can run the sensors; each missing piece is
//! one sentence that says what to do.

use std::path::{Path, PathBuf};

use super::offsets::VMLINUX_BTF;
use super::programs::all_tracepoints;

const TRACEFS: &str = "/sys/kernel/tracing";
const TRACEFS_LEGACY: &str = "/sys/kernel/debug/tracing";

/// Capabilities without which the sensors cannot run, with why. Root has them all.
const REQUIRED: &[(u32, &str, &str)] = &[
    (39, "CAP_BPF", "load the kernel programs and create their maps"),
    (38, "CAP_PERFMON", "attach tracepoints and read kernel memory from the programs"),
];
/// Capabilities without which the daemon runs but knows less.
const WANTED: &[(u32, &str, &str)] = &[
    (
        19,
        "CAP_SYS_PTRACE",
        "read other users' /proc/<pid>/exe and cwd, so processes older than the daemon have them",
    ),
    (2, "CAP_DAC_READ_SEARCH", "read other users' /proc entries and a tracefs that is not world-readable"),
];

pub struct Findings {
    /// Each stops the daemon.
    pub problems: Vec<String>,
    /// Each makes events less complete.
    pub warnings: Vec<String>,
}

fn effective_caps() -> Option<u64> {
    Some(procfs::process::Process::myself().ok()?.status().ok()?.capeff)
}

/// Finds (or mounts) tracefs and returns its path.
pub fn tracefs() -> Result<PathBuf, String> {
    for p in [TRACEFS, TRACEFS_LEGACY] {
        if Path::new(p).join("events").is_dir() {
            return Ok(PathBuf::from(p));
        }
    }
    let mounted = nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    if let Err(err) = mounted {
        return Err(format!(
            "tracefs is not mounted and mounting it at {TRACEFS} failed ({err}): run \
             `mount -t tracefs tracefs {TRACEFS}` as root, or give the daemon CAP_SYS_ADMIN"
        ));
    }
    tracing::info!("mounted tracefs at {TRACEFS}");
    Ok(PathBuf::from(TRACEFS))
}

fn missing(caps: u64, list: &[(u32, &str, &str)]) -> Vec<String> {
    list.iter()
        .filter(|(bit, _, _)| caps & (1u64 << bit) == 0)
        .map(|(_, name, why)| format!("{name} (to {why})"))
        .collect()
}

/// Every problem found, one sentence each; no problems when the host is ready.
pub fn check() -> Findings {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if let Some(caps) = effective_caps() {
        let required = missing(caps, REQUIRED);
        if !required.is_empty() {
            problems.push(format!(
                "the daemon lacks {}: run it as root, or grant these capabilities (e.g. \
                 AmbientCapabilities= in its systemd unit)",
                required.join(", ")
            ));
        }
        for w in missing(caps, WANTED) {
            warnings.push(format!("the daemon lacks {w}"));
        }
    }
    if !Path::new(VMLINUX_BTF).exists() {
        problems.push(format!(
            "the kernel has no BTF at {VMLINUX_BTF}: it must be built with CONFIG_DEBUG_INFO_BTF=y \
             (Linux >= 5.8 on most distributions)"
        ));
    }
    match tracefs() {
        Err(e) => problems.push(e),
        Ok(root) => {
            for (category, name) in all_tracepoints() {
                let dir = root.join("events").join(category).join(name);
                if !dir.is_dir() {
                    problems.push(format!(
                        "the kernel has no tracepoint {category}:{name} ({} missing): it needs \
                         CONFIG_FTRACE_SYSCALLS",
                        dir.display()
                    ));
                }
            }
        }
    }
    Findings { problems, warnings }
}
