//! Turning ring-buffer records into typed events. Never panics: a short or malformed record is
//! an error the caller counts and skips.

use monitor_common::{
    CgroupEvent, EventClass, EventHeader, EventKind, EventType, ExecEvent, ExitEvent, ForkEvent, NetEvent,
    OpenEvent, SyscallEvent,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    ShortHeader(usize),
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
    #[error("{kind} record of {len} bytes is shorter than its fixed part ({need})")]
    ShortFixed { kind: &'static str, len: usize, need: usize },
    #[error("{kind} record's sections need {need} bytes, it has {have}")]
    ShortSections { kind: &'static str, need: usize, have: usize },
    #[error("{kind} record names event type {code}, not one of its kind")]
    BadEventType { kind: &'static str, code: u8 },
}

/// One record, borrowing its variable-length sections from the ring buffer.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one lives at a time, on the stack of the read loop; boxing the exec would allocate per exec"
)]
pub enum RawEvent<'a> {
    Exec {
        ev: ExecEvent,
        exe: &'a [u8],
        filename: &'a [u8],
        cwd: &'a [u8],
        cgroup: &'a [u8],
        argv: &'a [u8],
        env: &'a [u8],
    },
    Fork(ForkEvent),
    Exit(ExitEvent),
    Open {
        ev: OpenEvent,
        evt_type: EventType,
        path: &'a [u8],
        base: &'a [u8],
        raw: &'a [u8],
    },
    Net {
        ev: NetEvent,
        evt_type: EventType,
        unix_path: &'a [u8],
    },
    /// `sections`: path 0, its base, path 1, its base, the descriptor's path.
    Syscall {
        ev: SyscallEvent,
        evt_type: EventType,
        sections: [&'a [u8]; 5],
    },
    Cgroup {
        ev: CgroupEvent,
        path: &'a [u8],
    },
}

impl RawEvent<'_> {
    pub fn header(&self) -> &EventHeader {
        match self {
            RawEvent::Exec { ev, .. } => &ev.header,
            RawEvent::Fork(ev) => &ev.header,
            RawEvent::Exit(ev) => &ev.header,
            RawEvent::Open { ev, .. } => &ev.header,
            RawEvent::Net { ev, .. } => &ev.header,
            RawEvent::Syscall { ev, .. } => &ev.header,
            RawEvent::Cgroup { ev, .. } => &ev.header,
        }
    }
}

/// Reads a `#[repr(C)]` plain-integer struct from the start of `bytes`.
fn read_fixed<T: Copy>(bytes: &[u8], kind: &'static str) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::ShortFixed { kind, len: bytes.len(), need });
    }
    // SAFETY: length checked; T is a repr(C) struct of integers valid for any bit pattern, and
    // read_unaligned copes with the ring buffer's alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The event type a record names, which must be of the record's class.
fn event_type(code: u8, class: EventClass, kind: &'static str) -> Result<EventType, DecodeError> {
    EventType::from_u8(code).filter(|t| t.class() == class).ok_or(DecodeError::BadEventType { kind, code })
}

/// Splits the bytes after the fixed part into sections of the given lengths.
fn sections<'a, const N: usize>(
    rest: &'a [u8],
    lens: [u16; N],
    kind: &'static str,
) -> Result<[&'a [u8]; N], DecodeError> {
    let need: usize = lens.iter().map(|&l| l as usize).sum();
    if rest.len() < need {
        return Err(DecodeError::ShortSections { kind, need, have: rest.len() });
    }
    let mut out = [&rest[..0]; N];
    let mut at = 0;
    for (slot, len) in out.iter_mut().zip(lens) {
        *slot = &rest[at..at + len as usize];
        at += len as usize;
    }
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<RawEvent<'_>, DecodeError> {
    if bytes.len() < size_of::<EventHeader>() {
        return Err(DecodeError::ShortHeader(bytes.len()));
    }
    let kind = u16::from_ne_bytes([bytes[0], bytes[1]]);
    let kind = EventKind::from_u16(kind).ok_or(DecodeError::UnknownKind(kind))?;
    let name = kind.name();
    Ok(match kind {
        EventKind::Exec => {
            let ev: ExecEvent = read_fixed(bytes, name)?;
            let rest = &bytes[size_of::<ExecEvent>()..];
            let lens = [ev.exe_len, ev.script_len, ev.cwd_len, ev.cgroup_len, ev.argv_len, ev.env_len];
            let [exe, filename, cwd, cgroup, argv, env] = sections(rest, lens, name)?;
            RawEvent::Exec { ev, exe, filename, cwd, cgroup, argv, env }
        }
        EventKind::Fork => RawEvent::Fork(read_fixed(bytes, name)?),
        EventKind::Exit => RawEvent::Exit(read_fixed(bytes, name)?),
        EventKind::Open => {
            let ev: OpenEvent = read_fixed(bytes, name)?;
            let rest = &bytes[size_of::<OpenEvent>()..];
            let [path, base, raw] = sections(rest, [ev.path_len, ev.base_len, ev.raw_len], name)?;
            let evt_type = event_type(ev.evt_type, EventClass::Open, name)?;
            RawEvent::Open { ev, evt_type, path, base, raw }
        }
        EventKind::Net => {
            let ev: NetEvent = read_fixed(bytes, name)?;
            let rest = &bytes[size_of::<NetEvent>()..];
            let [unix_path] = sections(rest, [ev.unix_len], name)?;
            let evt_type = event_type(ev.evt_type, EventClass::Net, name)?;
            RawEvent::Net { ev, evt_type, unix_path }
        }
        EventKind::Syscall => {
            let ev: SyscallEvent = read_fixed(bytes, name)?;
            let sections = sections(&bytes[size_of::<SyscallEvent>()..], ev.lens, name)?;
            let evt_type = event_type(ev.evt_type, EventClass::Syscall, name)?;
            RawEvent::Syscall { ev, evt_type, sections }
        }
        EventKind::Cgroup => {
            let ev: CgroupEvent = read_fixed(bytes, name)?;
            let rest = &bytes[size_of::<CgroupEvent>()..];
            let [path] = sections(rest, [ev.path_len], name)?;
            RawEvent::Cgroup { ev, path }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_bytes<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: T is a repr(C) integer struct; reading its bytes is fine.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn header(kind: EventKind) -> EventHeader {
        EventHeader { kind: kind as u16, pid: 42, tid: 43, ..Default::default() }
    }

    #[test]
    fn open_record_with_sections() {
        let ev = OpenEvent {
            header: header(EventKind::Open),
            ret: -2,
            path_len: 6,
            base_len: 4,
            evt_type: EventType::Openat as u8,
            ..Default::default()
        };
        let mut bytes = as_bytes(&ev);
        bytes.extend_from_slice(b"shadow/etc");
        match decode(&bytes).unwrap() {
            RawEvent::Open { ev, evt_type, path, base, .. } => {
                assert_eq!(evt_type, EventType::Openat);
                assert_eq!(ev.ret, -2);
                assert_eq!(ev.header.pid, 42);
                assert_eq!(path, b"shadow");
                assert_eq!(base, b"/etc");
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn exec_record_sections_in_order() {
        let ev = ExecEvent {
            header: header(EventKind::Exec),
            exe_len: 8,
            script_len: 2,
            cwd_len: 1,
            cgroup_len: 0,
            argv_len: 6,
            ..Default::default()
        };
        let mut bytes = as_bytes(&ev);
        bytes.extend_from_slice(b"/bin/dashsh/sh\0-c\0id");
        let RawEvent::Exec { exe, filename, cwd, cgroup, argv, .. } = decode(&bytes).unwrap() else {
            panic!("not an exec")
        };
        assert_eq!(exe, b"/bin/das");
        assert_eq!(filename, b"hs");
        assert_eq!(cwd, b"h");
        assert_eq!(cgroup, b"");
        assert_eq!(argv, b"/sh\0-c");
    }

    #[test]
    fn short_and_malformed_records_are_errors() {
        assert_eq!(decode(&[]).unwrap_err(), DecodeError::ShortHeader(0));
        assert_eq!(decode(&[1, 0, 0]).unwrap_err(), DecodeError::ShortHeader(3));
        let mut unknown = as_bytes(&header(EventKind::Exec));
        unknown[0] = 99;
        assert_eq!(decode(&unknown).unwrap_err(), DecodeError::UnknownKind(99));
        // A header alone is shorter than any fixed part.
        let only_header = as_bytes(&header(EventKind::Exec));
        assert!(matches!(decode(&only_header), Err(DecodeError::ShortFixed { .. })));
        // Section lengths that run past the record.
        let ev = OpenEvent { header: header(EventKind::Open), path_len: 4000, ..Default::default() };
        let bytes = as_bytes(&ev);
        assert!(matches!(decode(&bytes), Err(DecodeError::ShortSections { need: 4000, .. })));
        // An event type of another class.
        let ev = OpenEvent {
            header: header(EventKind::Open),
            evt_type: EventType::Connect as u8,
            ..Default::default()
        };
        assert!(matches!(decode(&as_bytes(&ev)), Err(DecodeError::BadEventType { .. })));
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: random bytes behind every kind, at lengths around each
        // fixed part, so the section lengths (random) are read and checked, not just the header.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for kind in 0..=8u16 {
            for len in (0..400).chain(280..700).chain([16384, 20000]) {
                let mut bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
                if bytes.len() >= 2 {
                    bytes[..2].copy_from_slice(&kind.to_ne_bytes());
                }
                if let Ok(ev) = decode(&bytes) {
                    assert_eq!(ev.header().kind, kind);
                }
            }
        }
    }

    #[test]
    fn sections_that_fit_exactly_decode_and_one_byte_short_do_not() {
        let mut state = 7u64;
        for _ in 0..200 {
            let lens: [u16; 5] = std::array::from_fn(|_| (xorshift(&mut state) % 300) as u16);
            let ev = ExecEvent {
                header: header(EventKind::Exec),
                exe_len: lens[0],
                script_len: lens[1],
                cwd_len: lens[2],
                cgroup_len: lens[3],
                argv_len: lens[4],
                ..Default::default()
            };
            let total: usize = lens.iter().map(|&l| l as usize).sum();
            let mut bytes = as_bytes(&ev);
            bytes.extend((0..total).map(|i| i as u8));
            let RawEvent::Exec { exe, argv, .. } = decode(&bytes).unwrap() else { panic!("not an exec") };
            assert_eq!((exe.len(), argv.len()), (lens[0] as usize, lens[4] as usize));
            if total > 0 {
                bytes.pop();
                assert!(matches!(decode(&bytes), Err(DecodeError::ShortSections { .. })));
            }
        }
    }
}
