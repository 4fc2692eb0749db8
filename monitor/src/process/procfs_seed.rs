//! Reading a process from /proc, for processes older than the daemon (seed) and for the rare
//! event whose process the table has not seen.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Process, StdioInfo};

pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000 / procfs::ticks_per_second().max(1))
}

/// One of fds 0-2 of a running process, with the same fd type names the kernel sensor gives
/// at exec (Falco's: file, directory, pipe, ipv4, ipv6, unix), so a reverse shell that started
/// before the daemon still shows a network socket as its stdin.
fn stdio_info(pid: i32, fd: u32) -> StdioInfo {
    let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
        return StdioInfo::default();
    };
    let t = crate::event::text::from_os(target.as_os_str());
    if let Some(inode) =
        t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')).and_then(|i| i.parse().ok())
    {
        return socket_info(pid, inode);
    }
    if t.starts_with("pipe:") {
        return StdioInfo { fd_type: "pipe", name: None };
    }
    let fd_type = if std::fs::metadata(&target).is_ok_and(|m| m.is_dir()) { "directory" } else { "file" };
    StdioInfo { fd_type, name: Some(t) }
}

/// An address from /proc/net/{tcp,udp}{,6}: hex of the kernel's 32-bit words in host order.
fn proc_net_endpoint(field: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes())),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (chunk, w) in bytes.chunks_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

fn socket_info(pid: i32, inode: u64) -> StdioInfo {
    for table in ["tcp", "udp", "tcp6", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(9).and_then(|i| i.parse::<u64>().ok()) != Some(inode) {
                continue;
            }
            let (Some((lip, lport)), Some((rip, rport))) = (proc_net_endpoint(f[1]), proc_net_endpoint(f[2]))
            else {
                break;
            };
            let fd_type = if rip.is_ipv4() { "ipv4" } else { "ipv6" };
            return StdioInfo { fd_type, name: Some(format!("{lip}:{lport}->{rip}:{rport}")) };
        }
    }
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(6).and_then(|i| i.parse::<u64>().ok()) == Some(inode) {
                return StdioInfo { fd_type: "unix", name: f.get(7).map(|p| (*p).to_owned()) };
            }
        }
    }
    StdioInfo { fd_type: "socket", name: None }
}

pub fn read(pid: i32) -> Option<Process> {
    let p = procfs::process::Process::new(pid).ok()?;
    let stat = p.stat().ok()?;
    let status = p.status().ok();
    let argv = p.cmdline().unwrap_or_default();
    let exe = p.exe().map(|e| crate::event::text::from_os(e.as_os_str())).unwrap_or_default();
    let (uid, euid, gid, egid) =
        status.as_ref().map(|s| (s.ruid, s.euid, s.rgid, s.egid)).unwrap_or_default();
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
        cwd: p.cwd().ok().map(|c| crate::event::text::from_os(c.as_os_str())),
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
        stdio: [stdio_info(pid, 0), stdio_info(pid, 1), stdio_info(pid, 2)],
        source: "proc",
        ..Default::default()
    })
}

/// A process's start time (boot-time ns, clock-tick precision), reading only its stat.
pub fn start_ns(pid: i32) -> Option<u64> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some(ticks_to_ns(stat.starttime))
}

pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::proc_net_endpoint;

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_addresses() {
        // As printed on a little-endian host.
        assert_eq!(proc_net_endpoint("0100007F:1F90"), Some(("127.0.0.1".parse().unwrap(), 8080)));
        assert_eq!(
            proc_net_endpoint("00000000000000000000000001000000:0016"),
            Some(("::1".parse().unwrap(), 22))
        );
        assert_eq!(
            proc_net_endpoint("0000000000000000FFFF00000100007F:0050"),
            Some(("127.0.0.1".parse().unwrap(), 80))
        );
        assert_eq!(proc_net_endpoint("zz:1"), None);
        assert_eq!(proc_net_endpoint("0100007F"), None);
    }
}
