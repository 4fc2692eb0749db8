//! An event as one JSON object keyed by field names (the registry's fields `monitor events`
//! records, with the values rules see), and as one line of text.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use super::fields::{ArgKind, FIELDS, Field, FieldContext, FieldDef, Record, Scope};
use super::format::{connection_name, errno_name, open_flags};
use super::{Detail, Event};
use crate::process::ProcessRef;

/// The fields the events stream carries, in the registry's order, with their lookups.
fn recorded() -> impl Iterator<Item = (&'static FieldDef, Field)> {
    static RECORDED: std::sync::OnceLock<Vec<(&'static FieldDef, Field)>> = std::sync::OnceLock::new();
    RECORDED
        .get_or_init(|| {
            FIELDS
                .iter()
                .filter(|d| !matches!(d.record, Record::None))
                .map(|d| (d, Field::lookup(d.name, None).expect("a registry name looks up")))
                .collect()
        })
        .iter()
        .cloned()
}

/// Writes `"name":value` pairs of the fields of `scope` that have a value, each preceded by a
/// comma. An ancestor field is written once per ancestor (`proc.aname[1]`, ...).
fn write_fields(ev: &Event, cx: &FieldContext, process_scope: bool, out: &mut Vec<u8>) {
    let mut put = |name: &str, f: &Field| {
        let v = f.extract(ev, cx);
        if v.is_null() {
            return;
        }
        out.push(b',');
        // Names are ours: plain ASCII, nothing to escape.
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        let _ = serde_json::to_writer(&mut *out, &v.to_json());
    };
    for (def, f) in recorded() {
        if (def.scope == Scope::Process) != process_scope {
            continue;
        }
        match def.arg {
            ArgKind::OptionalIndex => {
                for i in 1..=ev.ancestors.len() {
                    put(&format!("{}[{i}]", def.name), &f.with_index(i));
                }
            }
            _ => put(def.name, &f),
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
}

impl JsonRenderer {
    /// Writes `ev` as one JSON object keyed by field names.
    pub fn write<W: Write + ?Sized>(
        &mut self,
        ev: &Event,
        cx: &FieldContext,
        out: &mut W,
    ) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(2048);
        write_fields(ev, cx, false, &mut buf);
        match &ev.process {
            Some(p) => buf.extend_from_slice(self.process_fields(p, ev, cx)),
            // Without a process, its fields are the event's own (user.uid from the record).
            None => write_fields(ev, cx, true, &mut buf),
        }
        buf[0] = b'{';
        buf.push(b'}');
        out.write_all(&buf)
    }

    fn process_fields(&mut self, p: &ProcessRef, ev: &Event, cx: &FieldContext) -> &[u8] {
        let fresh = self.fragments.get(&p.pid).is_some_and(|f| {
            Arc::ptr_eq(&f.process, p)
                && f.ancestors.len() == ev.ancestors.len()
                && f.ancestors.iter().zip(&ev.ancestors).all(|(a, b)| Arc::ptr_eq(a, b))
        });
        if !fresh {
            let mut json = Vec::with_capacity(1024);
            write_fields(ev, cx, true, &mut json);
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
        };
        format!(
            "{time} {} pid={} tid={} name={name:?} container={container} {what}",
            self.evt_type.name(),
            self.pid,
            self.tid
        )
    }
}
