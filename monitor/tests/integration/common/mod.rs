//! The one helper module of the integration tests: starts the real daemon (`monitor events
//! --json`, or `monitor run` for alerts), collects what it reports, and lets each test pick out
//! the events or alerts of its own processes; runs programs, finds tools, makes fake
//! containers and marker directories.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[macro_use]
pub mod raw;
pub mod receivers;

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Records that the calling test was skipped, and why: on stderr, and in the file
/// `MONITOR_TEST_SKIPS` names (`cargo xtask test` counts those as skipped, not passed).
pub fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    eprintln!("SKIPPED {test}: {why}");
    if let Some(path) = std::env::var_os("MONITOR_TEST_SKIPS")
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        let _ = writeln!(f, "{test}: {why}");
    }
}

/// The name of the calling test (the test harness names its thread after it).
pub fn test_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// Skips the calling test, loudly and counted, when it cannot load kernel programs.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            $crate::common::skip(
                &$crate::common::test_name(),
                "needs root to load the kernel programs (CI runs as root)",
            );
            return;
        }
    };
}

/// The path of an installed program, or the calling test is skipped, loudly.
#[macro_export]
macro_rules! require_tool {
    ($name:expr) => {
        match $crate::common::tool($name) {
            Some(p) => p,
            None => {
                $crate::common::skip(&$crate::common::test_name(), &format!("`{}` is not installed", $name));
                return;
            }
        }
    };
}

/// A command in a session of its own (no controlling terminal, so a test run from a terminal
/// does not look interactive), with no input and quiet output.
pub fn cmd(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::setsid();
            Ok(())
        });
    }
    c
}

/// Runs `c` to the end, which must succeed; returns its pid (which a program it execs keeps).
pub fn run_ok(c: &mut Command) -> u32 {
    let mut child = c.stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
    let pid = child.id();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{c:?} failed ({status}):\n{err}");
    pid
}

/// `program args...` run inside the container: a shell moves itself into the container's
/// cgroup, then execs the program, which keeps the shell's pid.
pub fn in_container(c: &FakeContainer, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut sh = cmd("sh");
    sh.arg("-c").arg(c.enter(r#"exec "$0" "$@""#)).arg(program).args(args);
    sh
}

/// Python that connects to `ip:port` over TCP.
pub fn py_connect(ip: &str, port: u16) -> String {
    format!("import socket; socket.create_connection(('{ip}', {port})).close()")
}

/// Runs `cmd` to the end, whatever its exit status, its output discarded; returns its pid
/// (which a program it execs keeps).
pub fn run(cmd: &mut Command) -> u32 {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// An installed program by name: an executable ELF file (not a wrapper script such as a pyenv
/// shim, which would start a shell first), from the system directories before $PATH.
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    use std::io::Read as _;
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|p| {
            let mut magic = [0u8; 4];
            std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF"
        })
}

#[derive(Default)]
struct Collected {
    events: Vec<Value>,
    stderr: Vec<String>,
    ready: bool,
    stdout_closed: bool,
    cut_last_line: Option<String>,
}

pub struct Daemon {
    child: Child,
    /// The daemon's data_dir (when it is a `run`): its own, so parallel daemons do not read
    /// each other's lifecycle record.
    _data_dir: tempfile::TempDir,
    shared: Arc<(Mutex<Collected>, Condvar)>,
    stdout_gate: Option<std::sync::mpsc::Sender<()>>,
    stdout_thread: Option<std::thread::JoinHandle<()>>,
    stderr_thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
pub struct Options<'a> {
    /// The subcommand and its flags; default `events --json`.
    pub command: &'a [&'a str],
    pub args: &'a [&'a str],
    /// Do not read the daemon's output until `resume_output` (a slow consumer).
    pub hold_output: bool,
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
    /// A program (and its arguments) that runs monitor, e.g. setpriv with a capability set.
    pub wrapper: &'a [&'a str],
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(Options::default())
    }

    /// `monitor run --format json` with these arguments: alerts, one JSON object per line.
    pub fn start_run(args: &[&str]) -> Daemon {
        Self::start_with(Options { command: &["run", "--format", "json"], args, ..Default::default() })
    }

    pub fn start_with(opts: Options<'_>) -> Daemon {
        let command: &[&str] = if opts.command.is_empty() { &["events", "--json"] } else { opts.command };
        let mut cmd = match opts.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_monitor"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_monitor")),
        };
        // A daemon outliving its test would keep every probe attached.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt as _;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let data_dir = tempfile::Builder::new().prefix("monitor-data").tempdir().expect("a data_dir");
        let mut child = cmd
            .args(command)
            .args(opts.args)
            .env("MONITOR_LOG_FORMAT", "text")
            // Daemons of parallel tests cannot share the default metrics port.
            .env("MONITOR_METRICS__ADDRESS", "127.0.0.1:0")
            .env("MONITOR_DATA_DIR", data_dir.path())
            .envs(opts.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start monitor");
        let shared = Arc::new((Mutex::new(Collected::default()), Condvar::new()));

        let stderr = child.stderr.take().unwrap();
        let s = shared.clone();
        let stderr_thread = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (m, cv) = &*s;
                let mut c = m.lock().unwrap();
                if line.contains("sensors attached") {
                    c.ready = true;
                }
                c.stderr.push(line);
                cv.notify_all();
            }
            let (m, cv) = &*s;
            m.lock().unwrap().stderr.push("<stderr closed>".into());
            cv.notify_all();
        });

        let stdout = child.stdout.take().unwrap();
        let s = shared.clone();
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let hold = opts.hold_output;
        let stdout_thread = std::thread::spawn(move || {
            if hold {
                let _ = gate_rx.recv();
            }
            // Only the very last line may be cut: a daemon stopped while its reader stalls
            // exits mid-write.
            let mut cut: Option<String> = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(bad) = &cut {
                    panic!("monitor printed a line that is not JSON: {bad}");
                }
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let (m, cv) = &*s;
                        m.lock().unwrap().events.push(v);
                        cv.notify_all();
                    }
                    Err(_) => cut = Some(line),
                }
            }
            let (m, cv) = &*s;
            let mut c = m.lock().unwrap();
            c.stdout_closed = true;
            c.cut_last_line = cut;
            cv.notify_all();
        });

        let d = Daemon {
            child,
            _data_dir: data_dir,
            shared,
            stdout_gate: Some(gate_tx),
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let (m, cv) = &*self.shared;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut c = m.lock().unwrap();
        while !c.ready {
            if c.stderr.iter().any(|l| l == "<stderr closed>") || Instant::now() > deadline {
                panic!("monitor did not attach its sensors:\n{}", c.stderr.join("\n"));
            }
            c = cv.wait_timeout(c, Duration::from_millis(100)).unwrap().0;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the daemon (SIGSTOP): the kernel keeps queueing records it reads after `cont`.
    pub fn pause(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGSTOP) };
        // kill() returns before the daemon stops: wait until it has.
        let stat = format!("/proc/{}/stat", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&stat)
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T')))
        {
            assert!(Instant::now() < deadline, "monitor did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn cont(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
    }

    pub fn resume_output(&mut self) {
        if let Some(g) = self.stdout_gate.take() {
            let _ = g.send(());
        }
    }

    /// The first event matching `pred`, waiting up to TIMEOUT; panics with `what` and the
    /// events of `pid_hint` (if any) when none arrives.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let (m, cv) = &*self.shared;
        let deadline = Instant::now() + TIMEOUT;
        let mut c = m.lock().unwrap();
        loop {
            if let Some(v) = c.events.iter().find(|v| pred(v)) {
                return v.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no event: {what}\n{} events collected; daemon stderr:\n{}",
                    c.events.len(),
                    c.stderr.join("\n")
                );
            }
            c = cv.wait_timeout(c, Duration::from_millis(100)).unwrap().0;
        }
    }

    /// Like `wait_for`, but panics with the events `context` selects, to show what came instead.
    pub fn wait_for_or_show(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
        context: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(v) = self.matching(&pred).into_iter().next() {
                return v;
            }
            if Instant::now() > deadline {
                let shown: Vec<String> = self.matching(&context).iter().map(Value::to_string).collect();
                panic!("no event: {what}; related events:\n{}", shown.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every event so far that matches.
    pub fn matching(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let (m, _) = &*self.shared;
        m.lock().unwrap().events.iter().filter(|v| pred(v)).cloned().collect()
    }

    /// Stops the daemon with SIGTERM; returns its stderr. Every line it printed was whole.
    pub fn stop(mut self) -> Vec<String> {
        self.resume_output();
        let stderr = self.terminate();
        let (m, _) = &*self.shared;
        if let Some(line) = &m.lock().unwrap().cut_last_line {
            panic!("monitor printed a line that is not JSON: {line}");
        }
        stderr
    }

    /// Stops the daemon with SIGTERM; returns everything it printed on stdout.
    pub fn stop_and_collect(self) -> Vec<Value> {
        let shared = self.shared.clone();
        self.stop();
        shared.0.lock().unwrap().events.clone()
    }

    /// What the daemon logged so far.
    pub fn stderr(&self) -> Vec<String> {
        self.shared.0.lock().unwrap().stderr.clone()
    }

    /// The first log line containing `text`, waiting up to TIMEOUT.
    pub fn wait_for_log(&self, text: &str) -> String {
        let (m, cv) = &*self.shared;
        let deadline = Instant::now() + TIMEOUT;
        let mut c = m.lock().unwrap();
        loop {
            if let Some(l) = c.stderr.iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!("monitor never logged `{text}`; its stderr:\n{}", c.stderr.join("\n"));
            }
            c = cv.wait_timeout(c, Duration::from_millis(100)).unwrap().0;
        }
    }

    /// Where the daemon serves /metrics and /healthz (from its log).
    pub fn metrics_address(&self) -> String {
        let line = self.wait_for_log("serving /metrics and /healthz");
        let at = line.find("address=").unwrap_or_else(|| panic!("no address in `{line}`"));
        line[at + "address=".len()..].split_whitespace().next().unwrap().to_owned()
    }

    /// GET `path` from the daemon's metrics server: (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(&self.metrics_address(), path)
    }

    /// Kills the daemon with SIGKILL (no chance to flush anything); returns its stderr.
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.resume_output();
        if let Some(t) = self.stderr_thread.take() {
            t.join().expect("stderr reader");
        }
        self.stderr()
    }

    /// Stops the daemon with SIGTERM while nobody reads its output: it must still exit.
    pub fn stop_while_output_stalled(mut self) -> Vec<String> {
        self.terminate()
    }

    fn terminate(&mut self) -> Vec<String> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait monitor") {
                break status;
            }
            assert!(Instant::now() < deadline, "monitor did not exit within 15 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        self.resume_output();
        if let Some(t) = self.stdout_thread.take() {
            t.join().expect("stdout reader");
        }
        if let Some(t) = self.stderr_thread.take() {
            t.join().expect("stderr reader");
        }
        let (m, _) = &*self.shared;
        let stderr = m.lock().unwrap().stderr.clone();
        assert!(status.success(), "monitor exited with {status}:\n{}", stderr.join("\n"));
        stderr
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(u64::MAX)
}

pub fn b(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub fn is(v: &Value, evt_type: &str, pid: u32) -> bool {
    s(v, "evt.type") == evt_type && u(v, "proc.pid") == u64::from(pid)
}

pub fn is_open_of(v: &Value, pid: u32, path: &str) -> bool {
    matches!(s(v, "evt.type"), "open" | "openat" | "openat2" | "creat" | "open_by_handle_at" | "pidfd_getfd")
        && u(v, "proc.pid") == u64::from(pid)
        && s(v, "fd.name") == path
}

/// This test process's comm (what proc.pname of its children is).
pub fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_owned()
}

pub fn canonical(path: &str) -> String {
    std::fs::canonicalize(path).unwrap().to_string_lossy().into_owned()
}

pub fn gettid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() as u32 }
}

pub fn unified_cgroup_root() -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).unwrap().to_owned())
        })
        .expect("no cgroup2 mount")
}

/// Falco's stock rules (../shared/falco beside the project; MONITOR_FALCO_RULES overrides).
pub fn falco_dir() -> std::path::PathBuf {
    let candidates = [
        std::env::var_os("MONITOR_FALCO_RULES").map(std::path::PathBuf::from),
        Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco")),
        Some(std::path::PathBuf::from("/work/shared/falco")),
    ];
    candidates.into_iter().flatten().find(|p| p.join("falco_rules.yaml").is_file()).unwrap_or_else(|| {
        panic!("Falco's stock rules not found: put them in ../shared/falco beside the project or set MONITOR_FALCO_RULES")
    })
}

/// A unique cgroup named like a docker scope, removed on drop (also when an assertion fails).
/// A process that writes its pid to `{scope}/cgroup.procs` is, to the daemon, in a container.
pub struct FakeContainer {
    pub id: String,
    pub scope: String,
}

impl FakeContainer {
    pub fn new() -> Self {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A unique id shaped like a real one: 64 lowercase hex digits.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let id = format!("{:016x}{:016x}{:016x}{:016x}", nanos, u64::from(std::process::id()), seq, !nanos);
        let scope = format!("{}/docker-{id}.scope", unified_cgroup_root());
        std::fs::create_dir(&scope).unwrap();
        Self { id, scope }
    }

    /// `sh -c` text that moves the shell into this container's cgroup, then runs `script`.
    pub fn enter(&self, script: &str) -> String {
        format!("echo $$ > {}/cgroup.procs && {script}", self.scope)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        // Processes left in the cgroup (a failed test) keep it busy: move them out first.
        if let Ok(procs) = std::fs::read_to_string(format!("{}/cgroup.procs", self.scope)) {
            let root = format!("{}/cgroup.procs", unified_cgroup_root());
            for pid in procs.lines() {
                let _ = std::fs::write(&root, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.scope);
    }
}

/// A `monitor run` daemon shared by every test of a test binary that asks for it: the tests
/// run in parallel and each picks out the alerts of its own processes. It is started from a
/// thread that never ends, so PDEATHSIG fires only when the test process exits.
pub fn shared_daemon(
    cell: &'static std::sync::OnceLock<&'static Daemon>,
    args: Vec<String>,
) -> &'static Daemon {
    cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let d: &'static Daemon = Box::leak(Box::new(Daemon::start_run(&args)));
            tx.send(d).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("shared daemon started")
    })
}

/// The shared daemon with the default config: bundled rules.
pub fn shared_alert_daemon() -> &'static Daemon {
    static DAEMON: std::sync::OnceLock<&'static Daemon> = std::sync::OnceLock::new();
    shared_daemon(&DAEMON, vec!["--config".into(), "/dev/null".into()])
}

/// The shared daemon with Falco's stable rules, unthrottled.
pub fn falco_stable_daemon() -> &'static Daemon {
    static DAEMON: std::sync::OnceLock<&'static Daemon> = std::sync::OnceLock::new();
    let rules = falco_dir().join("falco_rules.yaml").to_str().unwrap().to_owned();
    let args = ["--config", "/dev/null", "--rules", &rules, "--set", "rate_limit.per_second=0"];
    shared_daemon(&DAEMON, args.map(str::to_owned).to_vec())
}

/// Alert helpers: the rule name and an output field.
pub fn rule(v: &Value) -> &str {
    s(v, "rule")
}

pub fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get("output_fields").and_then(|f| f.get(key)).unwrap_or(&Value::Null)
}

/// Whether an alert is about process `pid` or one of its children.
pub fn involves(v: &Value, pid: u32) -> bool {
    field_u64(v, "proc.pid") == Some(u64::from(pid)) || field_u64(v, "proc.ppid") == Some(u64::from(pid))
}

pub fn show(alerts: &[Value]) -> String {
    alerts.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
}

/// The alert of `rule_name` about process `pid`; shows the alerts about `pid` when none comes.
pub fn expect_alert(d: &Daemon, rule_name: &str, pid: u32) -> Value {
    d.wait_for_or_show(
        &format!("`{rule_name}` for pid {pid}"),
        |v| alert_for(v, rule_name, pid),
        |v| involves(v, pid),
    )
}

/// No alert of `rule_name` about process `pid` or its children so far. Call it once the daemon
/// has handled what `pid` did: after an alert for something done later (the kernel hands events
/// over through one ordered ring).
pub fn assert_no_alert(d: &Daemon, rule_name: &str, pid: u32, what: &str) {
    let found = d.matching(|v| rule(v) == rule_name && involves(v, pid));
    assert!(found.is_empty(), "{what} (pid {pid}) raised `{rule_name}`:\n{}", show(&found));
}

/// Whether `v` is an alert of `rule_name` about process `pid`.
pub fn alert_for(v: &Value, rule_name: &str, pid: u32) -> bool {
    rule(v) == rule_name && field(v, "proc.pid").as_u64() == Some(u64::from(pid))
}

/// A plain HTTP/1.0 GET (the daemon's server closes after answering): (status, body).
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream =
        std::net::TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut response = String::new();
    if let Err(e) = write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")
        .and_then(|()| stream.read_to_string(&mut response))
    {
        return (0, format!("no answer: {e}"));
    }
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The value of the sample `name{labels}` (exactly as exposed) in a Prometheus exposition.
pub fn metric(exposition: &str, sample: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A test's own directory, with a marker directory whose opens its rules fire on.
pub struct Markers {
    pub dir: tempfile::TempDir,
    pub markers: std::path::PathBuf,
}

impl Markers {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let markers = dir.path().join("markers");
        std::fs::create_dir(&markers).unwrap();
        Self { dir, markers }
    }

    /// Writes (or replaces) the rules file `relative` to the test's directory: one rule, `name`,
    /// that fires on opens of markers.
    pub fn write_rule(&self, relative: &str, name: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let rule = format!(
            "- rule: {name}\n  desc: service test rule\n  condition: evt.type in (open, openat, openat2) and \
             fd.name startswith {}/\n  output: \"{name} %fd.name\"\n  priority: WARNING\n",
            self.markers.display()
        );
        std::fs::write(&path, rule).unwrap();
        path
    }
}

pub fn open_markers(dir: &std::path::Path, from: u64, to: u64) {
    for i in from..to {
        let _ = std::fs::File::open(dir.join(format!("m{i}")));
    }
}

/// An output field of an alert as text ("" when missing or not text).
pub fn field_str<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key).as_str().unwrap_or("")
}

/// An output field of an alert as a number.
pub fn field_u64(v: &Value, key: &str) -> Option<u64> {
    field(v, key).as_u64()
}

/// An address on the loopback interface for the life of the value: connections to it stay on
/// this machine, yet look like connections to that address. Tests run in parallel and two may
/// want the same address, so the address is counted: added by the first holder, removed by the
/// last.
pub struct LoopbackAddress(&'static str);

static LOOPBACK_HOLDERS: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());

impl LoopbackAddress {
    pub fn add(ip: &'static str) -> Self {
        let mut holders = LOOPBACK_HOLDERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = holders.entry(ip).or_insert(0);
        if *count == 0 {
            let out = Command::new("ip")
                .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
                .output()
                .expect("run `ip` (iproute2)");
            let err = String::from_utf8_lossy(&out.stderr);
            // Left over from a run that was killed: ours all the same, removed on drop. Older
            // iproute2 says "File exists", newer "Address already assigned".
            assert!(
                out.status.success() || err.contains("File exists") || err.contains("already assigned"),
                "ip addr add {ip}/32 dev lo: {err}"
            );
        }
        *count += 1;
        Self(ip)
    }

    /// A listener on the address, on a port the kernel picks.
    pub fn listen(&self) -> (std::net::TcpListener, u16) {
        let l = std::net::TcpListener::bind((self.0, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }
}

impl Drop for LoopbackAddress {
    fn drop(&mut self) {
        let mut holders = LOOPBACK_HOLDERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = holders.entry(self.0).or_insert(1);
        *count -= 1;
        if *count == 0 {
            holders.remove(self.0);
            let _ = Command::new("ip").args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"]).output();
        }
    }
}
