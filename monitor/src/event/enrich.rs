//! Raw kernel records -> enriched events: keeps the process table and the cgroup cache current
//! and attaches the process, its ancestry and its container to each event.

use std::time::Instant;

use monitor_common::{
    CALL_PATH_TRUNCATED, CALL_PATH0_HAS_BASE, CALL_PATH1_HAS_BASE, Call, EXEC_ARGV_TRUNCATED,
    EXEC_ENV_TRUNCATED, EXEC_EXE_LOWER_LAYER, EXEC_EXE_UNLINKED, EXEC_EXE_UPPER_LAYER, EXEC_EXECVEAT,
    EXEC_PATH_TRUNCATED, EXEC_SCRIPT, EventHeader, EventType, L4Proto, OPEN_HAS_BASE, OPEN_PATH_TRUNCATED,
    OPEN_RESOLVED, REC_IOU_AWAITS_COMPLETION, REC_IOU_COMPLETION, REC_RESULT_UNKNOWN, SyscallEvent, Via,
};

use super::completions::{AwaitedCompletions, Completion, CompletionStats};
use super::format::{dev_from_kernel, encode_dev, fd_type_of_ip, ip_from_kernel, join, stdio_info};
use super::{CallInfo, CallPath, Detail, Event, NetInfo, OpenInfo};
use crate::container::{CgroupResolver, CgroupStats};
use crate::process::{Capabilities, ProcSource, Process, ProcessRef, ProcessTable, TableStats};
use crate::sensor::RawEvent;

/// Ancestors attached to each event (proc.aname[1..N]).
pub const MAX_ANCESTORS: usize = 16;

#[derive(Clone, Copy, Debug, Default)]
pub struct EnricherStats {
    pub processes: TableStats,
    pub cgroups: CgroupStats,
    pub completions: CompletionStats,
}

pub struct Enricher {
    pub processes: ProcessTable,
    pub cgroups: CgroupResolver,
    /// CLOCK_REALTIME - CLOCK_BOOTTIME, to turn kernel timestamps into wall-clock time.
    boot_to_wall_ns: i128,
    events: u64,
    completions: AwaitedCompletions,
}

pub(super) fn clock_ns(clock: nix::time::ClockId) -> i128 {
    let ts = nix::time::clock_gettime(clock).unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec())
}

fn text(bytes: &[u8]) -> String {
    super::text::from_bytes(bytes)
}

/// argv or the environment: strings each ended by a NUL (a cut one may lack its NUL).
fn nul_separated(bytes: &[u8]) -> Vec<String> {
    let mut items: Vec<String> = bytes.split(|&b| b == 0).map(text).collect();
    // The last NUL leaves one empty trailing element.
    if items.last().is_some_and(String::is_empty) {
        items.pop();
    }
    items
}

fn comm(bytes: &[u8; 16]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    text(&bytes[..end])
}

impl Enricher {
    pub fn new(processes: ProcessTable) -> Self {
        Self {
            processes,
            cgroups: CgroupResolver::new(),
            boot_to_wall_ns: clock_ns(nix::time::ClockId::CLOCK_REALTIME)
                - clock_ns(nix::time::ClockId::CLOCK_BOOTTIME),
            events: 0,
            completions: AwaitedCompletions::default(),
        }
    }

    pub fn stats(&self) -> EnricherStats {
        EnricherStats {
            processes: self.processes.stats(),
            cgroups: self.cgroups.stats(),
            completions: self.completions.stats,
        }
    }

    /// io_uring events whose completion has not come in time (all of them when `all`, at
    /// shutdown), with their result unknown.
    pub fn unanswered(&mut self, now: Instant, all: bool, out: &mut Vec<Event>) {
        self.completions.expired(now, all, out);
    }

    /// Periodic upkeep: forget processes that exited a while ago.
    pub fn tick(&mut self, now: Instant) {
        self.processes.expire(now);
    }

    fn base_event(&mut self, h: &EventHeader, evt_type: EventType, res: i64, detail: Detail) -> Event {
        let cg = self.cgroups.resolve(h.cgroup_id);
        self.events += 1;
        Event {
            evt_type,
            via: Via::from_u8(h.via).unwrap_or_default(),
            call: Call::from_u8(h.call).unwrap_or_default(),
            num: self.events,
            time_ns: i128::from(h.ts_ns) + self.boot_to_wall_ns,
            cpu: u32::from(h.cpu),
            pid: h.pid,
            tid: h.tid,
            uid: h.uid,
            gid: h.gid,
            res,
            result_unknown: h.flags & REC_RESULT_UNKNOWN != 0,
            cgroup_id: h.cgroup_id,
            cgroup_path: cg.as_ref().map(|c| c.path.clone()),
            container: cg.and_then(|c| c.container.clone()),
            process: None,
            ancestors: Vec::new(),
            detail,
        }
    }

    /// A cgroup path the kernel reported (with an exec, or announced before a cgroup's first
    /// event); empty when its walk failed.
    fn learn_cgroup(&mut self, id: u64, path: &[u8]) {
        if !path.is_empty() {
            self.cgroups.learn(id, &text(path));
        }
    }

    /// The event's process: the one the table has for its pid (read from /proc if unknown).
    fn attach_process(&mut self, ev: &mut Event) {
        let p = self.processes.get_or_load(ev.pid);
        self.set_process(ev, p);
    }

    fn set_process(&self, ev: &mut Event, p: Option<ProcessRef>) {
        if let Some(p) = &p {
            ev.ancestors = self.processes.ancestors(p, MAX_ANCESTORS);
        }
        ev.process = p;
    }

    /// The enriched event for a record; None for records that only inform the enricher, and
    /// for an io_uring submission, whose event waits for its completion.
    pub fn enrich(&mut self, raw: &RawEvent<'_>) -> Option<Event> {
        let h = raw.header();
        if h.flags & REC_IOU_COMPLETION != 0 {
            return self.complete(raw);
        }
        let ev = self.event(raw)?;
        if h.flags & REC_IOU_AWAITS_COMPLETION != 0 {
            let req = match raw {
                RawEvent::Open { ev, .. } => ev.iou_req,
                RawEvent::Net { ev, .. } => ev.iou_req,
                _ => return Some(ev),
            };
            return self.completions.wait(req, ev, Instant::now());
        }
        Some(ev)
    }

    /// The completion of an io_uring request: its submission's event with the result. An open
    /// whose submission already left is reported on its own when it tells what it opened.
    fn complete(&mut self, raw: &RawEvent<'_>) -> Option<Event> {
        match raw {
            RawEvent::Open { ev, .. } => {
                let (req, res) = (ev.iou_req, ev.ret);
                let own = self.event(raw).filter(|e| matches!(&e.detail, Detail::Open(o) if o.resolved));
                let opened = own.as_ref().and_then(|e| match &e.detail {
                    Detail::Open(o) => Some(o.clone()),
                    _ => None,
                });
                self.completions.complete(req, Completion::Open { res, opened }).or(own)
            }
            RawEvent::Net { ev, .. } => {
                self.completions.complete(ev.iou_req, Completion::Net { res: ev.ret })
            }
            _ => None,
        }
    }

    /// A record's event, as the kernel reported it.
    fn event(&mut self, raw: &RawEvent<'_>) -> Option<Event> {
        Some(match raw {
            RawEvent::Cgroup { ev, path } => {
                self.learn_cgroup(ev.header.cgroup_id, path);
                return None;
            }
            RawEvent::Exec { ev, exe, filename, cwd, cgroup, argv, env } => {
                let h = &ev.header;
                self.learn_cgroup(h.cgroup_id, cgroup);
                let filename = text(filename);
                let mut exe_path = text(exe);
                if ev.header.flags & EXEC_EXE_UNLINKED != 0 {
                    exe_path.push_str(" (deleted)");
                }
                let cwd = (!cwd.is_empty()).then(|| text(cwd));
                let argv_list = nul_separated(argv);
                let script =
                    (h.flags & EXEC_SCRIPT != 0).then(|| join(cwd.as_deref().unwrap_or(""), &filename));
                let process = Process {
                    pid: h.pid,
                    start_ns: ev.start_ns,
                    ppid: ev.ppid,
                    parent_start_ns: ev.parent_start_ns,
                    comm: comm(&ev.comm),
                    exe_from_memfd: exe_path.starts_with("/memfd:"),
                    exe_unlinked: h.flags & EXEC_EXE_UNLINKED != 0,
                    exe_upper_layer: h.flags & EXEC_EXE_UPPER_LAYER != 0,
                    exe_lower_layer: h.flags & EXEC_EXE_LOWER_LAYER != 0,
                    exe_path,
                    argv: argv_list,
                    argv_truncated: h.flags & EXEC_ARGV_TRUNCATED != 0,
                    env: nul_separated(env),
                    env_truncated: h.flags & EXEC_ENV_TRUNCATED != 0,
                    paths_truncated: h.flags & EXEC_PATH_TRUNCATED != 0,
                    cwd,
                    script,
                    exe_ino: ev.exe_ino,
                    uid: h.uid,
                    euid: ev.euid,
                    gid: h.gid,
                    egid: ev.egid,
                    loginuid: ev.loginuid,
                    caps: Capabilities {
                        effective: ev.cap_effective,
                        permitted: ev.cap_permitted,
                        inheritable: ev.cap_inheritable,
                    },
                    vpid: ev.vpid,
                    vpgid: ev.vpgid,
                    vsid: ev.vsid,
                    pidns: ev.pidns,
                    mntns: ev.mntns,
                    tty: encode_dev(ev.tty_major, ev.tty_minor),
                    stdio: [stdio_info(&ev.stdio[0]), stdio_info(&ev.stdio[1]), stdio_info(&ev.stdio[2])],
                    source: ProcSource::Exec,
                    ..Default::default()
                };
                let evt_type =
                    if h.flags & EXEC_EXECVEAT != 0 { EventType::Execveat } else { EventType::Execve };
                let p = self.processes.on_exec(process);
                let mut out = self.base_event(h, evt_type, 0, Detail::Exec { filename });
                self.set_process(&mut out, Some(p));
                out
            }
            RawEvent::Fork(ev) => {
                let h = &ev.header;
                let p =
                    self.processes.on_fork(h.pid, ev.start_ns, ev.ppid, ev.parent_start_ns, &comm(&ev.comm));
                let mut out = self.base_event(h, EventType::Clone, 0, Detail::Fork);
                self.set_process(&mut out, Some(p));
                out
            }
            RawEvent::Exit(ev) => {
                let h = &ev.header;
                let mut out = self.base_event(h, EventType::Procexit, 0, Detail::Exit { code: ev.exit_code });
                self.attach_process(&mut out);
                self.processes.on_exit(h.pid, ev.start_ns, Instant::now());
                out
            }
            RawEvent::Open { ev, evt_type, path, base, raw } => {
                let h = &ev.header;
                let resolved = h.flags & OPEN_RESOLVED != 0;
                let mut path = text(path);
                let raw = if !raw.is_empty() {
                    Some(text(raw))
                } else {
                    (!resolved && !path.is_empty()).then(|| path.clone())
                };
                if h.flags & OPEN_HAS_BASE != 0 {
                    path = join(&text(base), &path);
                }
                let info = OpenInfo {
                    path,
                    resolved,
                    raw,
                    truncated: h.flags & OPEN_PATH_TRUNCATED != 0,
                    flags: ev.flags,
                    mode: ev.mode,
                    ino: ev.ino,
                    dev: dev_from_kernel(ev.dev),
                };
                let mut out = self.base_event(h, *evt_type, ev.ret, Detail::Open(info));
                self.attach_process(&mut out);
                out
            }
            RawEvent::Net { ev, evt_type, unix_path } => {
                let h = &ev.header;
                let unix = (!unix_path.is_empty()).then(|| {
                    // Abstract sockets start with NUL; Falco shows them with a leading '@'.
                    let p = unix_path.split(|&b| b == 0).find(|s| !s.is_empty()).unwrap_or(&[]);
                    if unix_path[0] == 0 { format!("@{}", text(p)) } else { text(p) }
                });
                let info = NetInfo {
                    unix_path: unix,
                    from_socket: ev.from_socket != 0,
                    ..socket_info(
                        ev.family,
                        ev.sock_type,
                        ev.protocol,
                        ev.fd,
                        (&ev.daddr, ev.dport),
                        (&ev.saddr, ev.sport),
                    )
                };
                let mut out = self.base_event(h, *evt_type, ev.ret, Detail::Net(info));
                self.attach_process(&mut out);
                out
            }
            RawEvent::Syscall { ev, evt_type, sections } => {
                let info = call_info(*evt_type, ev, sections);
                let mut out = self.base_event(&ev.header, *evt_type, ev.ret, Detail::Call(info));
                self.attach_process(&mut out);
                out
            }
        })
    }
}

/// A socket's ends as the kernel reports them (server: the destination); the client's address
/// only once bound.
fn socket_info(
    family: u16,
    sock_type: u16,
    protocol: u16,
    fd: i32,
    (daddr, dport): (&[u8; 16], u16),
    (saddr, sport): (&[u8; 16], u16),
) -> NetInfo {
    let sip = ip_from_kernel(family, daddr);
    NetInfo {
        fd_type: fd_type_of_ip(sip, family),
        l4proto: L4Proto::of_socket(protocol, sock_type),
        fd,
        sip,
        sport: dport,
        cip: ip_from_kernel(family, saddr).filter(|ip| !ip.is_unspecified() || sport != 0),
        cport: sport,
        unix_path: None,
        from_socket: true,
        inbound: false,
        connected: None,
    }
}

/// A call's record as the event holds it.
fn call_info(t: EventType, ev: &SyscallEvent, sections: &[&[u8]; 5]) -> CallInfo {
    use monitor_common::calls::{FD_RESULT, PATH_BUFFER, PATH_IN_MSGHDR, PATH_SOCKADDR, call_def};
    let flags = ev.header.flags;
    let def = call_def(t);
    let kind = |i: usize| def.map_or(0, |d| d.shape.paths[i].kind & !PATH_IN_MSGHDR);
    let mut buffer = None;
    let mut sender = None;
    let mut path = |i: usize, has_base: u16| {
        let raw = sections[2 * i];
        if ev.lens[2 * i] == 0 {
            return None;
        }
        match kind(i) {
            PATH_BUFFER => buffer = Some(raw.to_vec()),
            PATH_SOCKADDR => sender = sockaddr(raw),
            _ => {
                let raw = text(raw);
                let path =
                    if flags & has_base != 0 { join(&text(sections[2 * i + 1]), &raw) } else { raw.clone() };
                return Some(CallPath { raw, path });
            }
        }
        None
    };
    let paths = [path(0, CALL_PATH0_HAS_BASE), path(1, CALL_PATH1_HAS_BASE)];
    let s = &ev.sock;
    let sock = (s.family != 0).then(|| {
        // A datagram received from a sender the call names came to this end as a server's.
        let inbound = def.is_some_and(|d| d.inbound) || sender.is_some();
        // The descriptor the call is about: its result, or the argument in its record slot.
        let fd = match def.map(|d| d.shape) {
            Some(shape) if shape.fd != FD_RESULT => {
                shape.args.iter().position(|a| *a == shape.fd).map_or(-1, |slot| ev.args[slot] as i32)
            }
            _ => ev.ret as i32,
        };
        let local = (&s.saddr, s.sport);
        let peer = (&s.daddr, s.dport);
        let mut n = if inbound {
            socket_info(s.family, s.sock_type, s.protocol, fd, local, peer)
        } else {
            socket_info(s.family, s.sock_type, s.protocol, fd, peer, local)
        };
        // A socket not connected has no peer.
        let unconnected = |ip: &std::net::IpAddr, port| ip.is_unspecified() && port == 0;
        if inbound {
            n.cip = n.cip.filter(|ip| !unconnected(ip, s.dport));
            n.sip = n.sip.filter(|ip| !unconnected(ip, s.sport));
        } else {
            n.sip = n.sip.filter(|ip| !unconnected(ip, s.dport));
        }
        // A datagram's sender, named by the call: the fd's peer as of this event.
        if let Some((ip, port)) = sender {
            (n.cip, n.cport) = (Some(ip), port);
            n.from_socket = false;
        }
        n.inbound = inbound;
        n.connected = Some(s.state == TCP_ESTABLISHED);
        n
    });
    CallInfo {
        args: ev.args,
        paths,
        fd_path: (!sections[4].is_empty()).then(|| text(sections[4])),
        sock,
        buffer,
        truncated: flags & CALL_PATH_TRUNCATED != 0,
    }
}

/// skc_state of a connected socket, TCP or UDP (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 1;

/// A sockaddr_in or sockaddr_in6 as the kernel wrote it for the caller: address and port.
fn sockaddr(raw: &[u8]) -> Option<(std::net::IpAddr, u16)> {
    let family = u16::from_ne_bytes(raw.get(..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(raw.get(2..4)?.try_into().ok()?);
    let mut addr = [0u8; 16];
    match family {
        monitor_common::AF_INET => addr[..4].copy_from_slice(raw.get(4..8)?),
        monitor_common::AF_INET6 => addr.copy_from_slice(raw.get(8..24)?),
        _ => return None,
    }
    Some((ip_from_kernel(family, &addr)?, port))
}
