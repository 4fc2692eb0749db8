//! The bundled default rules (rules/monitor_rules.yaml) end to end: for every rule, the real
//! thing done for real raises it through the real daemon, and a harmless action close to it
//! does not. Tests run in parallel against one shared daemon and pick out the alerts of their
//! own processes; a few start a daemon of their own with extra rules files.
//!
//! Nothing here changes the host: writes below system directories happen on a tmpfs in a
//! throw-away mount namespace, "containers" are cgroups named like docker scopes, and the
//! addresses connections go to are put on the loopback interface for the test and removed
//! afterwards (also when it fails).

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::raw::nr32::*;
use common::raw::{self, AT_FDCWD, Low, MSG_FASTOPEN, O_RDONLY, Ring, Sqe, check, in_child, int80, steps};
use common::{
    Daemon, FakeContainer, LoopbackAddress, alert_for, assert_no_alert, cmd, expect_alert, field_str,
    field_u64, in_container, involves, py_connect, rule, run_ok, shared_alert_daemon, show,
};
use serde_json::Value;

// Every rule of the bundled file, by name.
const FILELESS: &str = "Fileless execution from memory";
const REVERSE_SHELL: &str = "Reverse shell";
const SERVICE_SHELL: &str = "Shell spawned by a network service";
const PIPE_TO_SHELL: &str = "Downloaded script piped into a shell";
const CONTAINER_SHELL: &str = "Shell spawned in a container";
const INTERPRETER_SHELL: &str = "Shell spawned by an interpreter";
const TERMINAL_SHELL: &str = "Interactive shell with a terminal";
const SENSITIVE_READ: &str = "Sensitive file read by an unexpected program";
const ENVIRON_READ: &str = "Environment of another process read";
const SYSTEM_WRITE: &str = "Write below a system directory";
const NETWORK_TOOL: &str = "Network tool run in a container";
const USER_MANAGEMENT: &str = "User management tool run in a container";
const SCHEDULING_TOOL: &str = "Scheduling tool run in a container";
const NAMESPACE_TOOL: &str = "Namespace or mount tool run in a container";
const SETUID: &str = "Setuid or setgid bit set, or capabilities granted";
const PACKAGE_MANAGER: &str = "Package manager run in a container";
const DISCOVERY: &str = "Discovery command run in a container";
const OS_RELEASE: &str = "OS release read in a container";
const ACCOUNT_DUMP: &str = "Account database dumped in a container";
const METADATA: &str = "Container contacted the cloud metadata service";
const SUSPICIOUS_PORT: &str = "Connection to a port used by miners or reverse shells";
const SHELL_CONNECT: &str = "Shell opened a network connection";
const INTERPRETER_CONNECT: &str = "Interpreter in a container connected outside the private networks";
const UNEXPECTED_DESTINATION: &str = "Container connected to an unexpected destination";
const OPEN_BY_HANDLE: &str = "File opened by handle in a container";
const IO_URING: &str = "io_uring set up in a container";
const PTRACE: &str = "Another process attached to or written with ptrace";
const SENSITIVE_LINK: &str = "Link created to a sensitive file";
const HISTORY: &str = "Shell history deleted or truncated";
const KERNEL_LOAD: &str = "Kernel module or BPF program loaded unexpectedly";
const NAMESPACE_CHANGE: &str = "Namespace entered or created in a container";
const TAMPERING: &str = "Monitor's configuration, rules or state changed";
const LISTENER: &str = "Shell or inline interpreter listening in a container";
/// Needs a real overlayfs container root: tested in containers.rs.
pub const DRIFT: &str = "Program written in the container executed";

/// The rules this file has a trigger and a benign twin for.
const TESTED_RULES: &[&str] = &[
    FILELESS,
    REVERSE_SHELL,
    SERVICE_SHELL,
    PIPE_TO_SHELL,
    CONTAINER_SHELL,
    INTERPRETER_SHELL,
    TERMINAL_SHELL,
    SENSITIVE_READ,
    ENVIRON_READ,
    SYSTEM_WRITE,
    NETWORK_TOOL,
    USER_MANAGEMENT,
    SCHEDULING_TOOL,
    NAMESPACE_TOOL,
    SETUID,
    PACKAGE_MANAGER,
    DISCOVERY,
    OS_RELEASE,
    ACCOUNT_DUMP,
    METADATA,
    SUSPICIOUS_PORT,
    SHELL_CONNECT,
    INTERPRETER_CONNECT,
    UNEXPECTED_DESTINATION,
    OPEN_BY_HANDLE,
    IO_URING,
    PTRACE,
    SENSITIVE_LINK,
    HISTORY,
    KERNEL_LOAD,
    NAMESPACE_CHANGE,
    LISTENER,
    DRIFT,
    TAMPERING,
];

/// monitor_suspicious_ports, as the rules file has it.
const SUSPICIOUS_PORTS: &[u16] =
    &[1337, 3333, 4444, 4445, 5555, 6666, 6667, 7777, 9999, 12345, 14433, 14444, 31337, 45560, 45700];

// ---------------------------------------------------------------------------------------------
// Running things

/// Runs `c` to the end, whatever its exit status; returns its pid (which a program it execs
/// keeps).
fn run(c: &mut Command) -> u32 {
    let mut child = c.spawn().unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("monitor-rules-test").tempdir().unwrap()
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn listen_loopback() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// The alert of `rule_name` about a child of process `ppid`.
fn expect_alert_of_child(d: &Daemon, rule_name: &str, ppid: u32) -> Value {
    d.wait_for_or_show(
        &format!("`{rule_name}` for a child of pid {ppid}"),
        |v| rule(v) == rule_name && field_u64(v, "proc.ppid") == Some(u64::from(ppid)),
        |v| involves(v, ppid),
    )
}

/// Returns once `d` has handled everything done before the call: the alert for a read of
/// /etc/shadow done now comes after every earlier event.
fn barrier(d: &Daemon) {
    let pid = run_ok(cmd("cat").arg("/etc/shadow"));
    expect_alert(d, SENSITIVE_READ, pid);
}

fn assert_host(a: &Value) {
    assert_eq!(field_str(a, "container.id"), "host", "{a}");
}

fn assert_in(a: &Value, c: &FakeContainer) {
    assert_eq!(field_str(a, "container.id"), c.short_id(), "{a}");
}

// ---------------------------------------------------------------------------------------------
// The rules file itself

#[test]
fn every_bundled_rule_has_a_test() {
    let yaml = include_str!("../../../rules/monitor_rules.yaml");
    let names: Vec<&str> = yaml.lines().filter_map(|l| l.strip_prefix("- rule:")).map(str::trim).collect();
    assert!(names.len() >= TESTED_RULES.len(), "found only {names:?}");
    for name in &names {
        assert!(TESTED_RULES.contains(name), "bundled rule `{name}` has no test here");
    }
    for name in TESTED_RULES {
        assert!(names.contains(name), "`{name}` is tested here but is not a bundled rule");
    }
}

// ---------------------------------------------------------------------------------------------
// Execution

#[test]
fn fileless_execution_from_memory() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    // Benign: the same program run from its file.
    let benign = run_ok(cmd(&py).args(["-c", "import os; os.execv('/bin/true', ['true'])"]));
    let code = "import os\n\
                fd = os.memfd_create('fileless', 0)\n\
                data = memoryview(open('/bin/true', 'rb').read())\n\
                while data: data = data[os.write(fd, data):]\n\
                os.execv(f'/proc/self/fd/{fd}', ['fileless'])";
    let pid = run_ok(cmd(&py).args(["-c", code]));
    let a = expect_alert(d, FILELESS, pid);
    assert!(field_str(&a, "proc.exepath").starts_with("/memfd:fileless"), "{a}");
    // Named after the file exec'd, /proc/self/fd/<n>.
    assert!(field_str(&a, "proc.name").parse::<u32>().is_ok(), "{a}");
    assert_host(&a);
    assert_no_alert(d, FILELESS, benign, "python exec'ing /bin/true from disk");
}

#[test]
fn reverse_shell() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    // Benign: a shell reading its input from a pipe.
    let mut child = cmd("sh").args(["-c", "read -r line; true"]).stdin(Stdio::piped()).spawn().unwrap();
    let benign = child.id();
    drop(child.stdin.take());
    child.wait().unwrap();

    let (_listener, port) = listen_loopback();
    let code = format!(
        "import os, socket\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         for i in (0, 1, 2): os.dup2(s.fileno(), i)\n\
         os.execv('/bin/sh', ['sh', '-c', 'true'])"
    );
    let pid = run_ok(cmd(&py).args(["-c", &code]));
    let a = expect_alert(d, REVERSE_SHELL, pid);
    assert_eq!(field_str(&a, "proc.name"), "sh", "{a}");
    assert!(field_str(&a, "proc.stdin.name").ends_with(&format!("->127.0.0.1:{port}")), "{a}");
    assert!(field_str(&a, "proc.stdout.name").ends_with(&format!("->127.0.0.1:{port}")), "{a}");
    assert_host(&a);
    assert_no_alert(d, REVERSE_SHELL, benign, "a shell reading a pipe");
}

#[test]
fn shell_spawned_by_a_network_service() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    // Python under other names: the process is called what it was started as.
    let dir = tempdir();
    let (nginx, mytool) = (dir.path().join("nginx"), dir.path().join("mytool"));
    symlink(&py, &nginx);
    symlink(&py, &mytool);
    let code = "import subprocess; subprocess.run(['sh', '-c', 'true'], check=True)";
    let benign = run_ok(cmd(&mytool).args(["-c", code]));
    let service = run_ok(cmd(&nginx).args(["-c", code]));
    let a = expect_alert_of_child(d, SERVICE_SHELL, service);
    assert_eq!((field_str(&a, "proc.name"), field_str(&a, "proc.pname")), ("sh", "nginx"), "{a}");
    assert_eq!(field_str(&a, "proc.cmdline"), "sh -c true", "{a}");
    assert_host(&a);
    assert_no_alert(d, SERVICE_SHELL, benign, "a program called mytool starting a shell");
}

#[test]
fn downloaded_script_piped_into_a_shell() {
    require_root!();
    let fetch = match (common::tool("curl"), common::tool("wget")) {
        (Some(_), _) => "curl -s file:///dev/null | sh",
        // Port 1 refuses at once; the shell still reads wget's (empty) output.
        (None, Some(_)) => "wget -q -O - http://127.0.0.1:1/ | sh",
        (None, None) => {
            common::skip(&common::test_name(), "neither curl nor wget is installed");
            return;
        }
    };
    let d = shared_alert_daemon();
    // Benign: a shell reading a script from a pipe fed by something that does not download.
    let benign = run(cmd("sh").args(["-c", "echo true | sh"]));
    let outer = run(cmd("sh").args(["-c", fetch]));
    let a = expect_alert_of_child(d, PIPE_TO_SHELL, outer);
    assert_eq!(field_str(&a, "proc.name"), "sh", "{a}");
    assert_eq!(field_str(&a, "proc.pcmdline"), format!("sh -c {fetch}"), "{a}");
    assert_host(&a);
    assert_no_alert(d, PIPE_TO_SHELL, benign, "echo true | sh");
}

#[test]
fn shell_spawned_in_a_container() {
    require_root!();
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let host = run_ok(cmd("sh").args(["-c", "id"]));
    let pid = run_ok(&mut in_container(&c, "sh", &["-c", "id"]));
    let a = expect_alert(d, CONTAINER_SHELL, pid);
    assert_eq!(field_str(&a, "container.id"), c.short_id(), "{a}");
    assert_eq!(field_str(&a, "container.id").len(), 12);
    assert_eq!(field_str(&a, "proc.cmdline"), "sh -c id", "{a}");
    assert_eq!(field_str(&a, "evt.type"), "execve", "{a}");
    assert_no_alert(d, CONTAINER_SHELL, host, "sh -c id on the host");
}

#[test]
fn renamed_and_fileless_copies_of_a_shell_are_shells() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let dir = tempdir();
    let shell = std::fs::canonicalize("/bin/sh").unwrap();
    // A copy under an innocent name: neither its name nor its path says shell.
    let copy = dir.path().join("innocent");
    std::fs::copy(&shell, &copy).unwrap();
    let pid = run_ok(&mut in_container(&c, &copy, &["-c", "id; true"]));
    let a = expect_alert(d, CONTAINER_SHELL, pid);
    assert_eq!(field_str(&a, "proc.name"), "innocent", "{a}");
    assert_eq!(field_str(&a, "proc.exe_original"), shell.to_str().unwrap(), "{a}");
    assert_in(&a, &c);
    // The same shell loaded into a memfd and run from there; it stays alive for a moment so its
    // executable can be read through /proc.
    let code = format!(
        "import os\n\
         fd = os.memfd_create('x', 0)\n\
         data = memoryview(open('{}', 'rb').read())\n\
         while data: data = data[os.write(fd, data):]\n\
         os.execv(f'/proc/self/fd/{{fd}}', ['x', '-c', 'sleep 0.5; true'])",
        shell.display()
    );
    let pid = run_ok(&mut in_container(&c, &py, &["-c", &code]));
    let a = expect_alert(d, CONTAINER_SHELL, pid);
    assert!(field_str(&a, "proc.exepath").starts_with("/memfd:x"), "{a}");
    assert_eq!(field_str(&a, "proc.exe_original"), shell.to_str().unwrap(), "{a}");
    expect_alert(d, FILELESS, pid);
    // A copy of a program that is not a shell stays what it is.
    let other = dir.path().join("innocent2");
    std::fs::copy("/bin/true", &other).unwrap();
    let benign = run_ok(&mut in_container(&c, &other, &[]));
    barrier(d);
    assert_no_alert(d, CONTAINER_SHELL, benign, "a renamed copy of true");
}

#[test]
fn shell_spawned_by_an_interpreter() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let code = "import subprocess; subprocess.run(['sh', '-c', 'true'], check=True)";
    // Benign: the same on the host, where build and admin scripts do it all day.
    let host = run_ok(cmd(&py).args(["-c", code]));
    let pid = run_ok(&mut in_container(&c, &py, &["-c", code]));
    let a = expect_alert_of_child(d, INTERPRETER_SHELL, pid);
    assert_eq!((field_str(&a, "proc.name"), field_str(&a, "proc.pname")), ("sh", "python3"), "{a}");
    assert!(field_str(&a, "proc.pcmdline").contains("subprocess"), "{a}");
    assert_in(&a, &c);
    assert_no_alert(d, INTERPRETER_SHELL, host, "python starting a shell on the host");
}

#[test]
fn interactive_shell_with_a_terminal() {
    require_root!();
    let script = require_tool!("script");
    let d = shared_alert_daemon();
    // `script` runs `$SHELL -c <command>` on a new pseudo-terminal: a shell on a terminal whose
    // parent is `script`, not a shell or a terminal emulator. That shell starts another shell
    // (not last, so it is not exec'd in place): one with a shell for a parent, which is benign.
    let s = run_ok(cmd(&script).env("SHELL", "/bin/sh").args(["-qc", "sh -c 'sh -c true; :'", "/dev/null"]));
    let a = expect_alert_of_child(d, TERMINAL_SHELL, s);
    assert_eq!(field_str(&a, "proc.pname"), "script", "{a}");
    assert_ne!(field_u64(&a, "proc.tty"), Some(0), "{a}");
    assert!(field_u64(&a, "proc.tty").is_some(), "{a}");
    assert_host(&a);
    let terminal_shell = field_u64(&a, "proc.pid").unwrap() as u32;
    barrier(d);
    let found = d.matching(|v| {
        rule(v) == TERMINAL_SHELL && field_u64(v, "proc.ppid") == Some(u64::from(terminal_shell))
    });
    assert!(found.is_empty(), "a shell started by the terminal's shell raised it:\n{}", show(&found));
}

// ---------------------------------------------------------------------------------------------
// Sensitive files

#[test]
fn sensitive_file_read_by_an_unexpected_program() {
    require_root!();
    let d = shared_alert_daemon();
    let benign = run_ok(cmd("cat").arg("/etc/hostname"));
    let pid = run_ok(cmd("cat").arg("/etc/shadow"));
    let a = expect_alert(d, SENSITIVE_READ, pid);
    assert_eq!(field_str(&a, "fd.name"), "/etc/shadow", "{a}");
    assert_eq!(field_str(&a, "proc.name"), "cat", "{a}");
    assert_eq!(field_str(&a, "proc.cmdline"), "cat /etc/shadow", "{a}");
    assert_host(&a);
    assert_no_alert(d, SENSITIVE_READ, benign, "cat /etc/hostname");
}

#[test]
fn credential_files_of_common_tools_read_by_an_unexpected_program() {
    require_root!();
    let unshare = require_tool!("unshare");
    // The distribution's git, which the bundled rules name as a reader of its own credentials.
    let git = PathBuf::from("/usr/bin/git");
    if !git.exists() {
        common::skip(&common::test_name(), "/usr/bin/git is not installed");
        return;
    }
    let d = shared_alert_daemon();
    // The files live on a tmpfs over /home and /root in a mount namespace of their own: the
    // paths are the real ones, the host's are untouched.
    let files = [
        "/home/monitor-test/.netrc",
        "/home/monitor-test/.git-credentials",
        "/home/monitor-test/.pgpass",
        "/home/monitor-test/.config/gh/hosts.yml",
        "/home/monitor-test/.docker/config.json",
        "/home/monitor-test/.azure/msal_token_cache.json",
        "/root/.netrc",
        "/root/.vault-token",
    ];
    let prepare = "mount -t tmpfs monitor-test /home && mount -t tmpfs monitor-test /root && \
                   mkdir -p /home/monitor-test/.config/gh /home/monitor-test/.docker /home/monitor-test/.azure";
    for file in files {
        let script = format!("{prepare} && echo secret > {file} && exec cat {file}");
        let pid = run_ok(cmd(&unshare).args(["--mount", "--propagation", "private", "sh", "-c", &script]));
        let a = d.wait_for_or_show(
            &format!("`{SENSITIVE_READ}` for {file}"),
            |v| alert_for(v, SENSITIVE_READ, pid) && field_str(v, "fd.name") == file,
            |v| involves(v, pid),
        );
        assert_eq!(field_str(&a, "proc.name"), "cat", "{a}");
    }
    assert!(!Path::new("/home/monitor-test").exists(), "/home/monitor-test was written on the host");
    // Benign: git's credential helper reading the file it keeps credentials in.
    let script = format!(
        "{prepare} && printf 'https://u:p@example.com\\n' > /home/monitor-test/.git-credentials && \
         printf 'protocol=https\\nhost=example.com\\n' | {} credential-store --file \
         /home/monitor-test/.git-credentials get | grep -q password=p",
        git.display()
    );
    let benign = run_ok(cmd(&unshare).args(["--mount", "--propagation", "private", "sh", "-c", &script]));
    barrier(d);
    let found = d.matching(|v| {
        rule(v) == SENSITIVE_READ
            && field_str(v, "proc.exepath") == common::canonical(&git.display().to_string())
            && field_str(v, "fd.name") == "/home/monitor-test/.git-credentials"
    });
    assert!(
        found.is_empty(),
        "git credential-store (under pid {benign}) raised `{SENSITIVE_READ}`:\n{}",
        show(&found)
    );
}

#[test]
fn environment_of_another_process_read() {
    require_root!();
    let d = shared_alert_daemon();
    // Benign: a process reading its own environment (the daemon sees /proc/<its pid>/environ).
    let benign = run_ok(cmd("cat").arg("/proc/self/environ"));
    // ... also through its thread's directory (/proc/<pid>/task/<tid>/environ).
    let benign_task = run_ok(cmd("cat").arg("/proc/thread-self/environ"));
    // Another process: one of ours, so that reading it is allowed wherever the test runs.
    let mut other = cmd("sleep").arg("60").spawn().unwrap();
    let environ = format!("/proc/{}/environ", other.id());
    let pid = run_ok(cmd("cat").arg(&environ));
    let _ = other.kill();
    let _ = other.wait();
    let a = expect_alert(d, ENVIRON_READ, pid);
    assert_eq!(field_str(&a, "fd.name"), environ, "{a}");
    assert_eq!(field_str(&a, "proc.name"), "cat", "{a}");
    assert_host(&a);
    assert_no_alert(d, ENVIRON_READ, benign, "cat /proc/self/environ");
    assert_no_alert(d, ENVIRON_READ, benign_task, "cat /proc/thread-self/environ");
}

// ---------------------------------------------------------------------------------------------
// Writes to system locations

#[test]
fn write_below_a_system_directory() {
    require_root!();
    let unshare = require_tool!("unshare");
    let d = shared_alert_daemon();
    let dir = tempdir();
    // Benign: a file written in a temporary directory, and a system file read.
    let benign = run_ok(cmd("touch").arg(dir.path().join("file")));
    let reader = run_ok(cmd("cat").arg("/etc/hostname"));
    // The writes land on a tmpfs mounted over the directory in a mount namespace of their own:
    // the path is the system one, the host's directory is untouched.
    for target in ["/etc/cron.d", "/usr/local/bin"] {
        let file = format!("{target}/monitor-rules-test");
        let script = format!("mount -t tmpfs monitor-test {target} && exec touch {file}");
        let pid = run_ok(cmd(&unshare).args(["--mount", "--propagation", "private", "sh", "-c", &script]));
        let a = d.wait_for_or_show(
            &format!("`{SYSTEM_WRITE}` for {file}"),
            |v| alert_for(v, SYSTEM_WRITE, pid) && field_str(v, "fd.name") == file,
            |v| involves(v, pid),
        );
        assert_eq!(field_str(&a, "proc.name"), "touch", "{a}");
        assert!(field_str(&a, "evt.arg.flags").contains("O_CREAT"), "{a}");
        assert_host(&a);
        assert!(!Path::new(&file).exists(), "{file} was written on the host");
    }
    // cp is a general tool: flagged when it writes there by itself...
    let script =
        "mount -t tmpfs monitor-test /etc/cron.d && exec cp /etc/hostname /etc/cron.d/monitor-cp-test";
    let pid = run_ok(cmd(&unshare).args(["--mount", "--propagation", "private", "sh", "-c", script]));
    let a = expect_alert(d, SYSTEM_WRITE, pid);
    assert_eq!(field_str(&a, "proc.name"), "cp", "{a}");
    // ... not when a package manager runs it (here a shell named dpkg, as maintainer scripts are).
    let dir = tempdir();
    let dpkg = dir.path().join("dpkg");
    symlink(Path::new("/bin/sh"), &dpkg);
    let script =
        "mount -t tmpfs monitor-test /etc/cron.d && cp /etc/hostname /etc/cron.d/monitor-dpkg-test && true";
    let installer =
        run_ok(cmd(&unshare).args(["--mount", "--propagation", "private"]).arg(&dpkg).args(["-c", script]));
    barrier(d);
    let by_installer =
        d.matching(|v| rule(v) == SYSTEM_WRITE && field_u64(v, "proc.ppid") == Some(u64::from(installer)));
    assert!(by_installer.is_empty(), "cp run by a package manager was flagged:\n{}", show(&by_installer));
    assert_no_alert(d, SYSTEM_WRITE, benign, "touch in a temporary directory");
    assert_no_alert(d, SYSTEM_WRITE, reader, "cat /etc/hostname");
}

// ---------------------------------------------------------------------------------------------
// Tools that rarely belong in a running container

/// `program args` on the host is benign; the same in a container raises `rule_name`.
fn container_only(rule_name: &str, program: &Path, args: &[&str]) -> Value {
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let host = run(cmd(program).args(args));
    let pid = run(&mut in_container(&c, program, args));
    let a = expect_alert(d, rule_name, pid);
    assert_in(&a, &c);
    assert_eq!(field_str(&a, "evt.type"), "execve", "{a}");
    assert_no_alert(d, rule_name, host, &format!("{} on the host", program.display()));
    a
}

#[test]
fn network_tool_run_in_a_container() {
    require_root!();
    // A harmless program under the name of netcat.
    let dir = tempdir();
    let nc = dir.path().join("nc");
    symlink(Path::new("/bin/true"), &nc);
    let a = container_only(NETWORK_TOOL, &nc, &["-h"]);
    assert_eq!(field_str(&a, "proc.name"), "nc", "{a}");
}

#[test]
fn user_management_tool_run_in_a_container() {
    require_root!();
    let dir = tempdir();
    // The real useradd only prints its usage; a stand-in when it is not installed.
    let useradd = common::tool("useradd").unwrap_or_else(|| {
        let p = dir.path().join("useradd");
        symlink(Path::new("/bin/true"), &p);
        p
    });
    let a = container_only(USER_MANAGEMENT, &useradd, &["--help"]);
    assert_eq!(field_str(&a, "proc.name"), "useradd", "{a}");
    assert_eq!(field_str(&a, "proc.cmdline"), "useradd --help", "{a}");
}

#[test]
fn scheduling_tool_run_in_a_container() {
    require_root!();
    // Not the real crontab: a harmless program under its name.
    let dir = tempdir();
    let crontab = dir.path().join("crontab");
    symlink(Path::new("/bin/true"), &crontab);
    let a = container_only(SCHEDULING_TOOL, &crontab, &["-l"]);
    assert_eq!(field_str(&a, "proc.name"), "crontab", "{a}");
}

#[test]
fn namespace_or_mount_tool_run_in_a_container() {
    require_root!();
    let nsenter = require_tool!("nsenter");
    let a = container_only(NAMESPACE_TOOL, &nsenter, &["--help"]);
    assert_eq!(field_str(&a, "proc.name"), "nsenter", "{a}");
}

#[test]
fn package_manager_run_in_a_container() {
    require_root!();
    let dpkg = require_tool!("dpkg");
    let a = container_only(PACKAGE_MANAGER, &dpkg, &["--version"]);
    assert_eq!(field_str(&a, "proc.cmdline"), "dpkg --version", "{a}");
}

#[test]
fn discovery_command_run_in_a_container() {
    require_root!();
    let id = require_tool!("id");
    let a = container_only(DISCOVERY, &id, &[]);
    assert_eq!(field_str(&a, "proc.name"), "id", "{a}");
}

#[test]
fn setuid_bit_set_in_a_container() {
    require_root!();
    use std::os::unix::fs::PermissionsExt as _;
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let dir = tempdir();
    let file = dir.path().join("program");
    std::fs::write(&file, "").unwrap();
    let path = file.to_str().unwrap();
    // Benign: an ordinary mode change, in the container too.
    let benign = run_ok(&mut in_container(&c, "chmod", &["644", path]));
    let pid = run_ok(&mut in_container(&c, "chmod", &["u+s", path]));
    let a = expect_alert(d, SETUID, pid);
    assert_eq!(field_str(&a, "proc.cmdline"), format!("chmod u+s {path}"), "{a}");
    assert_in(&a, &c);
    assert_ne!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o4000, 0, "chmod u+s did nothing");
    assert_no_alert(d, SETUID, benign, "chmod 644 in a container");
    // No chmod program at all: the call itself, from Python.
    if let Some(py) = common::tool("python3") {
        let script = format!("import os; os.chmod({path:?}, 0o2755)");
        let pid = run_ok(&mut in_container(&c, &py, &["-c", &script]));
        let a = expect_alert(d, SETUID, pid);
        assert!(["chmod", "fchmodat"].contains(&field_str(&a, "evt.type")), "{a}");
        assert_in(&a, &c);
    }
}

#[test]
fn os_release_read_in_a_container() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let host = run_ok(cmd("cat").arg("/etc/os-release"));
    // Benign: a library reading it (Python's platform module does, as do package managers and
    // OpenSSL-based tools); the assertion proves the file was read.
    let library = run_ok(&mut in_container(
        &c,
        &py,
        &["-c", "import platform; assert platform.freedesktop_os_release()['ID']"],
    ));
    let pid = run_ok(&mut in_container(&c, "cat", &["/etc/os-release"]));
    let a = expect_alert(d, OS_RELEASE, pid);
    // /etc/os-release is usually a symlink: the file read is what it points to.
    assert_eq!(field_str(&a, "fd.name"), common::canonical("/etc/os-release"), "{a}");
    assert_in(&a, &c);
    // A shell sourcing it, as install scripts and exploit kits do.
    let shell = run_ok(&mut in_container(&c, "sh", &["-c", ". /etc/os-release; test -n \"$ID\""]));
    let a = expect_alert(d, OS_RELEASE, shell);
    assert_eq!(field_str(&a, "proc.name"), "sh", "{a}");
    assert_no_alert(d, OS_RELEASE, host, "cat /etc/os-release on the host");
    assert_no_alert(d, OS_RELEASE, library, "Python's platform module in a container");
}

#[test]
fn account_database_dumped_in_a_container() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let host = run_ok(cmd("cat").arg("/etc/passwd"));
    // Benign: NSS lookups, which read /etc/passwd and /etc/group through the C library.
    let lookup = run_ok(&mut in_container(
        &c,
        &py,
        &["-c", "import pwd, grp; assert pwd.getpwnam('root').pw_uid == 0; grp.getgrgid(0)"],
    ));
    for (tool, args) in
        [("cat", vec!["/etc/passwd"]), ("base64", vec!["/etc/group"]), ("head", vec!["-n1", "/etc/passwd"])]
    {
        let file = *args.last().unwrap();
        let pid = run_ok(&mut in_container(&c, tool, &args));
        let a = expect_alert(d, ACCOUNT_DUMP, pid);
        assert_eq!(field_str(&a, "fd.name"), file, "{a}");
        assert_eq!(field_str(&a, "proc.name"), tool, "{a}");
        assert_in(&a, &c);
    }
    assert_no_alert(d, ACCOUNT_DUMP, host, "cat /etc/passwd on the host");
    assert_no_alert(d, ACCOUNT_DUMP, lookup, "user and group lookups in a container");
}

// ---------------------------------------------------------------------------------------------
// Network

#[test]
fn container_contacted_the_cloud_metadata_service() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let metadata = LoopbackAddress::add("169.254.169.254");
    let (_listener, port) = metadata.listen();
    let (_local, local_port) = listen_loopback();
    // Benign: the host asking (the node's own agents do), and the container talking to a
    // local service.
    let host = run_ok(cmd(&py).args(["-c", &py_connect("169.254.169.254", port)]));
    let local = run_ok(&mut in_container(&c, &py, &["-c", &py_connect("127.0.0.1", local_port)]));
    let pid = run_ok(&mut in_container(&c, &py, &["-c", &py_connect("169.254.169.254", port)]));
    let a = expect_alert(d, METADATA, pid);
    assert_eq!(field_str(&a, "fd.sip"), "169.254.169.254", "{a}");
    assert_eq!(field_u64(&a, "fd.sport"), Some(u64::from(port)), "{a}");
    assert_eq!(field_str(&a, "evt.type"), "connect", "{a}");
    assert_in(&a, &c);
    assert_no_alert(d, METADATA, host, "the host connecting to the metadata address");
    assert_no_alert(d, METADATA, local, "a container connecting to 127.0.0.1");
}

#[test]
fn connection_to_a_port_used_by_miners_or_reverse_shells() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let (_listener, port) = SUSPICIOUS_PORTS
        .iter()
        .find_map(|&p| TcpListener::bind(("127.0.0.1", p)).ok().map(|l| (l, p)))
        .expect("every suspicious port is taken");
    // Benign: the same connection to an ordinary port.
    let (_ordinary, ordinary_port) =
        std::iter::repeat_with(listen_loopback).find(|(_, p)| !SUSPICIOUS_PORTS.contains(p)).unwrap();
    let benign = run_ok(cmd(&py).args(["-c", &py_connect("127.0.0.1", ordinary_port)]));
    let pid = run_ok(cmd(&py).args(["-c", &py_connect("127.0.0.1", port)]));
    let a = expect_alert(d, SUSPICIOUS_PORT, pid);
    assert_eq!(field_u64(&a, "fd.sport"), Some(u64::from(port)), "{a}");
    assert_eq!(field_str(&a, "fd.sip"), "127.0.0.1", "{a}");
    assert_host(&a);
    assert_no_alert(d, SUSPICIOUS_PORT, benign, &format!("a connection to port {ordinary_port}"));
}

#[test]
fn shell_opened_a_network_connection() {
    require_root!();
    let bash = require_tool!("bash");
    let d = shared_alert_daemon();
    let remote = LoopbackAddress::add("192.0.2.10");
    let (_listener, port) = remote.listen();
    let (_local, local_port) = listen_loopback();
    // Benign: a shell talking to a local service.
    let benign = run_ok(cmd(&bash).args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{local_port}")]));
    let pid = run_ok(cmd(&bash).args(["-c", &format!("exec 3<>/dev/tcp/192.0.2.10/{port}")]));
    let a = expect_alert(d, SHELL_CONNECT, pid);
    assert_eq!(field_str(&a, "fd.sip"), "192.0.2.10", "{a}");
    assert_eq!(field_u64(&a, "fd.sport"), Some(u64::from(port)), "{a}");
    assert_eq!(field_str(&a, "proc.name"), "bash", "{a}");
    assert_host(&a);
    assert_no_alert(d, SHELL_CONNECT, benign, "bash connecting to 127.0.0.1");
}

#[test]
fn interpreter_in_a_container_connected_outside_the_private_networks() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let public = LoopbackAddress::add("203.0.113.10");
    let (_listener, port) = public.listen();
    let (_local, local_port) = listen_loopback();
    // Benign: the interpreter talking to a local service.
    let benign = run_ok(&mut in_container(&c, &py, &["-c", &py_connect("127.0.0.1", local_port)]));
    let pid = run_ok(&mut in_container(&c, &py, &["-c", &py_connect("203.0.113.10", port)]));
    let a = expect_alert(d, INTERPRETER_CONNECT, pid);
    assert_eq!(field_str(&a, "fd.sip"), "203.0.113.10", "{a}");
    assert_eq!(field_str(&a, "proc.name"), "python3", "{a}");
    assert_in(&a, &c);
    assert_no_alert(d, INTERPRETER_CONNECT, benign, "python in a container connecting to 127.0.0.1");
    assert_no_alert(d, UNEXPECTED_DESTINATION, benign, "python in a container connecting to 127.0.0.1");
}

#[test]
fn container_connected_to_an_unexpected_destination() {
    require_root!();
    let bash = require_tool!("bash");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let public = LoopbackAddress::add("192.0.2.20");
    let (_listener, port) = public.listen();
    let (_local, local_port) = listen_loopback();
    let connect = |ip: &str, port: u16| {
        run_ok(&mut in_container(&c, &bash, &["-c", &format!("exec 3<>/dev/tcp/{ip}/{port}")]))
    };
    // Benign: a local service, and DNS (port 53) on the same address, which is allowed.
    let local = connect("127.0.0.1", local_port);
    let dns = TcpListener::bind("192.0.2.20:53").ok().map(|l| (l, connect("192.0.2.20", 53)));
    let pid = connect("192.0.2.20", port);
    let a = expect_alert(d, UNEXPECTED_DESTINATION, pid);
    assert_eq!(field_str(&a, "fd.sip"), "192.0.2.20", "{a}");
    assert_eq!(field_u64(&a, "fd.sport"), Some(u64::from(port)), "{a}");
    assert_in(&a, &c);
    assert_no_alert(d, UNEXPECTED_DESTINATION, local, "a container connecting to 127.0.0.1");
    match dns {
        Some((_l, dns)) => {
            assert_no_alert(d, UNEXPECTED_DESTINATION, dns, "a container connecting to port 53")
        }
        None => eprintln!("note: 192.0.2.20:53 is taken; the DNS exception was not checked"),
    }
}

/// A user extends our allow list from a file of their own, without editing ours.
#[test]
fn allowed_destinations_extend_from_a_users_rules_file() {
    require_root!();
    let bash = require_tool!("bash");
    let dir = tempdir();
    let extra = dir.path().join("override.yaml");
    std::fs::write(
        &extra,
        "- list: monitor_allowed_outbound_destinations\n  \
         items: [\"198.51.100.0/24\"]\n  \
         override:\n    \
         items: append\n",
    )
    .unwrap();
    let tuned = Daemon::start_run(&[
        "--config",
        "/dev/null",
        "--rules",
        "bundled",
        "--rules",
        extra.to_str().unwrap(),
    ]);
    let shared = shared_alert_daemon();
    let c = FakeContainer::new();
    let allowed = LoopbackAddress::add("198.51.100.7");
    let (_listener, port) = allowed.listen();
    let pid = run_ok(&mut in_container(&c, &bash, &["-c", &format!("exec 3<>/dev/tcp/198.51.100.7/{port}")]));
    // Without the user's file the destination is unexpected...
    let a = expect_alert(shared, UNEXPECTED_DESTINATION, pid);
    assert_eq!(field_str(&a, "fd.sip"), "198.51.100.7", "{a}");
    assert_in(&a, &c);
    // ...with it, it is not; the daemon did see the connection (the shell rule, which the list
    // does not cover, fired for it).
    let shell = expect_alert(&tuned, SHELL_CONNECT, pid);
    assert_eq!(field_str(&shell, "fd.sip"), "198.51.100.7", "{shell}");
    assert_no_alert(&tuned, UNEXPECTED_DESTINATION, pid, "a connection to the user's allowed network");
    tuned.stop();
}

// ---------------------------------------------------------------------------------------------
// The engine: literal paths match by file identity

#[test]
fn hard_link_to_a_watched_file_matches_by_identity() {
    require_root!();
    let dir = tempdir();
    let base = PathBuf::from(common::canonical(dir.path().to_str().unwrap()));
    let (secret, alias, copy) = (base.join("secret"), base.join("alias"), base.join("copy"));
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::write(&copy, "s3cret\n").unwrap();
    let rules = base.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: Test secret read\n  \
             desc: the test's secret file opened, by whatever name\n  \
             condition: evt.type in (open, openat) and fd.name = {}\n  \
             output: Test secret read (file=%fd.name)\n  \
             priority: WARNING\n",
            secret.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_run(&[
        "--config",
        "/dev/null",
        "--rules",
        "bundled",
        "--rules",
        rules.to_str().unwrap(),
    ]);
    std::fs::hard_link(&secret, &alias).unwrap();
    // Benign: a different file with the same content.
    let benign = run_ok(cmd("cat").arg(&copy));
    let direct = run_ok(cmd("cat").arg(&secret));
    let pid = run_ok(cmd("cat").arg(&alias));
    let a = expect_alert(&d, "Test secret read", pid);
    assert_eq!(field_str(&a, "fd.name"), alias.to_str().unwrap(), "{a}");
    assert_eq!(field_str(&a, "proc.name"), "cat", "{a}");
    let a = expect_alert(&d, "Test secret read", direct);
    assert_eq!(field_str(&a, "fd.name"), secret.to_str().unwrap(), "{a}");
    assert_no_alert(&d, "Test secret read", benign, "cat of a copy");
    d.stop();
}

// ---------------------------------------------------------------------------------------------
// Everyday work raises nothing

#[test]
fn compiler_pipeline_and_plain_reads_raise_no_alert() {
    require_root!();
    let d = shared_alert_daemon();
    let dir = tempdir();
    let dir_name = dir.path().to_str().unwrap().to_owned();
    let mut pids = Vec::new();
    if let Some(cc) = common::tool("cc") {
        let src = dir.path().join("main.c");
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        pids.push(run_ok(cmd(cc).arg("-o").arg(dir.path().join("main")).arg(&src)));
    } else if let Some(rustc) = common::tool("rustc") {
        let src = dir.path().join("main.rs");
        std::fs::write(&src, "fn main() {}\n").unwrap();
        pids.push(run_ok(cmd(rustc).arg("-o").arg(dir.path().join("main")).arg(&src)));
    } else {
        eprintln!("note: neither cc nor rustc is installed; no compiler was run");
    }
    pids.push(run_ok(cmd("sh").args(["-c", "cat /etc/hostname | tr a-z A-Z | sort | wc -l"])));
    pids.push(run_ok(cmd("cat").arg("/etc/hostname")));
    std::thread::sleep(Duration::from_secs(2));
    barrier(d);
    let ours = |v: &Value| {
        [field_u64(v, "proc.pid"), field_u64(v, "proc.ppid")]
            .iter()
            .flatten()
            .any(|p| pids.contains(&(*p as u32)))
            || field_str(v, "proc.cmdline").contains(&dir_name)
    };
    let found = d.matching(ours);
    assert!(found.is_empty(), "everyday commands raised alerts:\n{}", show(&found));
}

// ---------------------------------------------------------------------------------------------
// The same rules through the side doors: io_uring, 32-bit syscalls, file handles, descriptors
// taken from another process, sendmmsg and TCP Fast Open. Each door is gone through from a
// child of its own (see common::raw), which the alert must name.

/// The child's cgroup.procs path in `c`, for raw::enter_cgroup.
fn procs(c: &FakeContainer) -> std::ffi::CString {
    std::ffi::CString::new(format!("{}/cgroup.procs", c.scope)).unwrap()
}

fn open_sqe(path: &std::ffi::CStr) -> Sqe {
    Sqe { opcode: raw::IORING_OP_OPENAT, fd: AT_FDCWD, addr: path.as_ptr() as u64, ..Sqe::default() }
}

/// A child's io_uring ring, or its exit code.
macro_rules! ring {
    () => {
        match Ring::new() {
            Ok(r) => r,
            Err(step) => return Err(step),
        }
    };
}

#[test]
fn sensitive_reads_through_the_side_doors_raise_the_rule() {
    require_root!();
    let d = shared_alert_daemon();
    let dir = tempdir();
    let link = dir.path().join("innocent");
    symlink(Path::new("/etc/shadow"), &link);
    let link = std::ffi::CString::new(link.to_str().unwrap()).unwrap();
    let shadow = c"/etc/shadow";
    let mut handle = [0u32; 34];
    handle[0] = 128;
    let mut mount_id = 0i32;
    let held = std::fs::File::open("/etc/shadow").unwrap();
    let held_fd = std::os::fd::AsRawFd::as_raw_fd(&held);
    let parent = std::process::id();
    let mut doors: Vec<(&str, u32)> = vec![
        (
            "io_uring openat through a symlink",
            in_child(|| {
                steps(|| {
                    let ring = ring!();
                    check(1, ring.run(open_sqe(&link)).into())
                })
            }),
        ),
        (
            "io_uring openat with CQE_SKIP_SUCCESS",
            in_child(|| {
                steps(|| {
                    let ring = ring!();
                    check(1, ring.run_skipping_success(open_sqe(shadow)).into())
                })
            }),
        ),
        (
            "open_by_handle_at",
            in_child(|| {
                steps(|| {
                    let at = AT_FDCWD as u64;
                    check(
                        1,
                        raw::syscall(
                            libc::SYS_name_to_handle_at,
                            &[
                                at,
                                shadow.as_ptr() as u64,
                                handle.as_mut_ptr() as u64,
                                (&raw mut mount_id) as u64,
                                0,
                            ],
                        ),
                    )?;
                    let root = raw::syscall(libc::SYS_open, &[c"/".as_ptr() as u64, 0]);
                    check(
                        2,
                        raw::syscall(libc::SYS_open_by_handle_at, &[root as u64, handle.as_ptr() as u64, 0]),
                    )
                })
            }),
        ),
        (
            "pidfd_getfd of another process's descriptor",
            in_child(|| {
                steps(|| {
                    let pidfd = raw::syscall(libc::SYS_pidfd_open, &[u64::from(parent), 0]);
                    check(1, pidfd)?;
                    check(2, raw::syscall(libc::SYS_pidfd_getfd, &[pidfd as u64, held_fd as u64, 0]))
                })
            }),
        ),
        (
            // A detached copy of /etc's mount (open_tree(OPEN_TREE_CLONE)): the file's path
            // there is /shadow; its identity is /etc/shadow's.
            "openat below a detached mount tree",
            in_child(|| {
                steps(|| {
                    const OPEN_TREE_CLONE: u64 = 1;
                    let tree = raw::syscall(
                        libc::SYS_open_tree,
                        &[AT_FDCWD as u64, c"/etc".as_ptr() as u64, OPEN_TREE_CLONE],
                    );
                    check(1, tree)?;
                    check(2, raw::syscall(libc::SYS_openat, &[tree as u64, c"shadow".as_ptr() as u64, 0]))
                })
            }),
        ),
    ];
    if raw::ia32_works() {
        let low = Low::new();
        let shadow32 = low.cstr("/etc/shadow");
        doors.push((
            "ia32 open through int 0x80",
            in_child(|| steps(|| check(1, int80(IA32_OPEN, &[shadow32, O_RDONLY]).into()))),
        ));
    }
    for (door, pid) in doors {
        let a = expect_alert(d, SENSITIVE_READ, pid);
        if !door.contains("detached") {
            assert_eq!(field_str(&a, "fd.name"), "/etc/shadow", "{door}: {a}");
        }
        assert_host(&a);
    }
    drop(held);
}

/// An ordinary program that reads an ordinary file through io_uring raises nothing.
#[test]
fn a_benign_io_uring_read_raises_nothing() {
    require_root!();
    let d = shared_alert_daemon();
    let dir = tempdir();
    let file = dir.path().join("data.txt");
    std::fs::write(&file, "hello").unwrap();
    let path = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    let mut buf = [0u8; 16];
    let pid = in_child(|| {
        steps(|| {
            let ring = ring!();
            let fd = ring.run(open_sqe(&path));
            check(1, fd.into())?;
            let read = Sqe {
                opcode: raw::IORING_OP_READ,
                fd,
                addr: buf.as_mut_ptr() as u64,
                len: 16,
                ..Sqe::default()
            };
            if ring.run(read) != 5 {
                return Err(2);
            }
            Ok(())
        })
    });
    barrier(d);
    let found = d.matching(|v| involves(v, pid));
    assert!(found.is_empty(), "an io_uring read of an ordinary file raised:\n{}", show(&found));
}

#[test]
fn metadata_service_reached_through_the_side_doors_raises_the_rule() {
    require_root!();
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let into = procs(&c);
    let metadata = LoopbackAddress::add("169.254.169.254");
    let (_listener, port) = metadata.listen();
    let udp = std::net::UdpSocket::bind("169.254.169.254:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let tcp = raw::sockaddr_in(std::net::SocketAddrV4::new([169, 254, 169, 254].into(), port));
    let dgram = raw::sockaddr_in(std::net::SocketAddrV4::new([169, 254, 169, 254].into(), udp_port));
    let payload = *b"x";
    let iov = libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: 1 };
    // SAFETY: a zeroed mmsghdr is a valid empty one.
    let mut mmsg: [libc::mmsghdr; 1] = unsafe { std::mem::zeroed() };
    mmsg[0].msg_hdr.msg_name = (&raw const dgram) as *mut _;
    mmsg[0].msg_hdr.msg_namelen = 16;
    mmsg[0].msg_hdr.msg_iov = (&raw const iov) as *mut _;
    mmsg[0].msg_hdr.msg_iovlen = 1;
    let socket = |ty: i32| raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, ty as u64, 0]);
    let mut doors: Vec<(&str, &str, u32)> = vec![
        (
            "io_uring connect",
            "connect",
            in_child(|| {
                steps(|| {
                    raw::enter_cgroup(&into)?;
                    let ring = ring!();
                    let t = socket(libc::SOCK_STREAM);
                    check(1, t)?;
                    let sqe = Sqe {
                        opcode: raw::IORING_OP_CONNECT,
                        fd: t as i32,
                        addr: (&raw const tcp) as u64,
                        off: 16,
                        ..Sqe::default()
                    };
                    check(2, ring.run(sqe).into())
                })
            }),
        ),
        (
            "TCP Fast Open",
            "connect",
            in_child(|| {
                steps(|| {
                    raw::enter_cgroup(&into)?;
                    let t = socket(libc::SOCK_STREAM);
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
                                (&raw const tcp) as u64,
                                16,
                            ],
                        ),
                    )
                })
            }),
        ),
        (
            "sendmmsg",
            "sendmsg",
            in_child(|| {
                steps(|| {
                    raw::enter_cgroup(&into)?;
                    let u = socket(libc::SOCK_DGRAM);
                    check(1, u)?;
                    check(2, raw::syscall(libc::SYS_sendmmsg, &[u as u64, mmsg.as_mut_ptr() as u64, 1, 0]))
                })
            }),
        ),
    ];
    if raw::ia32_works() {
        let low = Low::new();
        let (tcp32, dgram32, payload32) = (low.put(tcp), low.put(dgram), low.bytes(b"x"));
        let args = low.put([0u32, tcp32, 16]);
        doors.push((
            "ia32 connect",
            "connect",
            in_child(|| {
                steps(|| {
                    raw::enter_cgroup(&into)?;
                    let t = int80(IA32_SOCKET, &[libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0]);
                    check(1, int80(IA32_CONNECT, &[t as u32, tcp32, 16]).into())
                })
            }),
        ));
        doors.push((
            "ia32 socketcall connect",
            "connect",
            in_child(|| {
                steps(|| {
                    raw::enter_cgroup(&into)?;
                    let t = int80(IA32_SOCKET, &[libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0]);
                    // SAFETY: socketcall's argument array, put in low memory before the fork.
                    unsafe { (args as usize as *mut u32).write(t as u32) };
                    check(1, int80(IA32_SOCKETCALL, &[SYS_CONNECT, args]).into())
                })
            }),
        ));
        doors.push((
            "ia32 sendto",
            "sendto",
            in_child(|| {
                steps(|| {
                    raw::enter_cgroup(&into)?;
                    let u = int80(IA32_SOCKET, &[libc::AF_INET as u32, libc::SOCK_DGRAM as u32, 0]);
                    check(1, int80(IA32_SENDTO, &[u as u32, payload32, 1, 0, dgram32, 16]).into())
                })
            }),
        ));
    }
    for (door, evt_type, pid) in doors {
        let a = expect_alert(d, METADATA, pid);
        assert_eq!(field_str(&a, "fd.sip"), "169.254.169.254", "{door}: {a}");
        assert_eq!(field_str(&a, "evt.type"), evt_type, "{door}: {a}");
        assert_in(&a, &c);
    }
}

#[test]
fn an_io_uring_connect_to_an_unexpected_destination_raises_the_rule() {
    require_root!();
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let into = procs(&c);
    let public = LoopbackAddress::add("192.0.2.30");
    let (_listener, port) = public.listen();
    let addr = raw::sockaddr_in(std::net::SocketAddrV4::new([192, 0, 2, 30].into(), port));
    let pid = in_child(|| {
        steps(|| {
            raw::enter_cgroup(&into)?;
            let ring = ring!();
            let t = raw::syscall(libc::SYS_socket, &[libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0]);
            check(1, t)?;
            let sqe = Sqe {
                opcode: raw::IORING_OP_CONNECT,
                fd: t as i32,
                addr: (&raw const addr) as u64,
                off: 16,
                ..Sqe::default()
            };
            check(2, ring.run(sqe).into())
        })
    });
    let a = expect_alert(d, UNEXPECTED_DESTINATION, pid);
    assert_eq!(field_str(&a, "fd.sip"), "192.0.2.30", "{a}");
    assert_eq!(field_u64(&a, "fd.sport"), Some(u64::from(port)), "{a}");
    assert_in(&a, &c);
}

#[test]
fn file_opened_by_handle_in_a_container() {
    require_root!();
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let into = procs(&c);
    let dir = tempdir();
    let file = dir.path().join("outside");
    std::fs::write(&file, "x").unwrap();
    let path = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    let by_handle = |container: bool| {
        let mut handle = [0u32; 34];
        handle[0] = 128;
        let mut mount_id = 0i32;
        in_child(|| {
            steps(|| {
                if container {
                    raw::enter_cgroup(&into)?;
                }
                let at = AT_FDCWD as u64;
                check(
                    1,
                    raw::syscall(
                        libc::SYS_name_to_handle_at,
                        &[
                            at,
                            path.as_ptr() as u64,
                            handle.as_mut_ptr() as u64,
                            (&raw mut mount_id) as u64,
                            0,
                        ],
                    ),
                )?;
                let root = raw::syscall(libc::SYS_open, &[c"/".as_ptr() as u64, 0]);
                check(2, raw::syscall(libc::SYS_open_by_handle_at, &[root as u64, handle.as_ptr() as u64, 0]))
            })
        })
    };
    let host = by_handle(false);
    let pid = by_handle(true);
    let a = expect_alert(d, OPEN_BY_HANDLE, pid);
    assert_eq!(field_str(&a, "fd.name"), canonical_str(&file), "{a}");
    assert_in(&a, &c);
    assert_no_alert(d, OPEN_BY_HANDLE, host, "open_by_handle_at on the host");
}

#[test]
fn io_uring_set_up_in_a_container() {
    require_root!();
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let into = procs(&c);
    let setup = |container: bool| {
        in_child(|| {
            steps(|| {
                if container {
                    raw::enter_cgroup(&into)?;
                }
                let _ring = ring!();
                Ok(())
            })
        })
    };
    let host = setup(false);
    let pid = setup(true);
    let a = expect_alert(d, IO_URING, pid);
    assert_in(&a, &c);
    assert_no_alert(d, IO_URING, host, "io_uring set up on the host");
}

fn canonical_str(p: &Path) -> String {
    common::canonical(p.to_str().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Processes, the kernel and the monitor itself

/// Python calling ptrace(request, pid, 0, 0).
fn py_ptrace(request: u32, pid: u32) -> String {
    format!("import ctypes; ctypes.CDLL(None, use_errno=True).ptrace({request}, {pid}, 0, 0)")
}

#[test]
fn another_process_attached_to_with_ptrace() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let mut target = cmd("sleep").arg("30").spawn().unwrap();
    // Benign: reading another process's memory (PTRACE_PEEKDATA = 2) is a debugger's daily work.
    let peek = run_ok(Command::new(&py).args(["-c", &py_ptrace(2, target.id())]));
    // PTRACE_ATTACH = 16.
    let pid = run_ok(Command::new(&py).args(["-c", &py_ptrace(16, target.id())]));
    let a = expect_alert(d, PTRACE, pid);
    assert_eq!(field_str(&a, "evt.arg.request"), "PTRACE_ATTACH", "{a}");
    assert_eq!(field_str(&a, "evt.arg.pid"), target.id().to_string(), "{a}");
    assert_host(&a);
    assert_no_alert(d, PTRACE, peek, "PTRACE_PEEKDATA");
    let _ = target.kill();
    let _ = target.wait();
}

#[test]
fn link_created_to_a_sensitive_file() {
    require_root!();
    let d = shared_alert_daemon();
    let dir = tempdir();
    let base = common::canonical(dir.path().to_str().unwrap());
    let at = |name: &str| format!("{base}/{name}");
    let ln = |args: &[&str]| run_ok(cmd("ln").args(args));
    // Benign: a link to a file no rule protects.
    let benign = ln(&["-s", "/etc/hostname", &at("hostname")]);
    let absolute = ln(&["-s", "/etc/shadow", &at("a")]);
    let a = expect_alert(d, SENSITIVE_LINK, absolute);
    assert_eq!(field_str(&a, "fs.path.source"), "/etc/shadow", "{a}");
    assert_eq!(field_str(&a, "fs.path.target"), at("a"), "{a}");
    // A relative target is followed from the link's directory, as the kernel follows it.
    let climbs = "../".repeat(base.matches('/').count());
    let relative = ln(&["-s", &format!("{climbs}etc/shadow"), &at("r")]);
    let a = expect_alert(d, SENSITIVE_LINK, relative);
    assert_eq!(field_str(&a, "fs.path.source"), "/etc/shadow", "{a}");
    // A hard link (across filesystems it fails, and the attempt is what is reported).
    let hard = run(cmd("ln").args(["/etc/sudoers", &at("h")]));
    let a = expect_alert(d, SENSITIVE_LINK, hard);
    assert_eq!(field_str(&a, "evt.type"), "linkat", "{a}");
    assert_no_alert(d, SENSITIVE_LINK, benign, "a symlink to /etc/hostname");
}

#[test]
fn shell_history_deleted_or_truncated() {
    require_root!();
    let d = shared_alert_daemon();
    // Truncation is watched in home directories: a home of the test's own.
    let home = format!("/home/monitor-history-test-{}", std::process::id());
    std::fs::create_dir_all(&home).unwrap();
    let history = format!("{home}/.bash_history");
    let notes = format!("{home}/notes.txt");
    for f in [&history, &notes] {
        std::fs::write(f, "ls\n").unwrap();
    }
    // Benign: removing another file, and appending to the history as shells do.
    let other = run_ok(cmd("rm").arg(&notes));
    let append = run_ok(cmd("sh").args(["-c", &format!("echo id >> {history}")]));
    let truncate = run_ok(cmd("sh").args(["-c", &format!(": > {history}")]));
    let a = expect_alert(d, HISTORY, truncate);
    assert_eq!(field_str(&a, "fd.name"), history, "{a}");
    let removed = run_ok(cmd("rm").arg(&history));
    let a = expect_alert(d, HISTORY, removed);
    assert_eq!(field_str(&a, "fs.path.name"), history, "{a}");
    let zsh = format!("{home}/.zsh_history");
    let to_null = run_ok(cmd("ln").args(["-sf", "/dev/null", &zsh]));
    let a = expect_alert(d, HISTORY, to_null);
    assert_eq!(field_str(&a, "fs.path.target"), zsh, "{a}");
    assert_no_alert(d, HISTORY, other, "rm of another file");
    assert_no_alert(d, HISTORY, append, "an append to the history");
    let _ = std::fs::remove_dir_all(&home);
}

/// Python making one bpf(2) call: BPF_PROG_LOAD of a two-instruction socket filter
/// (`r0 = 0; exit`), or BPF_MAP_CREATE of a one-entry array.
fn py_bpf(load_program: bool) -> String {
    let attr = if load_program {
        // prog_type SOCKET_FILTER, insn_cnt, insns, license
        "struct.pack('<IIQQ', 1, 2, ctypes.addressof(insns), ctypes.addressof(lic))"
    } else {
        // map_type ARRAY, key_size, value_size, max_entries
        "struct.pack('<IIII', 2, 4, 4, 1)"
    };
    let cmd = if load_program { 5 } else { 0 };
    format!(
        "import ctypes, struct\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         insns = ctypes.create_string_buffer(struct.pack('<BBhi', 0xb7, 0, 0, 0) + struct.pack('<BBhi', 0x95, 0, 0, 0))\n\
         lic = ctypes.create_string_buffer(b'GPL')\n\
         attr = ctypes.create_string_buffer({attr}, 128)\n\
         fd = libc.syscall(321, {cmd}, attr, 128)\n\
         assert fd >= 0, ctypes.get_errno()\n"
    )
}

#[test]
fn bpf_program_loaded_by_an_unexpected_program() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    // Benign: a map, which runs no code in the kernel.
    let map = run_ok(Command::new(&py).args(["-c", &py_bpf(false)]));
    let pid = run_ok(Command::new(&py).args(["-c", &py_bpf(true)]));
    let a = expect_alert(d, KERNEL_LOAD, pid);
    assert_eq!(field_str(&a, "evt.arg.cmd"), "BPF_PROG_LOAD", "{a}");
    assert_host(&a);
    assert_no_alert(d, KERNEL_LOAD, map, "BPF_MAP_CREATE");
}

#[test]
fn namespace_entered_or_created_in_a_container() {
    require_root!();
    let unshare = require_tool!("unshare");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    // Benign: the host making a namespace (runtimes and systemd do all the time).
    let host = run_ok(Command::new(&unshare).args(["-u", "true"]));
    let pid = run_ok(&mut in_container(&c, &unshare, &["-u", "true"]));
    let a = expect_alert(d, NAMESPACE_CHANGE, pid);
    assert_eq!(field_str(&a, "evt.type"), "unshare", "{a}");
    assert!(a["output"].as_str().unwrap().contains("flags=CLONE_NEWUTS"), "{a}");
    assert_in(&a, &c);
    assert_no_alert(d, NAMESPACE_CHANGE, host, "unshare on the host");
}

#[test]
fn monitors_state_changed_by_another_program() {
    require_root!();
    let d = shared_alert_daemon();
    // The rule names the installed paths; the test leaves them as it found them.
    let state = Path::new("/var/lib/monitor");
    let created = !state.exists();
    std::fs::create_dir_all(state).unwrap();
    let file = format!("/var/lib/monitor/tamper-test-{}", std::process::id());
    let lookalike = format!("/var/lib/monitor-lookalike-{}", std::process::id());
    // Benign: a directory whose name only starts like the monitor's.
    let benign = run_ok(cmd("sh").args(["-c", &format!("echo x > {lookalike}")]));
    let write = run_ok(cmd("sh").args(["-c", &format!("echo x > {file}")]));
    let a = expect_alert(d, TAMPERING, write);
    assert_eq!(field_str(&a, "fd.name"), file, "{a}");
    let removed = run_ok(cmd("rm").arg(&file));
    let a = expect_alert(d, TAMPERING, removed);
    assert_eq!(field_str(&a, "fs.path.name"), file, "{a}");
    assert_no_alert(d, TAMPERING, benign, "a write to a lookalike path");
    let _ = std::fs::remove_file(&lookalike);
    if created {
        let _ = std::fs::remove_dir(state);
    }
}

#[test]
fn shell_or_inline_interpreter_listening_in_a_container() {
    require_root!();
    let py = require_tool!("python3");
    let d = shared_alert_daemon();
    let c = FakeContainer::new();
    let listen = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)";
    // A bind shell's way: code on the command line, started from a shell (which stays the
    // parent: the command is not its last).
    let shell = format!("{} -c \"{listen}\"; true", py.display());
    let inline = run_ok(&mut in_container(&c, "sh", &["-c", &shell]));
    // Benign: a service started from its script file, and the bind shell's code on the host.
    let script = tempfile::Builder::new().suffix(".py").tempfile().unwrap();
    std::fs::write(script.path(), listen).unwrap();
    let service = run_ok(&mut in_container(&c, &py, &[script.path().to_str().unwrap()]));
    let host = run_ok(cmd("sh").args(["-c", &shell]));
    let a = d.wait_for_or_show(
        &format!("`{LISTENER}` under pid {inline}"),
        |v| rule(v) == LISTENER && field_u64(v, "proc.ppid") == Some(u64::from(inline)),
        |v| involves(v, inline),
    );
    assert_eq!(field_str(&a, "proc.pname"), "sh", "{a}");
    assert!(a["output"].as_str().unwrap().contains("address=127.0.0.1:"), "{a}");
    assert_eq!(field_str(&a, "container.id"), c.short_id(), "{a}");
    // The host's listener came later through the same ring: both twins were judged by now.
    let later = run_ok(&mut in_container(&c, "sh", &["-c", &shell]));
    d.wait_for(&format!("`{LISTENER}` under pid {later}"), |v| {
        rule(v) == LISTENER && field_u64(v, "proc.ppid") == Some(u64::from(later))
    });
    assert_no_alert(d, LISTENER, service, "a service listening from its script file");
    assert_no_alert(d, LISTENER, host, "the same code on the host");
}
