//! The NATS JetStream sink: each alert published to a subject by priority and rule, done only
//! when the stream acknowledged it. Every alert carries `Nats-Msg-Id` (the spool's instance id
//! and the alert's sequence number), so a resend after a lost acknowledgement is recognised by
//! the stream's duplicate window instead of stored twice.

use std::time::Duration;

use anyhow::{Context as _, Result};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, message::PublishMessage};

use super::config::NatsConfig;
use super::{AlertHeader, Progress, Record, Sink};

pub struct NatsSink {
    config: NatsConfig,
    token: Option<String>,
    tls: Option<rustls::ClientConfig>,
    connect_timeout: Duration,
    /// With the sequence number, names each alert for the stream's de-duplication.
    instance: String,
    js: Option<jetstream::Context>,
}

impl NatsSink {
    pub fn new(c: &NatsConfig, instance: String, connect_timeout: Duration) -> Result<Self> {
        // Read and built once: a bad secret or certificate stops the start, not the first alert.
        let token = c.token.as_ref().map(|t| t.read().context("token")).transpose()?;
        let tls = c.tls.as_ref().map(|t| super::tls::client_config(t, true)).transpose()?;
        if let Some(s) = &c.stream
            && (s.is_empty() || s.contains(['.', ' ', '*', '>']))
        {
            anyhow::bail!("stream name `{s}` may not contain dots, spaces or wildcards");
        }
        Ok(Self { config: c.clone(), token, tls, connect_timeout, instance, js: None })
    }

    /// The stream's subjects: the template's fixed prefix, then everything under it.
    fn stream_subjects(&self) -> Vec<String> {
        let fixed: Vec<&str> = self.config.subject.split('.').take_while(|t| !t.contains('{')).collect();
        if fixed.len() == self.config.subject.split('.').count() {
            vec![self.config.subject.clone()]
        } else {
            vec![format!("{}.>", fixed.join("."))]
        }
    }

    async fn connect(&self) -> Result<jetstream::Context> {
        let c = &self.config;
        let mut opts = async_nats::ConnectOptions::new()
            .name(concat!("monitor ", env!("CARGO_PKG_VERSION")))
            .connection_timeout(self.connect_timeout)
            .request_timeout(Some(self.connect_timeout));
        if let Some(path) = &c.credentials_file {
            opts = opts
                .credentials_file(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        if let Some(t) = &self.token {
            opts = opts.token(t.clone());
        }
        if let Some(t) = &self.tls {
            opts = opts.tls_client_config(t.clone()).require_tls(true);
        }
        let client = opts.connect(c.url.as_str()).await.context("cannot connect to NATS")?;
        let js = jetstream::new(client);
        if let Some(name) = &c.stream {
            js.get_or_create_stream(jetstream::stream::Config {
                name: name.clone(),
                subjects: self.stream_subjects(),
                storage: jetstream::stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot find or create the stream {name}"))?;
        }
        Ok(js)
    }

    async fn publish(&mut self, batch: &[Record]) -> Result<Progress> {
        if self.js.is_none() {
            self.js = Some(self.connect().await?);
        }
        let js = self.js.as_ref().expect("connected");
        // Published back to back, acknowledgements awaited after: one round trip per batch.
        let mut pending = Vec::with_capacity(batch.len());
        let mut failure = None;
        for r in batch {
            let subject = AlertHeader::parse(&r.data).unwrap_or_default().subject(&self.config.subject);
            let msg = PublishMessage::build()
                .payload(bytes::Bytes::copy_from_slice(&r.data))
                .message_id(format!("{}-{}", self.instance, r.seq));
            match js.send_publish(subject, msg).await {
                Ok(ack) => pending.push(ack),
                // The server will never take an alert larger than its max_payload: rejected, not
                // retried forever in front of the others.
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded && pending.is_empty() => {
                    tracing::warn!("an alert is larger than the NATS server's max_payload: {e}");
                    return Ok(Progress { done: 1, rejected: 1 });
                }
                Err(e) => {
                    failure = Some(anyhow::Error::new(e).context("publish"));
                    break;
                }
            }
        }
        // Only an unbroken prefix of acknowledgements counts: order holds per sink.
        let mut acked = 0;
        let mut broken = false;
        for ack in pending {
            match ack.await {
                Ok(_) if !broken => acked += 1,
                Ok(_) => {}
                Err(e) => {
                    broken = true;
                    failure.get_or_insert_with(|| {
                        anyhow::Error::new(e).context("no acknowledgement from the stream")
                    });
                }
            }
        }
        if failure.is_some() {
            // The connection may be wedged; the client reconnects on its own, but a fresh
            // context also re-checks the stream.
            self.js = None;
        }
        match failure {
            Some(e) if acked == 0 => Err(e),
            Some(e) => {
                tracing::debug!("NATS acknowledged {acked} of {}: {e:#}", batch.len());
                Ok(Progress::all(acked))
            }
            None => Ok(Progress::all(acked)),
        }
    }
}

impl Sink for NatsSink {
    async fn deliver(&mut self, batch: &[Record]) -> Result<Progress> {
        self.publish(batch).await
    }
}
