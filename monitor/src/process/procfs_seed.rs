//! Reading processes from /proc (with the procfs crate), for processes older than the daemon
//! (the seed, and resyncs after lost records) and for the rare event whose process the table
//! has not seen.

use std::collections::HashMap;

use monitor_common::FdType;
use procfs::process::FDTarget;

use super::{ProcSource, Process, StdioInfo};
use crate::event::text::from_os;

pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000 / procfs::ticks_per_second().max(1))
}

/// A socket of a network namespace, as its /proc/net tables list it.
#[derive(Clone, Debug)]
enum SocketEntry {
    Inet { local: std::net::SocketAddr, remote: std::net::SocketAddr },
    Unix { path: Option<String> },
}

/// The sockets of each network namespace seen in one pass over /proc, read once per
/// namespace however many processes' stdio are sockets.
#[derive(Default)]
pub struct Pass {
    sockets: HashMap<u64, HashMap<u64, SocketEntry>>,
}

fn mapped(a: std::net::SocketAddr) -> std::net::SocketAddr {
    match a.ip() {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::new(v4.into(), a.port()),
            None => a,
        },
        _ => a,
    }
}

impl Pass {
    fn sockets_of(&mut self, p: &procfs::process::Process) -> &HashMap<u64, SocketEntry> {
        // Processes of one namespace share the tables; one unknown namespace gets key 0.
        let netns = std::fs::metadata(format!("/proc/{}/ns/net", p.pid))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        self.sockets.entry(netns).or_insert_with(|| {
            let mut all = HashMap::new();
            let inet = p
                .tcp()
                .into_iter()
                .chain(p.tcp6())
                .flatten()
                .map(|e| (e.inode, e.local_address, e.remote_address));
            let udp = p
                .udp()
                .into_iter()
                .chain(p.udp6())
                .flatten()
                .map(|e| (e.inode, e.local_address, e.remote_address));
            for (inode, local, remote) in inet.chain(udp) {
                all.insert(inode, SocketEntry::Inet { local: mapped(local), remote: mapped(remote) });
            }
            for e in p.unix().into_iter().flatten() {
                all.insert(e.inode, SocketEntry::Unix { path: e.path.map(|p| from_os(p.as_os_str())) });
            }
            all
        })
    }

    /// One of fds 0-2 of a running process, with the same fd types the kernel sensor reports at
    /// exec, so a reverse shell that started before the daemon still shows a network socket as
    /// its stdin.
    fn stdio(&mut self, p: &procfs::process::Process, fd: i32) -> StdioInfo {
        let Ok(info) = p.fd_from_fd(fd) else { return StdioInfo::default() };
        let (fd_type, name) = match info.target {
            FDTarget::Socket(inode) => match self.sockets_of(p).get(&inode) {
                Some(SocketEntry::Inet { local, remote }) => {
                    let t = if remote.is_ipv4() { FdType::Ipv4 } else { FdType::Ipv6 };
                    (t, Some(format!("{local}->{remote}")))
                }
                Some(SocketEntry::Unix { path }) => (FdType::Unix, path.clone()),
                None => (FdType::Socket, None),
            },
            FDTarget::Pipe(_) => (FdType::Pipe, None),
            FDTarget::Path(path) => {
                let t = if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                    FdType::Directory
                } else {
                    FdType::File
                };
                (t, Some(from_os(path.as_os_str())))
            }
            _ => (FdType::Other, None),
        };
        StdioInfo { fd_type: Some(fd_type), name }
    }

    pub fn read(&mut self, pid: i32) -> Option<Process> {
        let p = procfs::process::Process::new(pid).ok()?;
        let stat = p.stat().ok()?;
        let status = p.status().ok();
        let argv = p.cmdline().unwrap_or_default();
        let exe = p.exe().map(|e| from_os(e.as_os_str())).unwrap_or_default();
        let (uid, euid, gid, egid) =
            status.as_ref().map(|s| (s.ruid, s.euid, s.rgid, s.egid)).unwrap_or_default();
        let stdio = [self.stdio(&p, 0), self.stdio(&p, 1), self.stdio(&p, 2)];
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
            env: environment(&p),
            env_truncated: false,
            cwd: p.cwd().ok().map(|c| from_os(c.as_os_str())),
            script: None,
            exe_ino: 0,
            uid,
            euid,
            gid,
            egid,
            loginuid: p.loginuid().unwrap_or(u32::MAX),
            caps: status.as_ref().map_or_else(Default::default, |s| super::Capabilities {
                effective: s.capeff,
                permitted: s.capprm,
                inheritable: s.capinh,
            }),
            // NSpid and its kin list the ids from the outermost namespace in; the last is the
            // process's own.
            vpid: innermost(status.as_ref().and_then(|s| s.nspid.as_deref())).unwrap_or(pid as u32),
            vpgid: innermost(status.as_ref().and_then(|s| s.nspgid.as_deref()))
                .unwrap_or(stat.pgrp.max(0) as u32),
            vsid: innermost(status.as_ref().and_then(|s| s.nssid.as_deref()))
                .unwrap_or(stat.session.max(0) as u32),
            pidns: 0,
            mntns: 0,
            tty: stat.tty_nr.max(0) as u32,
            stdio,
            source: ProcSource::Proc,
            ..Default::default()
        })
    }
}

fn innermost(ids: Option<&[i32]>) -> Option<u32> {
    ids?.last().map(|id| (*id).max(0) as u32)
}

/// A process's start time (boot-time ns, clock-tick precision), reading only its stat.
pub fn start_ns(pid: i32) -> Option<u64> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some(ticks_to_ns(stat.starttime))
}

pub fn all_pids() -> Vec<i32> {
    procfs::process::all_processes().map(|all| all.flatten().map(|p| p.pid).collect()).unwrap_or_default()
}

/// A running process's environment as its exec left it (/proc/<pid>/environ), `NAME=value`
/// each, sorted (the file's order is not kept by procfs).
fn environment(p: &procfs::process::Process) -> Vec<String> {
    let mut env: Vec<String> = p
        .environ()
        .map(|m| m.into_iter().map(|(k, v)| format!("{}={}", from_os(&k), from_os(&v))).collect())
        .unwrap_or_default();
    env.sort();
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_on_stdin_is_named_by_its_connection() {
        use std::os::fd::AsRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let me = procfs::process::Process::myself().unwrap();
        let mut pass = Pass::default();
        let s = pass.stdio(&me, client.as_raw_fd());
        assert_eq!(s.fd_type, Some(FdType::Ipv4));
        let want = format!("{}->{}", client.local_addr().unwrap(), listener.local_addr().unwrap());
        assert_eq!(s.name.as_deref(), Some(want.as_str()));
        assert_eq!(pass.sockets.len(), 1, "one namespace, read once");
        let _ = pass.stdio(&me, listener.as_raw_fd());
        assert_eq!(pass.sockets.len(), 1);
    }
}
