//! Reading a process from /proc, for processes older than the daemon (seed) and for the rare
//! event whose process the table has not seen.

use super::{Process, StdioInfo};

pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000 / procfs::ticks_per_second().max(1))
}

fn stdio_info(pid: i32, fd: u32) -> StdioInfo {
    let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
        return StdioInfo::default();
    };
    let t = target.to_string_lossy();
    let fd_type = if t.starts_with("socket:") {
        "socket"
    } else if t.starts_with("pipe:") {
        "pipe"
    } else if t.starts_with("anon_inode:") {
        "anon"
    } else if t.starts_with("/dev/pts/") || t.starts_with("/dev/tty") || t == "/dev/console" {
        "tty"
    } else {
        "file"
    };
    StdioInfo { fd_type, name: Some(t.into_owned()) }
}


pub fn read(pid: i32) -> Option<Process> {
    let p = procfs::process::Process::new(pid).ok()?;
    let stat = p.stat().ok()?;
    let status = p.status().ok();
    let argv = p.cmdline().unwrap_or_default();
    let exe = p.exe().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    let (uid, euid, gid, egid) = status
        .as_ref()
        .map(|s| (s.ruid, s.euid, s.rgid, s.egid))
        .unwrap_or_default();
    Some(Process {
        pid: pid as u32,
        start_ns: ticks_to_ns(stat.starttime),
        ppid: stat.ppid.max(0) as u32,
        parent_start_ns: 0,
        comm: stat.comm.clone(),
        exe_from_memfd: exe.starts_with("/memfd:"),
        exe_unlinked: exe.ends_with(" (deleted)"),
        exe_path: exe,
        argv,
        argv_truncated: false,
        cwd: p.cwd().ok().map(|c| c.to_string_lossy().into_owned()),
        script: None,
        exe_ino: 0,
        uid,
        euid,
        gid,
        egid,
        loginuid: p.loginuid().unwrap_or(u32::MAX),
        vpid: pid as u32,
        pidns: 0,
        mntns: 0,
        tty: stat.tty_nr.max(0) as u32,
        cgroup_id: 0,
        stdio: [stdio_info(pid, 0), stdio_info(pid, 1), stdio_info(pid, 2)],
        source: "proc",
        ..Default::default()
    })
}

pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}
