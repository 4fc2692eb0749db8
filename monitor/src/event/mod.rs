//! The enriched event: what the kernel reported, joined with the process table and the cgroup's
//! container, under Falco's field names.

pub mod calls;
mod completions;
mod enrich;
mod exe_identity;
pub mod fields;
mod format;
pub mod host_names;
mod json;
pub mod replay;
pub mod text;
mod users;

pub use calls::{CallInfo, CallPath};
pub use completions::CompletionStats;
pub use enrich::{Enricher, EnricherStats};
pub use fields::nix_hostname;
pub use fields::{Field, FieldContext, FieldError, FieldId, FieldType, FieldValue};
pub use format::{basename, dev_from_kernel, dev_to_kernel, errno_name, open_flags};
pub use host_names::HostNames;
pub use json::JsonRenderer;
pub use users::Users;

use std::net::IpAddr;
use std::sync::Arc;

use monitor_common::{Call, EventType, FdType, L4Proto, Via};

use crate::container::ContainerId;
use crate::process::ProcessRef;

#[derive(Clone, Debug)]
pub struct Event {
    pub evt_type: EventType,
    /// The door it came through (native syscall, ia32, io_uring).
    pub via: Via,
    /// What made it, when not the syscall `evt_type` names.
    pub call: Call,
    /// Sequence number of the event since the daemon started (Falco's evt.num).
    pub num: u64,
    /// Wall-clock time, ns since the Unix epoch.
    pub time_ns: i128,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Syscall result (evt.rawres): fd, 0, or -errno. 0 for process lifecycle events, and for
    /// an attempt whose result the kernel did not report (`result_unknown`).
    pub res: i64,
    pub result_unknown: bool,
    pub cgroup_id: u64,
    pub cgroup_path: Option<Arc<str>>,
    pub container: Option<ContainerId>,
    /// The process after this event (after exec, the new image).
    pub process: Option<ProcessRef>,
    /// Parent first.
    pub ancestors: Vec<ProcessRef>,
    pub detail: Detail,
}

#[derive(Clone, Debug)]
pub enum Detail {
    Exec {
        filename: String,
    },
    Fork,
    Exit {
        code: i32,
    },
    Open(OpenInfo),
    Net(NetInfo),
    /// A call reported by its result and arguments (ptrace, link, socket, ..., io_uring_setup).
    Call(CallInfo),
}

#[derive(Clone, Debug, Default)]
pub struct OpenInfo {
    /// Absolute path of the opened file; for failed opens the caller's path joined with its base.
    pub path: String,
    /// true when `path` came from the opened struct file; false for a failed open's string.
    pub resolved: bool,
    /// The path as the caller wrote it (fd.nameraw), when the kernel reported it.
    pub raw: Option<String>,
    pub truncated: bool,
    pub flags: u32,
    pub mode: u32,
    pub ino: u64,
    pub dev: u32,
}

#[derive(Clone, Debug)]
pub struct NetInfo {
    /// Ipv4 (an IPv4-mapped IPv6 destination too), Ipv6 or Unix.
    pub fd_type: FdType,
    /// None for sockets without one (unix).
    pub l4proto: Option<L4Proto>,
    pub fd: i32,
    /// Server side (destination).
    pub sip: Option<IpAddr>,
    pub sport: u16,
    /// Client side (source), when bound.
    pub cip: Option<IpAddr>,
    pub cport: u16,
    pub unix_path: Option<String>,
    /// The destination came from the kernel's socket, not the caller's sockaddr.
    pub from_socket: bool,
    /// This end is the server (accept, listen, a datagram received): the local address is
    /// the server's, the peer the client. Otherwise this end is the client.
    pub inbound: bool,
    /// The socket's state says it is connected; None where the event says so itself (a
    /// connect, a send).
    pub connected: Option<bool>,
}

impl NetInfo {
    /// This end's address and port.
    pub fn local(&self) -> (Option<IpAddr>, u16) {
        if self.inbound { (self.sip, self.sport) } else { (self.cip, self.cport) }
    }

    /// The peer's address and port.
    pub fn remote(&self) -> (Option<IpAddr>, u16) {
        if self.inbound { (self.cip, self.cport) } else { (self.sip, self.sport) }
    }
}

impl Default for NetInfo {
    fn default() -> Self {
        Self {
            fd_type: FdType::Socket,
            l4proto: None,
            fd: 0,
            sip: None,
            sport: 0,
            cip: None,
            cport: 0,
            unix_path: None,
            from_socket: false,
            inbound: false,
            connected: None,
        }
    }
}
