//! Fields as rules, outputs and the events stream name them. What each field is, and how its
//! value is read, is defined once in [`registry`]; this module looks fields up by name and
//! holds their values.

mod registry;

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::IpAddr;

use monitor_common::{EventClass, EventType};

use super::Users;

pub use registry::{FIELDS, FieldDef, FieldId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Int,
    Bool,
    /// An address, compared with `=` against an address.
    Ip,
    /// An address, compared against networks (`fd.net = 10.0.0.0/8`).
    Net,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Str => "string",
            Self::Int => "number",
            Self::Bool => "bool",
            Self::Ip => "address",
            Self::Net => "network",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    None,
    /// `proc.aname[2]`; without it, the field stands for every ancestor.
    OptionalIndex,
    /// `proc.env[HOME]`; without it, the field's whole value (`proc.env`).
    OptionalKey,
    /// `k8s.pod.label[app]`.
    Key,
}

/// The event classes whose events carry a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classes(u8);

impl Classes {
    pub const ALL: Self = Self(0x3f);

    const fn bit(c: EventClass) -> u8 {
        match c {
            EventClass::Exec => 1,
            EventClass::Fork => 2,
            EventClass::Exit => 4,
            EventClass::Open => 8,
            EventClass::Net => 16,
            EventClass::Syscall => 32,
        }
    }

    pub const fn of(c: EventClass) -> Self {
        Self(Self::bit(c))
    }

    pub const fn with(self, c: EventClass) -> Self {
        Self(self.0 | Self::bit(c))
    }

    pub const fn contains(self, c: EventClass) -> bool {
        self.0 & Self::bit(c) != 0
    }
}

/// What a field's value depends on besides the event's own record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The event record.
    Event,
    /// Only the process, its ancestors and the user and group names: the events stream renders
    /// these once per process, not per event.
    Process,
    /// The container runtimes' metadata.
    Runtime,
    /// The time it is read.
    Clock,
    /// The host names the daemon resolved for the rules.
    HostNames,
}

/// How `monitor events --json` carries a field and `monitor replay` reads it back.
#[derive(Clone, Copy)]
pub enum Record {
    /// Not in the stream: derived from fields that are, or from outside the event.
    None,
    /// In the stream for readers; replay derives it from other fields.
    Shown,
    /// In the stream, and replay reads it back: the loader gets the draft event, the field's
    /// index (`proc.aname[2]`) and the value.
    Kept(fn(&mut super::replay::Draft, Option<usize>, &serde_json::Value)),
}

/// A field as a rule or output names it: its definition and argument.
#[derive(Clone, Debug)]
pub struct Field {
    def: &'static FieldDef,
    /// The name as written (Falco has several names for some fields).
    written: &'static str,
    /// `[2]` of proc.aname[2]; None: the field itself (or, for ancestors, all of them).
    index: Option<usize>,
    key: Option<String>,
    /// A call's parameter this name also stands for (`evt.arg.flags` is an open's flags and
    /// a call's `flags`): on calls, the field reads it. `raw`: as a number (`evt.rawarg.*`).
    call_param: Option<CallParam>,
}

#[derive(Clone, Debug)]
struct CallParam {
    name: String,
    raw: bool,
}

/// Why a field name cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// Not a field the monitor can fill (Falco may know it).
    Unsupported,
    BadArgument(String),
}

impl Field {
    /// Looks a field up by name and argument as written in a rule (`proc.aname`, `2`).
    pub fn lookup(name: &str, arg: Option<&str>) -> Result<Self, FieldError> {
        // `k8s.pod.label.app` is shorthand for `k8s.pod.label[app]`.
        if let Some(key) = name.strip_prefix("k8s.pod.label.") {
            return Self::lookup("k8s.pod.label", Some(key));
        }
        let call_param =
            [("evt.arg.", false), ("evt.rawarg.", true)].into_iter().find_map(|(prefix, raw)| {
                let key = name.strip_prefix(prefix).filter(|k| super::calls::is_param_name(k))?;
                Some(CallParam { name: key.to_owned(), raw })
            });
        let found = FIELDS
            .iter()
            .find_map(|d| std::iter::once(&d.name).chain(d.aliases).find(|n| **n == name).map(|n| (d, *n)));
        let (def, written) = match (found, &call_param) {
            (Some(f), _) => f,
            // A parameter only calls have: the generic field, under the name as written.
            (None, Some(p)) => {
                let id = if p.raw { FieldId::EvtRawArgCall } else { FieldId::EvtArgCall };
                let def = FIELDS.iter().find(|d| d.id == id).expect("the generic call fields are defined");
                return Ok(Self {
                    def,
                    written: def.name,
                    index: None,
                    key: Some(p.name.clone()),
                    call_param,
                });
            }
            (None, None) => return Err(FieldError::Unsupported),
        };
        let mut field = Self { def, written, index: None, key: None, call_param };
        match (def.arg, arg) {
            (ArgKind::None, None) | (ArgKind::OptionalIndex, None) | (ArgKind::OptionalKey, None) => {}
            (ArgKind::OptionalKey, Some(k)) => field.key = Some(k.to_owned()),
            (ArgKind::None, Some(_)) => {
                return Err(FieldError::BadArgument(format!("{name} takes no argument")));
            }
            (ArgKind::OptionalIndex, Some(a)) => match a.trim().parse::<usize>() {
                Ok(i) => field.index = Some(i),
                Err(_) => {
                    return Err(FieldError::BadArgument(format!(
                        "{name}[...] takes an ancestor number, not `{a}`"
                    )));
                }
            },
            (ArgKind::Key, Some(k)) => {
                field.key = Some(k.to_owned());
                // `evt.arg[request]`: the same as `evt.arg.request`.
                if matches!(def.id, FieldId::EvtArgCall | FieldId::EvtRawArgCall) {
                    let raw = def.id == FieldId::EvtRawArgCall;
                    field.call_param = Some(CallParam { name: k.to_owned(), raw });
                }
            }
            (ArgKind::Key, None) => return Err(FieldError::BadArgument(format!("{name} needs a [key]"))),
        }
        Ok(field)
    }

    /// A field by its id, without argument.
    pub fn of(id: FieldId) -> Self {
        let def = FIELDS.iter().find(|d| d.id == id).expect("every id has its definition");
        Self { def, written: def.name, index: None, key: None, call_param: None }
    }

    /// The same field for ancestor `index`.
    pub fn with_index(&self, index: usize) -> Self {
        Self { index: Some(index), ..self.clone() }
    }

    pub fn id(&self) -> FieldId {
        self.def.id
    }

    pub fn def(&self) -> &'static FieldDef {
        self.def
    }

    pub fn ty(&self) -> FieldType {
        self.def.ty
    }

    /// Without an index, an ancestor field holds one value per ancestor.
    pub fn is_multi(&self) -> bool {
        self.def.arg == ArgKind::OptionalIndex && self.index.is_none()
    }

    pub fn name(&self) -> String {
        // `evt.arg.request`, as Falco's outputs name it, rather than `evt.arg[request]`.
        if let (Some(p), Some(_)) = (&self.call_param, &self.key) {
            return format!("{}.{}", self.written, p.name);
        }
        match (&self.index, &self.key) {
            (Some(i), _) => format!("{}[{i}]", self.written),
            (_, Some(k)) => format!("{}[{k}]", self.written),
            _ => self.written.to_owned(),
        }
    }

    /// Whether events of `evt_type` can carry a value for this field; false lets the compiler
    /// fold checks away for that type.
    pub fn available_in(&self, evt_type: EventType) -> bool {
        match &self.call_param {
            Some(p) if evt_type.class() == EventClass::Syscall => {
                super::calls::param(evt_type, &p.name).is_some()
            }
            _ => self.def.carried_by.contains(evt_type.class()),
        }
    }

    pub fn extract<'e>(&self, ev: &'e Event, cx: &FieldContext) -> FieldValue<'e> {
        if let (Some(p), super::Detail::Call(c)) = (&self.call_param, &ev.detail) {
            let Some(param) = super::calls::param(ev.evt_type, &p.name) else { return FieldValue::Null };
            return if p.raw {
                super::calls::raw_value(ev, c, param).map_or(FieldValue::Null, FieldValue::Int)
            } else {
                super::calls::text(ev, c, param, Some(cx)).map_or(FieldValue::Null, FieldValue::Str)
            };
        }
        (self.def.extract)(self, ev, cx)
    }
}

use super::Event;

/// Every name the registry knows, for `monitor rules fields` and docs: (name as written with
/// its argument, its definition).
pub fn listing() -> impl Iterator<Item = (String, &'static FieldDef)> {
    FIELDS.iter().flat_map(|d| {
        std::iter::once(d.name).chain(d.aliases.iter().copied()).map(move |n| {
            let shown = match d.arg {
                ArgKind::None => n.to_owned(),
                ArgKind::OptionalIndex => format!("{n}[N]"),
                ArgKind::OptionalKey => format!("{n}[key]"),
                ArgKind::Key => format!("{n}[key]"),
            };
            (shown, d)
        })
    })
}

/// What a field holds for one event; borrowed from the event where it can be.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Ip(IpAddr),
    /// Data as it was moved (evt.buffer): compared byte by byte, printed as Falco prints a
    /// buffer.
    Bytes(Cow<'a, [u8]>),
    /// Fields with one value per ancestor or per endpoint.
    List(Vec<FieldValue<'a>>),
}

impl FieldValue<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// As Falco prints a value inside an output string; unknown values print as `<NA>`.
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Self::Null => out.push_str("<NA>"),
            Self::Str(s) => out.push_str(s),
            Self::Bytes(b) => out.push_str(&crate::event::calls::buffer_text(b)),
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
            Self::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_text(out);
                }
            }
        }
    }

    /// [`FieldValue::to_json`] written straight out, without building a JSON value; `scratch`
    /// is reused for escaping.
    pub fn write_json(&self, out: &mut Vec<u8>, scratch: &mut String) {
        match self {
            Self::Null => out.extend_from_slice(b"null"),
            Self::Str(s) => {
                scratch.clear();
                super::text::escape(s, scratch);
                // Writing a string into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, scratch.as_str());
            }
            Self::Bytes(b) => {
                let _ = serde_json::to_writer(&mut *out, &crate::event::calls::buffer_text(b));
            }
            Self::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Self::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Self::Ip(ip) => {
                let _ = serde_json::to_writer(&mut *out, &ip.to_string());
            }
            Self::List(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_json(out, scratch);
                }
                out.push(b']');
            }
        }
    }

    /// As alerts and the events stream carry it: strings escaped as in the output text
    /// ([`super::text::escape`]), so raw JSON shown on a terminal cannot drive it either, and
    /// `monitor replay` can read the exact value back.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Self::Null => J::Null,
            Self::Str(s) => J::String(super::text::escaped(s)),
            Self::Int(i) => J::from(*i),
            Self::Bool(b) => J::Bool(*b),
            Self::Ip(ip) => J::String(ip.to_string()),
            Self::Bytes(b) => J::String(crate::event::calls::buffer_text(b)),
            Self::List(items) => J::Array(items.iter().map(Self::to_json).collect()),
        }
    }
}

/// What extraction needs beyond the event: name lookups and the host's name.
pub struct FieldContext {
    /// Container metadata from the runtimes, when the daemon talks to them.
    pub containers: Option<crate::container::ContainerDirectory>,
    pub users: RefCell<Users>,
    pub exe_identity: RefCell<super::exe_identity::ExeIdentity>,
    pub groups: RefCell<Users>,
    pub hostname: String,
    /// The addresses of the host names rules compare addresses with.
    pub host_names: super::HostNames,
}

impl Default for FieldContext {
    fn default() -> Self {
        Self {
            containers: None,
            users: RefCell::new(Users::new("/etc/passwd")),
            exe_identity: RefCell::new(Default::default()),
            groups: RefCell::new(Users::new("/etc/group")),
            hostname: nix_hostname(),
            host_names: super::HostNames::default(),
        }
    }
}

pub fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
