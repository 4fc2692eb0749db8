//! How an event reached the kernel: the door ([`Via`]) and, where it is not the syscall its
//! event type names, the call that made it ([`Call`]). Rules see every door under the same
//! `evt.type` (an open through io_uring is an `openat`); these say which door it was.

/// The way into the kernel an event came through.
#[repr(u8)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Via {
    /// The architecture's native system call.
    #[default]
    Syscall = 0,
    /// A 32-bit system call: a 32-bit program, or `int 0x80` from a 64-bit one.
    Ia32 = 1,
    /// An io_uring request.
    IoUring = 2,
    /// Seen only as a TCP socket leaving CLOSE for SYN_SENT, in a call no other sensor watches.
    TcpState = 3,
}

impl Via {
    pub const ALL: [Via; 4] = [Self::Syscall, Self::Ia32, Self::IoUring, Self::TcpState];

    pub const fn from_u8(v: u8) -> Option<Self> {
        if (v as usize) < Self::ALL.len() { Some(Self::ALL[v as usize]) } else { None }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Syscall => "syscall",
            Self::Ia32 => "ia32",
            Self::IoUring => "io_uring",
            Self::TcpState => "tcp_state",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

/// The system call or io_uring operation that made an event, when it is not the one the event
/// type names.
#[repr(u8)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Call {
    /// The call the event type names (an `openat` event from openat).
    #[default]
    Same = 0,
    /// ia32 socketcall(2), which multiplexes the socket calls (connect, sendto, listen, ...).
    Socketcall = 1,
    /// One message of sendmmsg(2), reported as a sendmsg.
    Sendmmsg = 2,
    /// A TCP Fast Open sendto(MSG_FASTOPEN), reported as the connect it makes.
    Sendto = 3,
    /// A TCP Fast Open sendmsg(MSG_FASTOPEN), reported as the connect it makes.
    Sendmsg = 4,
    /// A call none of the sensors names (the TCP state backstop saw its connect).
    Unknown = 5,
    IoUringOpenat = 6,
    IoUringOpenat2 = 7,
    IoUringConnect = 8,
    IoUringSendmsg = 9,
    IoUringSend = 10,
    IoUringSendZc = 11,
    IoUringSendmsgZc = 12,
}

impl Call {
    pub const ALL: [Call; 13] = [
        Self::Same,
        Self::Socketcall,
        Self::Sendmmsg,
        Self::Sendto,
        Self::Sendmsg,
        Self::Unknown,
        Self::IoUringOpenat,
        Self::IoUringOpenat2,
        Self::IoUringConnect,
        Self::IoUringSendmsg,
        Self::IoUringSend,
        Self::IoUringSendZc,
        Self::IoUringSendmsgZc,
    ];

    pub const fn from_u8(v: u8) -> Option<Self> {
        if (v as usize) < Self::ALL.len() { Some(Self::ALL[v as usize]) } else { None }
    }

    /// The call's name; None for [`Call::Same`] (the event type's name is the call's).
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::Same => return None,
            Self::Socketcall => "socketcall",
            Self::Sendmmsg => "sendmmsg",
            Self::Sendto => "sendto",
            Self::Sendmsg => "sendmsg",
            Self::Unknown => "unknown",
            Self::IoUringOpenat => "IORING_OP_OPENAT",
            Self::IoUringOpenat2 => "IORING_OP_OPENAT2",
            Self::IoUringConnect => "IORING_OP_CONNECT",
            Self::IoUringSendmsg => "IORING_OP_SENDMSG",
            Self::IoUringSend => "IORING_OP_SEND",
            Self::IoUringSendZc => "IORING_OP_SEND_ZC",
            Self::IoUringSendmsgZc => "IORING_OP_SENDMSG_ZC",
        })
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == Some(name))
    }
}

/// io_uring operations the sensors report or watch (`IORING_OP_*`, include/uapi/linux/io_uring.h).
pub mod iouring_op {
    pub const SENDMSG: u8 = 9;
    pub const CONNECT: u8 = 16;
    pub const OPENAT: u8 = 18;
    pub const SEND: u8 = 26;
    pub const OPENAT2: u8 = 28;
    pub const RENAMEAT: u8 = 35;
    pub const UNLINKAT: u8 = 36;
    pub const SEND_ZC: u8 = 47;
    pub const SENDMSG_ZC: u8 = 48;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for (i, v) in Via::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
            assert_eq!(Via::from_u8(i as u8), Some(*v));
            assert_eq!(Via::from_name(v.name()), Some(*v));
        }
        assert_eq!(Via::from_u8(Via::ALL.len() as u8), None);
        for (i, c) in Call::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(Call::from_u8(i as u8), Some(*c));
            if let Some(name) = c.name() {
                assert_eq!(Call::from_name(name), Some(*c));
            }
        }
        assert_eq!(Call::from_u8(Call::ALL.len() as u8), None);
    }
}
