//! An event as one JSON object keyed by field names (the registry's fields `monitor events`
//! records, with the values rules see), and as one line of text.

use std::collections::HashMap;
use std::sync::Arc;

use super::fields::{ArgKind, FIELDS, Field, FieldContext, FieldDef, Record, Scope};
use super::format::{connection_name, errno_name, open_flags};
use super::{Detail, Event};
use crate::process::ProcessRef;

/// The fields the events stream carries, in the registry's order, with their lookups: those
/// of the event, and those that depend only on its process (rendered once per process).
struct Recorded {
    event: Vec<(&'static FieldDef, Field)>,
    process: Vec<(&'static FieldDef, Field)>,
}

fn recorded() -> &'static Recorded {
    static RECORDED: std::sync::OnceLock<Recorded> = std::sync::OnceLock::new();
    RECORDED.get_or_init(|| {
        let all = FIELDS
            .iter()
            .filter(|d| !matches!(d.record, Record::None))
            .map(|d| (d, Field::lookup(d.name, None).expect("a registry name looks up")));
        let (process, event) = all.partition(|(d, _)| d.scope == Scope::Process);
        Recorded { event, process }
    })
}

/// Appends `,"name":value` for each field of `fields` that has a value. An ancestor field is
/// written once per ancestor (`proc.aname[1]`, ...). `scratch` is reused for escaping.
fn write_fields(
    ev: &Event,
    cx: &FieldContext,
    fields: &[(&'static FieldDef, Field)],
    out: &mut Vec<u8>,
    scratch: &mut String,
) {
    let mut put = |name: &str, index: Option<usize>, f: &Field| {
        let v = f.extract(ev, cx);
        if v.is_null() {
            return;
        }
        // Names are ours: plain ASCII, nothing to escape.
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        if let Some(i) = index {
            out.push(b'[');
            out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            out.push(b']');
        }
        out.extend_from_slice(b"\":");
        v.write_json(out, scratch);
    };
    for (def, f) in fields {
        match def.arg {
            ArgKind::OptionalIndex => {
                for i in 1..=ev.ancestors.len() {
                    put(def.name, Some(i), &f.with_index(i));
                }
            }
            _ => put(def.name, None, f),
        }
    }
}

/// The process part of an event rendered once and reused while the process and its ancestors
/// stay the same: most events come from processes that already produced one.
struct ProcessFields {
    process: ProcessRef,
    ancestors: Vec<ProcessRef>,
    json: Vec<u8>,
}

const FRAGMENT_CACHE_MAX: usize = 4096;

/// Renders events as JSON lines; owns the per-process fragment cache.
#[derive(Default)]
pub struct JsonRenderer {
    fragments: HashMap<u32, ProcessFields>,
    scratch: String,
}

impl JsonRenderer {
    /// Appends `ev` as one JSON object keyed by field names.
    pub fn write(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) {
        let start = out.len();
        let fields = recorded();
        write_fields(ev, cx, &fields.event, out, &mut self.scratch);
        match &ev.process {
            Some(p) => {
                let fragment = self.process_fields(p, ev, cx);
                out.extend_from_slice(fragment);
            }
            // Without a process, its fields are the event's own (user.uid from the record).
            None => write_fields(ev, cx, &fields.process, out, &mut self.scratch),
        }
        // Every field wrote a leading comma: the first becomes the opening brace.
        match out.get_mut(start) {
            Some(first) => *first = b'{',
            None => out.push(b'{'),
        }
        out.push(b'}');
    }

    fn process_fields(&mut self, p: &ProcessRef, ev: &Event, cx: &FieldContext) -> &[u8] {
        let fresh = self.fragments.get(&p.pid).is_some_and(|f| {
            Arc::ptr_eq(&f.process, p)
                && f.ancestors.len() == ev.ancestors.len()
                && f.ancestors.iter().zip(&ev.ancestors).all(|(a, b)| Arc::ptr_eq(a, b))
        });
        if !fresh {
            let mut json = Vec::with_capacity(1024);
            write_fields(ev, cx, &recorded().process, &mut json, &mut self.scratch);
            if self.fragments.len() >= FRAGMENT_CACHE_MAX {
                self.fragments.clear();
            }
            self.fragments
                .insert(p.pid, ProcessFields { process: p.clone(), ancestors: ev.ancestors.clone(), json });
        }
        &self.fragments[&p.pid].json
    }
}

impl Event {
    /// One human-readable line; values a process chose are escaped.
    pub fn to_text(&self) -> String {
        use super::text::escaped;
        let time = crate::alert::rfc3339_ns(self.time_ns);
        let (name, exe) =
            self.process.as_ref().map(|p| (p.comm.as_str(), p.exe_path.as_str())).unwrap_or(("?", "?"));
        let container = self.container.as_ref().map(|c| c.short()).unwrap_or("host");
        let what = match &self.detail {
            Detail::Exec { .. } => {
                let cmd = self.process.as_ref().map(|p| p.cmdline()).unwrap_or("");
                format!("exe={} cmdline={cmd:?}", escaped(exe))
            }
            Detail::Fork => String::new(),
            Detail::Exit { code } => format!("status={code}"),
            Detail::Open(o) => {
                format!("{} {} res={}", escaped(&o.path), open_flags(o.flags), errno_name(self.res))
            }
            Detail::Net(n) => match &n.unix_path {
                Some(p) => format!("unix {} res={}", escaped(p), errno_name(self.res)),
                None => format!(
                    "{} {} res={}",
                    n.l4proto.map_or("", |p| p.name()),
                    connection_name(n),
                    errno_name(self.res)
                ),
            },
            Detail::Call(c) => super::calls::summary(self, c),
        };
        let door = match (self.via, self.call.name()) {
            (monitor_common::Via::Syscall, None) => String::new(),
            (via, call) => format!(" via={}:{}", via.name(), call.unwrap_or(self.evt_type.name())),
        };
        format!(
            "{time} {} pid={} tid={} name={name:?} container={container} {what}{door}",
            self.evt_type.name(),
            self.pid,
            self.tid
        )
    }
}
