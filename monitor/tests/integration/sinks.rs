//! Alert delivery to real receivers: an HTTP endpoint that fails, hangs and vanishes; rsyslog
//! over TCP, TLS and RELP; nats-server with JetStream. Each test runs its own `monitor run` with
//! a rule that fires when the test opens a file in its own marker directory, so the alerts it
//! counts are its own: the file's number tells which alert it is.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Daemon;
use common::receivers::{HttpMode, HttpReceiver, NatsServer, Rsyslog, RsyslogInput, TestCa};
use serde_json::Value;

const DELIVERY: Duration = Duration::from_secs(60);

/// A test's marker directory, rules, config and spool.
struct Setup {
    dir: tempfile::TempDir,
    markers: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new().prefix("monitor-sinktest-").tempdir().unwrap();
        let markers = dir.path().join("markers");
        std::fs::create_dir(&markers).unwrap();
        let rules = format!(
            "- rule: Sink test marker opened\n  desc: the test opened one of its marker files\n  \
             condition: evt.type in (open, openat, openat2) and fd.name startswith {}/\n  \
             output: marker %fd.name opened by %proc.name\n  priority: WARNING\n  tags: [test]\n",
            markers.display()
        );
        std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
        Setup { dir, markers }
    }

    fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Writes the config with these sinks (YAML list items, indented under `sinks:`).
    fn config(&self, sinks: &str) -> PathBuf {
        let path = self.dir.path().join("monitor.yaml");
        let text = format!(
            // These tests count the alerts of their rule at the receivers: the monitor's
            // start, stop and heartbeat alerts would be extra (drops are still reported).
            "rate_limit: {{per_second: 0, burst: 1}}\nself_alerts: {{lifecycle: false, heartbeat_interval_s: 0}}\n\
             state_dir: {}\noutput:\n  spool_dir: {}\n  shutdown_timeout_ms: 3000\n  sinks:\n{sinks}",
            self.dir.path().join("state").display(),
            self.spool_dir().display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start(&self, sinks: &str) -> Daemon {
        let config = self.config(sinks);
        let rules = self.dir.path().join("rules.yaml");
        Daemon::start_with(common::Options {
            command: &["run"],
            args: &["--config", config.to_str().unwrap(), "--rules", rules.to_str().unwrap()],
            ..Default::default()
        })
    }

    /// Raises one alert per number: opens marker file `n`.
    fn raise(&self, numbers: std::ops::Range<u64>) {
        for n in numbers {
            std::fs::File::create(self.markers.join(format!("alert-{n}"))).unwrap();
        }
    }
}

/// The marker number of an alert in Falco's shape (or inside an envelope that holds one).
fn marker(alert: &Value) -> Option<u64> {
    let name = alert.pointer("/output_fields/fd.name")?.as_str()?;
    name.rsplit_once("/alert-")?.1.parse().ok()
}

/// Every number in `0..n` arrived, and first arrivals are in order (duplicates allowed:
/// delivery is at least once).
fn assert_complete_in_order(arrived: &[u64], n: u64, what: &str) {
    assert_complete_in_order_within(arrived, n, what, 1);
}

/// The requests a one-alert-per-request HTTP sink keeps in flight by default: their answers,
/// and so their arrivals, may come in any order among themselves.
const HTTP_IN_FLIGHT: u64 = 64;

/// Every number in `0..n` arrived, and no alert's first arrival came after that of an alert
/// `window` or more places later (1: strictly in order).
fn assert_complete_in_order_within(arrived: &[u64], n: u64, what: &str, window: u64) {
    let unique: BTreeSet<u64> = arrived.iter().copied().collect();
    let missing: Vec<u64> = (0..n).filter(|i| !unique.contains(i)).collect();
    assert!(missing.is_empty(), "{what}: missing alerts {missing:?}; arrived: {arrived:?}");
    let mut seen = BTreeSet::new();
    let firsts: Vec<u64> = arrived.iter().copied().filter(|m| seen.insert(*m)).collect();
    let mut latest = 0;
    for &m in &firsts {
        assert!(m + window > latest, "{what}: {m} arrived after {latest}: {firsts:?}");
        latest = latest.max(m);
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DELIVERY;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_markers(r: &HttpReceiver) -> Vec<u64> {
    r.accepted()
        .iter()
        .flat_map(|req| req.json_values())
        // `body: array` sends one JSON array per request.
        .flat_map(|v| match v {
            Value::Array(items) => items,
            v => vec![v],
        })
        .filter_map(|v| marker(&v))
        .collect()
}

/// Alerts in the spool files that belong to this test (after the segment's 8-byte magic,
/// records `[len][crc][seq][payload]`).
fn spooled(spool: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(spool).into_iter().flatten().flatten() {
        if entry.path().extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let data = std::fs::read(entry.path()).unwrap_or_default();
        let mut at = 8;
        while at + 16 <= data.len() {
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            if at + 16 + len > data.len() {
                break;
            }
            n += 1;
            at += 16 + len;
        }
    }
    n
}

fn http_sink(url: &str, extra: &str) -> String {
    format!(
        "    - type: http\n      name: siem\n      url: {url}\n{extra}      delivery:\n        \
         batch: {{max_alerts: 20, max_wait_ms: 100}}\n        retry: {{initial_backoff_ms: 50, max_backoff_ms: 400, timeout_ms: 1000}}\n"
    )
}

#[test]
fn http_receiver_that_fails_hangs_and_vanishes_loses_nothing() {
    require_root!();
    let s = Setup::new();
    let mut r = HttpReceiver::start();
    let d = s.start(&http_sink(&r.url("/alerts"), "      body: ndjson\n      gzip: true\n"));
    s.raise(0..10);
    wait_until("the first alerts", || http_markers(&r).len() >= 10);
    assert_eq!(r.accepted()[0].header("content-encoding"), Some("gzip"));

    let mut next = 10;
    let unanswered = |r: &HttpReceiver| r.all_requests().iter().filter(|q| q.status != Some(200)).count();
    for mode in [HttpMode::Fail(503), HttpMode::Hang, HttpMode::Close] {
        let before = unanswered(&r);
        r.set_mode(mode);
        s.raise(next..next + 15);
        next += 15;
        // The receiver saw attempts and refused them, so the alerts wait in the spool.
        wait_until(&format!("attempts against {mode:?}"), || unanswered(&r) > before);
        std::thread::sleep(Duration::from_millis(300));
        r.set_mode(HttpMode::Ok);
        wait_until(&format!("recovery after {mode:?}"), || {
            http_markers(&r).iter().collect::<BTreeSet<_>>().len() as u64 >= next
        });
    }

    // Gone entirely: connections are refused.
    r.stop();
    s.raise(next..next + 30);
    next += 30;
    d.wait_for_log("cannot deliver alerts");
    std::thread::sleep(Duration::from_secs(1));
    r.restart();
    wait_until("every alert after the receiver came back", || {
        http_markers(&r).iter().collect::<BTreeSet<_>>().len() as u64 >= next
    });
    assert_complete_in_order(&http_markers(&r), next, "http");
    let log = d.stop().join("\n");
    assert!(log.contains("the receiver takes alerts again"), "{log}");
    let summary = log.lines().rfind(|l| l.contains("monitor: sinks:")).expect("a final summary");
    assert!(summary.contains("0 dropped, 0 rejected"), "{summary}");
}

#[test]
fn spooled_alerts_are_sent_after_a_restart_by_sigterm_or_kill_9() {
    require_root!();
    for kill9 in [false, true] {
        let s = Setup::new();
        let mut r = HttpReceiver::start();
        r.stop();
        // The default body: one alert per request, as Falco's http_output (what falcosidekick takes).
        let sinks = http_sink(&r.url("/alerts"), "");
        let d = s.start(&sinks);
        s.raise(0..25);
        // Write-ahead: every alert is on disk before the first attempt to send it.
        wait_until("25 alerts in the spool", || spooled(&s.spool_dir().join("siem")) >= 25);
        let log = if kill9 { d.kill() } else { d.stop() }.join("\n");
        if !kill9 {
            assert!(log.contains("stay in the spool"), "{log}");
            assert!(!log.contains("are lost"), "{log}");
        }
        r.restart();
        let d = s.start(&sinks);
        d.wait_for_log("alerts spooled before the restart will be sent first");
        wait_until("the spooled alerts after the restart", || http_markers(&r).len() >= 25);
        assert_complete_in_order_within(
            &http_markers(&r),
            25,
            if kill9 { "after kill -9" } else { "after SIGTERM" },
            HTTP_IN_FLIGHT,
        );
        d.stop();
    }
}

#[test]
fn a_full_spool_drops_the_oldest_counts_them_and_says_so() {
    require_root!();
    let s = Setup::new();
    let mut r = HttpReceiver::start();
    r.stop();
    // 192 KiB of spool in 64 KiB segments; each alert is about 1 KiB.
    let sinks = http_sink(&r.url("/alerts"), "      body: array\n").replace(
        "      delivery:\n",
        "      delivery:\n        spool: {max_bytes: 196608, fsync: interval}\n",
    );
    let d = s.start(&sinks);
    s.raise(0..600);
    let line = d.wait_for_log("dropped its oldest alerts");
    assert!(line.contains("siem"), "{line}");
    std::thread::sleep(Duration::from_secs(1));
    r.restart();
    let log_wait = Instant::now() + DELIVERY;
    // What is kept arrives; with what was dropped it accounts for every alert.
    loop {
        let got: BTreeSet<u64> = http_markers(&r).into_iter().collect();
        if got.contains(&599) {
            break;
        }
        assert!(Instant::now() < log_wait, "the newest alerts never arrived: {got:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.stop().join("\n");
    let got: BTreeSet<u64> = http_markers(&r).into_iter().collect();
    let summary = log.lines().rfind(|l| l.contains("monitor: sinks:")).expect("a final summary");
    let dropped: u64 = summary
        .split(" dropped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop count in {summary}"));
    assert!(dropped > 0 && !got.contains(&0), "the oldest went: dropped {dropped}, got {got:?}");
    assert_eq!(got.len() as u64 + dropped, 600, "{summary}");
    assert_complete_in_order(
        &http_markers(&r).into_iter().map(|m| m - dropped).collect::<Vec<_>>(),
        600 - dropped,
        "kept",
    );
}

#[test]
fn elasticsearch_bulk_retries_only_the_items_it_refused() {
    require_root!();
    let s = Setup::new();
    let r = HttpReceiver::start();
    // The first time it sees alert 3, it answers 429 for it (and accepts the others).
    let refused_once = std::sync::Mutex::new(false);
    r.set_responder(Box::new(move |req| {
        let values = req.json_values();
        let items: Vec<Value> = values
            .chunks(2)
            .map(|pair| {
                let m = pair.get(1).and_then(|doc| doc.get("falco")).and_then(marker);
                let mut refused = refused_once.lock().unwrap();
                if m == Some(3) && !*refused {
                    *refused = true;
                    serde_json::json!({"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}})
                } else {
                    serde_json::json!({"create": {"status": 201}})
                }
            })
            .collect();
        (200, serde_json::json!({"errors": true, "items": items}).to_string())
    }));
    let d = s.start(&format!(
        "    - type: http\n      preset: elasticsearch\n      url: {}\n      index: alerts-test\n      \
         secret_headers:\n        Authorization: {{value: ApiKey c2VjcmV0}}\n      delivery:\n        \
         batch: {{max_alerts: 10, max_wait_ms: 200}}\n        retry: {{initial_backoff_ms: 50}}\n",
        r.url("")
    ));
    s.raise(0..10);
    let docs = || -> Vec<Value> {
        r.accepted()
            .iter()
            .flat_map(|q| q.json_values().chunks(2).map(|p| p[1].clone()).collect::<Vec<_>>())
            .collect()
    };
    wait_until("10 documents", || {
        docs().iter().filter_map(|doc| marker(&doc["falco"])).collect::<BTreeSet<_>>().len() >= 10
    });
    let first = &r.accepted()[0];
    assert!(first.path.ends_with("/_bulk"), "{}", first.path);
    assert_eq!(first.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(first.header("authorization"), Some("ApiKey c2VjcmV0"));
    assert_eq!(first.json_values()[0]["create"]["_index"], "alerts-test");
    // An _id per alert: a resend is a conflict in Elasticsearch, not a second document.
    assert!(first.json_values()[0]["create"]["_id"].as_str().is_some_and(|id| id.contains('-')));
    let arrived: Vec<u64> = docs().iter().filter_map(|doc| marker(&doc["falco"])).collect();
    assert_complete_in_order(&arrived, 10, "elasticsearch");
    // Items before the refused one are not sent twice; it and those after it are.
    assert_eq!(arrived.iter().filter(|&&m| m < 3).count(), 3, "{arrived:?}");
    let doc = &docs()[0];
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["rule"]["name"], "Sink test marker opened");
    assert_eq!(doc["log"]["level"], "warning");
    assert!(doc["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{doc}");
    assert!(doc["file"]["path"].as_str().is_some_and(|p| p.contains("/alert-")), "{doc}");
    assert_eq!(doc["process"]["pid"], u64::from(std::process::id()));
    let log = d.stop().join("\n");
    assert!(!log.contains("c2VjcmV0"), "the secret header value was logged:\n{log}");
}

#[test]
fn splunk_hec_gets_events_with_the_token_from_a_file() {
    require_root!();
    let s = Setup::new();
    let r = HttpReceiver::start();
    r.set_ok_body(r#"{"text":"Success","code":0}"#);
    let token = s.dir.path().join("hec-token");
    std::fs::write(&token, "0a1b2c3d-hec\n").unwrap();
    let d = s.start(&format!(
        "    - type: http\n      preset: splunk\n      url: {}\n      token: {{file: {}}}\n      gzip: true\n",
        r.url("/services/collector/event"),
        token.display()
    ));
    s.raise(0..5);
    let events = || -> Vec<Value> { r.accepted().iter().flat_map(|q| q.json_values()).collect() };
    wait_until("5 HEC events", || events().len() >= 5);
    let req = &r.accepted()[0];
    assert_eq!(req.header("authorization"), Some("Splunk 0a1b2c3d-hec"));
    let ev = &events()[0];
    assert_eq!(ev["sourcetype"], "falco");
    assert!(ev["time"].as_f64().is_some_and(|t| t > 1.7e9), "{ev}");
    assert_eq!(ev["event"]["rule"], "Sink test marker opened");
    assert_complete_in_order(
        &events().iter().filter_map(|e| marker(&e["event"])).collect::<Vec<_>>(),
        5,
        "splunk",
    );
    let log = d.stop().join("\n");
    assert!(!log.contains("0a1b2c3d"), "the token was logged:\n{log}");
}

/// `PRI|APP-NAME|MSGID|MSG` lines from the rsyslog receiver, as (pri, alert).
fn syslog_alerts(lines: &[String]) -> Vec<(u32, Value)> {
    lines
        .iter()
        .map(|l| {
            let mut parts = l.splitn(4, '|');
            let pri: u32 = parts.next().unwrap().parse().unwrap();
            assert_eq!(parts.next(), Some("monitor"), "{l}");
            assert_eq!(parts.next(), Some("alert"), "{l}");
            let msg = parts.next().unwrap();
            (pri, serde_json::from_str(msg.trim_start()).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        })
        .collect()
}

fn syslog_roundtrip(input: RsyslogInput<'_>, transport: &str, tls: &str, outage: bool) {
    let s = Setup::new();
    let mut r = Rsyslog::start(input);
    let d = s.start(&format!(
        "    - type: syslog\n      transport: {transport}\n      address: 127.0.0.1:{}\n      facility: local3\n{tls}      \
         delivery:\n        retry: {{initial_backoff_ms: 50, max_backoff_ms: 400, timeout_ms: 2000}}\n",
        r.port()
    ));
    let unique = |r: &Rsyslog| {
        syslog_alerts(&r.lines()).iter().filter_map(|(_, a)| marker(a)).collect::<BTreeSet<_>>().len()
    };
    s.raise(0..20);
    let mut total = 20;
    wait_until("20 syslog messages", || unique(&r) >= 20);
    if outage {
        r.stop();
        s.raise(20..40);
        d.wait_for_log("cannot deliver alerts");
        r.restart();
        total = 40;
        wait_until("every message after the outage", || unique(&r) >= 40);
    }
    let alerts = syslog_alerts(&r.lines());
    for (pri, a) in &alerts {
        // local3 (19) * 8 + warning (4)
        assert_eq!(*pri, 156, "{a}");
        assert_eq!(a["rule"], "Sink test marker opened");
    }
    let arrived: Vec<u64> = alerts.iter().filter_map(|(_, a)| marker(a)).collect();
    assert_complete_in_order(&arrived, total, transport);
    d.stop();
}

#[test]
fn rsyslog_over_tcp_receives_every_alert_across_a_restart() {
    require_root!();
    // The daemon notices the connection the stopped receiver closed, so nothing is written into it.
    syslog_roundtrip(RsyslogInput::Tcp, "tcp", "", true);
}

#[test]
fn rsyslog_over_tls_with_a_private_ca_receives_every_alert() {
    require_root!();
    let ca = TestCa::new();
    let tls = format!("      tls: {{ca_file: {}, server_name: localhost}}\n", ca.ca_cert().display());
    syslog_roundtrip(RsyslogInput::Tls(&ca), "tls", &tls, false);
}

#[test]
fn rsyslog_over_relp_acknowledges_every_alert_across_an_outage() {
    require_root!();
    syslog_roundtrip(RsyslogInput::Relp, "relp", "", true);
}

#[test]
fn nats_jetstream_acknowledges_every_alert_across_a_server_restart() {
    require_root!();
    let s = Setup::new();
    let mut n = NatsServer::start();
    let d = s.start(&format!(
        "    - type: nats\n      url: {}\n      subject: \"monitortest.{{priority}}.{{rule}}\"\n      stream: MONITOR_TEST\n      \
         delivery:\n        retry: {{initial_backoff_ms: 50, max_backoff_ms: 500, timeout_ms: 2000}}\n",
        n.url()
    ));
    s.raise(0..10);
    let stored = |n: &NatsServer| n.stream_messages("MONITOR_TEST");
    wait_until("10 alerts in the stream", || stored(&n).len() >= 10);
    n.stop();
    s.raise(10..30);
    d.wait_for_log("cannot deliver alerts");
    std::thread::sleep(Duration::from_millis(500));
    n.restart();
    wait_until("30 alerts in the stream", || stored(&n).len() >= 30);
    let messages = stored(&n);
    for (subject, a) in &messages {
        assert_eq!(subject, "monitortest.warning.Sink_test_marker_opened", "{a}");
    }
    let arrived: Vec<u64> = messages.iter().filter_map(|(_, a)| marker(a)).collect();
    assert_complete_in_order(&arrived, 30, "nats");
    // Message ids let the stream drop resends of alerts whose acknowledgement was lost.
    assert_eq!(arrived.len(), 30, "duplicates in the stream: {arrived:?}");
    d.stop();
}

#[test]
fn syslog_over_udp_and_a_local_socket() {
    require_root!();
    let s = Setup::new();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let socket_path = s.dir.path().join("log.sock");
    let local = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    local.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let d = s.start(&format!(
        "    - type: syslog\n      name: udp\n      transport: udp\n      address: {}\n      format: text\n    \
         - type: syslog\n      name: local\n      transport: unix\n      address: {}\n      facility: auth\n",
        udp.local_addr().unwrap(),
        socket_path.display()
    ));
    s.raise(0..5);
    let receive = |recv: &dyn Fn(&mut [u8]) -> std::io::Result<usize>| -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + DELIVERY;
        let mut buf = vec![0u8; 65536];
        while got.len() < 5 && Instant::now() < deadline {
            if let Ok(n) = recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        got
    };
    let over_udp = receive(&|b| udp.recv(b));
    let over_socket = receive(&|b| local.recv(b));
    assert_eq!(over_udp.len(), 5, "{over_udp:?}");
    assert_eq!(over_socket.len(), 5, "{over_socket:?}");
    // local0 (16) * 8 + warning (4); text format: the rule's output after the header.
    for m in &over_udp {
        assert!(m.starts_with("<132>1 ") && m.contains(" monitor ") && m.contains(" alert - "), "{m}");
        assert!(m.contains(": Warning marker ") && m.contains("/alert-"), "{m}");
    }
    // auth (4) * 8 + warning (4); JSON format, in the syslog(3) form local daemons parse.
    let arrived: Vec<u64> = over_socket
        .iter()
        .map(|m| {
            assert!(m.starts_with("<36>"), "{m}");
            let tag = format!(" monitor[{}]: ", d.pid());
            let json = &m[m.find(&tag).unwrap_or_else(|| panic!("no `{tag}` in {m}")) + tag.len()..];
            marker(&serde_json::from_str(json).unwrap()).unwrap()
        })
        .collect();
    assert_complete_in_order(&arrived, 5, "local socket");
    d.stop();
}

#[test]
fn a_sink_without_a_spool_saves_its_queue_at_sigterm_and_sends_it_after_the_restart() {
    require_root!();
    let s = Setup::new();
    let mut r = HttpReceiver::start();
    r.stop();
    let sinks = http_sink(&r.url("/alerts"), "")
        .replace("      delivery:\n", "      delivery:\n        spool: {enabled: false}\n");
    let d = s.start(&sinks);
    s.raise(0..20);
    d.wait_for_log("they wait in the memory queue");
    // Every alert raised has reached the sink's queue.
    std::thread::sleep(Duration::from_secs(2));
    let log = d.stop().join("\n");
    assert!(log.contains("were saved; they are sent first after the next start"), "{log}");
    assert!(!log.contains("are lost"), "{log}");
    // The counters say where the alerts went: saved, not dropped.
    let summary = log.lines().rfind(|l| l.contains("monitor: sinks:")).expect("a final summary");
    assert!(summary.contains("0 dropped") && summary.contains("20 saved for the next start"), "{summary}");
    r.restart();
    let d = s.start(&sinks);
    d.wait_for_log("alerts saved at the last shutdown will be sent first");
    wait_until("the saved alerts after the restart", || http_markers(&r).len() >= 20);
    assert_complete_in_order_within(&http_markers(&r), 20, "saved at shutdown", HTTP_IN_FLIGHT);
    let (_, metrics) = d.http_get("/metrics");
    assert_eq!(
        common::metric(&metrics, "monitor_sink_restored_total{sink=\"siem\",kind=\"http\"}"),
        Some(20.0),
        "{metrics}"
    );
    let summary = d.stop().into_iter().rfind(|l| l.contains("monitor: sinks:")).expect("a final summary");
    assert!(
        summary.contains("20 restored from the last shutdown") && summary.contains("20 sent"),
        "{summary}"
    );
}

/// Characters a consumer that splits lines the Unicode way (Python's `str.splitlines`) breaks
/// a line at.
fn breaks_line(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

#[test]
fn alerts_escape_hostile_names_arguments_and_paths_the_same_in_text_and_json() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;
    require_root!();
    let s = Setup::new();
    let rules = format!(
        "- rule: Hostile marker opened\n  desc: d\n  condition: evt.type in (open, openat, openat2) and fd.name startswith {}/ \
         and proc.exepath = /usr/bin/cat\n  \
         output: hostile name=%proc.name cmd=%proc.cmdline file=%fd.name\n  priority: WARNING\n",
        s.markers.display()
    );
    std::fs::write(s.dir.path().join("rules.yaml"), rules).unwrap();
    let text_file = s.dir.path().join("alerts.txt");
    let json_file = s.dir.path().join("alerts.json");
    let sinks = format!(
        "    - {{type: file, name: text, path: {}, format: text}}\n    - {{type: file, name: json, path: {}, format: json}}\n",
        text_file.display(),
        json_file.display()
    );
    let d = s.start(&sinks);
    // A program whose name forges a line for Unicode line splitters, and one with bytes that are
    // not UTF-8 and a CSI control.
    let forging = s.dir.path().join(OsStr::from_bytes("x\u{2028}Emergency FORGED".as_bytes()));
    let raw = s.dir.path().join(OsStr::from_bytes(b"y\xff\xc2\x9b[31m\x7f"));
    for exe in [&forging, &raw] {
        std::os::unix::fs::symlink("/usr/bin/cat", exe).unwrap();
    }
    // Two files whose names differ only in an invalid byte against the replacement character,
    // and an argument holding a backslash and an n.
    let invalid = s.markers.join(OsStr::from_bytes(b"f\xff\\n\x1b[2J\xe2\x80\xa9Alert FORGED"));
    let replacement = s.markers.join(OsStr::from_bytes("f\u{fffd}\\n\x1b[2J\u{2029}Alert FORGED".as_bytes()));
    for (exe, file) in [(&forging, &invalid), (&raw, &replacement)] {
        std::fs::write(file, "x").unwrap();
        let status =
            std::process::Command::new(exe).arg(file).stdout(std::process::Stdio::null()).status().unwrap();
        assert!(status.success());
    }
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    wait_until("two alerts in each file", || {
        read(&json_file).split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() >= 2
            && read(&text_file).split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() >= 2
    });
    d.stop();

    let text = String::from_utf8(read(&text_file)).expect("text alerts are UTF-8");
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    for l in &lines {
        assert!(!l.chars().any(|c| breaks_line(c) || c.is_control()), "a text alert breaks or drives: {l:?}");
        assert!(l.contains("\\u2028Emergency F") || l.contains("\\xff"), "{l:?}");
    }
    let json = String::from_utf8(read(&json_file)).expect("JSON alerts are UTF-8");
    let alerts: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(alerts.len(), 2);
    let mut names = Vec::new();
    for a in &alerts {
        let fields = a["output_fields"].as_object().unwrap();
        for (k, v) in fields.iter().chain([(&"output".to_owned(), &a["output"])]) {
            if let Some(v) = v.as_str() {
                assert!(!v.chars().any(|c| breaks_line(c) || c.is_control()), "{k} carries {v:?}");
            }
        }
        let name = fields["fd.name"].as_str().unwrap().to_owned();
        // The same escaping in output_fields as in the output line.
        assert!(a["output"].as_str().unwrap().contains(&format!("file={name}")), "{a}");
        assert!(name.contains("\\\\n\\x1b[2J\\u2029Alert FORGED"), "{name}");
        names.push(name);
    }
    names.sort();
    assert_ne!(names[0], names[1], "two different paths rendered the same");
    assert!(names.iter().any(|n| n.contains("/f\\xff\\\\n")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("/f\u{fffd}\\\\n")), "{names:?}");
    let by_name =
        |part: &str| alerts.iter().find(|a| a["output_fields"]["proc.name"].as_str().unwrap().contains(part));
    assert!(by_name("x\\u2028Emergency").is_some(), "{alerts:?}");
    assert!(by_name("y\\xff\\u009b[31m\\x7f").is_some(), "{alerts:?}");
}

#[test]
fn a_slow_receiver_gets_several_requests_at_once_acknowledged_in_order() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    require_root!();
    let s = Setup::new();
    let r = HttpReceiver::start();
    // Answers each request 100 ms after it arrived, counting how many wait at once.
    let (active, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, p) = (active.clone(), peak.clone());
    r.set_responder(Box::new(move |_| {
        let now = a.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        a.fetch_sub(1, Ordering::SeqCst);
        (200, "{}".to_owned())
    }));
    // The default body: one alert per request.
    let d = s.start(&http_sink(&r.url("/alerts"), "      max_in_flight: 16\n"));
    s.raise(0..200);
    wait_until("200 alerts", || http_markers(&r).iter().collect::<BTreeSet<_>>().len() >= 200);
    let peak = peak.load(Ordering::SeqCst);
    assert!((2..=16).contains(&peak), "{peak} requests were in flight at once (want 2 to 16)");
    assert_complete_in_order_within(&http_markers(&r), 200, "slow receiver", 16);
    let log = d.stop().join("\n");
    let summary = log.lines().rfind(|l| l.contains("monitor: sinks:")).expect("a final summary");
    assert!(summary.contains("0 queued") && summary.contains("0 dropped"), "{summary}");
}

#[test]
fn a_damaged_record_in_the_middle_of_the_spool_costs_only_itself() {
    require_root!();
    let s = Setup::new();
    let mut r = HttpReceiver::start();
    r.stop();
    let sinks = http_sink(&r.url("/alerts"), "      body: ndjson\n");
    let d = s.start(&sinks);
    s.raise(0..101);
    wait_until("101 alerts in the spool", || spooled(&s.spool_dir().join("siem")) >= 101);
    d.stop();
    // One flipped byte inside the payload of the 11th record.
    let seg = std::fs::read_dir(s.spool_dir().join("siem"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a spool segment");
    let mut data = std::fs::read(&seg).unwrap();
    let mut at = 8;
    for _ in 0..10 {
        at += 16 + u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    }
    data[at + 16 + 20] ^= 0x01;
    std::fs::write(&seg, data).unwrap();
    r.restart();
    let d = s.start(&sinks);
    d.wait_for_log("skipped damaged records in the middle of the spool");
    wait_until("the 100 intact alerts", || http_markers(&r).iter().collect::<BTreeSet<_>>().len() >= 100);
    let got: BTreeSet<u64> = http_markers(&r).into_iter().collect();
    let want: BTreeSet<u64> = (0..101).filter(|&i| i != 10).collect();
    assert_eq!(got, want);
    let log = d.stop().join("\n");
    assert!(log.contains("lost=1"), "{log}");
    let summary = log.lines().rfind(|l| l.contains("monitor: sinks:")).expect("a final summary");
    assert!(summary.contains("1 dropped"), "the damaged alert is not counted: {summary}");
}
