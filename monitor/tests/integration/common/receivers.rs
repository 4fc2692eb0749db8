//! Real receivers for the alert sink tests. A sink is only proven by the thing it talks to in
//! production: rsyslog (TCP, TLS, RELP), nats-server with JetStream, and HTTP endpoints whose
//! answers the test controls (to play Elasticsearch, Splunk HEC, a failing or hanging webhook).
//! Each receiver owns a temporary directory with all its state, listens on 127.0.0.1 only, and
//! kills what it started when dropped.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A port nothing listens on now. The kernel hands out ephemeral ports round-robin, so another
/// process is unlikely to take it in the moment before our server binds it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `cmd` with its output in `log`. PR_SET_PDEATHSIG: a test that panics or is killed
/// must not leave servers holding ports (it fires when the spawning *thread* exits, so create
/// receivers on the test's own thread).
fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()))
}

/// Whether a socket listens on 127.0.0.1:`port`. Read from /proc/net/tcp rather than probed
/// with a connect, which rsyslogd would log as a failed TLS handshake or broken RELP session
/// and so clutter the logs a failing test prints.
fn listening(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").unwrap().lines().any(|l| {
        let mut f = l.split_whitespace();
        f.nth(1) == Some(local.as_str()) && f.nth(1) == Some("0A")
    })
}

/// Returns once `port` accepts connections; panics with the server's logs if it exits or
/// never listens (rsyslogd keeps running after most config errors, so only the port tells).
fn wait_for_port(port: u16, child: &mut Child, logs: &[PathBuf]) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if listening(port) {
            return;
        }
        let exited = child.try_wait().unwrap();
        if exited.is_some() || Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|p| format!("--- {}:\n{}", p.display(), std::fs::read_to_string(p).unwrap_or_default()))
                .collect();
            panic!("server did not listen on {port} (exit: {exited:?})\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM first so servers flush what they acknowledged (omfile, JetStream), then SIGKILL.
fn terminate(child: &mut Child) {
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A throwaway PKI, so TLS sinks are tested with full verification rather than with it off.
/// EC P-256 / SHA-256 X.509 v3 throughout: webpki refuses v1 certificates and CA certificates
/// presented as end entities.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let key = |name: &str| {
            openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name])
        };
        key("ca.key");
        // A CN of its own, so that a certificate from another TestCa fails as an unknown issuer.
        let subject = format!("/CN=monitor test CA {}", d.file_name().unwrap().to_string_lossy());
        #[rustfmt::skip]
        openssl(d, &["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
            "-subj", &subject, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem"]);
        for (who, cn, eku, san) in [
            ("server", "localhost", "serverAuth", "\nsubjectAltName=DNS:localhost,IP:127.0.0.1"),
            ("client", "monitor test client", "clientAuth", ""),
        ] {
            key(&format!("{who}.key"));
            let ext = format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage={eku}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid{san}\n"
            );
            std::fs::write(d.join(format!("{who}.ext")), ext).unwrap();
            #[rustfmt::skip]
            openssl(d, &["req", "-new", "-key", &format!("{who}.key"), "-subj", &format!("/CN={cn}"),
                "-out", &format!("{who}.csr")]);
            #[rustfmt::skip]
            openssl(d, &["x509", "-req", "-in", &format!("{who}.csr"), "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-sha256", "-days", "3650", "-extfile", &format!("{who}.ext"),
                "-out", &format!("{who}.pem")]);
        }
        TestCa { dir }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

pub enum RsyslogInput<'a> {
    /// imtcp: LF-terminated and octet-counted (RFC 6587) framing alike.
    Tcp,
    /// imtcp over gnutls; anonymous on the server side, the client verifies against the CA.
    Tls(&'a TestCa),
    /// imrelp, plain.
    Relp,
}

/// Debian's rsyslogd on a private config: no imuxsock/imklog (never touches /dev/log or the
/// system's logs), internal messages kept in its own directory. Every received message becomes
/// one line `PRI|APP-NAME|MSGID|MSG` of `received.log`, MSG unescaped and untruncated up to
/// 64 KiB. MSG is the raw syslog MSG: an RFC 3164 message keeps the space after its tag.
pub struct Rsyslog {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    pub fn start(input: RsyslogInput<'_>) -> Rsyslog {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("work")).unwrap();
        let port = free_port();
        let input = match input {
            RsyslogInput::Tcp => format!("module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\""),
            RsyslogInput::Relp => {
                format!("module(load=\"imrelp\")\ninput(type=\"imrelp\" port=\"{port}\" maxDataSize=\"64k\"")
            }
            RsyslogInput::Tls(ca) => {
                // Copied: the receiver must survive (and restart after) the CA being dropped.
                for (from, to) in [
                    (ca.ca_cert(), "ca.pem"),
                    (ca.server_cert(), "server.pem"),
                    (ca.server_key(), "server.key"),
                ] {
                    std::fs::copy(from, d.join(to)).unwrap();
                }
                let f = |n: &str| d.join(n).display().to_string();
                format!(
                    "module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\" streamDriver.name=\"gtls\" \
                     streamDriver.mode=\"1\" streamDriver.authMode=\"anon\" streamDriver.CAFile=\"{}\" \
                     streamDriver.CertFile=\"{}\" streamDriver.KeyFile=\"{}\"",
                    f("ca.pem"),
                    f("server.pem"),
                    f("server.key")
                )
            }
        };
        // maxMessageSize must precede the inputs; escaping off keeps MSG byte for byte.
        let conf = format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\" processInternalMessages=\"on\"\n\
             \x20      parser.escapeControlCharactersOnReceive=\"off\")\n\
             template(name=\"line\" type=\"string\" string=\"%pri%|%app-name%|%msgid%|%msg%\\n\")\n\
             ruleset(name=\"received\") {{ action(type=\"omfile\" file=\"{out}\" template=\"line\") }}\n\
             {input} address=\"127.0.0.1\" ruleset=\"received\")\n\
             *.* action(type=\"omfile\" file=\"{internal}\")\n",
            work = d.join("work").display(),
            out = d.join("received.log").display(),
            internal = d.join("internal.log").display(),
        );
        std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
        let mut r = Rsyslog { dir, port, child: None };
        r.restart();
        r
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The complete lines received so far (a line still being written is left out).
    pub fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.path().join("received.log")).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.split('\n').filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }

    /// Down until `restart`: connections are refused.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }

    /// Up again on the same port, appending to the same output file.
    pub fn restart(&mut self) {
        self.stop();
        let d = self.dir.path();
        let mut child = spawn(
            Command::new("/usr/sbin/rsyslogd")
                .arg("-n")
                .arg("-f")
                .arg(d.join("rsyslog.conf"))
                .arg("-i")
                .arg(d.join("rsyslogd.pid")),
            &d.join("stderr.log"),
        );
        wait_for_port(self.port, &mut child, &[d.join("stderr.log"), d.join("internal.log")]);
        self.child = Some(child);
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// nats-server with JetStream, its store in the receiver's directory so that streams survive
/// `stop`/`restart` like they would a broker restart in production.
pub struct NatsServer {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let mut n = NatsServer { dir: TempDir::new().unwrap(), port: free_port(), child: None };
        n.restart();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let d = self.dir.path();
        let mut child = spawn(
            Command::new("nats-server").arg("-js").arg("-sd").arg(d.join("js")).args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ]),
            &d.join("nats.log"),
        );
        wait_for_port(self.port, &mut child, &[d.join("nats.log")]);
        self.child = Some(child);
    }

    /// Every message stored in `stream` as (subject, payload parsed as JSON), in sequence order;
    /// empty when the stream does not exist (yet). Reads by sequence number, so it neither
    /// needs nor leaves a consumer behind.
    pub fn stream_messages(&self, stream: &str) -> Vec<(String, Value)> {
        use async_nats::jetstream::stream::RawMessageErrorKind;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), async {
                let client = async_nats::connect(self.url()).await.expect("connect to nats-server");
                let js = async_nats::jetstream::new(client);
                let Ok(mut s) = js.get_stream(stream).await else { return Vec::new() };
                let state = s.info().await.expect("stream info").state.clone();
                let mut out = Vec::new();
                for seq in state.first_sequence.max(1)..=state.last_sequence {
                    match s.get_raw_message(seq).await {
                        Ok(m) => {
                            let v = serde_json::from_slice(&m.payload).unwrap_or_else(|e| {
                                panic!(
                                    "message {seq} is not JSON ({e}): {}",
                                    String::from_utf8_lossy(&m.payload)
                                )
                            });
                            out.push((m.subject.to_string(), v));
                        }
                        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {} // deleted
                        Err(e) => panic!("get message {seq} of {stream}: {e}"),
                    }
                }
                out
            })
            .await
            .expect("reading the stream timed out")
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How the HTTP receiver answers; switchable mid-test to take an endpoint down and back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HttpMode {
    /// 200 with the configured body, or whatever the responder says.
    Ok,
    /// This status, empty body; the request is not accepted.
    Fail(u16),
    /// Reads the request and never answers; when the mode changes or the receiver stops, the
    /// connection is closed (still unanswered), so a client without a timeout would hang forever.
    Hang,
    /// Reads the request and closes the connection without a word.
    Close,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Gunzipped when the request said `content-encoding: gzip`; chunked bodies reassembled.
    pub body: Vec<u8>,
    /// What it was answered; None when it was not (Hang, Close).
    pub status: Option<u16>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The body as a sequence of JSON values: one document, NDJSON (Elasticsearch `_bulk`) or
    /// concatenated objects (Splunk HEC batches) alike.
    pub fn json_values(&self) -> Vec<Value> {
        serde_json::Deserializer::from_slice(&self.body)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Decides an answer (status, body) from the request.
pub type ResponderFn = dyn Fn(&Request) -> (u16, String) + Send + Sync;
type Responder = Arc<ResponderFn>;

struct State {
    mode: HttpMode,
    ok_body: String,
    responder: Option<Responder>,
    requests: Vec<Request>,
    /// Bumped by stop: connections of an earlier run neither record nor answer.
    generation: u64,
    conns: Vec<TcpStream>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// A hand-written HTTP/1.1 server (keep-alive, Content-Length and chunked bodies, gzip) that
/// records everything: no HTTP crate in the tests can be told to fail, hang or vanish on cue.
pub struct HttpReceiver {
    port: u16,
    shared: Shared,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl HttpReceiver {
    pub fn start() -> HttpReceiver {
        let state = State {
            mode: HttpMode::Ok,
            ok_body: "{}".into(),
            responder: None,
            requests: Vec::new(),
            generation: 0,
            conns: Vec::new(),
        };
        let mut r =
            HttpReceiver { port: 0, shared: Arc::new((Mutex::new(state), Condvar::new())), acceptor: None };
        r.listen(TcpListener::bind("127.0.0.1:0").unwrap());
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_mode(&self, mode: HttpMode) {
        self.shared.0.lock().unwrap().mode = mode;
        self.shared.1.notify_all();
    }

    /// The body of 200 answers when no responder is set.
    pub fn set_ok_body(&self, body: &str) {
        self.shared.0.lock().unwrap().ok_body = body.into();
    }

    /// Decides status and body in mode Ok (Elasticsearch per-item `_bulk` results, Splunk HEC's
    /// `{"text":"Success","code":0}`); the request counts as accepted when the status is 2xx.
    pub fn set_responder(&self, f: Box<ResponderFn>) {
        self.shared.0.lock().unwrap().responder = Some(Arc::from(f));
    }

    /// The requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Request> {
        let s = self.shared.0.lock().unwrap();
        s.requests.iter().filter(|r| r.status.is_some_and(|c| (200..300).contains(&c))).cloned().collect()
    }

    pub fn all_requests(&self) -> Vec<Request> {
        self.shared.0.lock().unwrap().requests.clone()
    }

    /// Closes the listener and every open connection: connects are refused until `restart`.
    pub fn stop(&mut self) {
        {
            let mut s = self.shared.0.lock().unwrap();
            s.generation += 1;
            for c in s.conns.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        self.shared.1.notify_all();
        if let Some(t) = self.acceptor.take() {
            t.join().unwrap();
        }
    }

    /// Listening again on the same port (std sets SO_REUSEADDR; retried in case it is busy).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => panic!("rebind port {}: {e}", self.port),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.listen(listener);
    }

    fn listen(&mut self, listener: TcpListener) {
        self.port = listener.local_addr().unwrap().port();
        // Non-blocking accept polled, so that stop can end it and drop the socket.
        listener.set_nonblocking(true).unwrap();
        let shared = self.shared.clone();
        let generation = shared.0.lock().unwrap().generation;
        self.acceptor = Some(std::thread::spawn(move || {
            while shared.0.lock().unwrap().generation == generation {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        shared.0.lock().unwrap().conns.push(conn.try_clone().unwrap());
                        let shared = shared.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, &shared, generation);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let path = parts.nth(1).unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap_or((l, ""));
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut req = Request { path, headers, body: Vec::new(), status: None };
    if req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    if req.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while {
                    line.clear();
                    r.read_line(&mut line)? > 0 && !line.trim_end().is_empty()
                } {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(len) = req.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    if req.header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip")) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut plain)?;
        body = plain;
    }
    req.body = body;
    Ok(Some(req))
}

fn serve(conn: TcpStream, shared: &Shared, generation: u64) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    while let Some(mut req) = read_request(&mut reader)? {
        let (m, cv) = &**shared;
        let mut s = m.lock().unwrap();
        if s.generation != generation {
            return Ok(());
        }
        let answer = match s.mode {
            HttpMode::Ok => Some(match s.responder.clone() {
                Some(f) => {
                    drop(s);
                    let a = f(&req);
                    s = m.lock().unwrap();
                    a
                }
                None => (200, s.ok_body.clone()),
            }),
            HttpMode::Fail(code) => Some((code, String::new())),
            HttpMode::Hang | HttpMode::Close => None,
        };
        req.status = answer.as_ref().map(|a| a.0);
        let close_after = req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        s.requests.push(req);
        cv.notify_all();
        let Some((code, body)) = answer else {
            if s.mode == HttpMode::Hang {
                while s.mode == HttpMode::Hang && s.generation == generation {
                    s = cv.wait(s).unwrap();
                }
            }
            let _ = reader.get_ref().shutdown(Shutdown::Both);
            return Ok(());
        };
        drop(s);
        let reason = match code {
            200..=299 => "OK",
            400..=499 => "Client Error",
            _ => "Server Error",
        };
        let response = format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n{body}",
            body.len(),
            if close_after { "close" } else { "keep-alive" }
        );
        reader.get_mut().write_all(response.as_bytes())?;
        if close_after {
            return Ok(());
        }
    }
    Ok(())
}
