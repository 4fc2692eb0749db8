//! Alerts: a rule that matched an event, in Falco's alert shape; what a rule says its alert is
//! (priority, output template); the per-rule rate limit.

mod priority;
mod rate_limit;
mod template;

pub use priority::Priority;
pub use rate_limit::{RateLimit, RateLimiter};
pub use template::OutputTemplate;

use serde::Serialize;

use crate::event::{Event, Field, FieldContext, FieldId};

/// Where an alert comes from: a rule about the host's syscalls, or the monitor about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    Syscall,
    Internal,
}

/// What an alert needs of the rule that raised it.
#[derive(Clone, Copy, Debug)]
pub struct RuleView<'r> {
    pub name: &'r str,
    pub priority: Priority,
    pub tags: &'r [String],
    pub output: &'r OutputTemplate,
}

/// Fields every alert carries besides those its rule's output names, so a SIEM can always
/// tell what ran where (null when unknown, or when the event type has no such field).
const CONTEXT_FIELDS: &[FieldId] = &[
    FieldId::EvtType,
    FieldId::EvtTime,
    FieldId::ProcPid,
    FieldId::ProcPpid,
    FieldId::ProcName,
    FieldId::ProcExePath,
    FieldId::ProcCmdline,
    FieldId::ProcPName,
    FieldId::UserUid,
    FieldId::UserName,
    FieldId::ContainerId,
    FieldId::ContainerName,
    FieldId::ContainerImageRepository,
    FieldId::K8sNsName,
    FieldId::K8sPodName,
];

/// Fields only events with a file or socket have.
const FD_CONTEXT_FIELDS: &[FieldId] = &[FieldId::FdName, FieldId::FdSip, FieldId::FdSport];

/// One alert, in Falco's JSON shape (keys in Falco's order); `suppressed` is ours and appears
/// only when the rate limit held back alerts of this rule since the previous one.
#[derive(Debug, Serialize)]
pub struct Alert {
    pub hostname: String,
    pub output: String,
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    pub priority: &'static str,
    pub rule: String,
    pub source: AlertSource,
    pub tags: Vec<String>,
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
}

/// RFC 3339 in UTC with nanoseconds, the `time` of an alert.
pub fn rfc3339_ns(ns: i128) -> String {
    let ts = jiff::Timestamp::from_nanosecond(ns).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::fmt::temporal::DateTimePrinter::new().precision(Some(9)).timestamp_to_string(&ts)
}

impl Alert {
    pub fn new(rule: RuleView<'_>, ev: &Event, cx: &FieldContext, suppressed: u64) -> Self {
        let mut fields = serde_json::Map::new();
        let has_fd = matches!(ev.detail, crate::event::Detail::Open(_) | crate::event::Detail::Net(_));
        let context = CONTEXT_FIELDS.iter().chain(if has_fd { FD_CONTEXT_FIELDS } else { &[] });
        for id in context {
            let f = Field::of(*id);
            fields.insert(f.name(), f.extract(ev, cx).to_json());
        }
        for (name, v) in rule.output.fields(ev, cx) {
            fields.insert(name.to_owned(), v.to_json());
        }
        let time = rfc3339_ns(ev.time_ns);
        let output = output_line(&time, rule.priority.as_str(), &rule.output.render(ev, cx));
        Self {
            hostname: cx.hostname.clone(),
            output,
            output_fields: fields,
            priority: rule.priority.as_str(),
            rule: rule.name.to_owned(),
            source: AlertSource::Syscall,
            tags: rule.tags.to_vec(),
            time,
            suppressed: (suppressed > 0).then_some(suppressed),
        }
    }

    /// One JSON object, without a newline. Strings are JSON-escaped, so nothing a process
    /// controls can end the line early.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serialising plain strings and maps into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
    }

    /// One line of text: time, priority, output (already escaped), and the suppressed count.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        write_text_line(&self.output, self.suppressed, out);
    }
}

/// An alert's `output`: Falco prefixes the text with the time of day and the priority.
pub fn output_line(time: &str, priority: &str, text: &str) -> String {
    let clock = time.get(11..29).unwrap_or("");
    format!("{clock}: {priority} {text}")
}

/// An alert's text line: its output with controls and line separators escaped (nothing a
/// process chose can break the line; the values in it are escaped already), and what the rate
/// limit held back.
pub fn write_text_line(output: &str, suppressed: Option<u64>, out: &mut Vec<u8>) {
    let mut line = String::with_capacity(output.len() + 48);
    crate::event::text::escape_controls(output, &mut line);
    if let Some(n) = suppressed {
        line.push_str(&format!(" ({n} more alerts of this rule were suppressed by the rate limit)"));
    }
    out.extend_from_slice(line.as_bytes());
}
