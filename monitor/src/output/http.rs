//! The HTTP sink: alerts POSTed in batches, gzip optional, with presets for a webhook
//! (Falco's JSON, as falcosidekick takes it), Splunk HEC and Elasticsearch's _bulk API (Elastic
//! Common Schema). 2xx acknowledges a batch; Elasticsearch acknowledges per item, and only the
//! items it accepted (or refused for good) are done. A batch refused as malformed (400, 413,
//! 422) is split in halves until the one bad alert is found, which alone is counted as rejected.

use std::io::Write as _;

use anyhow::{Context as _, Result, bail};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::config::{HttpConfig, HttpPreset, WebhookBody};
use super::{AlertHeader, AlertView, Progress, Record, Sink};

pub struct HttpSink {
    client: reqwest::Client,
    /// With an alert's sequence number, its Elasticsearch `_id`: a resend is then a 409, not a
    /// second document.
    instance: String,
    /// One attempt's budget; `single` bodies stop starting requests half way through it.
    timeout: std::time::Duration,
    url: reqwest::Url,
    preset: HttpPreset,
    body: WebhookBody,
    max_in_flight: usize,
    gzip: bool,
    index: String,
    /// Splunk: the envelope's fixed members (source, sourcetype, index), rendered once.
    splunk_fields: String,
}

fn header(name: &str, value: &str, secret: bool) -> Result<(HeaderName, HeaderValue)> {
    let n =
        HeaderName::from_bytes(name.as_bytes()).with_context(|| format!("invalid header name `{name}`"))?;
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        if secret {
            anyhow::anyhow!("the secret for header `{name}` holds characters not allowed in a header")
        } else {
            anyhow::anyhow!("invalid value for header `{name}`")
        }
    })?;
    v.set_sensitive(secret);
    Ok((n, v))
}

/// Problems with the payload itself: splitting the batch finds the alert at fault.
fn payload_refused(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 422)
}

impl HttpSink {
    pub fn new(c: &HttpConfig, instance: String, timeout: std::time::Duration) -> Result<Self> {
        // An unparsable URL is not echoed: it may hold a password.
        let mut url: reqwest::Url = c.url.parse().map_err(|e| anyhow::anyhow!("invalid url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("url `{}`: only http and https", redact_url(&c.url));
        }
        if c.preset == HttpPreset::Elasticsearch && !url.path().ends_with("/_bulk") {
            let path = format!("{}/_bulk", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let (n, v) = header(k, v, false)?;
            headers.insert(n, v);
        }
        for (k, s) in &c.secret_headers {
            let (n, v) = header(k, &s.read().with_context(|| format!("secret_headers.{k}"))?, true)?;
            headers.insert(n, v);
        }
        match (&c.token, c.preset) {
            (Some(t), HttpPreset::Splunk) => {
                let (n, v) =
                    header("authorization", &format!("Splunk {}", t.read().context("token")?), true)?;
                headers.insert(n, v);
            }
            (Some(_), _) => bail!("`token` is for the splunk preset; use secret_headers for others"),
            (None, HttpPreset::Splunk) => bail!("the splunk preset needs a `token` (file or env)"),
            (None, _) => {}
        }
        let https = url.scheme() == "https";
        let tls = super::tls::client_config(&c.tls.clone().unwrap_or_default(), https)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .default_headers(headers)
            .user_agent(concat!("monitor/", env!("CARGO_PKG_VERSION")))
            // A redirect would turn the POST into a GET without the alerts, and carry secret
            // headers to another host: it is an error instead.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout / 2)
            .connect_timeout((timeout / 2).min(std::time::Duration::from_secs(5)))
            .build()
            .context("HTTP client set-up")?;
        Ok(Self {
            client,
            instance,
            timeout,
            url,
            preset: c.preset,
            body: c.body.unwrap_or(WebhookBody::Single),
            max_in_flight: c.max_in_flight.clamp(1, 1024),
            gzip: c.gzip,
            index: c.index.clone(),
            splunk_fields: format!(
                ",\"source\":\"monitor\",\"sourcetype\":{}{}",
                str_json(&c.sourcetype),
                c.splunk_index.as_deref().map(|i| format!(",\"index\":{}", str_json(i))).unwrap_or_default()
            ),
        })
    }

    fn render(&self, batch: &[Record]) -> (Vec<u8>, &'static str) {
        let mut body = Vec::with_capacity(batch.iter().map(|r| r.data.len() + 64).sum());
        match self.preset {
            HttpPreset::Webhook => match self.body {
                WebhookBody::Single | WebhookBody::Ndjson => {
                    for r in batch {
                        body.extend_from_slice(&r.data);
                        body.push(b'\n');
                    }
                    if self.body == WebhookBody::Single {
                        body.pop();
                        return (body, "application/json");
                    }
                    return (body, "application/x-ndjson");
                }
                WebhookBody::Array => {
                    body.push(b'[');
                    for (i, r) in batch.iter().enumerate() {
                        if i > 0 {
                            body.push(b',');
                        }
                        body.extend_from_slice(&r.data);
                    }
                    body.push(b']');
                }
            },
            HttpPreset::Splunk => {
                // The envelope is written around the alert's own bytes: no re-encoding.
                for r in batch {
                    let header = AlertHeader::parse(&r.data);
                    let h = header.as_ref();
                    body.extend_from_slice(b"{\"host\":");
                    body.extend_from_slice(str_json(h.map_or("", |h| &h.hostname)).as_bytes());
                    body.extend_from_slice(self.splunk_fields.as_bytes());
                    if let Some(t) = h.and_then(AlertHeader::epoch_seconds) {
                        body.extend_from_slice(format!(",\"time\":{t:.9}").as_bytes());
                    }
                    body.extend_from_slice(b",\"event\":");
                    match h {
                        Some(_) => body.extend_from_slice(&r.data),
                        // Not JSON (a damaged record): sent as text rather than breaking the batch.
                        None => {
                            body.extend_from_slice(str_json(&String::from_utf8_lossy(&r.data)).as_bytes())
                        }
                    }
                    body.extend_from_slice(b"}\n");
                }
            }
            HttpPreset::Elasticsearch => {
                for r in batch {
                    // One parse of the bytes; the view is read from the parsed value.
                    let raw: Value = serde_json::from_slice(&r.data)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.data).into_owned()));
                    let a = <AlertView as serde::Deserialize>::deserialize(&raw).unwrap_or_default();
                    let id = format!("{}-{}", self.instance, r.seq);
                    let action = serde_json::json!({"create": {"_index": self.index, "_id": id}});
                    let _ = serde_json::to_writer(&mut body, &action);
                    body.push(b'\n');
                    let _ = serde_json::to_writer(&mut body, &a.ecs_document(&raw));
                    body.push(b'\n');
                }
                return (body, "application/x-ndjson");
            }
        }
        (body, "application/json")
    }

    /// One request; Ok(None) when the receiver refused the payload as malformed.
    async fn post(&self, batch: &[Record]) -> Result<Option<Progress>> {
        let (body, content_type) = self.render(batch);
        let mut req = self.client.post(self.url.clone()).header(CONTENT_TYPE, content_type);
        let body = if self.gzip {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(&body)?;
            req = req.header(CONTENT_ENCODING, "gzip");
            gz.finish()?
        } else {
            body
        };
        let resp = req.body(body).send().await.map_err(|e| anyhow::anyhow!("{}", e.without_url()))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if self.preset == HttpPreset::Splunk && status.as_u16() == 400 && !hec_payload_error(&text) {
            // HEC's other 400s (an unknown index, a missing channel) are configuration, not data.
            bail!("HTTP {status}: {}", snippet(&text));
        }
        if payload_refused(status) {
            tracing::debug!(status = status.as_u16(), "the receiver refused the payload: {}", snippet(&text));
            return Ok(None);
        }
        if status.is_redirection() {
            bail!("HTTP {status}: redirects are not followed; configure the final URL");
        }
        if !status.is_success() {
            bail!("HTTP {status}: {}", snippet(&text));
        }
        if self.preset == HttpPreset::Elasticsearch {
            return bulk_progress(&text, batch.len()).map(Some);
        }
        Ok(Some(Progress::all(batch.len())))
    }
}

/// Splunk HEC's codes for a malformed event (no data, invalid format, event field missing or
/// blank); other codes of a 400 are about the configuration.
fn hec_payload_error(text: &str) -> bool {
    let code = serde_json::from_str::<Value>(text).ok().and_then(|v| v.get("code").and_then(Value::as_u64));
    matches!(code, None | Some(5 | 6 | 12 | 13))
}

/// What an Elasticsearch _bulk answer acknowledges: the items up to the first one to retry
/// (429 or 5xx); items refused for good (other 4xx: a mapping conflict) are rejected.
fn bulk_progress(text: &str, sent: usize) -> Result<Progress> {
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("unreadable _bulk answer: {}", snippet(text)))?;
    if v.get("errors") == Some(&Value::Bool(false)) {
        return Ok(Progress::all(sent));
    }
    let items = v.get("items").and_then(Value::as_array).context("_bulk answer without items")?;
    let mut p = Progress::default();
    for item in items.iter().take(sent) {
        let result = item.as_object().and_then(|o| o.values().next());
        let status = result.and_then(|r| r.get("status")).and_then(Value::as_u64).unwrap_or(500);
        let reason = || result.and_then(|r| r.get("error")).map(|e| e.to_string()).unwrap_or_default();
        match status {
            200..=299 => {}
            409 => {} // already there (same _id): a resend of an alert that had arrived
            // A document the mapping cannot take: sending it again cannot help.
            400 => {
                tracing::warn!(status, "Elasticsearch rejected an alert for good: {}", snippet(&reason()));
                p.rejected += 1;
            }
            // 429, 5xx, and 403/404 (a read-only index after a full disk, an index not yet
            // created): the cluster's state, which changes; retried.
            _ => {
                if p.done == 0 {
                    bail!("Elasticsearch refused the first alert with {status}: {}", snippet(&reason()));
                }
                return Ok(p);
            }
        }
        p.done += 1;
    }
    if p.done < sent {
        bail!("_bulk answered {} items for {sent} alerts", items.len());
    }
    Ok(p)
}

/// A JSON string literal.
fn str_json(v: &str) -> String {
    Value::from(v).to_string()
}

fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// The URL without a password in it, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl HttpSink {
    /// One request per alert, up to `max_in_flight` at once; done is the longest run of
    /// answered requests from the batch's start, so alerts are acknowledged in order.
    async fn deliver_one_per_request(&self, batch: &[Record]) -> Result<Progress> {
        use futures_util::StreamExt as _;
        let started = std::time::Instant::now();
        let mut in_flight = futures_util::stream::FuturesOrdered::new();
        let (mut posted, mut done) = (0, 0);
        loop {
            // What was posted counts: a batch must not outlive its attempt's budget, or a slow
            // receiver would see the same first alerts over and over.
            while in_flight.len() < self.max_in_flight
                && posted < batch.len()
                && (posted == 0 || started.elapsed() < self.timeout / 2)
            {
                in_flight.push_back(self.post(std::slice::from_ref(&batch[posted])));
                posted += 1;
            }
            let Some(answer) = in_flight.next().await else { break };
            match answer {
                Ok(Some(_)) => done += 1,
                Ok(None) => return Ok(Progress { done: done + 1, rejected: 1 }),
                Err(e) if done > 0 => {
                    tracing::debug!("request {done} of the batch failed: {e:#}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Progress::all(done))
    }
}

impl Sink for HttpSink {
    async fn deliver(&mut self, batch: &[Record]) -> Result<Progress> {
        if self.preset == HttpPreset::Webhook && self.body == WebhookBody::Single {
            return self.deliver_one_per_request(batch).await;
        }
        let mut part = batch;
        loop {
            match self.post(part).await? {
                Some(p) => return Ok(p),
                None if part.len() == 1 => return Ok(Progress { done: 1, rejected: 1 }),
                // The bad alert is in one of the halves: the first half goes alone.
                None => part = &part[..part.len() / 2],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_answers() {
        assert_eq!(bulk_progress(r#"{"errors":false,"items":[]}"#, 3).unwrap(), Progress::all(3));
        let mixed = r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}},{"create":{"status":409}},{"create":{"status":429}},{"create":{"status":201}}]}"#;
        assert_eq!(bulk_progress(mixed, 5).unwrap(), Progress { done: 3, rejected: 1 });
        let blocked = r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":403,"error":{"type":"cluster_block_exception"}}}]}"#;
        assert_eq!(bulk_progress(blocked, 2).unwrap(), Progress::all(1), "a read-only index is retried");
        assert!(hec_payload_error(r#"{"text":"Invalid data format","code":6}"#));
        assert!(!hec_payload_error(r#"{"text":"Incorrect index","code":7}"#));
        let first = r#"{"errors":true,"items":[{"create":{"status":503}}]}"#;
        assert!(bulk_progress(first, 1).unwrap_err().to_string().contains("503"));
        assert!(bulk_progress("<html>", 1).is_err());
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact_url("https://u:hunter2@es:9200/"), "https://u:REDACTED@es:9200/");
        assert_eq!(redact_url("http://x/y"), "http://x/y");
    }
}
