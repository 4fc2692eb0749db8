//! The kernel sensors end to end: each test loads the real programs through the real daemon,
//! does the real thing in a process of its own, and checks what the daemon reports about it.

use crate::common;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Stdio};

use common::{Daemon, FakeContainer, Options, b, canonical, gettid, is, is_open_of, own_comm, run, s, u};
use serde_json::Value;

#[test]
fn exec_reports_argv_parent_and_ancestors() {
    require_root!();
    let d = Daemon::start();
    let sh = run(Command::new("sh").args(["-c", "id; true"]));
    let me = std::process::id();

    let ev = d.wait_for("exec of sh", |v| is(v, "execve", sh));
    assert_eq!(s(&ev, "proc.exepath"), canonical("/bin/sh"));
    assert_eq!(ev["proc.argv"], serde_json::json!(["sh", "-c", "id; true"]));
    assert_eq!(s(&ev, "proc.args"), "-c id; true");
    assert_eq!(u(&ev, "proc.ppid"), u64::from(me));
    assert_eq!(s(&ev, "proc.pname"), own_comm());
    assert_eq!(s(&ev, "container.id"), "host");
    assert_eq!(s(&ev, "proc.cwd"), canonical("."));

    let id = d.wait_for("exec of id by sh", |v| {
        s(v, "evt.type") == "execve" && s(v, "proc.name") == "id" && u(v, "proc.ppid") == u64::from(sh)
    });
    assert_eq!(s(&id, "proc.exepath"), canonical("/usr/bin/id"));
    assert_eq!(id["proc.argv"], serde_json::json!(["id"]));
    assert_eq!(s(&id, "proc.pname"), "sh");
    assert_eq!(s(&id, "proc.pcmdline"), "sh -c id; true");
    assert_eq!(s(&id, "proc.aname[1]"), "sh");
    assert_eq!(s(&id, "proc.aname[2]"), own_comm());
    assert_eq!(u(&id, "proc.apid[2]"), u64::from(me));
    let id_pid = u(&id, "proc.pid") as u32;

    // The fork that made id's process, and both exits.
    let fork = d.wait_for("fork of id's process", |v| is(v, "clone", id_pid));
    assert_eq!(u(&fork, "proc.ppid"), u64::from(sh));
    d.wait_for("exit of id", |v| is(v, "procexit", id_pid));
    d.wait_for("exit of sh", |v| is(v, "procexit", sh));

    // The daemon never reports itself.
    let own = d.pid();
    assert!(
        d.matching(|v| u(v, "proc.pid") == u64::from(own)).is_empty(),
        "the daemon reported its own activity"
    );
    d.stop();
}

#[test]
fn open_of_shadow_reports_path_flags_and_inode() {
    require_root!();
    let d = Daemon::start();
    let pid = run(Command::new("cat").arg("/etc/shadow"));
    let ev = d.wait_for("open of /etc/shadow by cat", |v| is_open_of(v, pid, "/etc/shadow"));
    assert!(b(&ev, "evt.is_open_read"));
    assert!(!b(&ev, "evt.is_open_write"));
    assert!(s(&ev, "evt.arg.flags").starts_with("O_RDONLY"), "{ev}");
    assert_eq!(s(&ev, "evt.res"), "SUCCESS");
    assert!(!b(&ev, "fd.unresolved"));
    assert_eq!(s(&ev, "fd.directory"), "/etc");
    assert_eq!(s(&ev, "fd.filename"), "shadow");
    let meta = std::fs::metadata("/etc/shadow").unwrap();
    assert_eq!(u(&ev, "fd.ino"), meta.ino());
    assert_eq!(u(&ev, "fd.dev"), meta.dev(), "fd.dev must compare with stat's st_dev");
    assert_eq!(s(&ev, "proc.name"), "cat");
    d.stop();
}

#[test]
fn evasive_paths_resolve_to_the_real_file() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("innocent-link");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let d = Daemon::start();
    let cases: Vec<(&str, u32)> = vec![
        ("relative from /etc", run(Command::new("cat").arg("shadow").current_dir("/etc"))),
        ("symlink in a temp dir", run(Command::new("cat").arg(&link))),
        ("dot-dot", run(Command::new("cat").arg("/etc/../etc/shadow"))),
        ("/proc/self/root", run(Command::new("cat").arg("/proc/self/root/etc/shadow"))),
        (
            "relative with dot-dot from /tmp",
            run(Command::new("cat").arg("../etc/./shadow").current_dir("/tmp")),
        ),
    ];
    for (what, pid) in cases {
        let ev = d.wait_for(what, |v| is_open_of(v, pid, "/etc/shadow"));
        assert!(!b(&ev, "fd.unresolved"), "{what}: {ev}");
    }
    d.stop();
}

#[test]
fn failed_open_reports_the_callers_path_joined_with_its_directory() {
    require_root!();
    let d = Daemon::start();
    let pid = run(Command::new("cat").arg("no-such-file-here").current_dir("/etc"));
    let ev = d.wait_for("failed open", |v| is_open_of(v, pid, "/etc/no-such-file-here"));
    assert_eq!(s(&ev, "evt.res"), "ENOENT");
    assert_eq!(ev["evt.rawres"], serde_json::json!(-2));
    assert!(b(&ev, "fd.unresolved"));
    d.stop();
}

#[test]
fn renamed_and_symlinked_binaries_report_the_real_executable() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("innocent");
    std::fs::copy("/bin/sh", &copy).unwrap();
    let alias = dir.path().join("ls");
    std::os::unix::fs::symlink("/bin/sh", &alias).unwrap();
    let d = Daemon::start();
    let pid = run(Command::new(&copy).args(["-c", "exit 0"]));
    let ev = d.wait_for("exec of the renamed copy", |v| is(v, "execve", pid));
    assert_eq!(s(&ev, "proc.exepath"), copy.to_str().unwrap());
    assert_eq!(s(&ev, "proc.name"), "innocent");

    let pid = run(Command::new(&alias).args(["-c", "exit 0"]));
    let ev = d.wait_for("exec through a symlink", |v| is(v, "execve", pid));
    assert_eq!(s(&ev, "proc.exepath"), canonical("/bin/sh"));
    assert_eq!(s(&ev, "proc.exe"), alias.to_str().unwrap());
    d.stop();
}

/// Runs execveat(dirfd, path, [argv0], {}, flags) in a forked child that must exit 0; returns
/// its pid.
fn run_execveat(dirfd: i32, path: &std::ffi::CStr, argv0: &std::ffi::CStr, flags: i32) -> u32 {
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    // SAFETY: the child only calls async-signal-safe functions before exec or _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        unsafe {
            libc::syscall(libc::SYS_execveat, dirfd, path.as_ptr(), argv.as_ptr(), envp.as_ptr(), flags);
            libc::_exit(127);
        }
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(status, 0, "execveat of {path:?} did not run");
    pid as u32
}

fn memfd_with(path: &str) -> OwnedFd {
    use std::os::fd::FromRawFd as _;
    // SAFETY: memfd_create with a valid name; the fd is owned from here on.
    let fd = unsafe { libc::memfd_create(c"fileless".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(fd.try_clone().unwrap());
    f.write_all(&std::fs::read(path).unwrap()).unwrap();
    fd
}

#[test]
fn fileless_memfd_exec_is_reported() {
    require_root!();
    let d = Daemon::start();
    let fd = memfd_with("/bin/true");

    // fexecve: execveat(fd, "", ..., AT_EMPTY_PATH).
    let pid = run_execveat(fd.as_raw_fd(), c"", c"fileless", libc::AT_EMPTY_PATH);
    let ev = d.wait_for("fexecve of a memfd", |v| is(v, "execveat", pid));
    assert!(s(&ev, "proc.exepath").starts_with("/memfd:fileless"), "{ev}");
    assert!(b(&ev, "proc.is_exe_from_memfd"));

    // The same file through /proc/self/fd.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let pid = run(&mut Command::new(&path));
    let ev = d.wait_for("exec of a memfd through /proc/self/fd", |v| is(v, "execve", pid));
    assert!(s(&ev, "proc.exepath").starts_with("/memfd:fileless"), "{ev}");
    assert!(b(&ev, "proc.is_exe_from_memfd"));
    d.stop();
}

/// A connected loopback TCP connection: (client end, server end, server port).
fn loopback_tcp_pair() -> (TcpStream, TcpStream, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server, port)
}

#[test]
fn shell_with_a_socket_as_stdin_is_visible_at_exec() {
    require_root!();
    let (stream, _server_side, port) = loopback_tcp_pair();
    let d = Daemon::start();
    let pid = run(Command::new("sh").args(["-c", "exit 0"]).stdin(Stdio::from(OwnedFd::from(stream))));
    let ev = d.wait_for("exec of sh with a socket stdin", |v| is(v, "execve", pid));
    assert_eq!(s(&ev, "proc.stdin.type"), "ipv4", "{ev}");
    assert!(s(&ev, "proc.stdin.name").ends_with(&format!("->127.0.0.1:{port}")), "{ev}");
    assert_ne!(s(&ev, "proc.stdout.type"), "ipv4");
    d.stop();
}

fn net_event(d: &Daemon, what: &str, evt_type: &str, tid: u32, sport: u16) -> Value {
    d.wait_for(what, |v| {
        s(v, "evt.type") == evt_type
            && u(v, "proc.tid") == u64::from(tid)
            && u(v, "fd.sport") == u64::from(sport)
    })
}

fn mapped(port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped(), port, 0, 0))
}

#[test]
fn connects_and_sends_report_destination_and_result() {
    require_root!();
    let d = Daemon::start();
    let tid = gettid();

    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let p4 = v4.local_addr().unwrap().port();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let p6 = v6.local_addr().unwrap().port();
    let _a = TcpStream::connect(("127.0.0.1", p4)).unwrap();
    let _b = TcpStream::connect(("::1", p6)).unwrap();
    let v4m = TcpListener::bind("127.0.0.1:0").unwrap();
    let pm = v4m.local_addr().unwrap().port();
    let _c = TcpStream::connect(mapped(pm)).unwrap();

    let ev = net_event(&d, "tcp connect to 127.0.0.1", "connect", tid, p4);
    assert_eq!(
        (s(&ev, "fd.sip"), s(&ev, "fd.l4proto"), s(&ev, "evt.res"), s(&ev, "fd.type")),
        ("127.0.0.1", "tcp", "SUCCESS", "ipv4")
    );
    assert_eq!(s(&ev, "fd.cip"), "127.0.0.1");
    assert_ne!(u(&ev, "fd.cport"), 0);
    let ev = net_event(&d, "tcp connect to [::1]", "connect", tid, p6);
    assert_eq!((s(&ev, "fd.sip"), s(&ev, "fd.l4proto"), s(&ev, "fd.type")), ("::1", "tcp", "ipv6"));
    let ev = net_event(&d, "tcp connect to ::ffff:127.0.0.1", "connect", tid, pm);
    assert_eq!(
        (s(&ev, "fd.sip"), s(&ev, "fd.type")),
        ("127.0.0.1", "ipv4"),
        "a mapped address must read as IPv4: {ev}"
    );

    // A refused connect still names its destination.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let pc = closed.local_addr().unwrap().port();
    drop(closed);
    assert!(TcpStream::connect(("127.0.0.1", pc)).is_err());
    let ev = net_event(&d, "refused tcp connect", "connect", tid, pc);
    assert_eq!((s(&ev, "fd.sip"), s(&ev, "evt.res")), ("127.0.0.1", "ECONNREFUSED"));

    // UDP: connect (v4, v6, mapped), and an unconnected sendto.
    let rx4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let u4 = rx4.local_addr().unwrap().port();
    let rx6 = UdpSocket::bind("[::1]:0").unwrap();
    let u6 = rx6.local_addr().unwrap().port();
    UdpSocket::bind("127.0.0.1:0").unwrap().connect(("127.0.0.1", u4)).unwrap();
    UdpSocket::bind("[::1]:0").unwrap().connect(("::1", u6)).unwrap();
    let mapped_sock = UdpSocket::bind("[::]:0").unwrap();
    mapped_sock.connect(mapped(u4)).unwrap();
    let ev = net_event(&d, "udp connect to 127.0.0.1", "connect", tid, u4);
    assert_eq!((s(&ev, "fd.sip"), s(&ev, "fd.l4proto")), ("127.0.0.1", "udp"));
    let ev = net_event(&d, "udp connect to [::1]", "connect", tid, u6);
    assert_eq!((s(&ev, "fd.sip"), s(&ev, "fd.l4proto")), ("::1", "udp"));
    let mapped_port = u64::from(mapped_sock.local_addr().unwrap().port());
    let mapped_udp = d.wait_for("udp connect to ::ffff:127.0.0.1", |v| {
        s(v, "evt.type") == "connect" && u(v, "proc.tid") == u64::from(tid) && u(v, "fd.cport") == mapped_port
    });
    assert_eq!((s(&mapped_udp, "fd.sip"), u(&mapped_udp, "fd.sport")), ("127.0.0.1", u64::from(u4)));

    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(b"x", ("127.0.0.1", u4)).unwrap();
    let ev = net_event(&d, "unconnected udp sendto", "sendto", tid, u4);
    assert_eq!((s(&ev, "fd.sip"), s(&ev, "fd.l4proto"), s(&ev, "evt.res")), ("127.0.0.1", "udp", "SUCCESS"));
    assert_eq!(u(&ev, "fd.cport"), u64::from(tx.local_addr().unwrap().port()));

    // sendmsg naming its destination.
    let rx_msg = UdpSocket::bind("127.0.0.1:0").unwrap();
    let um = rx_msg.local_addr().unwrap().port();
    let dest = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: um.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    let payload = [0u8; 1];
    let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: 1 };
    // SAFETY: msghdr fields point at live locals for the duration of the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &dest as *const _ as *mut _;
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let rc = unsafe { libc::sendmsg(tx.as_raw_fd(), &msg, 0) };
    assert_eq!(rc, 1, "sendmsg: {}", std::io::Error::last_os_error());
    let ev = net_event(&d, "unconnected udp sendmsg", "sendmsg", tid, um);
    assert_eq!((s(&ev, "fd.sip"), s(&ev, "fd.l4proto")), ("127.0.0.1", "udp"));

    // An IPv4 destination sent from a dual-stack IPv6 socket reads as IPv4.
    let dual = UdpSocket::bind("[::]:0").unwrap();
    dual.send_to(b"z", ("127.0.0.1", u4)).unwrap();
    let dual_port = u64::from(dual.local_addr().unwrap().port());
    let ev = d.wait_for("sendto of an IPv4 sockaddr on an IPv6 socket", |v| {
        s(v, "evt.type") == "sendto" && u(v, "proc.tid") == u64::from(tid) && u(v, "fd.cport") == dual_port
    });
    assert_eq!(
        (s(&ev, "fd.sip"), u(&ev, "fd.sport"), s(&ev, "fd.type")),
        ("127.0.0.1", u64::from(u4), "ipv4"),
        "{ev}"
    );

    // Ordinary sends on a connected socket are not events. A later unconnected send is the
    // marker: once it is seen, the daemon has read past the connected ones.
    let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
    connected.connect(("127.0.0.1", u4)).unwrap();
    for _ in 0..5 {
        connected.send(b"y").unwrap();
    }
    let marker = UdpSocket::bind("127.0.0.1:0").unwrap();
    marker.send_to(b"m", ("127.0.0.1", u4)).unwrap();
    let marker_port = u64::from(marker.local_addr().unwrap().port());
    d.wait_for("marker sendto", |v| s(v, "evt.type") == "sendto" && u(v, "fd.cport") == marker_port);
    let cport = u64::from(connected.local_addr().unwrap().port());
    assert!(
        d.matching(|v| matches!(s(v, "evt.type"), "sendto" | "sendmsg") && u(v, "fd.cport") == cport)
            .is_empty()
    );
    // ... but a send that names a destination goes there, connected or not (UDP honours the
    // address): `connect(harmless)` then `sendto(elsewhere)` must not hide elsewhere.
    let elsewhere = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ue = elsewhere.local_addr().unwrap().port();
    connected.send_to(b"e", ("127.0.0.1", ue)).unwrap();
    let mut got = [0u8; 1];
    elsewhere.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    assert_eq!(elsewhere.recv(&mut got).unwrap(), 1, "the datagram went to the named address");
    let ev = net_event(&d, "sendto naming a destination on a connected udp socket", "sendto", tid, ue);
    assert_eq!(u(&ev, "fd.cport"), cport, "{ev}");

    // Unix sockets.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sock");
    let _ul = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let _us = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let ev = d.wait_for("unix connect", |v| {
        s(v, "evt.type") == "connect"
            && u(v, "proc.tid") == u64::from(tid)
            && s(v, "fd.name") == path.to_str().unwrap()
    });
    assert_eq!((s(&ev, "fd.type"), s(&ev, "evt.res")), ("unix", "SUCCESS"));
    d.stop();
}

#[test]
fn process_started_before_the_daemon_has_name_and_parent() {
    require_root!();
    // Its stdout is a TCP socket: the seed from /proc must name it as the exec sensor would.
    let (stream, _server_side, port) = loopback_tcp_pair();
    let mut child = Command::new("sh")
        .args(["-c", "read x; exec 3</etc/hostname"])
        .stdin(Stdio::piped())
        .stdout(Stdio::from(OwnedFd::from(stream)))
        .spawn()
        .unwrap();
    let pid = child.id();
    let d = Daemon::start();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child.wait().unwrap();
    let ev = d.wait_for_or_show(
        "open by the older process",
        |v| is_open_of(v, pid, "/etc/hostname"),
        |v| u(v, "proc.pid") == u64::from(pid) || s(v, "fd.name") == "/etc/hostname",
    );
    assert_eq!(s(&ev, "proc.name"), "sh");
    assert_eq!(s(&ev, "proc.exepath"), canonical("/bin/sh"));
    assert_eq!(u(&ev, "proc.ppid"), u64::from(std::process::id()));
    assert_eq!(s(&ev, "proc.pname"), own_comm());
    assert!(s(&ev, "proc.cmdline").contains("read x"), "{ev}");
    assert_eq!(s(&ev, "proc.source"), "proc");
    assert_eq!(s(&ev, "proc.stdout.type"), "ipv4", "{ev}");
    assert!(s(&ev, "proc.stdout.name").ends_with(&format!("->127.0.0.1:{port}")), "{ev}");
    d.stop();
}

#[test]
fn short_lived_container_cgroup_still_resolves() {
    require_root!();
    let c = FakeContainer::new();
    let (id, scope) = (c.id.clone(), c.scope.clone());
    let d = Daemon::start();
    let script = format!("echo $$ > {scope}/cgroup.procs && exec cat /etc/hostname");
    let pid = run(Command::new("sh").args(["-c", &script]));
    // Gone before the daemon is asked about it.
    drop(c);
    let ev = d.wait_for("open inside the container", |v| is_open_of(v, pid, "/etc/hostname"));
    assert_eq!(s(&ev, "container.id"), &id[..12], "{ev}");
    assert_eq!(s(&ev, "container.full_id"), id);
    assert_eq!(s(&ev, "container.type"), "docker");
    assert!(s(&ev, "cgroup.path").ends_with(&format!("docker-{id}.scope")));
    // sh started on the host and moved itself in; the cat it became runs in the container.
    let sh = d.wait_for("exec of sh on the host", |v| is(v, "execve", pid) && s(v, "proc.name") == "sh");
    assert_eq!(s(&sh, "container.id"), "host");
    let cat = d.wait_for("exec inside the container", |v| is(v, "execve", pid) && s(v, "proc.name") == "cat");
    assert_eq!(s(&cat, "container.id"), &id[..12]);
    d.stop();
}

#[test]
fn overrunning_a_tiny_ring_buffer_is_counted_not_silent() {
    require_root!();
    // A 4 KiB ring and a consumer that does not read: the flood must show up as drops.
    let d = Daemon::start_with(Options {
        args: &["--ring-buffer-bytes", "4096"],
        hold_output: true,
        ..Default::default()
    });
    let status = Command::new("sh")
        .args(["-c", "i=0; while [ $i -lt 5000 ]; do : < /etc/hostname; i=$((i+1)); done"])
        .status()
        .unwrap();
    assert!(status.success());
    let stderr = d.stop_while_output_stalled();
    let report = stderr.iter().rev().find(|l| l.contains("kernel drops:")).expect("no drop report on exit");
    let total: u64 = report
        .split("kernel drops:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("drop count");
    assert!(total > 0, "5000 opens through a 4 KiB ring with a stalled reader lost nothing? {report}");
    assert!(report.contains("cpu0="), "per-CPU counts missing: {report}");
}

#[test]
fn script_reports_interpreter_and_script_and_tty() {
    require_root!();
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start();
    let pid = run(Command::new("./hello.sh").current_dir(dir.path()));
    let ev = d.wait_for("exec of a #! script", |v| is(v, "execve", pid));
    assert_eq!(s(&ev, "proc.exepath"), canonical("/bin/sh"), "the interpreter is what runs");
    assert_eq!(s(&ev, "proc.script"), canonical(script.to_str().unwrap()), "{ev}");
    assert_eq!(s(&ev, "evt.arg.filename"), "./hello.sh");

    // A process on a terminal: `script` gives its child a pseudo-terminal.
    let pid = run(Command::new("script").args(["-qec", "sh -c 'exit 0'", "/dev/null"]));
    let ev = d.wait_for("exec of sh on a pty", |v| {
        s(v, "evt.type") == "execve"
            && s(v, "proc.args") == "-c exit 0"
            && (1..=3).any(|i| u(v, &format!("proc.apid[{i}]")) == u64::from(pid))
    });
    assert_ne!(u(&ev, "proc.tty"), 0, "{ev}");
    assert!(s(&ev, "proc.stdin.name").starts_with("/dev/pts/"), "{ev}");
    d.stop();
}

#[test]
fn missing_privileges_are_named_one_by_one() {
    require_root!();
    // The real daemon, started as nobody with no capabilities.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(env!("CARGO_BIN_EXE_monitor"))
        .args(["events", "--json"])
        .env("MONITOR_LOG_FORMAT", "text")
        .output()
        .expect("setpriv (util-linux)");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.stdout.is_empty());
    assert!(err.contains("cannot start the sensors"), "{err}");
    for cap in ["CAP_BPF", "CAP_PERFMON"] {
        assert!(err.contains(cap), "{cap} not named:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn long_argv_is_cut_and_flagged() {
    require_root!();
    let d = Daemon::start();
    let long = "A".repeat(3000);
    let pid = run(Command::new("/bin/true").args([&long, &long]));
    let ev = d.wait_for("exec with 6 KiB of argv", |v| is(v, "execve", pid));
    assert!(b(&ev, "proc.args_truncated"), "{ev}");
    let args = s(&ev, "proc.args");
    // argv[0] "/bin/true", then as much of the arguments as fits in 4 KiB.
    assert!(args.starts_with(&long), "the first argument must be whole");
    assert!(args.len() > 4000 && args.len() < 4096, "kept {} bytes of arguments", args.len());
    d.stop();
}

#[test]
fn creat_openat2_and_execveat_are_named_as_such() {
    require_root!();
    let d = Daemon::start();
    let tid = gettid();
    let dir = tempfile::tempdir().unwrap();
    let created = dir.path().join("made-by-creat");
    let path = std::ffi::CString::new(created.to_str().unwrap()).unwrap();
    // SAFETY: valid path; fds closed right away.
    let fd = unsafe { libc::creat(path.as_ptr(), 0o600) };
    assert!(fd >= 0);
    unsafe { libc::close(fd) };
    let how = [libc::O_RDONLY as u64, 0, 0]; // struct open_how { flags, mode, resolve }
    let fd =
        unsafe { libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, path.as_ptr(), how.as_ptr(), 24usize) };
    assert!(fd >= 0, "openat2: {}", std::io::Error::last_os_error());
    unsafe { libc::close(fd as i32) };

    let name = created.to_str().unwrap();
    let ev = d.wait_for("creat", |v| {
        s(v, "evt.type") == "creat" && u(v, "proc.tid") == u64::from(tid) && s(v, "fd.name") == name
    });
    assert!(b(&ev, "evt.is_open_create") && b(&ev, "evt.is_open_write"), "{ev}");
    let ev = d.wait_for("openat2", |v| {
        s(v, "evt.type") == "openat2" && u(v, "proc.tid") == u64::from(tid) && s(v, "fd.name") == name
    });
    assert!(b(&ev, "evt.is_open_read") && !b(&ev, "evt.is_open_write"), "{ev}");

    // execveat with a path (not an fd) is still execveat; a plain execve is execve.
    let pid = run_execveat(libc::AT_FDCWD, c"/bin/true", c"true", 0);
    let ev = d.wait_for("execveat of a path", |v| {
        u(v, "proc.pid") == u64::from(pid)
            && s(v, "proc.name") == "true"
            && s(v, "evt.type").starts_with("execve")
    });
    assert_eq!(s(&ev, "evt.type"), "execveat");
    let pid = run(&mut Command::new("/bin/true"));
    let ev = d
        .wait_for("execve", |v| u(v, "proc.pid") == u64::from(pid) && s(v, "evt.type").starts_with("execve"));
    assert_eq!(s(&ev, "evt.type"), "execve");
    d.stop();
}

fn ns_inode(kind: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
    let text = link.to_string_lossy();
    text.trim_start_matches(&format!("{kind}:[")).trim_end_matches(']').parse().unwrap()
}

#[test]
fn namespaced_process_reports_its_own_pid_and_namespaces() {
    require_root!();
    let d = Daemon::start();
    let pid = run(Command::new("unshare").args([
        "--pid",
        "--fork",
        "--mount",
        "--mount-proc",
        "sh",
        "-c",
        "exec cat /etc/hostname",
    ]));
    let ev = d.wait_for("exec of cat in new pid and mount namespaces", |v| {
        // unshare forks the namespaced child, which becomes sh and then cat.
        s(v, "evt.type") == "execve" && s(v, "proc.name") == "cat" && u(v, "proc.ppid") == u64::from(pid)
    });
    assert_eq!(u(&ev, "proc.vpid"), 1, "first process of its pid namespace: {ev}");
    assert_ne!(u(&ev, "proc.pid"), 1);
    assert_ne!(u(&ev, "proc.pidns"), ns_inode("pid"));
    assert_ne!(u(&ev, "proc.mntns"), ns_inode("mnt"));
    let cat = u(&ev, "proc.pid") as u32;
    // Paths still resolve to the real file inside the new mount namespace.
    d.wait_for("open inside the namespaces", |v| is_open_of(v, cat, "/etc/hostname"));
    d.stop();
}

#[test]
fn cgroup_joined_without_exec_and_removed_before_the_daemon_reads_still_resolves() {
    require_root!();
    let c = FakeContainer::new();
    let d = Daemon::start();
    // The daemon reads nothing until the cgroup is gone; only what the kernel sent can name it.
    d.pause();
    let script = format!("echo $$ > {}/cgroup.procs && : < /etc/hostname", c.scope);
    let pid = run(Command::new("sh").args(["-c", &script]));
    let id = c.id.clone();
    drop(c);
    d.cont();
    let ev = d.wait_for("open by a shell that moved itself into the container, named so", |v| {
        is_open_of(v, pid, "/etc/hostname") && s(v, "container.id") == &id[..12]
    });
    assert_eq!(s(&ev, "proc.name"), "sh");
    d.stop();
}
