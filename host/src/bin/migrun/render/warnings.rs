//! The plugin's warnings in the text report: with their fields, and repeats of one message
//! grouped into one line, so that 400 rows the plugin could not parse read as one line that
//! names a few of them rather than 400 identical lines without the rows.

use std::fmt::Write as _;

use migrun::observer::{Level, LogEvent};
use migrun::printable::printable;

/// How many examples of a repeated warning are shown with their fields.
const EXAMPLES: usize = 3;

/// The warnings and errors among `messages`, one line per distinct (unit, message), in the
/// order each first appeared: `! [unit] 400× message — id=12 amount_text="n/a", id=77 …, and
/// 397 more`.
pub fn render_plugin_warnings(out: &mut String, messages: &[LogEvent]) {
    let mut groups: Vec<(&LogEvent, Vec<&LogEvent>)> = Vec::new();
    for m in messages.iter().filter(|m| m.level >= Level::Warn) {
        match groups
            .iter_mut()
            .find(|(first, _)| first.unit == m.unit && first.message == m.message)
        {
            Some((_, all)) => all.push(m),
            None => groups.push((m, vec![m])),
        }
    }
    for (first, all) in groups {
        let unit = first
            .unit
            .as_ref()
            .map(|u| format!("[{}] ", printable(u)))
            .unwrap_or_default();
        let count = if all.len() > 1 {
            format!("{}× ", migrun::plan::thousands(all.len() as u64))
        } else {
            String::new()
        };
        let examples: Vec<String> = all
            .iter()
            .map(|m| fields_text(&m.fields))
            .filter(|f| !f.is_empty())
            .take(EXAMPLES)
            .collect();
        let with_fields = all.iter().filter(|m| !m.fields.is_empty()).count();
        let mut detail = examples.join(", ");
        if with_fields > examples.len() {
            let _ = write!(
                detail,
                ", and {} more",
                migrun::plan::thousands((with_fields - examples.len()) as u64)
            );
        }
        let _ = writeln!(
            out,
            "  ! {unit}{count}{}{}",
            printable(&first.message),
            if detail.is_empty() {
                String::new()
            } else {
                format!(" — {detail}")
            }
        );
    }
}

/// How many of `messages` are warnings or errors.
pub fn plugin_warning_count(messages: &[LogEvent]) -> u64 {
    messages.iter().filter(|m| m.level >= Level::Warn).count() as u64
}

/// `key=value` pairs, a value quoted unless it is one plain word or number (`id=12
/// table=users amount_text="n/a" note="two words"`), so where a value ends is never a guess.
pub fn fields_text(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let plain = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-+:@".contains(c));
            if plain {
                format!("{}={}", printable(k), printable(v))
            } else {
                // Escaped by `printable` as everywhere else, then quoted.
                format!("{}=\"{}\"", printable(k), printable(v).replace('"', "\\\""))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warn(message: &str, fields: &[(&str, &str)]) -> LogEvent {
        LogEvent {
            unit: Some("import".into()),
            level: Level::Warn,
            message: message.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn repeats_are_grouped_with_a_few_examples() {
        let mut messages: Vec<LogEvent> = (0..400)
            .map(|i| {
                warn(
                    "cannot parse amount",
                    &[("id", &i.to_string()), ("amount_text", "n/a")],
                )
            })
            .collect();
        messages.push(warn("once", &[]));
        let mut out = String::new();
        render_plugin_warnings(&mut out, &messages);
        assert_eq!(
            out,
            "  ! [import] 400× cannot parse amount — id=0 amount_text=\"n/a\", id=1 amount_text=\"n/a\", id=2 amount_text=\"n/a\", and 397 more\n  ! [import] once\n"
        );
        assert_eq!(plugin_warning_count(&messages), 401);
    }
}
