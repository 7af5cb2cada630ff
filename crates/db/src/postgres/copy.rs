//! PostgreSQL `COPY`: the catalog query for a table's columns, binary rows
//! where every value's binary form is known, text rows otherwise; pgvector
//! columns (a float32 array checked against the column's dimensions, and for
//! `halfvec` against binary16's range) and typed values (their own binary
//! form, into a column of their type only).

use chrono::{DateTime, NaiveDateTime, Timelike};

use super::encode::{pg_epoch_date, timestamp_micros};
use super::oid;
use super::types::TypeCache;
use crate::widen_f32;
use migrun_types::value::{Value, format_float};

// ---------------------------------------------------------------------------

/// The catalog query the bulk insert reads: for each column of a table, its
/// name, its type's oid, kind and receive function, a domain resolved to its
/// base type (one level; a domain over a domain stays unknown, so the text
/// format is used); then the type modifier (pgvector's dimensions), the
/// column's own type oid (a domain's) and its type as SQL prints it.
pub(crate) const COPY_COLUMNS_SQL: &str = "SELECT a.attname::text, \
     (CASE WHEN t.typtype = 'd' THEN b.oid ELSE t.oid END)::int8, \
     (CASE WHEN t.typtype = 'd' THEN b.typtype ELSE t.typtype END)::text, \
     (CASE WHEN t.typtype = 'd' THEN b.typreceive ELSE t.typreceive END)::regproc::text, \
     (CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END)::int8, \
     t.oid::int8, format_type(a.atttypid, a.atttypmod) \
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
     LEFT JOIN pg_type b ON b.oid = t.typbasetype \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped";

/// How one target column is written in `COPY … (FORMAT binary)`, by its type.
///
/// Only pairs of (column type, value kind) whose binary form stores exactly
/// what the text form would are encoded ([`copy_binary_supported`]); for
/// anything else the whole call uses the text format, so that the server
/// parses (and, for bad input, rejects) the value as it always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyColumn {
    Bool,
    Int2,
    Int4,
    Int8,
    Float8,
    /// `numeric` (`numeric_recv` applies the column's precision and scale as input does).
    Numeric,
    /// `text`, `varchar`, `bpchar` (the receive functions apply the length modifier as input does).
    Text,
    Bytea,
    Json,
    Jsonb,
    Uuid,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Float4Array,
    TextArray,
    /// The `ltree` extension's type (`ltree_recv`: a version byte, then the text form).
    Ltree,
    /// `tstzrange`, from the canonical text PostgreSQL prints (`["2024-01-01 00:00:00+00",)`).
    Tstzrange,
    /// pgvector `vector(n)` (`None`: any dimensions), from a float32 array.
    Vector(Option<u32>),
    /// pgvector `halfvec(n)`, from a float32 array rounded to binary16.
    Halfvec(Option<u32>),
    /// Anything else: the text format is used.
    Other,
}

const TSTZRANGE: u32 = 3910;

/// The binary encoding of a column from its base type's oid, receive function
/// and type modifier.
pub(crate) fn copy_column(type_oid: u32, receive: &str, typmod: i64) -> CopyColumn {
    let receive = receive.rsplit('.').next().unwrap_or(receive);
    let dims = u32::try_from(typmod).ok().filter(|d| *d > 0);
    match type_oid {
        oid::BOOL => CopyColumn::Bool,
        oid::INT2 => CopyColumn::Int2,
        oid::INT4 => CopyColumn::Int4,
        oid::INT8 => CopyColumn::Int8,
        oid::FLOAT8 => CopyColumn::Float8,
        oid::NUMERIC => CopyColumn::Numeric,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR => CopyColumn::Text,
        oid::BYTEA => CopyColumn::Bytea,
        oid::JSON => CopyColumn::Json,
        oid::JSONB => CopyColumn::Jsonb,
        oid::UUID => CopyColumn::Uuid,
        oid::DATE => CopyColumn::Date,
        oid::TIME => CopyColumn::Time,
        oid::TIMESTAMP => CopyColumn::Timestamp,
        oid::TIMESTAMPTZ => CopyColumn::Timestamptz,
        oid::FLOAT4_ARRAY => CopyColumn::Float4Array,
        oid::TEXT_ARRAY => CopyColumn::TextArray,
        TSTZRANGE => CopyColumn::Tstzrange,
        _ if receive == "ltree_recv" => CopyColumn::Ltree,
        _ if receive == "vector_recv" => CopyColumn::Vector(dims),
        _ if receive == "halfvec_recv" => CopyColumn::Halfvec(dims),
        _ => CopyColumn::Other,
    }
}

/// Whether `value` can go into a `column` in binary format with exactly the
/// result the text format gives; `false` sends the whole call as text.
pub(crate) fn copy_binary_supported(column: CopyColumn, value: &Value) -> bool {
    let whole_micros = |nanos: u32| nanos.is_multiple_of(1000);
    match (column, value) {
        (_, Value::Null) => true,
        (CopyColumn::Bool, Value::Bool(_)) => true,
        (CopyColumn::Int2, Value::Int(i)) => i16::try_from(*i).is_ok(),
        (CopyColumn::Int4, Value::Int(i)) => i32::try_from(*i).is_ok(),
        (CopyColumn::Int8, Value::Int(_)) => true,
        (CopyColumn::Float8, Value::Float(_)) => true,
        // A decimal the binary form cannot hold (NaN, too many digits) goes as text, where
        // the server says what is wrong with it.
        (CopyColumn::Numeric, Value::Decimal(s)) => super::encode::encode_numeric(s).is_ok(),
        // A NUL is rejected by the text format; let the server say so.
        (CopyColumn::Text | CopyColumn::Ltree, Value::Text(s)) => !s.contains('\0'),
        (CopyColumn::Json | CopyColumn::Jsonb, Value::Json(s) | Value::Text(s)) => {
            !s.contains('\0')
        }
        (CopyColumn::Bytea, Value::Bytes(_)) => true,
        (CopyColumn::Uuid, Value::Uuid(_)) => true,
        (CopyColumn::Date, Value::Date(d)) => i32::try_from((*d - pg_epoch_date()).num_days())
            .is_ok_and(|days| days != i32::MAX && days != i32::MIN),
        // The server rounds sub-microseconds in text; binary would floor them.
        (CopyColumn::Time, Value::Time(t)) => whole_micros(t.nanosecond()),
        (CopyColumn::Timestamp, Value::Timestamp(t)) => {
            whole_micros(t.nanosecond()) && timestamp_micros(t).is_ok()
        }
        (CopyColumn::Timestamptz, Value::Timestamptz(t)) => {
            whole_micros(t.nanosecond()) && timestamp_micros(&t.naive_utc()).is_ok()
        }
        (CopyColumn::Float4Array, Value::Float32Array(_)) => true,
        (CopyColumn::TextArray, Value::TextArray(v)) => v.iter().all(|s| !s.contains('\0')),
        (CopyColumn::Tstzrange, Value::Text(s)) => parse_tstzrange(s).is_some(),
        (CopyColumn::Vector(_) | CopyColumn::Halfvec(_), Value::Float32Array(_)) => true,
        // Checked against the column's type by the caller (`typed_into_column`).
        (_, Value::Typed { .. }) => true,
        _ => false,
    }
}

/// Why `value` cannot go into a pgvector `column` as pgvector's input would
/// refuse it: dimensions other than the column's, and for `halfvec` a NaN, an
/// infinity or a float beyond binary16's range. `None` for every other pair.
pub(crate) fn vector_value_error(column: CopyColumn, value: &Value) -> Option<String> {
    let Value::Float32Array(v) = value else {
        return None;
    };
    let (dims, half) = match column {
        CopyColumn::Vector(dims) => (dims, false),
        CopyColumn::Halfvec(dims) => (dims, true),
        _ => return None,
    };
    if let Some(dims) = dims
        && v.len() != dims as usize
    {
        return Some(format!("expected {dims} dimensions, not {}", v.len()));
    }
    if v.is_empty() || v.len() > 16_000 {
        return Some(format!("{} dimensions: pgvector takes 1 to 16000", v.len()));
    }
    if half {
        return super::types::halfvec_element_error(v);
    }
    None
}

/// The 19-byte header of a binary `COPY` stream (signature, flags, no extension).
pub(crate) const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The trailer of a binary `COPY` stream.
pub(crate) const COPY_BINARY_TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Appends one row in binary `COPY` format. Every (column, value) pair must
/// have passed [`copy_binary_supported`] (and [`vector_value_error`]); every
/// typed value's type is resolved in `types`.
pub(crate) fn copy_binary_row(
    columns: &[CopyColumn],
    row: &[Value],
    types: &TypeCache,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&(row.len() as i16).to_be_bytes());
    for (column, value) in columns.iter().zip(row) {
        copy_binary_value(*column, value, types, out);
    }
}

/// Appends a field of `len` bytes written by `write`, length first.
fn field(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn copy_binary_value(column: CopyColumn, value: &Value, types: &TypeCache, out: &mut Vec<u8>) {
    let put = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    match (column, value) {
        (_, Value::Null) => out.extend_from_slice(&(-1i32).to_be_bytes()),
        (_, Value::Bool(b)) => put(out, &[u8::from(*b)]),
        (CopyColumn::Int2, Value::Int(i)) => put(out, &(*i as i16).to_be_bytes()),
        (CopyColumn::Int4, Value::Int(i)) => put(out, &(*i as i32).to_be_bytes()),
        (_, Value::Int(i)) => put(out, &i.to_be_bytes()),
        (_, Value::Float(f)) => put(out, &f.to_be_bytes()),
        (CopyColumn::Ltree | CopyColumn::Jsonb, Value::Text(s) | Value::Json(s)) => {
            field(out, |out| {
                out.push(1); // format version
                out.extend_from_slice(s.as_bytes());
            });
        }
        (CopyColumn::Tstzrange, Value::Text(s)) => {
            let range = parse_tstzrange(s).expect("checked by copy_binary_supported");
            field(out, |out| range.encode(out));
        }
        (_, Value::Text(s) | Value::Json(s)) => put(out, s.as_bytes()),
        (_, Value::Bytes(b)) => put(out, b),
        (_, Value::Uuid(u)) => put(out, u.as_bytes()),
        (_, Value::Date(d)) => {
            let days = (*d - pg_epoch_date()).num_days() as i32;
            put(out, &days.to_be_bytes());
        }
        (_, Value::Time(t)) => {
            let micros = i64::from(t.num_seconds_from_midnight()) * 1_000_000
                + i64::from(t.nanosecond() / 1000);
            put(out, &micros.to_be_bytes());
        }
        (_, Value::Timestamp(t)) => put(out, &checked_micros(t).to_be_bytes()),
        (_, Value::Timestamptz(t)) => put(out, &checked_micros(&t.naive_utc()).to_be_bytes()),
        (CopyColumn::Vector(_), Value::Float32Array(v)) => {
            field(out, |out| super::types::encode_vector(v, out))
        }
        (CopyColumn::Halfvec(_), Value::Float32Array(v)) => {
            field(out, |out| super::types::encode_halfvec(v, out))
        }
        (_, Value::Typed { type_name, bytes }) => {
            let ty = types
                .get(type_name)
                .expect("typed values are resolved before the COPY");
            put(out, &super::types::typed_bytes(ty, bytes));
        }
        (_, Value::Float32Array(v)) => field(out, |out| {
            array_header(oid::FLOAT4, v.len(), out);
            // Each element is its length (4) and its bytes, written into one resize.
            let at = out.len();
            out.resize(at + v.len() * 8, 0);
            for (element, f) in out[at..].chunks_exact_mut(8).zip(v.iter()) {
                // The text format stores every NaN as the canonical one.
                let f = if f.is_nan() { f32::NAN } else { *f };
                element[..4].copy_from_slice(&4i32.to_be_bytes());
                element[4..].copy_from_slice(&f.to_be_bytes());
            }
        }),
        (_, Value::TextArray(v)) => field(out, |out| {
            array_header(oid::TEXT, v.len(), out);
            for s in v {
                put(out, s.as_bytes());
            }
        }),
        (_, Value::Decimal(s)) => put(
            out,
            &super::encode::encode_numeric(s).expect("checked by copy_binary_supported"),
        ),
    }
}

fn checked_micros(t: &NaiveDateTime) -> i64 {
    timestamp_micros(t).expect("checked by copy_binary_supported")
}

/// The header of a one-dimensional array of `len` elements (none NULL), lower bound 1.
fn array_header(elem_oid: u32, len: usize, out: &mut Vec<u8>) {
    let ndim: i32 = if len == 0 { 0 } else { 1 };
    out.extend_from_slice(&ndim.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&elem_oid.to_be_bytes());
    if len > 0 {
        out.extend_from_slice(&(len as i32).to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
    }
}

/// A `tstzrange` parsed from the text PostgreSQL prints for one.
#[derive(Debug, PartialEq)]
struct TstzRange {
    /// `None`: empty.
    bounds: Option<(RangeBound, RangeBound)>,
}

#[derive(Debug, PartialEq)]
enum RangeBound {
    Unbounded,
    /// Microseconds since 2000-01-01 UTC, and whether the bound is inclusive.
    At(i64, bool),
}

impl TstzRange {
    /// `range_send`: a flags byte, then each finite bound as a length-prefixed `timestamptz`.
    fn encode(&self, out: &mut Vec<u8>) {
        const EMPTY: u8 = 0x01;
        const LB_INC: u8 = 0x02;
        const UB_INC: u8 = 0x04;
        const LB_INF: u8 = 0x08;
        const UB_INF: u8 = 0x10;
        let Some((lower, upper)) = &self.bounds else {
            out.push(EMPTY);
            return;
        };
        let mut flags = 0;
        match lower {
            RangeBound::Unbounded => flags |= LB_INF,
            RangeBound::At(_, true) => flags |= LB_INC,
            RangeBound::At(..) => {}
        }
        match upper {
            RangeBound::Unbounded => flags |= UB_INF,
            RangeBound::At(_, true) => flags |= UB_INC,
            RangeBound::At(..) => {}
        }
        out.push(flags);
        for bound in [lower, upper] {
            if let RangeBound::At(micros, _) = bound {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&micros.to_be_bytes());
            }
        }
    }
}

/// Parses the canonical text of a `tstzrange` (`empty`, or `[`/`(`, two
/// bounds — quoted timestamps with an explicit UTC offset, or nothing for
/// unbounded — and `)`/`]`); `None` for anything else (infinite bounds,
/// BC dates, a missing offset, an inclusive unbounded side), which then
/// goes through the text format and the server's own parser.
fn parse_tstzrange(s: &str) -> Option<TstzRange> {
    if s == "empty" {
        return Some(TstzRange { bounds: None });
    }
    let lower_inc = match s.as_bytes().first()? {
        b'[' => true,
        b'(' => false,
        _ => return None,
    };
    let upper_inc = match s.as_bytes().last()? {
        b']' => true,
        b')' => false,
        _ => return None,
    };
    let inner = s.get(1..s.len() - 1)?;
    let (lower, upper) = inner.split_once(',')?;
    let bound = |text: &str, inclusive: bool| -> Option<RangeBound> {
        if text.is_empty() {
            return (!inclusive).then_some(RangeBound::Unbounded);
        }
        let text = text.strip_prefix('"')?.strip_suffix('"')?;
        if text.contains(['"', '\\', ',']) {
            return None;
        }
        let t = match pg_timestamptz_utc(text) {
            Some(t) => t,
            None => DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
                .ok()?
                .naive_utc(),
        };
        if !t.nanosecond().is_multiple_of(1000) {
            return None;
        }
        Some(RangeBound::At(timestamp_micros(&t).ok()?, inclusive))
    };
    Some(TstzRange {
        bounds: Some((bound(lower, lower_inc)?, bound(upper, upper_inc)?)),
    })
}

/// PostgreSQL's own output of a `timestamptz` (`YYYY-MM-DD HH:MM:SS[.f…]±HH[:MM[:SS]]`,
/// a four-digit year) in UTC, read without chrono's format interpreter, which
/// was most of a range's cost: every row of a seed-001 copy has one range and
/// each is checked, then encoded. `None` for any other spelling (a longer
/// year, `BC`, no offset…), which then goes through chrono's parser — the one
/// this agrees with, as the tests check (and beyond it, an offset with seconds,
/// which PostgreSQL prints for local mean time and chrono refuses).
fn pg_timestamptz_utc(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 22 || [b[4], b[7], b[10], b[13], b[16]] != *b"-- ::" {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(0, 4)?).ok()?,
        digits(5, 7)?,
        digits(8, 10)?,
    )?;
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut at = 19;
    let mut micros = 0;
    if b[at] == b'.' {
        let start = at + 1;
        at = start;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let places = at - start;
        if places == 0 || places > 6 {
            return None;
        }
        micros = digits(start, at)? * 10u32.pow((6 - places) as u32);
    }
    let sign: i64 = match b.get(at)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut offset = i64::from(digits(at + 1, at + 3)?) * 3600;
    at += 3;
    for unit in [60, 1] {
        if b.get(at) != Some(&b':') {
            break;
        }
        offset += i64::from(digits(at + 1, at + 3)?) * unit;
        at += 3;
    }
    if at != b.len() {
        return None;
    }
    date.and_hms_micro_opt(hour, minute, second, micros)?
        .checked_sub_signed(chrono::TimeDelta::seconds(sign * offset))
}

// ---------------------------------------------------------------------------
// COPY … FROM STDIN, text format
// ---------------------------------------------------------------------------

/// Appends one row in `COPY` text format: tab-separated, `\N` for NULL, newline-terminated.
///
/// Every value is written in its canonical text form, which PostgreSQL parses
/// by the column's type: bytes as `\x<hex>`, booleans as `t`/`f`, floats as
/// their shortest round-trip text (`NaN`, `Infinity`), arrays as array
/// literals, a float32 array into a pgvector column as `[…]`. Typed values
/// have no text form here: the caller sends them in binary only.
pub(crate) fn copy_text_row(columns: &[CopyColumn], row: &[Value], out: &mut Vec<u8>) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        let column = columns.get(i).copied().unwrap_or(CopyColumn::Other);
        match value {
            Value::Float32Array(v)
                if matches!(column, CopyColumn::Vector(_) | CopyColumn::Halfvec(_)) =>
            {
                out.push(b'[');
                for (j, f) in v.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(f.to_string().as_bytes());
                }
                out.push(b']');
            }
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
            Value::Bytes(bytes) => {
                out.extend_from_slice(b"\\\\x");
                out.extend_from_slice(hex::encode(bytes).as_bytes());
            }
            Value::Float(f) => out.extend_from_slice(format_float(*f).as_bytes()),
            Value::Float32Array(v) => {
                let elems: Vec<String> = v.iter().map(|f| format_float(widen_f32(*f))).collect();
                copy_escape(&format!("{{{}}}", elems.join(",")), out);
            }
            Value::TextArray(v) => copy_escape(&text_array_literal(v), out),
            other => copy_escape(&other.canonical_text().unwrap_or_default(), out),
        }
    }
    out.push(b'\n');
}

/// A PostgreSQL array literal with every element quoted: `{"a","b \"c\""}`.
fn text_array_literal(v: &[String]) -> String {
    let mut out = String::from("{");
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Escapes a field for `COPY` text format: backslash, tab, newline and carriage return.
fn copy_escape(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode::timestamp_micros;
    use super::*;

    #[test]
    fn copy_rows_escape() {
        let mut out = Vec::new();
        copy_text_row(
            &[],
            &[
                Value::Text("a\tb\nc\\d\re".into()),
                Value::Null,
                Value::Bytes(vec![0, 255]),
                Value::Bool(false),
                Value::TextArray(vec!["x\"y".into(), "b\\s".into(), "".into()]),
                Value::Float32Array(vec![0.1, f32::NAN, f32::NEG_INFINITY].into()),
                Value::Float(f64::INFINITY),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\tb\\nc\\\\d\\re\t\\N\t\\\\x00ff\tf\t{\"x\\\\\"y\",\"b\\\\\\\\s\",\"\"}\t{0.1,NaN,-Infinity}\tInfinity\n"
        );
    }

    #[test]
    fn tstzrange_text_parses_strictly() {
        let at = |s: &str| {
            let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
            timestamp_micros(&t).unwrap()
        };
        assert_eq!(
            parse_tstzrange("[\"2024-01-01 00:01:00+00\",)"),
            Some(TstzRange {
                bounds: Some((
                    RangeBound::At(at("2024-01-01 00:01:00"), true),
                    RangeBound::Unbounded
                ))
            })
        );
        assert_eq!(
            parse_tstzrange("(\"2024-01-01 05:30:00.5+05:30\",\"2024-02-01 00:00:00+00\"]"),
            Some(TstzRange {
                bounds: Some((
                    RangeBound::At(at("2024-01-01 00:00:00") + 500_000, false),
                    RangeBound::At(at("2024-02-01 00:00:00"), true)
                ))
            })
        );
        assert_eq!(parse_tstzrange("empty"), Some(TstzRange { bounds: None }));
        // PostgreSQL's spellings read without chrono's interpreter, as chrono reads them.
        for text in [
            "2024-01-01 00:00:00+00",
            "2024-02-29 23:59:59.999999+00",
            "1999-12-31 23:00:00.5-03",
            "2024-06-30 05:30:00.123+05:30",
            "0001-01-01 00:00:00+00",
        ] {
            let chrono = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
                .unwrap()
                .naive_utc();
            assert_eq!(pg_timestamptz_utc(text), Some(chrono), "{text}");
        }
        // An offset with seconds (a zone's local mean time before 1900), which chrono's
        // `%#z` refuses, is read too.
        assert_eq!(
            pg_timestamptz_utc("1900-01-01 00:00:00+00:19:32"),
            chrono::NaiveDate::from_ymd_opt(1899, 12, 31)
                .unwrap()
                .and_hms_opt(23, 40, 28)
        );
        // Anything else is left to chrono (or refused by both).
        for text in [
            "12024-01-01 00:00:00+00",
            "2024-01-01 00:00:00",
            "2024-01-01 00:00:00 BC",
            "2024-02-30 00:00:00+00",
            "2024-01-01 24:00:00+00",
            "2024-01-01 00:00:00.+00",
            "2024-01-01 00:00:00.1234567+00",
            "2024-01-01 00:00:00+0",
            "2024-01-01T00:00:00+00",
            "2024-01-01 00:00:00+00 ",
        ] {
            assert_eq!(pg_timestamptz_utc(text), None, "{text}");
        }
        for text in [
            "[,)",                              // an inclusive unbounded side
            "[\"infinity\",)",                  // infinite bound
            "[\"2024-01-01 00:00:00\",)",       // no offset: session time zone
            "[\"0044-03-15 00:00:00+00 BC\",)", // BC
            "[2024-01-01,)",                    // unquoted
            "nonsense",
        ] {
            assert_eq!(parse_tstzrange(text), None, "{text}");
        }
        let mut out = Vec::new();
        parse_tstzrange("[\"2000-01-01 00:00:00+00\",)")
            .unwrap()
            .encode(&mut out);
        assert_eq!(out, [0x02 | 0x10, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn binary_copy_row_layout() {
        let mut out = Vec::new();
        copy_binary_row(
            &[
                CopyColumn::Int4,
                CopyColumn::Jsonb,
                CopyColumn::Float4Array,
                CopyColumn::Text,
            ],
            &[
                Value::Int(7),
                Value::Json("{}".into()),
                Value::Float32Array(vec![1.0].into()),
                Value::Null,
            ],
            &TypeCache::default(),
            &mut out,
        );
        let mut expected = vec![0, 4, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 3, 1, b'{', b'}'];
        expected.extend_from_slice(&[0, 0, 0, 28, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 188]);
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0x3f, 0x80, 0, 0]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(out, expected);
        assert!(!copy_binary_supported(
            CopyColumn::Int2,
            &Value::Int(40_000)
        ));
        assert!(!copy_binary_supported(CopyColumn::Text, &Value::Int(1)));
        // A decimal goes into a numeric column as numeric_send's form: 1 group, weight 0,
        // positive, scale 4, then the base-10000 groups 12 and 3400.
        assert_eq!(
            copy_column(oid::NUMERIC, "numeric_recv", -1),
            CopyColumn::Numeric
        );
        let decimal = Value::Decimal("12.3400".into());
        assert!(copy_binary_supported(CopyColumn::Numeric, &decimal));
        let mut numeric = Vec::new();
        copy_binary_value(
            CopyColumn::Numeric,
            &decimal,
            &TypeCache::default(),
            &mut numeric,
        );
        assert_eq!(
            numeric,
            [0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 4, 0, 12, 13, 72]
        );
        // What the binary form cannot hold goes as text, for the server to judge.
        assert!(!copy_binary_supported(
            CopyColumn::Numeric,
            &Value::Decimal("NaN".into())
        ));
        assert!(!copy_binary_supported(CopyColumn::Text, &decimal));
        assert!(!copy_binary_supported(
            CopyColumn::Other,
            &Value::Text("x".into())
        ));
        assert!(copy_binary_supported(CopyColumn::Other, &Value::Null));
    }

    #[test]
    fn pgvector_columns_check_dimensions_and_range() {
        assert_eq!(
            copy_column(1, "public.halfvec_recv", 3),
            CopyColumn::Halfvec(Some(3))
        );
        assert_eq!(copy_column(1, "vector_recv", -1), CopyColumn::Vector(None));
        let three = Value::Float32Array(vec![1.0, 2.0, 3.0].into());
        assert_eq!(
            vector_value_error(CopyColumn::Halfvec(Some(3)), &three),
            None
        );
        assert_eq!(
            vector_value_error(CopyColumn::Vector(Some(4)), &three).as_deref(),
            Some("expected 4 dimensions, not 3")
        );
        let big = Value::Float32Array(vec![1e6].into());
        assert!(vector_value_error(CopyColumn::Vector(None), &big).is_none());
        assert!(
            vector_value_error(CopyColumn::Halfvec(None), &big)
                .unwrap()
                .contains("out of range for type halfvec")
        );
        let mut out = Vec::new();
        copy_binary_row(
            &[CopyColumn::Halfvec(Some(3))],
            std::slice::from_ref(&three),
            &TypeCache::default(),
            &mut out,
        );
        // field count, length 10, then halfvec_send('[1,2,3]')
        assert_eq!(hex::encode(&out), "00010000000a000300003c0040004200");
        let mut text = Vec::new();
        copy_text_row(
            &[CopyColumn::Vector(None)],
            &[Value::Float32Array(vec![0.1, -2.0].into())],
            &mut text,
        );
        assert_eq!(String::from_utf8(text).unwrap(), "[0.1,-2]\n");
    }
}
