//! The host's own, version-independent SQL value and its canonical text forms.
//!
//! Generated WIT types stay at the edge (`contract::v0_1_1`); everything else in
//! the host — the database drivers, reports, later the journal — works with
//! [`Value`]. The canonical text forms defined here are the ones the WIT
//! contract documents: the host produces exactly these when it reads and
//! accepts exactly these when a plugin binds, so a value read on one dialect
//! and written on another survives byte for byte.

use crate::ValueKind;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use uuid::Uuid;

/// One SQL value, typed.
///
/// Invariant: `Decimal` holds a plain (non-exponent) decimal string as
/// produced by [`canonical_decimal`]; `Json` holds text that parses as JSON.
///
/// Equality is identity of what would be written: floats compare by their
/// bits (`NaN` equals the same `NaN`, `-0.0` differs from `0.0`), so a replay
/// that compares a plugin's writes with the recorded ones (and anything else
/// asking "the same value?") sees exactly the difference a database would
/// store — and an array of floats compares as its bytes, at memory speed.
#[derive(Debug, Clone)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A double precision float.
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A JSON document, as text.
    Json(String),
    /// A UUID.
    Uuid(Uuid),
    /// A calendar date.
    Date(NaiveDate),
    /// A time of day without zone.
    Time(NaiveTime),
    /// A date and time without zone.
    Timestamp(NaiveDateTime),
    /// An instant, in UTC.
    Timestamptz(DateTime<Utc>),
    /// An exact decimal in plain notation.
    Decimal(String),
    /// A list of 32-bit floats (embeddings).
    Float32Array(Arc<Vec<f32>>),
    /// A list of texts.
    TextArray(Vec<String>),
    /// A value of a type the host does not model (`sparsevec`, `ltree`,
    /// `tstzrange`, `interval`, PostGIS `geometry`, …), carried unchanged in
    /// PostgreSQL's binary form (the type's `send`/`recv` format), tagged with
    /// the type's name as the reading connection reported it.
    ///
    /// Only PostgreSQL produces and accepts these: a typed value is written
    /// only into a column (or parameter) of the type its name resolves to on
    /// the writing connection, never into another type or another dialect.
    /// Contract 0.2.0 hands it to plugins as `typed`; 0.1.x plugins get the
    /// error they always got for such a column (a cast is needed).
    Typed {
        /// The type's name (`ltree`, `interval`, `sparsevec`, `int8[]`), resolved
        /// with `to_regtype` on the writing connection.
        type_name: String,
        /// The value in the type's binary form.
        bytes: Vec<u8>,
    },
}

/// A value given in a canonical text form that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} value {text:?}: expected {expected}")]
pub struct ValueParseError {
    /// The value kind (`date`, `uuid`, …).
    pub kind: &'static str,
    /// The text that was given.
    pub text: String,
    /// The form that was expected.
    pub expected: &'static str,
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Text(a), Text(b)) | (Json(a), Json(b)) | (Decimal(a), Decimal(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Uuid(a), Uuid(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Time(a), Time(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Timestamptz(a), Timestamptz(b)) => a == b,
            (Float32Array(a), Float32Array(b)) => same_bits(a, b),
            (TextArray(a), TextArray(b)) => a == b,
            (
                Typed {
                    type_name: a,
                    bytes: x,
                },
                Typed {
                    type_name: b,
                    bytes: y,
                },
            ) => a == b && x == y,
            _ => false,
        }
    }
}

/// Bit equality is an equivalence relation (see [`Value`]'s equality).
impl Eq for Value {}

/// Whether two slices of floats hold the same bits. Chunked so that the inner
/// fold (no early exit) vectorizes: this compares at memory speed.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.chunks(64).zip(b.chunks(64)).all(|(x, y)| {
            x.iter()
                .zip(y)
                .fold(0u32, |diff, (p, q)| diff | (p.to_bits() ^ q.to_bits()))
                == 0
        })
}

impl Value {
    /// Roughly the memory this value holds: its own size plus what it points to.
    /// Used to bound memory by bytes (the journal writer's in-flight budget).
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.len(),
                Value::Bytes(b) => b.len(),
                Value::Float32Array(v) => v.len() * 4,
                Value::TextArray(v) => v.iter().map(|s| s.len() + 24).sum(),
                Value::Typed { type_name, bytes } => type_name.len() + bytes.len(),
                _ => 0,
            }
    }
}

impl Value {
    /// Which case of the WIT `value` variant this is.
    pub fn value_kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Boolean,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Text(_) => ValueKind::Text,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Json(_) => ValueKind::Json,
            Value::Uuid(_) => ValueKind::Uuid,
            Value::Date(_) => ValueKind::Date,
            Value::Time(_) => ValueKind::Time,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::Timestamptz(_) => ValueKind::Timestamptz,
            Value::Decimal(_) => ValueKind::Decimal,
            Value::Float32Array(_) => ValueKind::Float32Array,
            Value::TextArray(_) => ValueKind::TextArray,
            Value::Typed { .. } => ValueKind::Typed,
        }
    }

    /// The kind's name as the WIT spells it (`int`, `timestamptz`, …), for messages.
    pub fn kind(&self) -> &'static str {
        self.value_kind().as_str()
    }

    /// Parses a uuid from its text form (any case, hyphenated or not).
    pub fn parse_uuid(text: &str) -> Result<Value, ValueParseError> {
        Uuid::from_str(text)
            .map(Value::Uuid)
            .map_err(|_| ValueParseError {
                kind: "uuid",
                text: text.to_owned(),
                expected: "a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8",
            })
    }

    /// Parses a date from `YYYY-MM-DD`.
    pub fn parse_date(text: &str) -> Result<Value, ValueParseError> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Value::Date)
            .map_err(|_| ValueParseError {
                kind: "date",
                text: text.to_owned(),
                expected: "YYYY-MM-DD",
            })
    }

    /// Parses a time from `HH:MM:SS[.fraction]`.
    pub fn parse_time(text: &str) -> Result<Value, ValueParseError> {
        NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
            .map(Value::Time)
            .map_err(|_| ValueParseError {
                kind: "time",
                text: text.to_owned(),
                expected: "HH:MM:SS or HH:MM:SS.ffffff",
            })
    }

    /// Parses a zone-less timestamp from `YYYY-MM-DDTHH:MM:SS[.fraction]` (a space instead of `T` is accepted).
    pub fn parse_timestamp(text: &str) -> Result<Value, ValueParseError> {
        let normalized = text.replacen(' ', "T", 1);
        NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M:%S%.f")
            .map(Value::Timestamp)
            .map_err(|_| ValueParseError {
                kind: "timestamp",
                text: text.to_owned(),
                expected: "YYYY-MM-DDTHH:MM:SS[.ffffff]",
            })
    }

    /// Parses an instant from RFC 3339 (`…Z` or `…+02:00`); it is normalised to UTC.
    pub fn parse_timestamptz(text: &str) -> Result<Value, ValueParseError> {
        let normalized = text.replacen(' ', "T", 1);
        DateTime::parse_from_rfc3339(&normalized)
            .map(|t| Value::Timestamptz(t.with_timezone(&Utc)))
            .map_err(|_| ValueParseError {
                kind: "timestamptz",
                text: text.to_owned(),
                expected: "YYYY-MM-DDTHH:MM:SS[.ffffff]Z or with an offset such as +02:00",
            })
    }

    /// Parses an exact decimal; the result is kept in canonical plain notation.
    ///
    /// The plain notation must stay within PostgreSQL's `numeric` range (see
    /// [`decimal_fits`]): `1e9223372036854775807` is valid exponent notation
    /// whose plain text would not fit in memory.
    pub fn parse_decimal(text: &str) -> Result<Value, ValueParseError> {
        BigDecimal::from_str(text.trim())
            .ok()
            .filter(decimal_fits)
            .map(|d| Value::Decimal(canonical_decimal(&d)))
            .ok_or_else(|| ValueParseError {
                kind: "decimal",
                text: text.to_owned(),
                expected: "a decimal number such as -12.3400, with at most 131072 digits \
                           before the point and 16383 after",
            })
    }

    /// Checks that a JSON text parses.
    pub fn parse_json(text: String) -> Result<Value, ValueParseError> {
        match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            Ok(_) => Ok(Value::Json(text)),
            Err(_) => Err(ValueParseError {
                kind: "json",
                text,
                expected: "a JSON document",
            }),
        }
    }

    /// The canonical text of the value, as the WIT contract documents it; `None` for NULL.
    ///
    /// Bytes render as lowercase hex, arrays as JSON, a typed value as
    /// `<type name>:<hex of its binary form>` (for messages and reports: no
    /// driver writes a typed value as text). This is also the form the
    /// drivers use where a dialect has no native type (SQLite dates).
    pub fn canonical_text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.clone(),
            Value::Bytes(b) => hex::encode(b),
            Value::Uuid(u) => u.hyphenated().to_string(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Time(t) => format_time(t),
            Value::Timestamp(t) => format_timestamp(t),
            Value::Timestamptz(t) => format!("{}Z", format_timestamp(&t.naive_utc())),
            Value::Float32Array(v) => float32_array_json(v),
            Value::TextArray(v) => serde_json::to_string(v).expect("strings serialize"),
            Value::Typed { type_name, bytes } => format!("{type_name}:{}", hex::encode(bytes)),
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.canonical_text() {
            None => f.write_str("NULL"),
            Some(text) => f.write_str(&text),
        }
    }
}

/// Journal form: `["kind", "text"]` (`["null"]` for NULL). The text is the
/// canonical text, except for the two bulky kinds: bytes and float32 arrays
/// are base64 (a float32 array of its little-endian IEEE bits), which is
/// exact to the bit and a fraction of the size and encoding time of decimal
/// text — embeddings dominate big journals. Text, not JSON numbers, so that
/// NaN, infinities and 64-bit integers survive exactly; the hash chain covers
/// these bytes. A typed value is `["typed", "<type name>", "<base64 of its
/// binary form>"]`.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        if let Value::Typed { type_name, bytes } = self {
            use base64::Engine as _;
            let mut seq = serializer.serialize_seq(Some(3))?;
            seq.serialize_element(self.kind())?;
            seq.serialize_element(type_name)?;
            seq.serialize_element(&base64::engine::general_purpose::STANDARD.encode(bytes))?;
            return seq.end();
        }
        let text = self.journal_text();
        let mut seq = serializer.serialize_seq(Some(if text.is_some() { 2 } else { 1 }))?;
        seq.serialize_element(self.kind())?;
        if let Some(text) = text {
            seq.serialize_element(&text)?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let parts: Vec<String> = Vec::deserialize(deserializer)?;
        let (kind, text) = match parts.as_slice() {
            [kind] if kind == "null" => return Ok(Value::Null),
            [kind, text] => (kind.as_str(), text.as_str()),
            [kind, type_name, data] if kind == "typed" => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| D::Error::custom(format!("invalid typed {type_name:?}: {e}")))?;
                return Ok(Value::Typed {
                    type_name: type_name.clone(),
                    bytes,
                });
            }
            _ => {
                return Err(D::Error::custom(
                    "a value is [kind], [kind, text] or [\"typed\", type name, base64]",
                ));
            }
        };
        Value::from_journal(kind, text).map_err(D::Error::custom)
    }
}

impl Value {
    /// The text of the value's journal form (see the `Serialize` impl).
    fn journal_text(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Value::Bytes(b) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Float32Array(v) => {
                let mut bytes = Vec::with_capacity(v.len() * 4);
                for f in v.iter() {
                    bytes.extend_from_slice(&f.to_bits().to_le_bytes());
                }
                Some(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            other => other.canonical_text(),
        }
    }

    /// Rebuilds a value from its kind name and journal text (the inverse of the `Serialize` impl).
    fn from_journal(kind: &str, text: &str) -> Result<Value, String> {
        use base64::Engine as _;
        let decode = |t: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|e| format!("invalid {kind} {t:?}: {e}"))
        };
        match kind {
            "bytes" => Ok(Value::Bytes(decode(text)?)),
            "float32-array" => {
                let bytes = decode(text)?;
                if bytes.len() % 4 != 0 {
                    return Err(format!(
                        "invalid float32-array: {} bytes is not a multiple of 4",
                        bytes.len()
                    ));
                }
                Ok(Value::Float32Array(Arc::new(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_bits(u32::from_le_bytes(c.try_into().expect("4 bytes"))))
                        .collect(),
                )))
            }
            _ => Value::from_kind_and_text(kind, text),
        }
    }

    /// Rebuilds a value from its kind name and canonical text (the inverse of
    /// [`Value::kind`] + [`Value::canonical_text`]).
    pub fn from_kind_and_text(kind: &str, text: &str) -> Result<Value, String> {
        let bad = |e: &dyn fmt::Display| format!("invalid {kind} {text:?}: {e}");
        Ok(match kind {
            "boolean" => Value::Bool(text.parse().map_err(|e| bad(&e))?),
            "int" => Value::Int(text.parse().map_err(|e| bad(&e))?),
            "float" => Value::Float(match text {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                t => t.parse().map_err(|e| bad(&e))?,
            }),
            "text" => Value::Text(text.to_owned()),
            "bytes" => Value::Bytes(hex::decode(text).map_err(|e| bad(&e))?),
            "json" => Value::Json(text.to_owned()),
            "uuid" => Value::parse_uuid(text).map_err(|e| e.to_string())?,
            "date" => Value::parse_date(text).map_err(|e| e.to_string())?,
            "time" => Value::parse_time(text).map_err(|e| e.to_string())?,
            "timestamp" => Value::parse_timestamp(text).map_err(|e| e.to_string())?,
            "timestamptz" => Value::parse_timestamptz(text).map_err(|e| e.to_string())?,
            "decimal" => Value::Decimal(text.to_owned()),
            "float32-array" => {
                let inner = text
                    .strip_prefix('[')
                    .and_then(|t| t.strip_suffix(']'))
                    .ok_or_else(|| bad(&"expected [..]"))?;
                let mut out = Vec::new();
                for item in inner.split(',').filter(|i| !i.is_empty()) {
                    out.push(item.parse::<f32>().map_err(|e| bad(&e))?);
                }
                Value::Float32Array(Arc::new(out))
            }
            "text-array" => Value::TextArray(serde_json::from_str(text).map_err(|e| bad(&e))?),
            "typed" => {
                let (type_name, data) = text
                    .rsplit_once(':')
                    .ok_or_else(|| bad(&"expected <type name>:<hex>"))?;
                Value::Typed {
                    type_name: type_name.to_owned(),
                    bytes: hex::decode(data).map_err(|e| bad(&e))?,
                }
            }
            other => return Err(format!("unknown value kind {other:?}")),
        })
    }
}

/// Digits a decimal may have before the point and after it: PostgreSQL's
/// `numeric` limits, the widest of the three dialects (MariaDB stops at 65).
pub const DECIMAL_MAX_INTEGER_DIGITS: i64 = 131_072;
/// See [`DECIMAL_MAX_INTEGER_DIGITS`].
pub const DECIMAL_MAX_FRACTION_DIGITS: i64 = 16_383;

/// Whether `d`'s plain notation stays within [`DECIMAL_MAX_INTEGER_DIGITS`]
/// and [`DECIMAL_MAX_FRACTION_DIGITS`]. Exponent notation parses into a
/// decimal of any scale; writing its plain text (which [`canonical_decimal`]
/// does) must be bounded, or `1e999999999999` would exhaust the host's memory.
pub fn decimal_fits(d: &BigDecimal) -> bool {
    let (_, exponent) = d.as_bigint_and_exponent();
    let digits = i64::try_from(d.digits()).unwrap_or(i64::MAX);
    exponent <= DECIMAL_MAX_FRACTION_DIGITS
        && digits.saturating_sub(exponent) <= DECIMAL_MAX_INTEGER_DIGITS
}

/// Plain-notation text of a decimal, keeping its scale (`1.50` stays `1.50`).
/// Callers with untrusted input check [`decimal_fits`] first.
pub fn canonical_decimal(d: &BigDecimal) -> String {
    d.to_plain_string()
}

/// Shortest text that parses back to the same f64 (`NaN`, `Infinity`, `-Infinity` for the specials).
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        // Rust's Display for floats is the shortest round-trip representation.
        format!("{f}")
    }
}

/// `HH:MM:SS`, with `.ffffff` when there is a sub-second part (nine digits if it is finer than microseconds).
pub fn format_time(t: &NaiveTime) -> String {
    let mut base = String::with_capacity(18);
    push_time(&mut base, t.hour(), t.minute(), t.second(), t.nanosecond());
    with_fraction(base, t.nanosecond())
}

/// `YYYY-MM-DDTHH:MM:SS`, with a fraction as in [`format_time`].
///
/// Written field by field (this runs for every timestamp a plugin reads or writes;
/// chrono's `format` parses its pattern on each call): the same text as
/// `%Y-%m-%dT%H:%M:%S`, which years outside 0–9999 (signed, wider) still go through.
pub fn format_timestamp(t: &NaiveDateTime) -> String {
    use chrono::Datelike;
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
        return with_fraction(base, t.nanosecond());
    }
    let mut base = String::with_capacity(29);
    push_digits(&mut base, year as u32, 4);
    base.push('-');
    push_digits(&mut base, t.month(), 2);
    base.push('-');
    push_digits(&mut base, t.day(), 2);
    base.push('T');
    push_time(&mut base, t.hour(), t.minute(), t.second(), t.nanosecond());
    with_fraction(base, t.nanosecond())
}

/// `HH:MM:SS`; a leap second (chrono's nanos ≥ 1e9) is second 60, as `%S` prints it.
fn push_time(out: &mut String, hour: u32, minute: u32, second: u32, nanos: u32) {
    push_digits(out, hour, 2);
    out.push(':');
    push_digits(out, minute, 2);
    out.push(':');
    push_digits(out, second + u32::from(nanos >= 1_000_000_000), 2);
}

/// `n` in decimal, zero-padded to `width` digits (`n` has at most `width` digits).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(place) % 10) as u8));
    }
}

fn with_fraction(mut base: String, nanos: u32) -> String {
    // chrono represents a leap second as nanos >= 1e9, and `%S` already prints
    // it as `60`: the fraction is what lies beyond the second. (Printing the
    // raw nanos gave `60.1000000` for `60.0`, which parsed back as 60.1 s —
    // found by the `value_decoding` fuzz target.)
    let nanos = nanos % 1_000_000_000;
    if nanos == 0 {
        return base;
    }
    if nanos.is_multiple_of(1000) {
        base.push_str(&format!(".{:06}", nanos / 1000));
    } else {
        base.push_str(&format!(".{nanos:09}"));
    }
    base
}

/// A float32 list as a JSON array of shortest round-trip numbers.
pub fn float32_array_json(v: &[f32]) -> String {
    let mut out = String::with_capacity(v.len() * 10 + 2);
    out.push('[');
    for (i, f) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{f}"));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_times_are_written_as_chrono_formats_them() {
        let times = [
            NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap(),
            NaiveTime::from_hms_nano_opt(7, 8, 9, 1).unwrap(),
            NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap(), // leap second
        ];
        let days = [
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            NaiveDate::from_ymd_opt(1, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(10000, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(-44, 3, 15).unwrap(),
        ];
        for t in times {
            assert_eq!(
                format_time(&t),
                with_fraction(t.format("%H:%M:%S").to_string(), t.nanosecond())
            );
            for d in days {
                let dt = d.and_time(t);
                assert_eq!(
                    format_timestamp(&dt),
                    with_fraction(dt.format("%Y-%m-%dT%H:%M:%S").to_string(), dt.nanosecond()),
                    "{dt:?}"
                );
            }
        }
        assert_eq!(
            format_timestamp(&days[0].and_time(times[3])),
            "2024-02-29T23:59:60.500000"
        );
    }

    /// Found by the `value_decoding` fuzz target: a leap second's fraction was
    /// printed from chrono's raw nanoseconds (≥ 1e9), so `60.0` became `60.1000000`.
    #[test]
    fn leap_seconds_keep_their_canonical_text() {
        for (text, canonical) in [
            ("3:9:60.0", "03:09:60"),
            ("23:59:60.5", "23:59:60.500000"),
            ("23:59:60.000000001", "23:59:60.000000001"),
        ] {
            let value = Value::parse_time(text).unwrap();
            assert_eq!(value.canonical_text().unwrap(), canonical, "{text}");
            let again = Value::parse_time(canonical).unwrap();
            assert_eq!(again.canonical_text().unwrap(), canonical, "{text}");
        }
        let ts = Value::parse_timestamp("2016-12-31T23:59:60.25").unwrap();
        assert_eq!(ts.canonical_text().unwrap(), "2016-12-31T23:59:60.250000");
    }

    /// Found by the `value_decoding` fuzz target: exponent notation made the
    /// plain text of a decimal unbounded (an allocation abort in the host).
    #[test]
    fn decimals_beyond_numeric_range_are_refused_not_expanded() {
        for text in [
            "1e9223372036854775807",
            "1e-9223372036854775807",
            "1e131072",
            "1e-16384",
        ] {
            let err = Value::parse_decimal(text).unwrap_err();
            assert!(
                err.to_string().contains("at most 131072 digits"),
                "{text}: {err}"
            );
        }
        assert_eq!(
            Value::parse_decimal("1e3").unwrap(),
            Value::Decimal("1000".into())
        );
        assert!(Value::parse_decimal("1e131071").is_ok());
        assert!(Value::parse_decimal("1e-16383").is_ok());
    }

    #[test]
    fn canonical_forms_round_trip() {
        let cases = [
            Value::parse_date("2024-02-29").unwrap(),
            Value::parse_time("23:59:59.123456").unwrap(),
            Value::parse_timestamp("1999-12-31T23:59:59").unwrap(),
            Value::parse_timestamptz("2024-01-01T00:00:00.5+02:00").unwrap(),
            Value::parse_decimal("-12.3400").unwrap(),
            Value::parse_uuid("67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap(),
        ];
        let texts: Vec<String> = cases.iter().map(|v| v.canonical_text().unwrap()).collect();
        assert_eq!(
            texts,
            [
                "2024-02-29",
                "23:59:59.123456",
                "1999-12-31T23:59:59",
                "2023-12-31T22:00:00.500000Z",
                "-12.3400",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
            ]
        );
    }

    #[test]
    fn floats_are_shortest_round_trip() {
        for f in [0.1, -0.0, 1e300, f64::MIN_POSITIVE, 123456789.125] {
            assert_eq!(
                format_float(f).parse::<f64>().unwrap().to_bits(),
                f.to_bits()
            );
        }
        assert_eq!(format_float(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn values_are_equal_when_their_bits_are() {
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert_ne!(Value::Float(1.0), Value::Int(1));
        let embedding: Vec<f32> = (0..1536).map(|i| i as f32 / 3.0).collect();
        let mut other = embedding.clone();
        assert_eq!(
            Value::Float32Array(embedding.clone().into()),
            Value::Float32Array(other.clone().into())
        );
        other[1535] = f32::from_bits(other[1535].to_bits() ^ 1);
        assert_ne!(
            Value::Float32Array(embedding.clone().into()),
            Value::Float32Array(other.into())
        );
        assert_ne!(
            Value::Float32Array(embedding.clone().into()),
            Value::Float32Array(embedding[..1535].to_vec().into())
        );
        assert_eq!(
            Value::Float32Array(vec![f32::NAN, -0.0].into()),
            Value::Float32Array(vec![f32::NAN, -0.0].into())
        );
        assert_ne!(
            Value::Float32Array(vec![0.0].into()),
            Value::Float32Array(vec![-0.0].into())
        );
    }

    #[test]
    fn journal_form_round_trips_every_kind_exactly() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(0.1),
            Value::Text("tab\t \"quoted\" ünïcode".into()),
            Value::Bytes(vec![0, 255, 16]),
            Value::Json(r#"{"a":[1,2]}"#.into()),
            Value::parse_uuid("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap(),
            Value::parse_date("0001-01-01").unwrap(),
            Value::parse_time("00:00:00.000001").unwrap(),
            Value::parse_timestamp("9999-12-31T23:59:59.999999").unwrap(),
            Value::parse_timestamptz("2024-06-01T12:00:00+00:00").unwrap(),
            Value::Decimal("-123456789012345678901234567890.0100".into()),
            Value::Float32Array(
                vec![
                    0.1,
                    -3.5e-38,
                    f32::INFINITY,
                    16777217.0,
                    -0.0,
                    f32::from_bits(1),
                ]
                .into(),
            ),
            Value::Bytes(Vec::new()),
            Value::TextArray(vec!["read".into(), "write,admin".into(), String::new()]),
            Value::Typed {
                type_name: "interval".into(),
                bytes: vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
            },
            Value::Typed {
                type_name: "public.ltree".into(),
                bytes: Vec::new(),
            },
        ];
        let json = serde_json::to_string(&values).unwrap();
        let back: Vec<Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), values.len());
        for (a, b) in values.iter().zip(&back) {
            match (a, b) {
                (Value::Float(x), Value::Float(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn typed_values_have_a_journal_form_and_a_canonical_text() {
        let value = Value::Typed {
            type_name: "sparsevec".into(),
            bytes: vec![0, 0, 0, 5, 255],
        };
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"["typed","sparsevec","AAAABf8="]"#
        );
        let text = value.canonical_text().unwrap();
        assert_eq!(text, "sparsevec:00000005ff");
        assert_eq!(Value::from_kind_and_text("typed", &text).unwrap(), value);
        assert_eq!(value.kind(), "typed");
        let bad: Result<Value, _> = serde_json::from_str(r#"["typed","x","not base64!"]"#);
        assert!(bad.unwrap_err().to_string().contains("invalid typed \"x\""));
    }

    #[test]
    fn bad_text_names_kind_and_form() {
        let err = Value::parse_date("2024-13-01").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid date value \"2024-13-01\": expected YYYY-MM-DD"
        );
        assert!(Value::parse_json("{not json".into()).is_err());
        assert_eq!(
            Value::parse_decimal("1e3").unwrap(),
            Value::Decimal("1000".into())
        );
    }
}
