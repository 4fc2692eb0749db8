//! An alert read back from its canonical JSON, for sinks that send something other than the
//! JSON itself (text lines, syslog headers, Elastic Common Schema, Splunk envelopes).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use monitor_common::{EventClass, EventType};

use crate::alert::Priority;

/// ECS's event.category of an event type; `host` for the monitor's own alerts (no event).
fn ecs_category(t: Option<EventType>) -> &'static str {
    use monitor_common::calls::{Subject, call_def};
    let Some(t) = t else { return "host" };
    match t.class() {
        EventClass::Exec | EventClass::Fork | EventClass::Exit => "process",
        EventClass::Open => "file",
        EventClass::Net => "network",
        EventClass::Syscall => match call_def(t).map(|c| c.subject) {
            Some(Subject::File) => "file",
            Some(Subject::Network) => "network",
            // io_uring_setup, and the calls on processes, credentials and namespaces.
            Some(Subject::Process) | None => "process",
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertView {
    pub hostname: String,
    pub output: String,
    pub output_fields: Map<String, Value>,
    pub priority: String,
    pub rule: String,
    pub source: String,
    pub tags: Vec<String>,
    pub time: String,
    pub suppressed: Option<u64>,
}

impl AlertView {
    /// A record that is not an alert (a damaged spool record) still gets delivered as what it
    /// is; only the derived parts fall back to defaults.
    pub fn parse(data: &[u8]) -> Self {
        serde_json::from_slice(data).unwrap_or_default()
    }

    pub fn priority(&self) -> Priority {
        Priority::parse(&self.priority).unwrap_or(Priority::Warning)
    }

    /// The text line: the rule's output (control characters escaped) and what the rate limit held back.
    pub fn text_line(&self, out: &mut Vec<u8>) {
        crate::alert::write_text_line(&self.output, self.suppressed, out);
    }

    fn field(&self, name: &str) -> Value {
        self.output_fields.get(name).cloned().unwrap_or(Value::Null)
    }

    /// The alert as an Elastic Common Schema document: the ECS fields Elastic's security
    /// views use, plus the Falco shape under `falco` so nothing is lost.
    pub fn ecs_document(&self, raw: &Value) -> Value {
        let severity = self.priority() as u8;
        let category = ecs_category(self.field("evt.type").as_str().and_then(EventType::from_name));
        let mut doc = json!({
            "@timestamp": self.time,
            "message": self.output,
            "ecs": {"version": "8.11.0"},
            "event": {
                "kind": "alert",
                "module": "monitor",
                "dataset": "monitor.alerts",
                "category": [category],
                "action": self.field("evt.type"),
                "severity": severity,
                "created": self.time,
            },
            "log": {"level": self.priority.to_ascii_lowercase()},
            "rule": {"name": self.rule, "ruleset": self.source},
            "tags": self.tags,
            "host": {"hostname": self.hostname, "name": self.hostname},
            "process": {
                "pid": self.field("proc.pid"),
                "name": self.field("proc.name"),
                "executable": self.field("proc.exepath"),
                "command_line": self.field("proc.cmdline"),
                "parent": {"pid": self.field("proc.ppid"), "name": self.field("proc.pname")},
            },
            "user": {"name": self.field("user.name")},
            "falco": raw,
        });
        let obj = doc.as_object_mut().expect("an object");
        // ECS keeps user.id a string.
        match self.field("user.uid") {
            Value::Null => {}
            Value::String(s) => {
                obj["user"]["id"] = Value::String(s);
            }
            v => {
                obj["user"]["id"] = Value::String(v.to_string());
            }
        }
        if !self.field("container.id").is_null() && self.field("container.id") != "host" {
            obj.insert(
                "container".into(),
                json!({
                    "id": self.field("container.id"),
                    "name": self.field("container.name"),
                    "image": {"name": self.field("container.image.repository")},
                }),
            );
        }
        if !self.field("k8s.pod.name").is_null() {
            obj.insert(
                "orchestrator".into(),
                json!({
                    "type": "kubernetes",
                    "namespace": self.field("k8s.ns.name"),
                    "resource": {"type": "pod", "name": self.field("k8s.pod.name")},
                }),
            );
        }
        match category {
            "file" => {
                obj.insert("file".into(), json!({"path": self.field("fd.name")}));
            }
            "network" => {
                obj.insert(
                    "destination".into(),
                    json!({"ip": self.field("fd.sip"), "port": self.field("fd.sport")}),
                );
            }
            _ => {}
        }
        if let Some(n) = self.suppressed {
            obj.insert("monitor".into(), json!({"suppressed": n}));
        }
        doc
    }
}

/// The few top-level fields syslog headers, subjects and envelopes need, read without building
/// the rest of the alert (its output_fields): the cheap parse for sinks that send the JSON as is.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertHeader<'a> {
    #[serde(borrow)]
    pub hostname: Cow<'a, str>,
    #[serde(borrow)]
    pub priority: Cow<'a, str>,
    #[serde(borrow)]
    pub rule: Cow<'a, str>,
    #[serde(borrow)]
    pub time: Cow<'a, str>,
}

impl<'a> AlertHeader<'a> {
    /// None when the record is not a JSON object (a damaged spool record).
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }

    pub fn priority(&self) -> Priority {
        Priority::parse(&self.priority).unwrap_or(Priority::Warning)
    }

    /// Seconds since the epoch, for receivers that want a number (Splunk).
    pub fn epoch_seconds(&self) -> Option<f64> {
        let ts: jiff::Timestamp = self.time.parse().ok()?;
        Some(ts.as_nanosecond() as f64 / 1e9)
    }

    /// NATS subject for this alert from a template with `{priority}` and `{rule}`; the rule
    /// name is made one subject token (no spaces, dots or wildcards).
    pub fn subject(&self, template: &str) -> String {
        let token = |s: &str| -> String {
            let t: String = s
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect();
            if t.is_empty() { "_".to_owned() } else { t }
        };
        template
            .replace("{priority}", &token(&self.priority.to_ascii_lowercase()))
            .replace("{rule}", &token(&self.rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = r#"{"hostname":"h","output":"12:00:00.000000000: Warning shell\x1b[31m","output_fields":{"evt.type":"openat","proc.pid":7,"user.uid":0,"fd.name":"/etc/shadow","container.id":"host"},"priority":"Warning","rule":"Read sensitive file. untrusted*","source":"syscall","tags":["T1"],"time":"2026-11-23T12:00:00.123456789Z","suppressed":3}"#;

    #[test]
    fn renders_text_subject_and_ecs() {
        let raw = ALERT.replace("\\x1b", "\\u001b");
        let a = AlertView::parse(raw.as_bytes());
        let mut line = Vec::new();
        a.text_line(&mut line);
        let line = String::from_utf8(line).unwrap();
        assert!(line.contains("shell\\x1b[31m"), "{line}");
        assert!(line.ends_with("(3 more alerts of this rule were suppressed by the rate limit)"), "{line}");
        let h = AlertHeader::parse(raw.as_bytes()).unwrap();
        assert_eq!(h.subject("alerts.{priority}.{rule}"), "alerts.warning.Read_sensitive_file__untrusted_");
        assert_eq!(h.priority(), Priority::Warning);
        let ecs = a.ecs_document(&serde_json::from_str(&raw).unwrap());
        assert_eq!(ecs["@timestamp"], "2026-11-23T12:00:00.123456789Z");
        assert_eq!(ecs["event"]["kind"], "alert");
        assert_eq!(ecs["event"]["severity"], Priority::Warning as u8);
        assert_eq!(ecs["file"]["path"], "/etc/shadow");
        assert_eq!(ecs["rule"]["name"], "Read sensitive file. untrusted*");
        assert_eq!(ecs["user"]["id"], "0");
        assert!(ecs.get("container").is_none(), "host events have no container block");
        assert_eq!(ecs["falco"]["output_fields"]["proc.pid"], 7);
        assert!((h.epoch_seconds().unwrap() - 1_795_435_200.123).abs() < 0.01);
    }

    #[test]
    fn garbage_is_not_a_panic() {
        let a = AlertView::parse(b"\xff not json");
        assert_eq!(a.priority(), Priority::Warning);
        assert!(AlertHeader::parse(b"\xff not json").is_none());
        assert_eq!(AlertHeader::default().subject("x.{rule}"), "x._");
    }

    #[test]
    fn every_event_type_has_its_ecs_category() {
        let want = |t: EventType| match t {
            EventType::Execve
            | EventType::Execveat
            | EventType::Clone
            | EventType::Procexit
            | EventType::IoUringSetup => "process",
            EventType::Open
            | EventType::Openat
            | EventType::Openat2
            | EventType::Creat
            | EventType::OpenByHandleAt
            | EventType::PidfdGetfd
            | EventType::Symlink
            | EventType::Symlinkat
            | EventType::Link
            | EventType::Linkat
            | EventType::Chmod
            | EventType::Fchmod
            | EventType::Fchmodat
            | EventType::Unlink
            | EventType::Unlinkat
            | EventType::Rmdir
            | EventType::Rename
            | EventType::Renameat
            | EventType::Renameat2
            | EventType::Mkdir
            | EventType::Mkdirat => "file",
            EventType::Connect
            | EventType::Sendto
            | EventType::Sendmsg
            | EventType::Socket
            | EventType::Accept
            | EventType::Accept4
            | EventType::Listen
            | EventType::Recvfrom
            | EventType::Recvmsg => "network",
            EventType::Ptrace
            | EventType::InitModule
            | EventType::FinitModule
            | EventType::Dup
            | EventType::Dup2
            | EventType::Dup3
            | EventType::Setns
            | EventType::Unshare
            | EventType::Setuid
            | EventType::Setgid
            | EventType::Setresuid
            | EventType::Setresgid
            | EventType::Bpf
            | EventType::Userfaultfd
            | EventType::MemfdCreate => "process",
        };
        for t in EventType::ALL {
            let a = AlertView {
                output_fields: [("evt.type".to_owned(), Value::from(t.name()))].into_iter().collect(),
                ..Default::default()
            };
            let doc = a.ecs_document(&Value::Null);
            assert_eq!(doc["event"]["category"][0], want(t), "{}", t.name());
        }
        assert_eq!(AlertView::default().ecs_document(&Value::Null)["event"]["category"][0], "host");
    }
}
