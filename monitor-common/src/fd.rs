//! What a file descriptor is, as the kernel describes it and as Falco names it.

/// What a file descriptor refers to, reported for fds 0-2 at exec.
#[repr(u8)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FdKind {
    None = 0,
    File = 1,
    Directory = 2,
    Pipe = 3,
    Socket = 4,
    CharDevice = 5,
    Tty = 6,
    BlockDevice = 7,
    Other = 8,
}

impl FdKind {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::File,
            2 => Self::Directory,
            3 => Self::Pipe,
            4 => Self::Socket,
            5 => Self::CharDevice,
            6 => Self::Tty,
            7 => Self::BlockDevice,
            8 => Self::Other,
            _ => Self::None,
        }
    }
}

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const AF_NETLINK: u16 = 16;

/// Falco's fd.type.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FdType {
    File,
    Directory,
    Ipv4,
    Ipv6,
    Unix,
    Pipe,
    Netlink,
    /// A socket of another family.
    Socket,
    Other,
}

impl FdType {
    pub const ALL: [FdType; 9] = [
        Self::File,
        Self::Directory,
        Self::Ipv4,
        Self::Ipv6,
        Self::Unix,
        Self::Pipe,
        Self::Netlink,
        Self::Socket,
        Self::Other,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Unix => "unix",
            Self::Pipe => "pipe",
            Self::Netlink => "netlink",
            Self::Socket => "socket",
            Self::Other => "other",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Falco's fd.typechar.
    pub const fn typechar(self) -> &'static str {
        match self {
            Self::File => "f",
            Self::Directory => "d",
            Self::Ipv4 => "4",
            Self::Ipv6 => "6",
            Self::Unix => "u",
            Self::Pipe => "p",
            Self::Netlink | Self::Socket | Self::Other => "o",
        }
    }

    /// A socket of this address family.
    pub const fn of_family(family: u16) -> Self {
        match family {
            AF_UNIX => Self::Unix,
            AF_INET => Self::Ipv4,
            AF_INET6 => Self::Ipv6,
            AF_NETLINK => Self::Netlink,
            _ => Self::Socket,
        }
    }
}

/// Falco's fd.l4proto.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
    Icmp,
    Raw,
}

impl L4Proto {
    pub const ALL: [L4Proto; 4] = [Self::Tcp, Self::Udp, Self::Icmp, Self::Raw];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
            Self::Raw => "raw",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// From the socket's protocol and type (SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_RAW 3); None for
    /// sockets without one (unix).
    pub const fn of_socket(protocol: u16, sock_type: u16) -> Option<Self> {
        match (protocol, sock_type) {
            (6, _) => Some(Self::Tcp),
            (17, _) => Some(Self::Udp),
            (1 | 58, _) => Some(Self::Icmp),
            (_, 1) => Some(Self::Tcp),
            (_, 2) => Some(Self::Udp),
            (_, 3) => Some(Self::Raw),
            _ => None,
        }
    }
}

/// One of fds 0-2 at exec. For sockets, the family, peer and local addresses as the kernel's
/// socket holds them; addresses are network byte order, IPv4 in the first 4 bytes.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct StdioFd {
    pub kind: u8,
    pub sock_type: u8,
    pub family: u16,
    /// Device number of a character device (tty), as the kernel's dev_t.
    pub rdev: u32,
    pub peer_port: u16,
    pub local_port: u16,
    pub protocol: u16,
    pub _pad: u16,
    pub peer_addr: [u8; 16],
    pub local_addr: [u8; 16],
}
