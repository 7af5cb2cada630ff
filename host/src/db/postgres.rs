//! PostgreSQL: session setup, parameter encoding, result decoding and `COPY` text.
//!
//! Parameters and results use the binary protocol, encoded and decoded here
//! rather than through sqlx's `Encode`/`Decode` impls, for three reasons:
//! a NULL must be sent with the "unknown" type (oid 0) so the server infers it
//! from context (a NULL typed `text` fails against an integer column); numeric
//! values must keep their scale (`1.50` stays `1.50`); and `infinity` dates or
//! out-of-range values must become errors, not panics.
//!
//! sqlx caches prepared statements by SQL text alone, while PostgreSQL fixes a
//! statement's parameter types when it is parsed. The same SQL bound first
//! with an `int` and later with a NULL (or a text) would reuse a statement
//! whose types no longer match the bytes sent. [`bind`] therefore appends the
//! parameter types to the SQL as a trailing comment, so each type signature gets
//! its own cached statement.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat,
    PgValueRef, Postgres,
};
use sqlx::{Arguments, Column as _, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use super::{Access, DbError, widen_f32};
use crate::value::{Value, canonical_decimal, format_float};

/// Builtin type oids (stable across PostgreSQL versions: see `pg_type.dat`).
mod oid {
    pub const UNKNOWN_PARAM: u32 = 0;
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const NAME_ARRAY: u32 = 1003;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const BPCHAR_ARRAY: u32 = 1014;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Connect options for `url`: application name `migrun` unless the URL sets
/// one, and for read-only access the startup option
/// `default_transaction_read_only=on` so that every transaction of the
/// session, implicit or not, starts read-only.
pub(crate) fn connect_options(url: &str, access: Access) -> Result<PgConnectOptions, DbError> {
    let mut options = PgConnectOptions::from_str(url).map_err(DbError::from)?;
    if options.get_application_name().is_none() {
        options = options.application_name("migrun");
    }
    if access == Access::ReadOnly {
        options = options.options([("default_transaction_read_only", "on")]);
    }
    Ok(options)
}

// ---------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------

/// One parameter, already in PostgreSQL's binary format, with the type oid to declare.
pub(crate) struct PgParam {
    oid: u32,
    bytes: Option<Vec<u8>>,
}

impl sqlx::Type<Postgres> for PgParam {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(oid::UNKNOWN_PARAM))
    }
}

impl sqlx::Encode<'_, Postgres> for PgParam {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match &self.bytes {
            Some(bytes) => {
                buf.extend_from_slice(bytes);
                Ok(sqlx::encode::IsNull::No)
            }
            None => Ok(sqlx::encode::IsNull::Yes),
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(Oid(self.oid)))
    }
}

/// The SQL to send (keyed by parameter types, see the module docs), the
/// encoded arguments and the declared parameter types.
pub(crate) fn bind(
    sql: &str,
    params: &[Value],
) -> Result<(String, PgArguments, Vec<PgTypeInfo>), DbError> {
    let mut args = PgArguments::default();
    let mut types = Vec::with_capacity(params.len());
    let mut signature = String::new();
    for (i, value) in params.iter().enumerate() {
        let param = encode_param(value)
            .map_err(|e| DbError::value(format!("parameter ${}: {}", i + 1, e.message)))?;
        if i > 0 {
            signature.push(',');
        }
        signature.push_str(&param.oid.to_string());
        types.push(PgTypeInfo::with_oid(Oid(param.oid)));
        args.add(param)
            .map_err(|e| DbError::value(format!("parameter ${}: {e}", i + 1)))?;
    }
    let sql = if params.is_empty() {
        sql.to_owned()
    } else {
        format!("{sql}\n-- migrun parameter types: {signature}")
    };
    Ok((sql, args, types))
}

fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 is a valid date")
}

fn pg_epoch() -> NaiveDateTime {
    pg_epoch_date().and_time(NaiveTime::MIN)
}

/// Encodes one value in binary format with the type it declares.
fn encode_param(value: &Value) -> Result<PgParam, DbError> {
    let (oid, bytes) = match value {
        Value::Null => (oid::UNKNOWN_PARAM, None),
        Value::Bool(b) => (oid::BOOL, Some(vec![u8::from(*b)])),
        Value::Int(i) => (oid::INT8, Some(i.to_be_bytes().to_vec())),
        Value::Float(f) => (oid::FLOAT8, Some(f.to_be_bytes().to_vec())),
        Value::Text(s) => (oid::TEXT, Some(s.as_bytes().to_vec())),
        Value::Bytes(b) => (oid::BYTEA, Some(b.clone())),
        Value::Json(s) => {
            let mut bytes = Vec::with_capacity(s.len() + 1);
            bytes.push(1); // jsonb binary format version
            bytes.extend_from_slice(s.as_bytes());
            (oid::JSONB, Some(bytes))
        }
        Value::Uuid(u) => (oid::UUID, Some(u.as_bytes().to_vec())),
        Value::Date(d) => {
            let days = i32::try_from((*d - pg_epoch_date()).num_days())
                .map_err(|_| DbError::value(format!("date {d} is out of range")))?;
            (oid::DATE, Some(days.to_be_bytes().to_vec()))
        }
        Value::Time(t) => {
            let micros = i64::from(t.num_seconds_from_midnight()) * 1_000_000
                + i64::from(t.nanosecond() / 1000);
            (oid::TIME, Some(micros.to_be_bytes().to_vec()))
        }
        Value::Timestamp(t) => (
            oid::TIMESTAMP,
            Some(timestamp_micros(t)?.to_be_bytes().to_vec()),
        ),
        Value::Timestamptz(t) => (
            oid::TIMESTAMPTZ,
            Some(timestamp_micros(&t.naive_utc())?.to_be_bytes().to_vec()),
        ),
        Value::Decimal(s) => (oid::NUMERIC, Some(encode_numeric(s)?)),
        Value::Float32Array(v) => {
            let elems: Vec<Vec<u8>> = v.iter().map(|f| f.to_be_bytes().to_vec()).collect();
            (oid::FLOAT4_ARRAY, Some(encode_array(oid::FLOAT4, &elems)))
        }
        Value::TextArray(v) => {
            let elems: Vec<Vec<u8>> = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            (oid::TEXT_ARRAY, Some(encode_array(oid::TEXT, &elems)))
        }
    };
    Ok(PgParam { oid, bytes })
}

/// Microseconds since PostgreSQL's epoch (2000-01-01), sub-microseconds dropped (floored).
fn timestamp_micros(t: &NaiveDateTime) -> Result<i64, DbError> {
    const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    t.and_utc()
        .timestamp_micros()
        .checked_sub(PG_EPOCH_UNIX_MICROS)
        .ok_or_else(|| DbError::value(format!("timestamp {t} is out of range")))
}

/// One-dimensional array in binary format (`array_send`), lower bound 1, no NULLs.
fn encode_array(elem_oid: u32, elems: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + elems.iter().map(|e| e.len() + 4).sum::<usize>());
    let ndim: i32 = if elems.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&ndim.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // no NULL elements
    out.extend_from_slice(&elem_oid.to_be_bytes());
    if !elems.is_empty() {
        out.extend_from_slice(&(elems.len() as i32).to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for e in elems {
            out.extend_from_slice(&(e.len() as i32).to_be_bytes());
            out.extend_from_slice(e);
        }
    }
    out
}

/// A decimal text in `numeric_send` format, keeping its scale (`1.50` has dscale 2).
fn encode_numeric(text: &str) -> Result<Vec<u8>, DbError> {
    let invalid = || DbError::value(format!("invalid decimal {text:?}"));
    let decimal = BigDecimal::from_str(text.trim()).map_err(|_| invalid())?;
    if !crate::value::decimal_fits(&decimal) {
        return Err(invalid());
    }
    let plain = canonical_decimal(&decimal);
    let (negative, unsigned) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, plain.as_str()),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|c| c.is_ascii_digit())
    {
        return Err(invalid());
    }
    let dscale = u16::try_from(frac_part.len())
        .ok()
        .filter(|s| *s <= 0x3FFF)
        .ok_or_else(|| {
            DbError::value(format!(
                "decimal {text:?} has more than 16383 digits after the point"
            ))
        })?;
    // Base-10000 groups aligned on the decimal point.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_digits: String = "0".repeat(int_pad) + int_part;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_digits: String = frac_part.to_owned() + &"0".repeat(frac_pad);
    let group = |s: &str| s.parse::<i16>().expect("four ASCII digits fit in i16");
    let mut groups: Vec<i16> = int_digits
        .as_bytes()
        .chunks(4)
        .chain(frac_digits.as_bytes().chunks(4))
        .map(|c| group(std::str::from_utf8(c).expect("ASCII digits")))
        .collect();
    let mut weight = (int_digits.len() / 4) as i64 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let (weight, negative) = if groups.is_empty() {
        (0, false)
    } else {
        (weight, negative)
    };
    let weight = i16::try_from(weight)
        .map_err(|_| DbError::value(format!("decimal {text:?} is out of range")))?;
    let ndigits = i16::try_from(groups.len())
        .map_err(|_| DbError::value(format!("decimal {text:?} is too long")))?;
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// How a column's values are read, after unwrapping domains.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Read {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    Char,
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
    Unsupported,
}

fn read_kind(ti: &PgTypeInfo) -> Read {
    let builtin = match ti.oid().map(|Oid(id)| id) {
        Some(oid::BOOL) => Read::Bool,
        Some(oid::INT2) => Read::Int2,
        Some(oid::INT4) => Read::Int4,
        Some(oid::INT8) => Read::Int8,
        Some(oid::OID) => Read::Oid,
        Some(oid::FLOAT4) => Read::Float4,
        Some(oid::FLOAT8) => Read::Float8,
        Some(oid::NUMERIC) => Read::Numeric,
        Some(oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN | oid::XML) => {
            Read::Text
        }
        Some(oid::CHAR) => Read::Char,
        Some(oid::BYTEA) => Read::Bytea,
        Some(oid::JSON) => Read::Json,
        Some(oid::JSONB) => Read::Jsonb,
        Some(oid::UUID) => Read::Uuid,
        Some(oid::DATE) => Read::Date,
        Some(oid::TIME) => Read::Time,
        Some(oid::TIMESTAMP) => Read::Timestamp,
        Some(oid::TIMESTAMPTZ) => Read::Timestamptz,
        Some(oid::FLOAT4_ARRAY) => Read::Float4Array,
        Some(oid::TEXT_ARRAY | oid::VARCHAR_ARRAY | oid::BPCHAR_ARRAY | oid::NAME_ARRAY) => {
            Read::TextArray
        }
        _ => Read::Unsupported,
    };
    if builtin != Read::Unsupported {
        return builtin;
    }
    // Types created in the database: resolved by sqlx to their kind and name.
    match ti.kind() {
        PgTypeKind::Domain(base) => read_kind(base),
        PgTypeKind::Enum(_) => Read::Text,
        // Arrays of custom text-like types (citext[], an enum[]) send text elements.
        PgTypeKind::Array(elem) if read_kind(elem) == Read::Text => Read::TextArray,
        PgTypeKind::Simple if ti.name().rsplit('.').next() == Some("citext") => Read::Text,
        _ => Read::Unsupported,
    }
}

/// PostgreSQL spells its type names in lowercase (`int8`, `timestamptz`,
/// `float4[]`); sqlx displays builtin ones in uppercase.
pub(crate) fn lowercase_types(mut columns: Vec<super::Column>) -> Vec<super::Column> {
    for column in &mut columns {
        column.type_name.make_ascii_lowercase();
    }
    columns
}

/// Decodes one row into values, by each column's type.
pub(crate) fn decode_row(row: &PgRow) -> Result<Vec<Value>, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(DbError::from)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let ti = raw.type_info().into_owned();
        let type_name = ti.name().to_ascii_lowercase();
        let kind = read_kind(&ti);
        if kind == Read::Unsupported {
            return Err(unsupported(column.name(), &type_name));
        }
        let value = decode_value(kind, raw).map_err(|msg| {
            DbError::value(format!(
                "cannot read column `{}` of type {type_name}: {msg}",
                column.name(),
            ))
        })?;
        values.push(value);
    }
    Ok(values)
}

fn unsupported(column: &str, type_name: &str) -> DbError {
    DbError::value(format!(
        "column `{column}` has type {type_name}, which migrun cannot read; \
         cast it to a supported type in SQL, e.g. `{column}::text`"
    ))
}

fn decode_value(kind: Read, raw: PgValueRef<'_>) -> Result<Value, String> {
    if raw.format() == PgValueFormat::Text {
        // Only the simple query protocol returns text, and the host reads no
        // results through it; decoding text forms is deliberately not supported.
        let s = raw.as_str().map_err(|e| e.to_string())?;
        return match kind {
            Read::Text => Ok(Value::Text(s.to_owned())),
            Read::Json => Ok(Value::Json(s.to_owned())),
            _ => Err("unexpected text-format result".into()),
        };
    }
    let b = raw.as_bytes().map_err(|e| e.to_string())?;
    Ok(match kind {
        Read::Bool => Value::Bool(fixed::<1>(b)?[0] != 0),
        Read::Int2 => Value::Int(i16::from_be_bytes(fixed(b)?).into()),
        Read::Int4 => Value::Int(i32::from_be_bytes(fixed(b)?).into()),
        Read::Int8 => Value::Int(i64::from_be_bytes(fixed(b)?)),
        Read::Oid => Value::Int(u32::from_be_bytes(fixed(b)?).into()),
        Read::Float4 => Value::Float(widen_f32(f32::from_be_bytes(fixed(b)?))),
        Read::Float8 => Value::Float(f64::from_be_bytes(fixed(b)?)),
        Read::Numeric => Value::Decimal(decode_numeric(b)?),
        Read::Text => Value::Text(utf8(b)?),
        Read::Char => Value::Text(String::from_utf8_lossy(b).into_owned()),
        Read::Bytea => Value::Bytes(b.to_vec()),
        Read::Json => Value::Json(utf8(b)?),
        Read::Jsonb => match b.split_first() {
            Some((1, rest)) => Value::Json(utf8(rest)?),
            _ => return Err("unknown jsonb binary version".into()),
        },
        Read::Uuid => Value::Uuid(Uuid::from_slice(b).map_err(|e| e.to_string())?),
        Read::Date => {
            let days = i32::from_be_bytes(fixed(b)?);
            if days == i32::MAX || days == i32::MIN {
                return Err("infinite dates cannot be represented; cast to text".into());
            }
            let date = pg_epoch_date().checked_add_signed(TimeDelta::days(days.into()));
            Value::Date(date.ok_or("date out of range")?)
        }
        Read::Time => {
            let micros = i64::from_be_bytes(fixed(b)?);
            if !(0..86_400_000_000).contains(&micros) {
                return Err("24:00:00 cannot be represented as a time of day; cast to text".into());
            }
            let secs = (micros / 1_000_000) as u32;
            let nanos = (micros % 1_000_000) as u32 * 1000;
            Value::Time(
                NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
                    .ok_or("time out of range")?,
            )
        }
        Read::Timestamp => Value::Timestamp(decode_timestamp(b)?),
        Read::Timestamptz => Value::Timestamptz(DateTime::<Utc>::from_naive_utc_and_offset(
            decode_timestamp(b)?,
            Utc,
        )),
        Read::Float4Array => Value::Float32Array(
            decode_array(b)?
                .iter()
                .map(|e| fixed::<4>(e).map(f32::from_be_bytes))
                .collect::<Result<_, _>>()?,
        ),
        Read::TextArray => Value::TextArray(
            decode_array(b)?
                .iter()
                .map(|e| utf8(e))
                .collect::<Result<_, _>>()?,
        ),
        Read::Unsupported => return Err("unsupported type".into()),
    })
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", b.len()))
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8".to_owned())
}

fn decode_timestamp(b: &[u8]) -> Result<NaiveDateTime, String> {
    let micros = i64::from_be_bytes(fixed(b)?);
    if micros == i64::MAX || micros == i64::MIN {
        return Err("infinite timestamps cannot be represented; cast to text".into());
    }
    pg_epoch()
        .checked_add_signed(TimeDelta::microseconds(micros))
        .ok_or_else(|| "timestamp out of range".to_owned())
}

/// `numeric_send` format → plain decimal text with the value's own scale.
fn decode_numeric(b: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        b.get(i..i + 2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .ok_or_else(|| "truncated numeric".to_owned())
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i64;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => {
            return Err("NaN cannot be represented as a decimal; cast to float8 or text".into());
        }
        0xD000 | 0xF000 => {
            return Err(
                "infinity cannot be represented as a decimal; cast to float8 or text".into(),
            );
        }
        _ => return Err(format!("unknown numeric sign {sign:#x}")),
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Result<_, _>>()?;
    if digits.iter().any(|d| *d >= 10_000) {
        return Err("invalid numeric digit".into());
    }
    let digit_at = |i: i64| -> u16 {
        if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit_at(0).to_string());
        for i in 1..=weight {
            out.push_str(&format!("{:04}", digit_at(i)));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut j = 1i64;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit_at(weight + j)));
            j += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

/// `array_send` format → the elements of a one-dimensional array without NULLs.
fn decode_array(b: &[u8]) -> Result<Vec<&[u8]>, String> {
    let int = |i: usize| -> Result<i32, String> {
        b.get(i..i + 4)
            .map(|w| i32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(|| "truncated array".to_owned())
    };
    let ndim = int(0)?;
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if ndim != 1 {
        return Err("multi-dimensional arrays cannot be represented".into());
    }
    let len = usize::try_from(int(12)?).map_err(|_| "invalid array length")?;
    let mut pos = 20;
    let mut elems = Vec::with_capacity(len.min(1 << 16));
    for _ in 0..len {
        let n = int(pos)?;
        pos += 4;
        if n < 0 {
            return Err("arrays with NULL elements cannot be represented; use array_remove(…, NULL) or cast to text".into());
        }
        let n = n as usize;
        elems.push(b.get(pos..pos + n).ok_or("truncated array element")?);
        pos += n;
    }
    Ok(elems)
}

// ---------------------------------------------------------------------------
// COPY … FROM STDIN, binary format
// ---------------------------------------------------------------------------

/// The catalog query [`copy_columns`] reads: for each column of a table, its
/// name, its type's oid, name and receive function, a domain resolved to its
/// base type (one level; a domain over a domain stays unknown, so the text
/// format is used).
pub(crate) const COPY_COLUMNS_SQL: &str = "SELECT a.attname::text, \
     (CASE WHEN t.typtype = 'd' THEN b.oid ELSE t.oid END)::int8, \
     (CASE WHEN t.typtype = 'd' THEN b.typtype ELSE t.typtype END)::text, \
     (CASE WHEN t.typtype = 'd' THEN b.typreceive ELSE t.typreceive END)::regproc::text \
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
    /// Anything else: the text format is used.
    Other,
}

const TSTZRANGE: u32 = 3910;

/// The binary encoding of a column from its base type's oid and receive function.
pub(crate) fn copy_column(type_oid: u32, receive: &str) -> CopyColumn {
    match type_oid {
        oid::BOOL => CopyColumn::Bool,
        oid::INT2 => CopyColumn::Int2,
        oid::INT4 => CopyColumn::Int4,
        oid::INT8 => CopyColumn::Int8,
        oid::FLOAT8 => CopyColumn::Float8,
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
        _ if receive == "ltree_recv" || receive.ends_with(".ltree_recv") => CopyColumn::Ltree,
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
        _ => false,
    }
}

/// The 19-byte header of a binary `COPY` stream (signature, flags, no extension).
pub(crate) const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The trailer of a binary `COPY` stream.
pub(crate) const COPY_BINARY_TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Appends one row in binary `COPY` format. Every (column, value) pair must
/// have passed [`copy_binary_supported`].
pub(crate) fn copy_binary_row(columns: &[CopyColumn], row: &[Value], out: &mut Vec<u8>) {
    out.extend_from_slice(&(row.len() as i16).to_be_bytes());
    for (column, value) in columns.iter().zip(row) {
        copy_binary_value(*column, value, out);
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

fn copy_binary_value(column: CopyColumn, value: &Value, out: &mut Vec<u8>) {
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
        (_, Value::Float32Array(v)) => field(out, |out| {
            array_header(oid::FLOAT4, v.len(), out);
            out.reserve(v.len() * 8);
            for f in v {
                // The text format stores every NaN as the canonical one.
                let f = if f.is_nan() { f32::NAN } else { *f };
                out.extend_from_slice(&4i32.to_be_bytes());
                out.extend_from_slice(&f.to_be_bytes());
            }
        }),
        (_, Value::TextArray(v)) => field(out, |out| {
            array_header(oid::TEXT, v.len(), out);
            for s in v {
                put(out, s.as_bytes());
            }
        }),
        (_, Value::Decimal(_)) => unreachable!("decimals always use the text format"),
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
        let t = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").ok()?;
        let t = t.naive_utc();
        if !t.nanosecond().is_multiple_of(1000) {
            return None;
        }
        Some(RangeBound::At(timestamp_micros(&t).ok()?, inclusive))
    };
    Some(TstzRange {
        bounds: Some((bound(lower, lower_inc)?, bound(upper, upper_inc)?)),
    })
}

// ---------------------------------------------------------------------------
// COPY … FROM STDIN, text format
// ---------------------------------------------------------------------------

/// Appends one row in `COPY` text format: tab-separated, `\N` for NULL, newline-terminated.
///
/// Every value is written in its canonical text form, which PostgreSQL parses
/// by the column's type: bytes as `\x<hex>`, booleans as `t`/`f`, floats as
/// their shortest round-trip text (`NaN`, `Infinity`), arrays as array literals.
pub(crate) fn copy_text_row(row: &[Value], out: &mut Vec<u8>) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match value {
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
    use super::*;

    fn numeric_round_trip(text: &str) -> String {
        decode_numeric(&encode_numeric(text).unwrap()).unwrap()
    }

    #[test]
    fn numeric_keeps_scale() {
        for s in [
            "0",
            "1.50",
            "-1.50",
            "0.001",
            "10000",
            "123456789012345678901234567890.123456789012345678900",
            "-0.000000000000000000000000000001",
            "99999999.99990000",
            "0.0000",
        ] {
            assert_eq!(numeric_round_trip(s), s);
        }
        assert_eq!(numeric_round_trip("-0.00"), "0.00");
        assert!(encode_numeric("abc").is_err());
    }

    #[test]
    fn numeric_wire_format_matches_postgres() {
        // SELECT numeric_send(12.340) = 0002 0000 0000 0003 000c 0d48
        assert_eq!(
            encode_numeric("12.340").unwrap(),
            [0, 2, 0, 0, 0, 0, 0, 3, 0, 12, 0x0d, 0x48]
        );
    }

    #[test]
    fn copy_rows_escape() {
        let mut out = Vec::new();
        copy_text_row(
            &[
                Value::Text("a\tb\nc\\d\re".into()),
                Value::Null,
                Value::Bytes(vec![0, 255]),
                Value::Bool(false),
                Value::TextArray(vec!["x\"y".into(), "b\\s".into(), "".into()]),
                Value::Float32Array(vec![0.1, f32::NAN, f32::NEG_INFINITY]),
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
    fn timestamps_floor_to_microseconds() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
        assert_eq!(timestamp_micros(&t("2000-01-01T00:00:00")).unwrap(), 0);
        assert_eq!(
            timestamp_micros(&t("1999-12-31T23:59:59.9999995")).unwrap(),
            -1
        );
        assert_eq!(
            timestamp_micros(&t("2000-01-01T00:00:01.0000019")).unwrap(),
            1_000_001
        );
        let back = decode_timestamp(&(-1i64).to_be_bytes()).unwrap();
        assert_eq!(back, t("1999-12-31T23:59:59.999999"));
        assert!(decode_timestamp(&i64::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn arrays_round_trip() {
        let encoded = encode_array(oid::TEXT, &[b"a".to_vec(), Vec::new()]);
        assert_eq!(decode_array(&encoded).unwrap(), [&b"a"[..], &b""[..]]);
        assert!(
            decode_array(&encode_array(oid::TEXT, &[]))
                .unwrap()
                .is_empty()
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
                Value::Float32Array(vec![1.0]),
                Value::Null,
            ],
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
        assert!(!copy_binary_supported(
            CopyColumn::Other,
            &Value::Text("x".into())
        ));
        assert!(copy_binary_supported(CopyColumn::Other, &Value::Null));
    }

    #[test]
    fn float4_widens_to_its_shortest_text() {
        assert_eq!(widen_f32(0.1), 0.1);
        assert!(widen_f32(f32::NAN).is_nan());
        assert_eq!(widen_f32(f32::MAX), 3.4028235e38);
    }
}
