//! The event types the monitor reports, under Falco's `evt.type` names: the kernel writes the
//! type into each record, and rules are indexed by the types they can match.

/// Every event type the monitor reports. The kernel programs write it into records as a u8.
#[repr(u8)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Execve = 0,
    Execveat = 1,
    Clone = 2,
    Procexit = 3,
    Open = 4,
    Openat = 5,
    Openat2 = 6,
    Creat = 7,
    Connect = 8,
    Sendto = 9,
    Sendmsg = 10,
    OpenByHandleAt = 11,
    PidfdGetfd = 12,
    IoUringSetup = 13,
    Ptrace = 14,
    Symlink = 15,
    Symlinkat = 16,
    Link = 17,
    Linkat = 18,
    InitModule = 19,
    FinitModule = 20,
    Socket = 21,
    Dup = 22,
    Dup2 = 23,
    Dup3 = 24,
    Setns = 25,
    Unshare = 26,
    Setuid = 27,
    Setgid = 28,
    Setresuid = 29,
    Setresgid = 30,
    Chmod = 31,
    Fchmod = 32,
    Fchmodat = 33,
    Unlink = 34,
    Unlinkat = 35,
    Rmdir = 36,
    Rename = 37,
    Renameat = 38,
    Renameat2 = 39,
    Mkdir = 40,
    Mkdirat = 41,
    Bpf = 42,
    Userfaultfd = 43,
    MemfdCreate = 44,
    Accept = 45,
    Accept4 = 46,
    Listen = 47,
    Recvfrom = 48,
    Recvmsg = 49,
}

/// What an event is about, for everything that depends on its kind rather than its syscall.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventClass {
    /// A new program image (execve, execveat).
    Exec,
    Fork,
    Exit,
    /// A file opened (open, openat, openat2, creat, open_by_handle_at), or a descriptor taken
    /// from another process (pidfd_getfd).
    Open,
    /// A connection or a datagram naming its destination (connect, sendto, sendmsg).
    Net,
    /// A system call reported by its result and arguments, paths among them (ptrace, link,
    /// socket, dup, chmod, ...: [`crate::calls`]).
    Syscall,
}

impl EventType {
    /// In index order.
    pub const ALL: [EventType; 50] = [
        Self::Execve,
        Self::Execveat,
        Self::Clone,
        Self::Procexit,
        Self::Open,
        Self::Openat,
        Self::Openat2,
        Self::Creat,
        Self::Connect,
        Self::Sendto,
        Self::Sendmsg,
        Self::OpenByHandleAt,
        Self::PidfdGetfd,
        Self::IoUringSetup,
        Self::Ptrace,
        Self::Symlink,
        Self::Symlinkat,
        Self::Link,
        Self::Linkat,
        Self::InitModule,
        Self::FinitModule,
        Self::Socket,
        Self::Dup,
        Self::Dup2,
        Self::Dup3,
        Self::Setns,
        Self::Unshare,
        Self::Setuid,
        Self::Setgid,
        Self::Setresuid,
        Self::Setresgid,
        Self::Chmod,
        Self::Fchmod,
        Self::Fchmodat,
        Self::Unlink,
        Self::Unlinkat,
        Self::Rmdir,
        Self::Rename,
        Self::Renameat,
        Self::Renameat2,
        Self::Mkdir,
        Self::Mkdirat,
        Self::Bpf,
        Self::Userfaultfd,
        Self::MemfdCreate,
        Self::Accept,
        Self::Accept4,
        Self::Listen,
        Self::Recvfrom,
        Self::Recvmsg,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn from_u8(v: u8) -> Option<Self> {
        if (v as usize) < Self::ALL.len() { Some(Self::ALL[v as usize]) } else { None }
    }

    /// Falco's name (`evt.type`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Execve => "execve",
            Self::Execveat => "execveat",
            Self::Clone => "clone",
            Self::Procexit => "procexit",
            Self::Open => "open",
            Self::Openat => "openat",
            Self::Openat2 => "openat2",
            Self::Creat => "creat",
            Self::Connect => "connect",
            Self::Sendto => "sendto",
            Self::Sendmsg => "sendmsg",
            Self::OpenByHandleAt => "open_by_handle_at",
            Self::PidfdGetfd => "pidfd_getfd",
            Self::IoUringSetup => "io_uring_setup",
            Self::Ptrace => "ptrace",
            Self::Symlink => "symlink",
            Self::Symlinkat => "symlinkat",
            Self::Link => "link",
            Self::Linkat => "linkat",
            Self::InitModule => "init_module",
            Self::FinitModule => "finit_module",
            Self::Socket => "socket",
            Self::Dup => "dup",
            Self::Dup2 => "dup2",
            Self::Dup3 => "dup3",
            Self::Setns => "setns",
            Self::Unshare => "unshare",
            Self::Setuid => "setuid",
            Self::Setgid => "setgid",
            Self::Setresuid => "setresuid",
            Self::Setresgid => "setresgid",
            Self::Chmod => "chmod",
            Self::Fchmod => "fchmod",
            Self::Fchmodat => "fchmodat",
            Self::Unlink => "unlink",
            Self::Unlinkat => "unlinkat",
            Self::Rmdir => "rmdir",
            Self::Rename => "rename",
            Self::Renameat => "renameat",
            Self::Renameat2 => "renameat2",
            Self::Mkdir => "mkdir",
            Self::Mkdirat => "mkdirat",
            Self::Bpf => "bpf",
            Self::Userfaultfd => "userfaultfd",
            Self::MemfdCreate => "memfd_create",
            Self::Accept => "accept",
            Self::Accept4 => "accept4",
            Self::Listen => "listen",
            Self::Recvfrom => "recvfrom",
            Self::Recvmsg => "recvmsg",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Whether the in-kernel filter may dismiss events of this type. Rare types (a file opened
    /// by handle, a descriptor taken from another process) always reach the daemon: a rule on
    /// them then costs nothing for the opens that happen a million times more often, which it
    /// would widen the filter for otherwise. The calls of [`crate::calls`] are dismissed by type
    /// alone, when no rule in force can match their type.
    pub const fn kernel_filtered(self) -> bool {
        !matches!(self, Self::OpenByHandleAt | Self::PidfdGetfd | Self::IoUringSetup)
    }

    pub const fn class(self) -> EventClass {
        match self {
            Self::Execve | Self::Execveat => EventClass::Exec,
            Self::Clone => EventClass::Fork,
            Self::Procexit => EventClass::Exit,
            Self::Open
            | Self::Openat
            | Self::Openat2
            | Self::Creat
            | Self::OpenByHandleAt
            | Self::PidfdGetfd => EventClass::Open,
            Self::Connect | Self::Sendto | Self::Sendmsg => EventClass::Net,
            _ => EventClass::Syscall,
        }
    }
}

/// A set of event types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TypeSet(u64);

impl TypeSet {
    pub const EMPTY: Self = Self(0);
    pub const ALL: Self = Self((1 << EventType::ALL.len()) - 1);

    pub const fn single(t: EventType) -> Self {
        Self(1 << t.index())
    }

    /// The types of one class.
    pub fn of_class(class: EventClass) -> Self {
        EventType::ALL.iter().filter(|t| t.class() == class).fold(Self::EMPTY, |s, t| s.with(*t))
    }

    pub const fn with(self, t: EventType) -> Self {
        Self(self.0 | 1 << t.index())
    }

    pub fn insert(&mut self, t: EventType) {
        *self = self.with(t);
    }

    pub const fn contains(self, t: EventType) -> bool {
        self.0 & (1 << t.index()) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// As the kernel filter holds it: bit `EventType as u8` per type.
    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn union(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }

    pub const fn intersect(self, o: Self) -> Self {
        Self(self.0 & o.0)
    }

    pub const fn complement(self) -> Self {
        Self(!self.0 & Self::ALL.0)
    }

    pub fn iter(self) -> impl Iterator<Item = EventType> {
        EventType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl core::fmt::Display for TypeSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        for (i, t) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(t.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_classes_agree() {
        for (i, t) in EventType::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(EventType::from_u8(i as u8), Some(*t));
            assert_eq!(EventType::from_name(t.name()), Some(*t));
            assert!(TypeSet::of_class(t.class()).contains(*t));
        }
        assert_eq!(EventType::from_u8(EventType::ALL.len() as u8), None);
        assert_eq!(TypeSet::ALL.iter().count(), EventType::ALL.len());
    }
}
