//! Text from bytes a process chose (names, arguments, paths), kept whole, and its one escaped
//! rendering for every alert format.
//!
//! Kernel strings are bytes, not UTF-8. Invalid bytes are kept, as the characters
//! U+10FF80..=U+10FFFF (one per byte 0x80..=0xff), so rules still match the valid parts and two
//! different paths never become the same text; a real character of that block is kept as its
//! bytes the same way, so the mapping is undone without guessing. Rendering escapes what could
//! forge or hide a line: the backslash itself, C0 and C1 controls and DEL, Unicode line and
//! paragraph separators, bidirectional overrides, and the kept bytes (`\xNN`). The escaping is
//! one to one, and [`unescape`] inverts it.

use std::fmt::Write as _;

/// The first of the characters that stand for raw bytes 0x80..=0xff.
const RAW_BASE: u32 = 0x10_FF00;
const RAW_FIRST: char = '\u{10FF80}';

fn raw_char(byte: u8) -> char {
    char::from_u32(RAW_BASE + u32::from(byte)).expect("U+10FF80..=U+10FFFF are characters")
}

/// The raw byte a character stands for, if it is one of the kept bytes.
pub fn raw_byte(c: char) -> Option<u8> {
    (c >= RAW_FIRST).then(|| (c as u32 - RAW_BASE) as u8)
}

/// Bytes as text, losslessly (see the module's docs).
pub fn from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c >= RAW_FIRST {
                let mut buf = [0u8; 4];
                out.extend(c.encode_utf8(&mut buf).bytes().map(raw_char));
            } else {
                out.push(c);
            }
        }
        out.extend(chunk.invalid().iter().copied().map(raw_char));
    }
    out
}

/// A path or name from the OS (procfs, readlink) as text, losslessly.
pub fn from_os(s: &std::ffi::OsStr) -> String {
    from_bytes(std::os::unix::ffi::OsStrExt::as_bytes(s))
}

/// The bytes the text stands for (the inverse of [`from_bytes`]).
pub fn to_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match raw_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out
}

/// Characters that move or hide text on a terminal or in a viewer without being controls.
fn is_format_hazard(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escape_char(c: char, out: &mut String) -> bool {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        // C1 controls (U+0085 NEL is a line break) and the format hazards: as code points, so
        // they can never read as a kept byte.
        '\u{80}'..='\u{9f}' => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c if is_format_hazard(c) => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => match raw_byte(c) {
            Some(b) => {
                let _ = write!(out, "\\x{b:02x}");
            }
            None => return false,
        },
    }
    true
}

/// A value from an event, escaped for any alert format: nothing in it can end a line, start
/// one, drive a terminal, or read as something else (a backslash is doubled).
pub fn escape(s: &str, out: &mut String) {
    // Most values are printable ASCII without a backslash: nothing to escape.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if !escape_char(c, out) {
            out.push(c);
        }
    }
}

/// The escaped form of a value.
pub fn escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape(s, &mut out);
    out
}

/// Text of our own or a rule author's around the values (an output's literal parts, the
/// monitor's own messages): controls and separators escaped, backslashes kept as written.
/// Escaping text that went through [`escape`] changes nothing.
pub fn escape_controls(s: &str, out: &mut String) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if !escape_char(c, out) {
            out.push(c);
        }
    }
}

/// The value [`escape`] was given, from its escaped form; None when `s` is not one.
pub fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let kind = chars.next()?;
        let mut hex = |n: usize| -> Option<u32> {
            let digits: String = chars.by_ref().take(n).collect();
            (digits.len() == n).then(|| u32::from_str_radix(&digits, 16).ok()).flatten()
        };
        match kind {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'x' => {
                let v = hex(2)?;
                out.push(if v < 0x80 { char::from_u32(v)? } else { raw_char(v as u8) });
            }
            'u' => out.push(char::from_u32(hex(4)?)?),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_are_kept_and_shown_as_bytes() {
        let a = from_bytes(b"/tmp/\xff\xfe");
        let b = from_bytes(b"/tmp/\xef\xbf\xbd\xef\xbf\xbd");
        assert_ne!(a, b, "two paths must not become the same text");
        assert_eq!(escaped(&a), "/tmp/\\xff\\xfe");
        assert_eq!(escaped(&b), "/tmp/\u{fffd}\u{fffd}");
        assert_eq!(to_bytes(&a), b"/tmp/\xff\xfe");
        // A real character of the block that stands for bytes is kept as its bytes.
        let real = "x\u{10FFFF}";
        assert_eq!(to_bytes(&from_bytes(real.as_bytes())), real.as_bytes());
        assert_eq!(escaped(&from_bytes(real.as_bytes())), "x\\xf4\\x8f\\xbf\\xbf");
    }

    #[test]
    fn nothing_can_break_or_forge_a_line() {
        let hostile = "a\nb\r\u{85}c\u{2028}Emergency FORGED\u{2029}\u{1b}[31m\u{7f}\u{9b}\u{202e}d\\ne";
        let e = escaped(hostile);
        assert_eq!(e.lines().count(), 1);
        assert!(e.chars().all(|c| !c.is_control() && !is_format_hazard(c)), "{e:?}");
        assert_eq!(e, "a\\nb\\r\\u0085c\\u2028Emergency FORGED\\u2029\\x1b[31m\\x7f\\u009b\\u202ed\\\\ne");
        assert_eq!(unescape(&e).as_deref(), Some(hostile));
    }

    #[test]
    fn escaping_is_one_to_one() {
        // A C1 control and the raw byte of the same value render differently.
        assert_ne!(escaped("\u{9b}"), escaped(&from_bytes(b"\x9b")));
        assert_ne!(escaped("\\n"), escaped("\n"));
        let samples = ["", "plain", "\\", "\\\\x41", "\u{10FF80}", "tab\there", "\u{2066}", "é€𝄞"];
        for s in samples {
            let v = from_bytes(s.as_bytes());
            assert_eq!(unescape(&escaped(&v)).as_deref(), Some(v.as_str()), "{s:?}");
        }
        let mut all = Vec::new();
        for b in 0..=255u8 {
            all.push(b);
        }
        let v = from_bytes(&all);
        assert_eq!(to_bytes(&unescape(&escaped(&v)).unwrap()), all);
        assert_eq!(unescape("\\q"), None);
    }

    #[test]
    fn controls_only_leaves_backslashes_and_escaped_text_alone() {
        let mut out = String::new();
        escape_controls("C:\\dir\n", &mut out);
        assert_eq!(out, "C:\\dir\\n");
        let once = escaped("x\u{2028}\\y");
        let mut twice = String::new();
        escape_controls(&once, &mut twice);
        assert_eq!(once, twice);
    }
}
