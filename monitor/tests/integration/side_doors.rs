//! The side doors into the kernel, each gone through for real from a child process of the
//! test's own: 32-bit syscalls through `int 0x80` (and socketcall), io_uring requests (plain,
//! fixed-file, CQE_SKIP_SUCCESS), open_by_handle_at, pidfd_getfd, sendmmsg, TCP Fast Open and
//! the TCP state backstop. `monitor events` must report the resolved file or the destination
//! with the event type rules know, the child's pid, and the door it came through; the bundled
//! rules' view of the same doors is in default_rules.rs.

use crate::common;

use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsRawFd as _;

use common::raw::nr32::*;
use common::raw::{
    self, CompatIovec, CompatMmsghdr, CompatMsghdr, Low, Ring, Sqe, check, in_child, int80, steps,
};
use common::{Daemon, Options, canonical, s, u};
use serde_json::Value;

use common::raw::{AT_FDCWD, MSG_FASTOPEN, O_RDONLY, ia32_works};

/// The event of `pid` that `pred` picks; shows the child's events when none comes.
fn expect(d: &Daemon, what: &str, pid: u32, pred: impl Fn(&Value) -> bool) -> Value {
    d.wait_for_or_show(
        what,
        |v| u(v, "proc.pid") == u64::from(pid) && pred(v),
        |v| u(v, "proc.pid") == u64::from(pid),
    )
}

/// Every event of `pid` that `pred` picks, once the child's exit was reported: the kernel
/// hands a process's events over in order, its exit last, so none can come after.
fn all_of(d: &Daemon, pid: u32, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    expect(d, "the child's exit", pid, |v| s(v, "evt.type") == "procexit");
    d.matching(|v| u(v, "proc.pid") == u64::from(pid) && pred(v))
}

fn opened(v: &Value, evt_type: &str, path: &str) -> bool {
    s(v, "evt.type") == evt_type && s(v, "fd.name") == path
}

fn to(v: &Value, evt_type: &str, port: u16) -> bool {
    s(v, "evt.type") == evt_type && u(v, "fd.sport") == u64::from(port) && s(v, "fd.sip") == "127.0.0.1"
}

fn door(v: &Value) -> (&str, &str) {
    (s(v, "evt.via"), s(v, "evt.call"))
}

struct Files {
    _dir: tempfile::TempDir,
    marker: String,
    link: String,
    created: String,
    missing: String,
}

/// A test's own directory: a marker file, a symlink to /etc/shadow, and names of a file to
/// create and one that is not there.
fn files() -> Files {
    let dir = tempfile::Builder::new().prefix("monitor-doors").tempdir().unwrap();
    let d = canonical(dir.path().to_str().unwrap());
    let marker = format!("{d}/marker");
    std::fs::write(&marker, "m").unwrap();
    let link = format!("{d}/innocent");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    Files { marker, link, created: format!("{d}/created"), missing: format!("{d}/missing"), _dir: dir }
}

fn udp_listener() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn tcp_listener() -> (TcpListener, SocketAddrV4) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let std::net::SocketAddr::V4(a) = l.local_addr().unwrap() else { unreachable!() };
    (l, a)
}

fn loopback(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
}

// ---------------------------------------------------------------------------------------------
// ia32

#[test]
fn ia32_opens_through_int_0x80_report_the_resolved_file() {
    require_root!();
    require_ia32!();
    let f = files();
    let low = Low::new();
    let (marker, link, created, missing) =
        (low.cstr(&f.marker), low.cstr(&f.link), low.cstr(&f.created), low.cstr(&f.missing));
    let shadow = low.cstr("/etc/shadow");
    let root = low.cstr("/");
    // struct open_how { u64 flags, mode, resolve }
    let how = low.put([0u64; 3]);
    // struct file_handle { u32 handle_bytes; int handle_type; u8 f_handle[] }
    let handle = low.put([128u32, 0]);
    low.room(128);
    let mount_id = low.room(4);
    let d = Daemon::start();
    let pid = in_child(|| {
        steps(|| {
            check(1, int80(IA32_OPEN, &[marker, O_RDONLY]).into())?;
            check(2, int80(IA32_OPENAT, &[AT_FDCWD as u32, shadow, O_RDONLY]).into())?;
            check(3, int80(IA32_OPENAT2, &[AT_FDCWD as u32, link, how, 24]).into())?;
            check(4, int80(IA32_CREAT, &[created, 0o600]).into())?;
            check(5, int80(IA32_NAME_TO_HANDLE_AT, &[AT_FDCWD as u32, shadow, handle, mount_id, 0]).into())?;
            let mfd = int80(IA32_OPEN, &[root, O_RDONLY]);
            check(6, int80(IA32_OPEN_BY_HANDLE_AT, &[mfd as u32, handle, O_RDONLY]).into())?;
            // Fails: the caller's path is what is known.
            let _ = int80(IA32_OPEN, &[missing, O_RDONLY]);
            Ok(())
        })
    });
    for (evt_type, path, what) in [
        ("open", f.marker.as_str(), "ia32 open of the marker"),
        ("openat", "/etc/shadow", "ia32 openat of /etc/shadow"),
        ("openat2", "/etc/shadow", "ia32 openat2 through a symlink, resolved"),
        ("creat", f.created.as_str(), "ia32 creat"),
        ("open_by_handle_at", "/etc/shadow", "ia32 open_by_handle_at, resolved from the fd"),
    ] {
        let ev = expect(&d, what, pid, |v| opened(v, evt_type, path));
        assert_eq!(door(&ev), ("ia32", evt_type), "{what}: {ev}");
        assert!(u(&ev, "evt.rawres") < 1 << 20, "{what}: a success: {ev}");
        assert!(!common::b(&ev, "fd.unresolved"), "{what}: {ev}");
    }
    let failed = expect(&d, "failed ia32 open", pid, |v| opened(v, "open", &f.missing));
    assert_eq!(s(&failed, "evt.res"), "ENOENT");
    assert!(common::b(&failed, "fd.unresolved"));
    d.stop();
}

#[test]
fn ia32_connects_and_sends_through_int_0x80_and_socketcall() {
    require_root!();
    require_ia32!();
    let (_tcp, tcp) = tcp_listener();
    let udp: Vec<(UdpSocket, u16)> = (0..7).map(|_| udp_listener()).collect();
    let low = Low::new();
    let tcp_addr = low.put(raw::sockaddr_in(tcp));
    let dest: Vec<u32> = udp.iter().map(|(_, p)| low.put(raw::sockaddr_in(loopback(*p)))).collect();
    let payload = low.bytes(b"x");
    let iov = low.put(CompatIovec { base: payload, len: 1 });
    let msg = |name: u32| CompatMsghdr { name, namelen: 16, iov, iovlen: 1, ..CompatMsghdr::default() };
    let msghdr = low.put(msg(dest[1]));
    // sendmmsg: two messages to one destination (one buffer), one to another.
    let mmsg = low.put([
        CompatMmsghdr { hdr: msg(dest[2]), len: 0 },
        CompatMmsghdr { hdr: msg(dest[2]), len: 0 },
        CompatMmsghdr { hdr: msg(dest[3]), len: 0 },
    ]);
    let sc_msghdr = low.put(msg(dest[5]));
    let sc_mmsg = low.put([CompatMmsghdr { hdr: msg(dest[6]), len: 0 }]);
    let sc_args = |args: &[u32]| {
        let mut a = [0u32; 6];
        a[..args.len()].copy_from_slice(args);
        low.put(a)
    };
    // Each socketcall's arguments need the socket, made in the child: the slot is filled there.
    let sc_connect = sc_args(&[0, tcp_addr, 16]);
    let sc_sendto = sc_args(&[0, payload, 1, 0, dest[4], 16]);
    let sc_sendmsg = sc_args(&[0, sc_msghdr, 0]);
    let sc_sendmmsg = sc_args(&[0, sc_mmsg, 1, 0]);
    let d = Daemon::start();
    let pid = in_child(|| {
        steps(|| {
            let socket = |ty: u32| int80(IA32_SOCKET, &[libc::AF_INET as u32, ty, 0]);
            let set_fd = |args: u32, fd: i32| {
                // SAFETY: the args array put in low memory before the fork.
                unsafe { (args as usize as *mut u32).write(fd as u32) }
            };
            let t = socket(libc::SOCK_STREAM as u32);
            check(1, int80(IA32_CONNECT, &[t as u32, tcp_addr, 16]).into())?;
            let t2 = socket(libc::SOCK_STREAM as u32);
            set_fd(sc_connect, t2);
            check(2, int80(IA32_SOCKETCALL, &[SYS_CONNECT, sc_connect]).into())?;
            let udp_fd = socket(libc::SOCK_DGRAM as u32);
            check(3, int80(IA32_SENDTO, &[udp_fd as u32, payload, 1, 0, dest[0], 16]).into())?;
            check(4, int80(IA32_SENDMSG, &[udp_fd as u32, msghdr, 0]).into())?;
            check(5, int80(IA32_SENDMMSG, &[udp_fd as u32, mmsg, 3, 0]).into())?;
            for a in [sc_sendto, sc_sendmsg, sc_sendmmsg] {
                set_fd(a, udp_fd);
            }
            check(6, int80(IA32_SOCKETCALL, &[SYS_SENDTO, sc_sendto]).into())?;
            check(7, int80(IA32_SOCKETCALL, &[SYS_SENDMSG, sc_sendmsg]).into())?;
            check(8, int80(IA32_SOCKETCALL, &[SYS_SENDMMSG, sc_sendmmsg]).into())?;
            Ok(())
        })
    });
    let p = |i: usize| udp[i].1;
    for (evt_type, port, call, what) in [
        ("sendto", p(0), "sendto", "ia32 sendto"),
        ("sendmsg", p(1), "sendmsg", "ia32 sendmsg (compat msghdr)"),
        ("sendmsg", p(2), "sendmmsg", "ia32 sendmmsg, first destination"),
        ("sendmsg", p(3), "sendmmsg", "ia32 sendmmsg, second destination"),
        ("sendto", p(4), "socketcall", "socketcall(SYS_SENDTO)"),
        ("sendmsg", p(5), "socketcall", "socketcall(SYS_SENDMSG)"),
        ("sendmsg", p(6), "socketcall", "socketcall(SYS_SENDMMSG)"),
    ] {
        let ev = expect(&d, what, pid, |v| to(v, evt_type, port));
        assert_eq!(door(&ev), ("ia32", call), "{what}: {ev}");
        assert_eq!(s(&ev, "fd.l4proto"), "udp", "{what}: {ev}");
    }
    expect(&d, "ia32 socketcall(SYS_CONNECT)", pid, |v| {
        to(v, "connect", tcp.port()) && door(v) == ("ia32", "socketcall")
    });
    let direct =
        expect(&d, "ia32 connect", pid, |v| to(v, "connect", tcp.port()) && door(v) == ("ia32", "connect"));
    assert_eq!(s(&direct, "evt.res"), "SUCCESS", "{direct}");
    // One destination twice in a row is one event; and the TCP backstop added none.
    let twice = all_of(&d, pid, |v| to(v, "sendmsg", p(2)));
    assert_eq!(twice.len(), 1, "{twice:#?}");
    let connects = all_of(&d, pid, |v| to(v, "connect", tcp.port()));
    assert_eq!(connects.len(), 2, "two connects, each reported once: {connects:#?}");
    d.stop();
}

/// The receiving calls through the ia32 doors, direct and through socketcall(2): a bind shell
/// made of 32-bit calls is seen as one made of 64-bit calls is.
#[test]
fn ia32_listens_accepts_and_receives_directly_and_through_socketcall() {
    require_root!();
    require_ia32!();
    use std::os::fd::AsRawFd as _;
    // Connections and datagrams queued before the child runs: its calls find them waiting.
    let (listener, at) = tcp_listener();
    let _queued = [std::net::TcpStream::connect(at).unwrap(), std::net::TcpStream::connect(at).unwrap()];
    let (receiver, port) = udp_listener();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2 {
        sender.send_to(b"dgram", loopback(port)).unwrap();
    }
    let (lfd, ufd) = (listener.as_raw_fd() as u32, receiver.as_raw_fd() as u32);
    let low = Low::new();
    let buf = low.bytes(&[0; 64]);
    let from = low.bytes(&[0; 16]);
    let from_len = low.put(16u32);
    let sc_args = |args: &[u32]| {
        let mut a = [0u32; 6];
        a[..args.len()].copy_from_slice(args);
        low.put(a)
    };
    let sc_socket = sc_args(&[libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0]);
    let sc_listen = sc_args(&[0, 1]);
    let sc_accept = sc_args(&[lfd, 0, 0]);
    let sc_recvfrom = sc_args(&[ufd, buf, 64, 0, from, from_len]);
    let d = Daemon::start();
    let pid = in_child(|| {
        steps(|| {
            let t = int80(IA32_SOCKET, &[libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0]);
            check(1, int80(IA32_LISTEN, &[t as u32, 1]).into())?;
            let t2 = int80(IA32_SOCKETCALL, &[SYS_SOCKET, sc_socket]);
            check(2, t2.into())?;
            // SAFETY: the args array put in low memory before the fork.
            unsafe { (sc_listen as usize as *mut u32).write(t2 as u32) };
            check(3, int80(IA32_SOCKETCALL, &[SYS_LISTEN, sc_listen]).into())?;
            check(4, int80(IA32_ACCEPT4, &[lfd, 0, 0, 0]).into())?;
            check(5, int80(IA32_SOCKETCALL, &[SYS_ACCEPT, sc_accept]).into())?;
            check(6, int80(IA32_RECVFROM, &[ufd, buf, 64, 0, from, from_len]).into())?;
            check(7, int80(IA32_SOCKETCALL, &[SYS_RECVFROM, sc_recvfrom]).into())?;
            Ok(())
        })
    });
    let is =
        |v: &Value, evt_type: &str, call: &str| s(v, "evt.type") == evt_type && door(v) == ("ia32", call);
    for (evt_type, call) in [
        ("socket", "socketcall"),
        ("listen", "listen"),
        ("listen", "socketcall"),
        ("accept4", "accept4"),
        ("accept", "socketcall"),
        ("recvfrom", "recvfrom"),
        ("recvfrom", "socketcall"),
    ] {
        let ev = expect(&d, &format!("ia32 {evt_type} via {call}"), pid, |v| is(v, evt_type, call));
        if evt_type.starts_with("accept") {
            assert_eq!(s(&ev, "fd.name").rsplit_once(':').unwrap().1, at.port().to_string(), "{ev}");
        }
        if evt_type == "recvfrom" {
            // The sender, named by the call, is the client; the receiving socket the server.
            let sender_port = sender.local_addr().unwrap().port();
            assert_eq!(s(&ev, "fd.name"), format!("127.0.0.1:{sender_port}->127.0.0.1:{port}"), "{ev}");
        }
    }
    d.stop();
}

#[test]
fn ia32_exec_through_int_0x80_is_an_execve() {
    require_root!();
    require_ia32!();
    let low = Low::new();
    let path = low.cstr("/bin/true");
    let argv = low.put([path, 0u32]);
    let envp = low.put(0u32);
    let d = Daemon::start();
    let pid = in_child(|| {
        int80(IA32_EXECVE, &[path, argv, envp]);
        // Only a failed exec returns.
        99
    });
    let ev = expect(&d, "exec of true through ia32 execve", pid, |v| s(v, "evt.type") == "execve");
    assert_eq!(s(&ev, "proc.exepath"), canonical("/bin/true"), "{ev}");
    assert_eq!(s(&ev, "proc.name"), "true");
    d.stop();
}

/// A directory renamed through ia32 rename(2) loses its verdict, as with the native syscall:
/// otherwise an old Drop verdict would hide the opens of a watched path.
#[test]
fn an_ia32_rename_voids_the_kernel_filters_directory_verdicts() {
    require_root!();
    require_ia32!();
    let tmp = tempfile::Builder::new().prefix("monitor-doors-rename").tempdir().unwrap();
    let t = canonical(tmp.path().to_str().unwrap());
    std::fs::create_dir_all(format!("{t}/watched")).unwrap();
    std::fs::create_dir(format!("{t}/other")).unwrap();
    std::fs::write(format!("{t}/other/f"), "x").unwrap();
    let rules = format!("{t}/rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: Watched read\n  desc: d\n  condition: evt.type in (open, openat) and fd.name pmatch ({t}/watched)\n  \
             output: o\n  priority: WARNING\n"
        ),
    )
    .unwrap();
    let filtered = Daemon::start_with(Options {
        command: &["events", "--json", "--filter", "--rules", &rules],
        ..Default::default()
    });
    let other = format!("{t}/other/f");
    let me = std::process::id();
    let opens = |path: &str| filtered.matching(|v| common::is_open_of(v, me, path)).len();
    let _ = std::fs::File::open(&other);
    filtered.wait_for("the first open in a directory", |v| common::is_open_of(v, me, &other));
    let _ = std::fs::File::open(&other);
    let low = Low::new();
    let (from, moved) = (low.cstr(&format!("{t}/other")), low.cstr(&format!("{t}/watched/moved")));
    in_child(|| steps(|| check(1, int80(IA32_RENAME, &[from, moved]).into())));
    let moved_file = format!("{t}/watched/moved/f");
    let _ = std::fs::File::open(&moved_file);
    filtered.wait_for("an open below the renamed directory", |v| common::is_open_of(v, me, &moved_file));
    assert_eq!(opens(&other), 1, "the verdict dismissed the second open before the rename");
    filtered.stop();
}

// ---------------------------------------------------------------------------------------------
// io_uring

fn open_sqe(opcode: u8, path: &std::ffi::CStr, flags: u32) -> Sqe {
    Sqe { opcode, fd: AT_FDCWD, addr: path.as_ptr() as u64, op_flags: flags, ..Sqe::default() }
}

#[test]
fn io_uring_opens_report_the_resolved_file() {
    require_root!();
    let f = files();
    let c = |p: &str| std::ffi::CString::new(p).unwrap();
    let (marker, link, shadow, missing) = (c(&f.marker), c(&f.link), c("/etc/shadow"), c(&f.missing));
    let how = [0u64; 3];
    let d = Daemon::start();
    let pid = in_child(|| {
        let ring = match Ring::new() {
            Ok(r) => r,
            Err(step) => return step,
        };
        let slots = [-1i32; 4];
        steps(|| {
            check(1, ring.run(open_sqe(raw::IORING_OP_OPENAT, &marker, O_RDONLY)).into())?;
            // Through a symlink: the file the kernel opened is what counts.
            check(2, ring.run(open_sqe(raw::IORING_OP_OPENAT, &link, O_RDONLY)).into())?;
            let openat2 = Sqe {
                opcode: raw::IORING_OP_OPENAT2,
                fd: AT_FDCWD,
                addr: shadow.as_ptr() as u64,
                len: 24,
                off: how.as_ptr() as u64,
                ..Sqe::default()
            };
            check(3, ring.run(openat2).into())?;
            // Into a fixed-file slot: the file never enters the fd table.
            check(4, ring.register_empty_files(&slots))?;
            check(
                5,
                ring.run(Sqe { file_index: 2, ..open_sqe(raw::IORING_OP_OPENAT, &link, O_RDONLY) }).into(),
            )?;
            // No completion on success.
            check(6, ring.run_skipping_success(open_sqe(raw::IORING_OP_OPENAT, &shadow, O_RDONLY)).into())?;
            if ring.run(open_sqe(raw::IORING_OP_OPENAT, &missing, O_RDONLY)) != -libc::ENOENT {
                return Err(7);
            }
            // Issued by an io-wq worker thread, not the submitter.
            let forced =
                Sqe { flags: raw::IOSQE_ASYNC, ..open_sqe(raw::IORING_OP_OPENAT, &marker, O_RDONLY) };
            check(8, ring.run(forced).into())?;
            // Submitted and issued by the ring's SQPOLL kernel thread.
            let polled = Ring::polled()?;
            check(9, polled.run(open_sqe(raw::IORING_OP_OPENAT, &link, O_RDONLY)).into())?;
            Ok(())
        })
    });
    let setup = expect(&d, "io_uring_setup", pid, |v| s(v, "evt.type") == "io_uring_setup");
    assert_eq!(s(&setup, "evt.res"), "SUCCESS", "{setup}");
    let marker_open = expect(&d, "io_uring open of the marker", pid, |v| opened(v, "openat", &f.marker));
    assert_eq!(door(&marker_open), ("io_uring", "IORING_OP_OPENAT"), "{marker_open}");
    assert!(!common::b(&marker_open, "fd.unresolved"), "{marker_open}");
    assert!(!common::b(&marker_open, "evt.result_unknown"), "{marker_open}");
    let markers = all_of(&d, pid, |v| opened(v, "openat", &f.marker));
    assert_eq!(markers.len(), 2, "the plain and the io-wq open of the marker: {markers:#?}");
    let shadows = all_of(&d, pid, |v| s(v, "fd.name") == "/etc/shadow");
    let calls: Vec<(&str, &str, bool)> = shadows
        .iter()
        .map(|v| (s(v, "evt.type"), s(v, "evt.call"), common::b(v, "evt.result_unknown")))
        .collect();
    // Through the symlink: plain, into a fixed-file slot (resolved from the ring's file table),
    // and by the SQPOLL thread.
    let resolved = calls.iter().filter(|c| **c == ("openat", "IORING_OP_OPENAT", false)).count();
    assert_eq!(resolved, 3, "symlink, fixed-file and SQPOLL opens: {calls:?}");
    assert!(calls.contains(&("openat2", "IORING_OP_OPENAT2", false)), "openat2: {calls:?}");
    // The CQE_SKIP_SUCCESS open: reported at submission, its result unknown.
    assert!(calls.contains(&("openat", "IORING_OP_OPENAT", true)), "CQE_SKIP_SUCCESS open: {calls:?}");
    assert_eq!(calls.len(), 5, "each open reported once: {shadows:#?}");
    let failed = expect(&d, "failed io_uring open", pid, |v| opened(v, "openat", &f.missing));
    assert_eq!(s(&failed, "evt.res"), "ENOENT", "{failed}");
    assert!(common::b(&failed, "fd.unresolved"));
    d.stop();
}

#[test]
fn io_uring_connects_and_sends_report_their_destination_once() {
    require_root!();
    let (_tcp, tcp) = tcp_listener();
    let (_u1, p1) = udp_listener();
    let (_u2, p2) = udp_listener();
    let (_u3, p3) = udp_listener();
    let (_u4, p4) = udp_listener();
    let (_u5, p5) = udp_listener();
    let (_tcp2, tcp2) = tcp_listener();
    let tcp_addr = raw::sockaddr_in(tcp);
    let tcp2_addr = raw::sockaddr_in(tcp2);
    let (a4, a5) = (raw::sockaddr_in(loopback(p4)), raw::sockaddr_in(loopback(p5)));
    let slots = [-1i32; 2];
    let (a1, a2, a3) =
        (raw::sockaddr_in(loopback(p1)), raw::sockaddr_in(loopback(p2)), raw::sockaddr_in(loopback(p3)));
    let payload = *b"x";
    let iov = libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: 1 };
    // SAFETY: a zeroed msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw const a1) as *mut _;
    msg.msg_namelen = 16;
    msg.msg_iov = (&raw const iov) as *mut _;
    msg.msg_iovlen = 1;
    let mut msg5 = msg;
    msg5.msg_name = (&raw const a5) as *mut _;
    let d = Daemon::start();
    let pid = in_child(|| {
        let ring = match Ring::new() {
            Ok(r) => r,
            Err(step) => return step,
        };
        steps(|| {
            let t = raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0]);
            check(1, t)?;
            let connect = Sqe {
                opcode: raw::IORING_OP_CONNECT,
                fd: t as i32,
                addr: (&raw const tcp_addr) as u64,
                off: 16,
                ..Sqe::default()
            };
            check(2, ring.run(connect).into())?;
            let u = raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, libc::SOCK_DGRAM as u64, 0]);
            check(3, u)?;
            let sendmsg = Sqe {
                opcode: raw::IORING_OP_SENDMSG,
                fd: u as i32,
                addr: (&raw const msg) as u64,
                ..Sqe::default()
            };
            check(4, ring.run(sendmsg).into())?;
            let send = Sqe {
                opcode: raw::IORING_OP_SEND,
                fd: u as i32,
                addr: payload.as_ptr() as u64,
                len: 1,
                off: (&raw const a2) as u64,
                file_index: 16,
                ..Sqe::default()
            };
            check(5, ring.run(send).into())?;
            // A UDP connect: no TCP state change to back it up, reported at submission.
            let u2 = raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, libc::SOCK_DGRAM as u64, 0]);
            let udp_connect = Sqe {
                opcode: raw::IORING_OP_CONNECT,
                fd: u2 as i32,
                addr: (&raw const a3) as u64,
                off: 16,
                ..Sqe::default()
            };
            check(6, ring.run(udp_connect).into())?;
            // Zero-copy sends post a second completion (the buffer's release) later.
            let send_zc = Sqe { opcode: raw::IORING_OP_SEND_ZC, off: (&raw const a4) as u64, ..send };
            check(7, ring.run(send_zc).into())?;
            let sendmsg_zc =
                Sqe { opcode: raw::IORING_OP_SENDMSG_ZC, addr: (&raw const msg5) as u64, ..sendmsg };
            check(8, ring.run(sendmsg_zc).into())?;
            // A socket made into a fixed-file slot and connected from there: neither is in the
            // fd table.
            check(9, ring.register_empty_files(&slots))?;
            let socket = Sqe {
                opcode: raw::IORING_OP_SOCKET,
                fd: libc::AF_INET,
                off: libc::SOCK_STREAM as u64,
                file_index: 1,
                ..Sqe::default()
            };
            check(10, ring.run(socket).into())?;
            let fixed_connect =
                Sqe { flags: raw::IOSQE_FIXED_FILE, fd: 0, addr: (&raw const tcp2_addr) as u64, ..connect };
            check(11, ring.run(fixed_connect).into())?;
            Ok(())
        })
    });
    let connect = expect(&d, "io_uring TCP connect", pid, |v| to(v, "connect", tcp.port()));
    assert_eq!(door(&connect), ("io_uring", "IORING_OP_CONNECT"), "{connect}");
    assert_eq!(s(&connect, "fd.l4proto"), "tcp", "{connect}");
    assert_eq!(s(&connect, "evt.res"), "SUCCESS", "{connect}");
    let sendmsg = expect(&d, "io_uring sendmsg", pid, |v| to(v, "sendmsg", p1));
    assert_eq!(door(&sendmsg), ("io_uring", "IORING_OP_SENDMSG"), "{sendmsg}");
    let send = expect(&d, "io_uring send with a destination", pid, |v| to(v, "sendto", p2));
    assert_eq!(door(&send), ("io_uring", "IORING_OP_SEND"), "{send}");
    let udp = expect(&d, "io_uring UDP connect", pid, |v| to(v, "connect", p3));
    assert_eq!(s(&udp, "fd.l4proto"), "udp", "{udp}");
    let send_zc = expect(&d, "io_uring zero-copy send", pid, |v| to(v, "sendto", p4));
    assert_eq!(door(&send_zc), ("io_uring", "IORING_OP_SEND_ZC"), "{send_zc}");
    let sendmsg_zc = expect(&d, "io_uring zero-copy sendmsg", pid, |v| to(v, "sendmsg", p5));
    assert_eq!(door(&sendmsg_zc), ("io_uring", "IORING_OP_SENDMSG_ZC"), "{sendmsg_zc}");
    let fixed = expect(&d, "io_uring connect of a fixed-file socket", pid, |v| to(v, "connect", tcp2.port()));
    assert_eq!(s(&fixed, "fd.l4proto"), "tcp", "the socket was found in the ring's table: {fixed}");
    assert_eq!(s(&fixed, "evt.res"), "SUCCESS", "{fixed}");
    // The TCP state backstop saw the same connect: it must not report it again.
    let connects = all_of(&d, pid, |v| to(v, "connect", tcp.port()));
    assert_eq!(connects.len(), 1, "{connects:#?}");
    d.stop();
}

// ---------------------------------------------------------------------------------------------
// File handles and descriptors taken from other processes

#[test]
fn open_by_handle_at_and_pidfd_getfd_report_the_file() {
    require_root!();
    let f = files();
    let shadow = c"/etc/shadow";
    let mut handle = [0u32; 34];
    handle[0] = 128;
    let mut mount_id = 0i32;
    // The file the child takes from this process.
    let held = std::fs::File::open(&f.marker).unwrap();
    let held_fd = held.as_raw_fd();
    let parent = std::process::id();
    let d = Daemon::start();
    let pid = in_child(|| {
        steps(|| {
            let at = AT_FDCWD as u64;
            check(
                1,
                raw::syscall(
                    libc::SYS_name_to_handle_at,
                    &[at, shadow.as_ptr() as u64, handle.as_mut_ptr() as u64, (&raw mut mount_id) as u64, 0],
                ),
            )?;
            let root = raw::syscall(libc::SYS_open, &[c"/".as_ptr() as u64, 0]);
            check(2, raw::syscall(libc::SYS_open_by_handle_at, &[root as u64, handle.as_ptr() as u64, 0]))?;
            let pidfd = raw::syscall(libc::SYS_pidfd_open, &[u64::from(parent), 0]);
            check(3, pidfd)?;
            check(4, raw::syscall(libc::SYS_pidfd_getfd, &[pidfd as u64, held_fd as u64, 0]))?;
            Ok(())
        })
    });
    let by_handle = expect(&d, "open_by_handle_at of /etc/shadow", pid, |v| {
        opened(v, "open_by_handle_at", "/etc/shadow")
    });
    assert_eq!(door(&by_handle), ("syscall", "open_by_handle_at"), "{by_handle}");
    assert!(common::b(&by_handle, "evt.is_open_read"), "{by_handle}");
    let taken = expect(&d, "pidfd_getfd of the marker", pid, |v| opened(v, "pidfd_getfd", &f.marker));
    assert!(common::b(&taken, "evt.is_open_read"), "the taken file's own flags: {taken}");
    drop(held);
    d.stop();
}

// ---------------------------------------------------------------------------------------------
// sendmmsg, TCP Fast Open, and the TCP backstop

#[test]
fn sendmmsg_reports_each_destination_once_per_run() {
    require_root!();
    let (_a, pa) = udp_listener();
    let (_b, pb) = udp_listener();
    let (a, b) = (raw::sockaddr_in(loopback(pa)), raw::sockaddr_in(loopback(pb)));
    let payload = *b"x";
    let iov = libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: 1 };
    let msg = |name: &libc::sockaddr_in| {
        // SAFETY: a zeroed mmsghdr is a valid empty one.
        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
        m.msg_hdr.msg_name = (name as *const libc::sockaddr_in) as *mut _;
        m.msg_hdr.msg_namelen = 16;
        m.msg_hdr.msg_iov = (&raw const iov) as *mut _;
        m.msg_hdr.msg_iovlen = 1;
        m
    };
    let mut msgs = [msg(&a), msg(&a), msg(&b), msg(&a)];
    let d = Daemon::start();
    let pid = in_child(|| {
        steps(|| {
            let u = raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, libc::SOCK_DGRAM as u64, 0]);
            check(1, u)?;
            let sent = raw::syscall(libc::SYS_sendmmsg, &[u as u64, msgs.as_mut_ptr() as u64, 4, 0]);
            if sent != 4 {
                return Err(2);
            }
            Ok(())
        })
    });
    let to_a = all_of(&d, pid, |v| to(v, "sendmsg", pa));
    assert_eq!(to_a.len(), 2, "messages 1-2 to one destination are one event, message 4 another: {to_a:#?}");
    let to_b = expect(&d, "the message to the second destination", pid, |v| to(v, "sendmsg", pb));
    assert_eq!(door(&to_b), ("syscall", "sendmmsg"), "{to_b}");
    assert_eq!(s(&to_b, "evt.res"), "SUCCESS", "{to_b}");
    d.stop();
}

#[test]
fn tcp_fast_open_is_a_connect_and_a_plain_connect_is_reported_once() {
    require_root!();
    let fastopen = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen").unwrap_or_default();
    if fastopen.trim().parse::<u32>().unwrap_or(0) & 1 == 0 {
        common::skip(
            &common::test_name(),
            "net.ipv4.tcp_fastopen has no client bit: sendto(MSG_FASTOPEN) connects nothing",
        );
        return;
    }
    let (_tcp, tcp) = tcp_listener();
    let (_tcp2, tcp2) = tcp_listener();
    let (addr, addr2) = (raw::sockaddr_in(tcp), raw::sockaddr_in(tcp2));
    let payload = *b"x";
    let d = Daemon::start();
    let pid = in_child(|| {
        steps(|| {
            let t = raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0]);
            check(1, t)?;
            check(
                2,
                raw::syscall(
                    libc::SYS_sendto,
                    &[
                        t as u64,
                        payload.as_ptr() as u64,
                        1,
                        u64::from(MSG_FASTOPEN),
                        (&raw const addr) as u64,
                        16,
                    ],
                ),
            )?;
            let t2 = raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0]);
            check(3, raw::syscall(libc::SYS_connect, &[t2 as u64, (&raw const addr2) as u64, 16]))?;
            Ok(())
        })
    });
    let tfo = expect(&d, "TCP Fast Open sendto", pid, |v| to(v, "connect", tcp.port()));
    assert_eq!(door(&tfo), ("syscall", "sendto"), "{tfo}");
    assert!(common::b(&tfo, "evt.result_unknown"), "{tfo}");
    expect(&d, "the plain connect", pid, |v| to(v, "connect", tcp2.port()));
    let plain = all_of(&d, pid, |v| to(v, "connect", tcp2.port()));
    assert_eq!(plain.len(), 1, "the backstop must not report a connect(2) again: {plain:#?}");
    assert_eq!(door(&plain[0]), ("syscall", "connect"));
    d.stop();
}

/// What the filter does to the new doors: `monitor events --filter` with a rule on reads of
/// one file dismisses a 32-bit write-open and an io_uring write-open of it in the kernel, as it
/// does a native one, and lets the reads through.
#[test]
fn the_kernel_filter_applies_to_every_door() {
    require_root!();
    let f = files();
    let rules = format!("{}.rules.yaml", f.marker);
    std::fs::write(
        &rules,
        format!(
            "- rule: Marker read\n  desc: d\n  condition: evt.type in (open, openat) and evt.is_open_read = true and fd.name = {}\n  \
             output: o\n  priority: WARNING\n",
            f.marker
        ),
    )
    .unwrap();
    let filtered = Daemon::start_with(Options {
        command: &["events", "--json", "--filter", "--rules", &rules],
        ..Default::default()
    });
    let all = Daemon::start();
    let marker = std::ffi::CString::new(f.marker.as_str()).unwrap();
    let ia32 = ia32_works();
    let low = Low::new();
    let low_marker = low.cstr(&f.marker);
    let pid = in_child(|| {
        let ring = match Ring::new() {
            Ok(r) => r,
            Err(step) => return step,
        };
        steps(|| {
            check(1, ring.run(open_sqe(raw::IORING_OP_OPENAT, &marker, libc::O_WRONLY as u32)).into())?;
            if ia32 {
                check(2, int80(IA32_OPEN, &[low_marker, libc::O_WRONLY as u32]).into())?;
            }
            check(3, ring.run(open_sqe(raw::IORING_OP_OPENAT, &marker, O_RDONLY)).into())?;
            if ia32 {
                check(4, int80(IA32_OPEN, &[low_marker, O_RDONLY]).into())?;
            }
            Ok(())
        })
    });
    // Lifecycle events are never filtered, so the child's exit ends its events in both.
    let opens =
        |d: &Daemon, flag: &str| all_of(d, pid, |v| s(v, "fd.name") == f.marker && common::b(v, flag));
    let n = if ia32 { 2 } else { 1 };
    assert_eq!(opens(&all, "evt.is_open_write").len(), n, "every write-open, unfiltered");
    assert_eq!(opens(&filtered, "evt.is_open_read").len(), n, "the reads pass the filter");
    let leaked = opens(&filtered, "evt.is_open_write");
    assert!(leaked.is_empty(), "write-opens no rule wants reached userspace: {leaked:#?}");
    filtered.stop();
    all.stop();
}
