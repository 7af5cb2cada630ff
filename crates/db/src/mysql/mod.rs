//! MySQL and MariaDB: session setup, parameter binding and result decoding.
//!
//! The binary protocol sends each parameter's type with every execution, so
//! sqlx's encoders are used as they are. Results are decoded by the column's
//! protocol type, which sqlx exposes only through its type name.
//!
//! Known limit: the protocol's BINARY flag is set both for binary strings
//! (`VARBINARY`, `BLOB`) and for text with a binary collation (`utf8mb4_bin`,
//! which is also what MariaDB's `JSON` uses). Only the column's character set
//! tells them apart and sqlx 0.8 does not expose it (sqlx issue #3387), so a
//! BINARY-flagged column reads as [`Value::Bytes`]; select such text with
//! `CAST(col AS CHAR)` to read it as text.

use std::str::FromStr;

use sqlx::mysql::types::MySqlTime;
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlRow, MySqlValueRef};
use sqlx::{Arguments, Column as _, Decode, Row, TypeInfo, ValueRef};

use super::DbError;
use migrun_types::value::{Value, float32_array_json};

mod catalog;
pub(super) mod dry_run;
mod ledger;
mod lock;
pub(super) mod privileges;
mod session;

/// MySQL/MariaDB's implementation of the dialect traits of [`super::driver`]; one
/// file per role (`session.rs`, `catalog.rs`, `ledger.rs`, `lock.rs`, `dry_run.rs`,
/// `privileges.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MySqlDriver;

/// Connect options for `url`: UTC session time zone and utf8mb4.
///
/// sqlx also adds `PIPES_AS_CONCAT` and `NO_ENGINE_SUBSTITUTION` to the
/// session's `sql_mode`; the read-only setting is applied after connecting.
pub fn connect_options(url: &str) -> Result<MySqlConnectOptions, DbError> {
    Ok(MySqlConnectOptions::from_str(url)
        .map_err(DbError::from)?
        .charset("utf8mb4")
        .timezone(Some("+00:00".to_owned())))
}

/// Encodes parameters for a `?`-placeholder statement.
///
/// Kinds MySQL has no type for travel as their canonical text: uuids as
/// hyphenated text, decimals as text (exact), arrays as JSON text; instants as
/// a UTC `DATETIME`, which the UTC session stores unchanged in a `TIMESTAMP`.
pub(crate) fn bind(params: &[Value]) -> Result<MySqlArguments, DbError> {
    let mut args = MySqlArguments::default();
    for (i, value) in params.iter().enumerate() {
        add(&mut args, value).map_err(|e| DbError::value(format!("parameter {}: {e}", i + 1)))?;
    }
    Ok(args)
}

/// Appends one value to `args` (also used by multi-row inserts).
pub(crate) fn add(
    args: &mut MySqlArguments,
    value: &Value,
) -> Result<(), sqlx::error::BoxDynError> {
    match value {
        Value::Null => args.add(None::<i64>),
        Value::Bool(b) => args.add(*b),
        Value::Int(i) => args.add(*i),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(format!(
                    "MySQL/MariaDB cannot store {}",
                    migrun_types::value::format_float(*f)
                )
                .into());
            }
            args.add(*f)
        }
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => args.add(s.as_str()),
        Value::Bytes(b) => args.add(b.as_slice()),
        Value::Uuid(u) => args.add(u.hyphenated().to_string()),
        Value::Date(d) => args.add(*d),
        Value::Time(t) => args.add(*t),
        Value::Timestamp(t) => args.add(*t),
        Value::Timestamptz(t) => args.add(t.naive_utc()),
        Value::Float32Array(v) => args.add(float32_array_json(v)),
        Value::TextArray(v) => args.add(serde_json::to_string(v)?),
        Value::Typed { type_name, .. } => {
            Err(crate::typed_refusal(type_name, migrun_types::Dialect::MySql).into())
        }
    }
}

/// Decodes one row into values, by each value's protocol type.
pub fn decode_row(row: &MySqlRow) -> Result<Vec<Value>, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(DbError::from)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let type_name = raw.type_info().name().to_owned();
        let value = decode_value(&type_name, raw).map_err(|msg| {
            DbError::value(format!(
                "cannot read column `{}` of type {type_name}: {msg}",
                column.name()
            ))
        })?;
        values.push(value);
    }
    Ok(values)
}

fn decode_value(type_name: &str, raw: MySqlValueRef<'_>) -> Result<Value, String> {
    fn get<'r, T: Decode<'r, sqlx::MySql>>(raw: MySqlValueRef<'r>) -> Result<T, String> {
        T::decode(raw).map_err(|e| e.to_string())
    }
    Ok(match type_name {
        "BOOLEAN" => match get::<i64>(raw)? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            n => {
                return Err(format!(
                    "TINYINT(1) holds {n}, which is not a boolean; select it as `CAST(col AS SIGNED)`"
                ));
            }
        },
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            Value::Int(get::<i64>(raw)?)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" | "BIT" => {
            let n = get::<u64>(raw)?;
            match i64::try_from(n) {
                Ok(i) => Value::Int(i),
                Err(_) => Value::Decimal(n.to_string()),
            }
        }
        "FLOAT" => Value::Float(super::widen_f32(get::<f32>(raw)?)),
        "DOUBLE" => Value::Float(get::<f64>(raw)?),
        "DECIMAL" => Value::parse_decimal(get::<&str>(raw)?).map_err(|e| e.to_string())?,
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            Value::Text(get::<&str>(raw)?.to_owned())
        }
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            Value::Bytes(get::<&[u8]>(raw)?.to_vec())
        }
        "JSON" => Value::Json(get::<&str>(raw)?.to_owned()),
        "DATE" => Value::Date(get(raw)?),
        "TIME" => {
            let time: MySqlTime = get(raw)?;
            if !time.is_valid_time_of_day() {
                return Err(format!(
                    "{time} is not a time of day (negative or beyond 24 hours); select it as text"
                ));
            }
            Value::Time(
                time.try_into()
                    .map_err(|e: sqlx::error::BoxDynError| e.to_string())?,
            )
        }
        "DATETIME" => Value::Timestamp(get(raw)?),
        // The session time zone is UTC, so a TIMESTAMP arrives as UTC wall time.
        "TIMESTAMP" => Value::Timestamptz(get(raw)?),
        other => {
            return Err(format!(
                "{other} is not supported; convert it in SQL (e.g. `CAST(col AS CHAR)`)"
            ));
        }
    })
}
