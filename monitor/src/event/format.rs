//! Renderings Falco users know: open flags as `O_RDONLY|O_CLOEXEC`, results as `ENOENT`,
//! addresses with IPv4-mapped IPv6 shown as the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use monitor_common::{FdKind, FdType, StdioFd};

use crate::process::StdioInfo;

const O_ACCMODE: u32 = 0o3;
const FLAG_NAMES: &[(u32, &str)] = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o4000000, "O_SYNC"),
    (0o10000000, "O_PATH"),
    (0o20000000, "O_TMPFILE"),
];

pub fn open_flags(flags: u32) -> String {
    let mut out = String::from(match flags & O_ACCMODE {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    });
    for (bit, name) in FLAG_NAMES {
        // O_TMPFILE includes O_DIRECTORY's bit; O_SYNC includes O_DSYNC's.
        if flags & bit == *bit {
            out.push('|');
            out.push_str(name);
        }
    }
    out
}

pub fn is_open_read(flags: u32) -> bool {
    matches!(flags & O_ACCMODE, 0 | 2) && flags & 0o10000000 == 0
}

pub fn is_open_write(flags: u32) -> bool {
    matches!(flags & O_ACCMODE, 1 | 2)
}

pub fn is_open_create(flags: u32) -> bool {
    flags & 0o100 != 0
}

/// Falco's evt.res: SUCCESS, or the errno's name. Without allocating for the common results:
/// rules compare evt.res on many events.
pub fn errno_name(res: i64) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    if res >= 0 {
        return Cow::Borrowed("SUCCESS");
    }
    match res {
        -1 => return Cow::Borrowed("EPERM"),
        -2 => return Cow::Borrowed("ENOENT"),
        -13 => return Cow::Borrowed("EACCES"),
        -20 => return Cow::Borrowed("ENOTDIR"),
        -111 => return Cow::Borrowed("ECONNREFUSED"),
        -115 => return Cow::Borrowed("EINPROGRESS"),
        _ => {}
    }
    let Some(code) = res.checked_neg().and_then(|c| i32::try_from(c).ok()) else {
        return Cow::Owned(format!("E{res}"));
    };
    match nix::errno::Errno::from_raw(code) {
        nix::errno::Errno::UnknownErrno => Cow::Owned(format!("E{}", -res)),
        e => Cow::Owned(format!("{e:?}")),
    }
}

/// An address from the kernel (network byte order, IPv4 in the first 4 bytes); IPv4-mapped
/// IPv6 comes out as IPv4 so that rules on IPv4 addresses match it.
pub fn ip_from_kernel(family: u16, bytes: &[u8; 16]) -> Option<IpAddr> {
    match family {
        2 => Some(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
        10 => {
            let v6 = Ipv6Addr::from(*bytes);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

pub fn endpoint(ip: Option<IpAddr>, port: u16) -> String {
    match ip {
        Some(ip) => format!("{ip}:{port}"),
        None => format!(":{port}"),
    }
}

/// Joins a relative path to its base directory, lexically (the kernel did not resolve it).
pub fn join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') || base.is_empty() {
        return rel.to_owned();
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Falco's fd.directory: the path without its last component.
pub fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// Falco's fd.filename: the last component.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Falco's fd.name for a socket: `client:port->server:port`.
pub fn connection_name(n: &super::NetInfo) -> String {
    // A listening socket has only its own end.
    if n.inbound && n.cip.is_none() && n.cport == 0 {
        return endpoint(n.sip, n.sport);
    }
    format!("{}->{}", endpoint(n.cip, n.cport), endpoint(n.sip, n.sport))
}

/// The fd type of a socket event: an IPv4-mapped IPv6 destination is IPv4, as Falco shows it.
pub fn fd_type_of_ip(ip: Option<IpAddr>, family: u16) -> FdType {
    match ip {
        Some(IpAddr::V4(_)) => FdType::Ipv4,
        Some(IpAddr::V6(_)) => FdType::Ipv6,
        None => FdType::of_family(family),
    }
}

/// A character device's conventional path, from its dev_t (kernel encoding: major << 20 | minor).
fn char_device_name(rdev: u32) -> String {
    let (major, minor) = (rdev >> 20, rdev & 0xfffff);
    match (major, minor) {
        (136..=143, m) => format!("/dev/pts/{}", (major - 136) * 256 + m),
        (4, m) if m < 64 => format!("/dev/tty{m}"),
        (4, m) => format!("/dev/ttyS{}", m - 64),
        (5, 0) => "/dev/tty".into(),
        (5, 1) => "/dev/console".into(),
        (5, 2) => "/dev/ptmx".into(),
        (1, 3) => "/dev/null".into(),
        (1, 5) => "/dev/zero".into(),
        (1, 8) => "/dev/random".into(),
        (1, 9) => "/dev/urandom".into(),
        _ => format!("char:{major}:{minor}"),
    }
}

/// Falco's proc.stdin.type / .name for one of fds 0-2 as the kernel described it.
pub fn stdio_info(fd: &StdioFd) -> StdioInfo {
    match FdKind::from_u8(fd.kind) {
        FdKind::None => StdioInfo::default(),
        FdKind::File => StdioInfo { fd_type: Some(FdType::File), name: None },
        FdKind::Directory => StdioInfo { fd_type: Some(FdType::Directory), name: None },
        FdKind::Pipe => StdioInfo { fd_type: Some(FdType::Pipe), name: None },
        FdKind::CharDevice | FdKind::Tty => {
            StdioInfo { fd_type: Some(FdType::File), name: Some(char_device_name(fd.rdev)) }
        }
        FdKind::BlockDevice => StdioInfo { fd_type: Some(FdType::File), name: None },
        FdKind::Socket => {
            let peer = ip_from_kernel(fd.family, &fd.peer_addr);
            let local = ip_from_kernel(fd.family, &fd.local_addr);
            let fd_type = fd_type_of_ip(peer, fd.family);
            let name =
                peer.map(|_| format!("{}->{}", endpoint(local, fd.local_port), endpoint(peer, fd.peer_port)));
            StdioInfo { fd_type: Some(fd_type), name }
        }
        FdKind::Other => StdioInfo { fd_type: Some(FdType::Other), name: None },
    }
}

/// A device number as userspace sees it (stat's st_dev, /proc/<pid>/stat's tty_nr), from its
/// major and minor.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    ((minor & 0xfff00) << 12) | ((major & 0xfff) << 8) | (minor & 0xff)
}

/// A device number from the kernel's internal encoding (major << 20 | minor), as in
/// super_block.s_dev, to the userspace one.
pub fn dev_from_kernel(dev: u32) -> u32 {
    encode_dev(dev >> 20, dev & 0xfffff)
}

/// A device number as userspace encodes it (st_dev, glibc's 64-bit form), in the kernel's.
pub fn dev_to_kernel(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((major as u32) << 20) | (minor as u32 & 0xfffff)
}

/// Every capability the `caps` crate knows, in bit order.
fn capabilities_in_order() -> &'static [caps::Capability] {
    static ALL: std::sync::OnceLock<Vec<caps::Capability>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<caps::Capability> = caps::all().into_iter().collect();
        all.sort_by_key(|c| c.index());
        all
    })
}

/// A capability set as Falco writes it: names in bit order, separated by spaces
/// (`CAP_CHOWN CAP_SYS_ADMIN`); a bit no name is known for shows as `CAP_<n>`.
pub fn capability_names(mask: u64) -> String {
    let mut out = String::new();
    let mut known = 0u64;
    for c in capabilities_in_order() {
        known |= c.bitmask();
        if mask & c.bitmask() != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&c.to_string());
        }
    }
    for bit in 0..64 {
        if mask & !known & (1 << bit) != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("CAP_{bit}"));
        }
    }
    out
}

/// The set [`capability_names`] wrote.
pub fn capability_mask(names: &str) -> u64 {
    names
        .split_whitespace()
        .filter_map(|n| match n.parse::<caps::Capability>() {
            Ok(c) => Some(c.bitmask()),
            Err(_) => {
                n.strip_prefix("CAP_").and_then(|b| b.parse::<u32>().ok()).filter(|b| *b < 64).map(|b| 1 << b)
            }
        })
        .fold(0, |a, b| a | b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_convert_both_ways() {
        // 8:1 (sda1) and 259:65537 (a large minor), in glibc's st_dev form.
        let user = |major: u64, minor: u64| {
            ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
        };
        assert_eq!(dev_to_kernel(user(8, 1)), (8 << 20) | 1);
        assert_eq!(dev_to_kernel(user(259, 65537)), (259 << 20) | 65537);
        assert_eq!(u64::from(dev_from_kernel((259 << 20) | 65537)), user(259, 65537));
    }

    #[test]
    fn flags_render_like_falco() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(open_flags(0o2000000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(open_flags(0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert!(is_open_read(0) && !is_open_write(0));
        assert!(is_open_write(1) && !is_open_read(1));
        assert!(is_open_read(2) && is_open_write(2));
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(3), "SUCCESS");
        assert_eq!(errno_name(-2), "ENOENT");
        assert_eq!(errno_name(-115), "EINPROGRESS");
        // The fast path agrees with the full table.
        for code in [1, 2, 13, 20, 111, 115] {
            assert_eq!(errno_name(-code), format!("{:?}", nix::errno::Errno::from_raw(code as i32)));
        }
    }

    #[test]
    fn mapped_ipv6_is_ipv4() {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(ip_from_kernel(10, &b), Some("127.0.0.1".parse().unwrap()));
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(ip_from_kernel(10, &one), Some("::1".parse().unwrap()));
    }

    #[test]
    fn tty_numbers() {
        assert_eq!(encode_dev(136, 0), 34816);
        assert_eq!(encode_dev(0, 0), 0);
        assert_eq!(dev_from_kernel((8 << 20) | 1), 0x801);
        assert_eq!(char_device_name((136 << 20) | 3), "/dev/pts/3");
    }

    #[test]
    fn capability_sets_render_as_falco_names_and_read_back() {
        assert_eq!(capability_names(0), "");
        assert_eq!(capability_names(1 << 0 | 1 << 21), "CAP_CHOWN CAP_SYS_ADMIN");
        assert_eq!(capability_names(1 << 63), "CAP_63");
        for mask in [0, 1, 1 << 21 | 1 << 1, (1 << 41) - 1, u64::MAX] {
            assert_eq!(capability_mask(&capability_names(mask)), mask, "{mask:#x}");
        }
    }

    #[test]
    fn joins_relative_paths_lexically() {
        assert_eq!(join("/etc", "shadow"), "/etc/shadow");
        assert_eq!(join("/etc", "../etc/./shadow"), "/etc/shadow");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/tmp", "/abs"), "/abs");
        assert_eq!(join("", "rel"), "rel");
    }
}
