//! PostgreSQL results: binary values decoded into [`Value`]s by type oid,
//! domains unwrapped; pgvector's `vector` and `halfvec` (by type name: their
//! oids differ per database) as float32 arrays; a type the host does not model
//! as a [`Value::Typed`] carrying its binary form. A modelled type's value
//! that cannot be represented (an infinite date) is an error, never a panic.

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef};
use sqlx::{Column as _, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use super::encode::{pg_epoch, pg_epoch_date};
use super::oid;
use crate::{DbError, widen_f32};
use migrun_types::value::Value;

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
    /// pgvector `vector`.
    Vector,
    /// pgvector `halfvec`.
    Halfvec,
    /// Not modelled: carried as [`Value::Typed`].
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
        PgTypeKind::Simple => match ti.name().rsplit('.').next() {
            Some("citext") => Read::Text,
            Some("vector") => Read::Vector,
            Some("halfvec") => Read::Halfvec,
            _ => Read::Unsupported,
        },
        _ => Read::Unsupported,
    }
}

/// PostgreSQL spells its type names in lowercase (`int8`, `timestamptz`,
/// `float4[]`); sqlx displays builtin ones in uppercase.
pub(crate) fn lowercase_types(mut columns: Vec<crate::Column>) -> Vec<crate::Column> {
    for column in &mut columns {
        column.type_name.make_ascii_lowercase();
    }
    columns
}

/// Decodes one row into values, by each column's type.
pub fn decode_row(row: &PgRow) -> Result<Vec<Value>, DbError> {
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
            if raw.format() == PgValueFormat::Text {
                return Err(unsupported(column.name(), &type_name));
            }
            let bytes = raw
                .as_bytes()
                .map_err(|e| {
                    DbError::value(format!("cannot read column `{}`: {e}", column.name()))
                })?
                .to_vec();
            values.push(Value::Typed { type_name, bytes });
            continue;
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
    DbError::value(unreadable_column(column, type_name))
}

/// The message for a column whose type has no case in the reader's contract
/// (every type the host does not model, for a contract 0.1.x plugin).
pub fn unreadable_column(column: &str, type_name: &str) -> String {
    format!(
        "column `{column}` has type {type_name}, which migrun cannot read; \
         cast it to a supported type in SQL, e.g. `{column}::text`"
    )
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
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        Read::TextArray => Value::TextArray(
            decode_array(b)?
                .iter()
                .map(|e| utf8(e))
                .collect::<Result<_, _>>()?,
        ),
        Read::Vector => Value::Float32Array(super::types::decode_vector(b)?.into()),
        Read::Halfvec => Value::Float32Array(super::types::decode_halfvec(b)?.into()),
        Read::Unsupported => return Err("unsupported type".into()),
    })
}

pub(super) fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", b.len()))
}

pub(super) fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8".to_owned())
}

pub(super) fn decode_timestamp(b: &[u8]) -> Result<NaiveDateTime, String> {
    let micros = i64::from_be_bytes(fixed(b)?);
    if micros == i64::MAX || micros == i64::MIN {
        return Err("infinite timestamps cannot be represented; cast to text".into());
    }
    pg_epoch()
        .checked_add_signed(TimeDelta::microseconds(micros))
        .ok_or_else(|| "timestamp out of range".to_owned())
}

/// `numeric_send` format → plain decimal text with the value's own scale.
pub(super) fn decode_numeric(b: &[u8]) -> Result<String, String> {
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
pub(super) fn decode_array(b: &[u8]) -> Result<Vec<&[u8]>, String> {
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

#[cfg(test)]
mod tests {
    use super::super::encode::{encode_array, encode_numeric, timestamp_micros};
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
}
