//! The syslog sink: RFC 5424 messages whose MSG is the alert (JSON or text) and whose severity
//! is the rule's priority. Over UDP (fire and forget), TCP with RFC 6587 octet counting or TLS
//! (RFC 5425) (written means sent: TCP cannot tell what the receiver got), RELP (see relp.rs:
//! acknowledged), or the local datagram socket.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket, UnixDatagram};

use super::config::{SyslogConfig, SyslogTransport, TlsConfig};
use super::relp::RelpSink;
use super::{AlertHeader, AlertView, Progress, Record, Sink};
use crate::config::OutputFormat;

/// A byte stream to a receiver: plain TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Connects to `address` (host:port), through TLS when `tls` is given.
pub struct Connector {
    address: String,
    tls: Option<(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
}

impl Connector {
    pub fn new(address: &str, tls: Option<&TlsConfig>) -> Result<Self> {
        let host = address.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])).unwrap_or(address);
        let tls = match tls {
            Some(t) => Some((
                tokio_rustls::TlsConnector::from(Arc::new(super::tls::client_config(t, true)?)),
                super::tls::server_name(t, host)?,
            )),
            None => None,
        };
        Ok(Self { address: address.to_owned(), tls })
    }

    pub async fn connect(&self) -> Result<Box<dyn Stream>> {
        Ok(self.connect_with_fd().await?.0)
    }

    /// The stream and its TCP socket (for socket options the stream's types do not offer).
    pub async fn connect_with_fd(&self) -> Result<(Box<dyn Stream>, std::os::fd::RawFd)> {
        let tcp = TcpStream::connect(&self.address)
            .await
            .with_context(|| format!("cannot connect to {}", self.address))?;
        tcp.set_nodelay(true)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
        Ok((
            match &self.tls {
                Some((connector, name)) => Box::new(
                    connector
                        .connect(name.clone(), tcp)
                        .await
                        .with_context(|| format!("TLS handshake with {} failed", self.address))?,
                ),
                None => Box::new(tcp),
            },
            fd,
        ))
    }
}

fn facility_code(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Header fields are printable ASCII without spaces (RFC 5424 §6); anything else becomes `_`.
fn header_token(s: &str, max: usize, out: &mut Vec<u8>) {
    if s.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(s.bytes().take(max).map(|b| if (33..=126).contains(&b) { b } else { b'_' }));
}

/// Renders RFC 5424 messages for alerts.
#[derive(Debug)]
pub struct MessageFormat {
    facility: u8,
    app_name: String,
    format: OutputFormat,
    pid: String,
}

impl MessageFormat {
    pub fn new(c: &SyslogConfig) -> Result<Self> {
        let facility = facility_code(&c.facility).with_context(|| {
            format!(
                "unknown syslog facility `{}` (kern, user, daemon, auth, authpriv, local0..local7...)",
                c.facility
            )
        })?;
        Ok(Self {
            facility,
            app_name: c.app_name.clone(),
            format: c.format,
            pid: std::process::id().to_string(),
        })
    }

    /// For the local socket, the syslog(3) form journald and rsyslog's imuxsock parse:
    /// `<PRI>Mmm dd hh:mm:ss APP[PID]: MSG` (RFC 5424 there would end up inside the message).
    pub fn render_local(&self, record: &Record, out: &mut Vec<u8>) {
        let a = AlertHeader::parse(&record.data).unwrap_or_default();
        let pri = self.facility as u32 * 8 + a.priority() as u32;
        let stamp = a
            .time
            .parse::<jiff::Timestamp>()
            .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%b %e %H:%M:%S").to_string())
            .unwrap_or_default();
        out.extend_from_slice(format!("<{pri}>{stamp} ").as_bytes());
        header_token(&self.app_name, 48, out);
        out.extend_from_slice(format!("[{}]: ", self.pid).as_bytes());
        match self.format {
            OutputFormat::Json => out.extend_from_slice(&record.data),
            OutputFormat::Text => AlertView::parse(&record.data).text_line(out),
        }
    }

    /// One message, without framing.
    pub fn render(&self, record: &Record, out: &mut Vec<u8>) {
        let a = AlertHeader::parse(&record.data).unwrap_or_default();
        let pri = self.facility as u32 * 8 + a.priority() as u32;
        out.extend_from_slice(format!("<{pri}>1 ").as_bytes());
        // RFC 5424 allows at most microseconds.
        match a.time.len() {
            30 => {
                out.extend_from_slice(&a.time.as_bytes()[..26]);
                out.push(b'Z');
            }
            _ => header_token(&a.time, 64, out),
        }
        out.push(b' ');
        header_token(&a.hostname, 255, out);
        out.push(b' ');
        header_token(&self.app_name, 48, out);
        out.push(b' ');
        header_token(&self.pid, 128, out);
        out.extend_from_slice(b" alert - ");
        match self.format {
            OutputFormat::Json => out.extend_from_slice(&record.data),
            OutputFormat::Text => AlertView::parse(&record.data).text_line(out),
        }
    }
}

enum Transport {
    Udp(Option<UdpSocket>),
    Unix(Option<UnixDatagram>),
    Stream(Connector, Option<Box<dyn Stream>>),
}

pub struct SyslogSink {
    address: String,
    format: MessageFormat,
    transport: Transport,
    buf: Vec<u8>,
}

/// The syslog sink for `c`: RELP has its own protocol, the others share the message format.
pub enum AnySyslog {
    Plain(SyslogSink),
    Relp(RelpSink),
}

pub fn build(c: &SyslogConfig) -> Result<AnySyslog> {
    let format = MessageFormat::new(c)?;
    let address = match (&c.address, c.transport) {
        (Some(a), _) => a.clone(),
        (None, SyslogTransport::Unix) => "/dev/log".to_owned(),
        (None, _) => bail!("syslog over {:?} needs an `address` (host:port)", c.transport),
    };
    if c.transport != SyslogTransport::Unix && !address.contains(':') {
        bail!("syslog address `{address}` is not host:port");
    }
    let transport = match c.transport {
        SyslogTransport::Relp => {
            return Ok(AnySyslog::Relp(RelpSink::new(Connector::new(&address, c.tls.as_ref())?, format)));
        }
        SyslogTransport::Udp => Transport::Udp(None),
        SyslogTransport::Unix => Transport::Unix(None),
        SyslogTransport::Tcp => Transport::Stream(Connector::new(&address, None)?, None),
        SyslogTransport::Tls => {
            let tls = c.tls.clone().unwrap_or_default();
            Transport::Stream(Connector::new(&address, Some(&tls))?, None)
        }
    };
    Ok(AnySyslog::Plain(SyslogSink { address, format, transport, buf: Vec::new() }))
}

/// Largest datagram payload; larger alerts cannot go over UDP or the local socket.
const MAX_DATAGRAM: usize = 65_507;

impl SyslogSink {
    async fn send_datagrams(&mut self, batch: &[Record]) -> Result<Progress> {
        let mut rejected = 0;
        for (i, r) in batch.iter().enumerate() {
            self.buf.clear();
            match self.transport {
                Transport::Unix(_) => self.format.render_local(r, &mut self.buf),
                _ => self.format.render(r, &mut self.buf),
            }
            if self.buf.len() > MAX_DATAGRAM {
                rejected += 1;
                continue;
            }
            let sent = match &mut self.transport {
                Transport::Udp(sock) => {
                    if sock.is_none() {
                        let s = UdpSocket::bind(if self.address.starts_with('[') {
                            "[::]:0"
                        } else {
                            "0.0.0.0:0"
                        })
                        .await?;
                        s.connect(&self.address)
                            .await
                            .with_context(|| format!("cannot reach {}", self.address))?;
                        *sock = Some(s);
                    }
                    sock.as_ref().expect("connected").send(&self.buf).await
                }
                Transport::Unix(sock) => {
                    if sock.is_none() {
                        let s = UnixDatagram::unbound()?;
                        s.connect(&self.address)
                            .with_context(|| format!("cannot connect to {}", self.address))?;
                        *sock = Some(s);
                    }
                    sock.as_ref().expect("connected").send(&self.buf).await
                }
                Transport::Stream(..) => unreachable!("datagram transports only"),
            };
            if let Err(e) = sent {
                match &mut self.transport {
                    Transport::Udp(s) => *s = None,
                    Transport::Unix(s) => *s = None,
                    Transport::Stream(..) => {}
                }
                if i > 0 {
                    return Ok(Progress { done: i, rejected });
                }
                return Err(e).with_context(|| format!("cannot send to {}", self.address));
            }
        }
        Ok(Progress { done: batch.len(), rejected })
    }

    async fn send_stream(&mut self, batch: &[Record]) -> Result<Progress> {
        let Transport::Stream(connector, conn) = &mut self.transport else {
            unreachable!("stream transports only")
        };
        // A receiver that restarted since the last batch left a closed connection that still
        // takes one write into the kernel's buffer (and loses it): look for its end first.
        if let Some(stream) = conn.as_mut() {
            let mut probe = [0u8; 64];
            if matches!(stream.read(&mut probe).now_or_never(), Some(Ok(0) | Err(_))) {
                *conn = None;
            }
        }
        if conn.is_none() {
            *conn = Some(connector.connect().await?);
        }
        self.buf.clear();
        let mut message = Vec::with_capacity(2048);
        for r in batch {
            message.clear();
            self.format.render(r, &mut message);
            self.buf.extend_from_slice(format!("{} ", message.len()).as_bytes());
            self.buf.extend_from_slice(&message);
        }
        // Out while written: an attempt cut short by its timeout must not leave a connection
        // with half a frame in it for the next batch.
        let mut stream = conn.take().expect("connected");
        let written = async {
            stream.write_all(&self.buf).await?;
            stream.flush().await
        }
        .await;
        if let Err(e) = written {
            return Err(e).with_context(|| format!("cannot write to {}", self.address));
        }
        *conn = Some(stream);
        Ok(Progress::all(batch.len()))
    }
}

impl Sink for SyslogSink {
    async fn deliver(&mut self, batch: &[Record]) -> Result<Progress> {
        match self.transport {
            Transport::Stream(..) => self.send_stream(batch).await,
            _ => self.send_datagrams(batch).await,
        }
    }

    async fn close(&mut self) {
        if let Transport::Stream(_, Some(s)) = &mut self.transport {
            let _ = s.shutdown().await;
        }
    }
}

impl Sink for AnySyslog {
    async fn deliver(&mut self, batch: &[Record]) -> Result<Progress> {
        match self {
            Self::Plain(s) => s.deliver(batch).await,
            Self::Relp(s) => s.deliver(batch).await,
        }
    }

    async fn close(&mut self) {
        match self {
            Self::Plain(s) => s.close().await,
            Self::Relp(s) => s.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_header_from_the_alert() {
        let c: SyslogConfig = serde_saphyr::from_str("facility: authpriv\napp_name: my app\n").unwrap();
        let f = MessageFormat::new(&c).unwrap();
        let data = br#"{"hostname":"node 1","priority":"Critical","rule":"r","time":"2026-11-23T12:00:00.123456789Z","output":"o"}"#;
        let mut out = Vec::new();
        f.render(&Record { seq: 0, data: Arc::from(&data[..]) }, &mut out);
        let s = String::from_utf8(out).unwrap();
        // authpriv (10) * 8 + critical (2)
        let expected =
            format!("<82>1 2026-11-23T12:00:00.123456Z node_1 my_app {} alert - {{", std::process::id());
        assert!(s.starts_with(&expected), "{s}");
        assert!(s.ends_with(std::str::from_utf8(data).unwrap()));
        let bad: SyslogConfig = serde_saphyr::from_str("facility: loud\n").unwrap();
        assert!(MessageFormat::new(&bad).unwrap_err().to_string().contains("unknown syslog facility `loud`"));
    }
}
