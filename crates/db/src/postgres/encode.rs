//! PostgreSQL parameters: values encoded in the binary protocol with the type
//! oid each declares (see the parent module for why not sqlx's `Encode`).

use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use sqlx::Arguments;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgTypeInfo, Postgres};

use super::oid;
use super::types::{TypeCache, typed_bytes};
use crate::DbError;
use migrun_types::value::{Value, canonical_decimal};

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
/// encoded arguments and the declared parameter types. Typed values declare
/// the oid their type name resolved to on this connection (`types`, filled by
/// [`TypeCache::resolve_all`] before).
pub(crate) fn bind(
    sql: &str,
    params: &[Value],
    resolved: &TypeCache,
) -> Result<(String, PgArguments, Vec<PgTypeInfo>), DbError> {
    let mut args = PgArguments::default();
    let mut types = Vec::with_capacity(params.len());
    let mut signature = String::new();
    for (i, value) in params.iter().enumerate() {
        let param = encode_param(value, resolved)
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

pub(super) fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 is a valid date")
}

pub(super) fn pg_epoch() -> NaiveDateTime {
    pg_epoch_date().and_time(NaiveTime::MIN)
}

/// Encodes one value in binary format with the type it declares.
fn encode_param(value: &Value, types: &TypeCache) -> Result<PgParam, DbError> {
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
        Value::Typed { type_name, bytes } => {
            let ty = types.get(type_name).ok_or_else(|| {
                DbError::value(format!(
                    "the type of a typed `{type_name}` value is not resolved"
                ))
            })?;
            (ty.oid, Some(typed_bytes(ty, bytes).into_owned()))
        }
    };
    Ok(PgParam { oid, bytes })
}

/// Microseconds since PostgreSQL's epoch (2000-01-01), sub-microseconds dropped (floored).
pub(super) fn timestamp_micros(t: &NaiveDateTime) -> Result<i64, DbError> {
    const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    t.and_utc()
        .timestamp_micros()
        .checked_sub(PG_EPOCH_UNIX_MICROS)
        .ok_or_else(|| DbError::value(format!("timestamp {t} is out of range")))
}

/// One-dimensional array in binary format (`array_send`), lower bound 1, no NULLs.
pub(super) fn encode_array(elem_oid: u32, elems: &[Vec<u8>]) -> Vec<u8> {
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
pub(super) fn encode_numeric(text: &str) -> Result<Vec<u8>, DbError> {
    let invalid = || DbError::value(format!("invalid decimal {text:?}"));
    let decimal = BigDecimal::from_str(text.trim()).map_err(|_| invalid())?;
    if !migrun_types::value::decimal_fits(&decimal) {
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
