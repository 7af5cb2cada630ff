//! The one place where text a plugin supplied is made safe to show.
//!
//! A plugin chooses its log messages, check names and details, progress task
//! names, unit names (stored in the ledger, shown by `migrun status`) and the
//! SQL the plan quotes. Shown raw, a control character in any of them talks to
//! the operator's terminal: ESC/CSI sequences move the cursor or hide text, OSC
//! 52 writes the clipboard, CR overwrites a line, BEL rings, and Unicode bidi
//! overrides make text read differently from what it is.
//!
//! The invariant: nothing migrun prints (text or JSON, stdout or stderr) carries
//! such a character from a plugin. Rendering escapes each plugin-supplied
//! field with [`printable`] (one line, `\n` escaped too, so a plugin cannot forge
//! a report line), and the CLI passes every whole output through
//! [`printable_text`] or [`printable_json`] as a last boundary, so a string
//! missed by a renderer is still escaped. The journal is never escaped: it
//! records exactly what the plugin sent.

use std::borrow::Cow;

/// Whether `c` can act on a terminal or reorder what is displayed: C0 and C1
/// controls, DEL, the Unicode bidi controls and marks, line/paragraph separators,
/// and the invisible characters that can hide text (zero-width joiners/spaces, BOM).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

fn escape(out: &mut String, c: char) {
    use std::fmt::Write as _;
    let _ = write!(out, "\\u{{{:x}}}", c as u32);
}

fn escaped(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) && !keep(c) {
            escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One plugin-supplied field (a message, a name) as one safe line: every unsafe
/// character, newline and tab included, becomes `\u{…}` (ESC is `\u{1b}`).
pub fn printable(s: &str) -> Cow<'_, str> {
    escaped(s, |_| false)
}

/// A whole rendered text (a report, a console line): like [`printable`] but
/// newlines and tabs, which the renderers lay out with, are kept.
pub fn printable_text(s: &str) -> Cow<'_, str> {
    escaped(s, |c| c == '\n' || c == '\t')
}

/// A JSON document with every unsafe character escaped as `\uXXXX`, so it
/// decodes to exactly the same values. serde_json already escapes C0 controls;
/// DEL, C1 controls (0x9b is a one-byte CSI) and the bidi controls it writes raw.
/// They can only occur inside JSON strings, where a `\u` escape means the same; a raw
/// newline is the pretty printer's layout (serde_json escapes one inside a string).
pub fn printable_json(json: &str) -> Cow<'_, str> {
    let unsafe_in_json = |c: char| is_unsafe(c) && c != '\n';
    if !json.chars().any(unsafe_in_json) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_in_json(c) {
            use std::fmt::Write as _;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` cut to at most `max` bytes (at a character boundary), with how much was cut.
/// Bounds what the host keeps and shows of one plugin-supplied string.
pub fn truncated(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}… ({} more bytes not kept)",
        &s[..end],
        s.len() - end
    ))
}

/// A byte count for people: `512 B`, `5.6 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped() {
        let hostile = "a\u{1b}[2J\u{1b}]52;c;aGk=\u{7}b\rc\u{9b}31md\u{202e}e\u{7f}\nf\tg";
        let one = printable(hostile);
        assert_eq!(
            one,
            "a\\u{1b}[2J\\u{1b}]52;c;aGk=\\u{7}b\\u{d}c\\u{9b}31md\\u{202e}e\\u{7f}\\u{a}f\\u{9}g"
        );
        assert!(!one.chars().any(is_unsafe));
        let text = printable_text(hostile);
        assert!(text.contains("\nf\tg") && !text.contains('\u{1b}') && !text.contains('\r'));
        assert_eq!(printable("plain ✓ text — ok"), "plain ✓ text — ok");
    }

    #[test]
    fn json_stays_valid_and_decodes_to_the_same_string() {
        let value = "x\u{1b}[31m\u{9b}\u{7f}\u{202e}\u{2028}y😀";
        let json = serde_json::to_string_pretty(&serde_json::json!({ "m": value })).unwrap();
        let safe = printable_json(&json);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe}");
        assert!(
            !safe
                .as_bytes()
                .iter()
                .any(|b| matches!(b, 0x1b | 0x07 | 0x9b))
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["m"], value);
    }

    #[test]
    fn truncation_keeps_char_boundaries_and_says_how_much() {
        assert_eq!(truncated("héllo", 2), "h… (5 more bytes not kept)");
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(human_bytes(5_600_000), "5.6 MB");
        assert_eq!(human_bytes(999), "999 B");
    }
}
