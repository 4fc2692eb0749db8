//! RELP, rsyslog's reliable event logging protocol: every message is a numbered transaction
//! the server answers (`rsp 200 OK`), so an alert counts as delivered only once the receiver
//! has it. Frames are `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
//!
//! A batch goes out as one window of `syslog` transactions; the answers acknowledge a prefix,
//! and what follows the first missing answer is sent again (on a new session).

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use super::syslog::{Connector, MessageFormat, Stream};
use super::{Progress, Record, Sink};

const OFFER: &str =
    concat!("relp_version=0\nrelp_software=monitor,", env!("CARGO_PKG_VERSION"), "\ncommands=syslog");
/// Longest response we accept (responses are short status lines).
const MAX_RESPONSE: usize = 64 << 10;

struct Session {
    stream: BufReader<Box<dyn Stream>>,
    fd: std::os::fd::RawFd,
    next_txnr: u32,
}

/// Acknowledges what arrives at once instead of after the delayed-ACK timer: the server's many
/// small answers to a window otherwise wait on it (Nagle's algorithm on its side), 40 ms a window.
fn quick_ack(fd: std::os::fd::RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a socket option on a socket the session owns, with a valid pointer and length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Frame {
    txnr: u32,
    command: String,
    data: Vec<u8>,
}

fn push_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

async fn read_token(r: &mut BufReader<Box<dyn Stream>>, max: usize) -> Result<(String, u8)> {
    let mut token = Vec::new();
    loop {
        let b = r.read_u8().await.context("the RELP server closed the connection")?;
        if b == b' ' || b == b'\n' {
            return Ok((String::from_utf8_lossy(&token).into_owned(), b));
        }
        if token.len() >= max {
            bail!("malformed RELP frame from the server");
        }
        token.push(b);
    }
}

async fn read_frame(r: &mut BufReader<Box<dyn Stream>>) -> Result<Frame> {
    let (txnr, _) = read_token(r, 9).await?;
    let txnr = txnr.parse().with_context(|| format!("malformed RELP transaction number `{txnr}`"))?;
    let (command, _) = read_token(r, 32).await?;
    let (len, sep) = read_token(r, 9).await?;
    let len: usize = len.parse().with_context(|| format!("malformed RELP data length `{len}`"))?;
    if len > MAX_RESPONSE {
        bail!("RELP frame of {len} bytes from the server");
    }
    let mut data = vec![0; len];
    if len > 0 {
        if sep != b' ' {
            bail!("malformed RELP frame: data without a separator");
        }
        r.read_exact(&mut data).await?;
        let mut trailer = Vec::new();
        r.read_until(b'\n', &mut trailer).await?;
    }
    Ok(Frame { txnr, command, data })
}

/// Whether a `rsp` frame's data says 200 (`200 OK...`).
fn is_ok(data: &[u8]) -> bool {
    data.starts_with(b"200")
}

impl Session {
    fn take_txnr(&mut self) -> u32 {
        let t = self.next_txnr;
        // RELP numbers wrap after 999,999,999 back to 1.
        self.next_txnr = if t >= 999_999_999 { 1 } else { t + 1 };
        t
    }

    async fn open(connector: &Connector) -> Result<Self> {
        let (stream, fd) = connector.connect_with_fd().await?;
        let mut s = Session { stream: BufReader::new(stream), fd, next_txnr: 1 };
        let mut out = Vec::new();
        let txnr = s.take_txnr();
        push_frame(&mut out, txnr, "open", OFFER.as_bytes());
        s.stream.get_mut().write_all(&out).await?;
        s.stream.get_mut().flush().await?;
        let rsp = read_frame(&mut s.stream).await?;
        if rsp.txnr != txnr || rsp.command != "rsp" || !is_ok(&rsp.data) {
            bail!("the RELP server refused the session: {}", String::from_utf8_lossy(&rsp.data));
        }
        Ok(s)
    }
}

pub struct RelpSink {
    connector: Connector,
    format: MessageFormat,
    session: Option<Session>,
    buf: Vec<u8>,
}

impl RelpSink {
    pub fn new(connector: Connector, format: MessageFormat) -> Self {
        Self { connector, format, session: None, buf: Vec::new() }
    }

    async fn send(&mut self, batch: &[Record]) -> Result<Progress> {
        if self.session.is_none() {
            self.session = Some(Session::open(&self.connector).await?);
        }
        let session = self.session.as_mut().expect("opened");
        self.buf.clear();
        let mut message = Vec::with_capacity(2048);
        let mut txnrs = Vec::with_capacity(batch.len());
        for r in batch {
            message.clear();
            self.format.render(r, &mut message);
            let t = session.take_txnr();
            txnrs.push(t);
            push_frame(&mut self.buf, t, "syslog", &message);
        }
        session.stream.get_mut().write_all(&self.buf).await?;
        session.stream.get_mut().flush().await?;
        // Answers come in order; the acknowledged prefix is what counts.
        let mut acked = 0;
        while acked < txnrs.len() {
            // The kernel turns quick ACKs off again by itself: re-armed before every read.
            if session.stream.buffer().is_empty() {
                quick_ack(session.fd);
            }
            let frame = match read_frame(&mut session.stream).await {
                Ok(f) => f,
                Err(e) if acked > 0 => {
                    tracing::debug!("RELP session ended after {acked} acknowledgements: {e:#}");
                    break;
                }
                Err(e) => return Err(e),
            };
            if frame.command == "serverclose" {
                if acked > 0 {
                    break;
                }
                bail!("the RELP server closed the session");
            }
            if frame.command != "rsp" || frame.txnr != txnrs[acked] {
                bail!(
                    "unexpected RELP frame `{} {}` (waiting for the answer to {})",
                    frame.txnr,
                    frame.command,
                    txnrs[acked]
                );
            }
            if !is_ok(&frame.data) {
                if acked > 0 {
                    break;
                }
                bail!("the RELP server refused an alert: {}", String::from_utf8_lossy(&frame.data));
            }
            acked += 1;
        }
        Ok(Progress::all(acked))
    }
}

impl Sink for RelpSink {
    async fn deliver(&mut self, batch: &[Record]) -> Result<Progress> {
        let result = self.send(batch).await;
        // Anything short of a full window leaves the session in an unknown state: start anew.
        if !matches!(result, Ok(p) if p.done == batch.len()) {
            self.session = None;
        }
        result
    }

    async fn close(&mut self) {
        if let Some(mut s) = self.session.take() {
            let mut out = Vec::new();
            let t = s.take_txnr();
            push_frame(&mut out, t, "close", b"");
            if s.stream.get_mut().write_all(&out).await.is_ok() {
                let _ = read_frame(&mut s.stream).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mut out = Vec::new();
        push_frame(&mut out, 7, "syslog", b"<14>1 hello");
        push_frame(&mut out, 8, "close", b"");
        assert_eq!(out, b"7 syslog 11 <14>1 hello\n8 close 0\n");
    }

    #[tokio::test]
    async fn reads_responses_and_server_close() {
        let (client, mut server) = tokio::io::duplex(1024);
        server.write_all(b"2 rsp 6 200 OK\n0 serverclose 0\n").await.unwrap();
        let mut r = BufReader::new(Box::new(client) as Box<dyn Stream>);
        let f = read_frame(&mut r).await.unwrap();
        assert_eq!(f, Frame { txnr: 2, command: "rsp".into(), data: b"200 OK".to_vec() });
        assert!(is_ok(&f.data));
        let f = read_frame(&mut r).await.unwrap();
        assert_eq!(f.command, "serverclose");
        assert!(f.data.is_empty());
    }
}
