//! SQLite: opening the file, parameter binding and result decoding.
//!
//! SQLite types values, not columns: a value reads by its storage class
//! (INTEGER, REAL, TEXT, BLOB, NULL). The one exception is a column declared
//! `BOOLEAN`, whose integers 0 and 1 read as booleans. Kinds SQLite has no
//! storage class for are written as their canonical text.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnectOptions, SqliteRow, SqliteValueRef};
use sqlx::{Arguments, Column as _, Decode, Row, TypeInfo, ValueRef};

use super::{Access, DbError};
use migrun_types::value::Value;

mod catalog;
mod dry_run;
mod ledger;
mod lock;
mod privileges;
mod session;

/// SQLite's implementation of the dialect traits of [`super::driver`]; one
/// file per role (`session.rs`, `catalog.rs`, `ledger.rs`, `lock.rs`, `dry_run.rs`,
/// `privileges.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqliteDriver;

/// Open options for `url`.
///
/// Read-only: `mode=ro` (the file must exist) plus `PRAGMA query_only`.
/// Read-write: the file is created when missing. Both: foreign keys enforced
/// and a 5 s busy timeout, so a briefly locked file waits instead of failing.
pub fn connect_options(url: &str, access: Access) -> Result<SqliteConnectOptions, DbError> {
    let read_only = access == Access::ReadOnly;
    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(DbError::from)?
        .read_only(read_only)
        .create_if_missing(!read_only)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    if read_only {
        options = options.pragma("query_only", "ON");
    }
    Ok(options)
}

/// Encodes parameters for a `?`-placeholder statement.
pub(crate) fn bind(params: &[Value]) -> Result<SqliteArguments<'static>, DbError> {
    let mut args = SqliteArguments::default();
    for (i, value) in params.iter().enumerate() {
        add(&mut args, value).map_err(|e| DbError::value(format!("parameter {}: {e}", i + 1)))?;
    }
    Ok(args)
}

/// Appends one value to `args` (also used by multi-row inserts).
///
/// Booleans become 0/1; temporal values, uuids and decimals their canonical
/// text; arrays JSON text. NaN is refused: SQLite would silently store NULL.
pub(crate) fn add(
    args: &mut SqliteArguments<'static>,
    value: &Value,
) -> Result<(), sqlx::error::BoxDynError> {
    match value {
        Value::Null => args.add(None::<i64>),
        Value::Bool(b) => args.add(i64::from(*b)),
        Value::Int(i) => args.add(*i),
        Value::Float(f) => {
            if f.is_nan() {
                return Err("SQLite cannot store NaN (it would store NULL)".into());
            }
            args.add(*f)
        }
        Value::Bytes(b) => args.add(b.clone()),
        Value::Typed { type_name, .. } => {
            Err(crate::typed_refusal(type_name, migrun_types::Dialect::Sqlite).into())
        }
        other => args.add(other.canonical_text().unwrap_or_default()),
    }
}

/// Decodes one row into values, by each value's storage class.
pub fn decode_row(row: &SqliteRow) -> Result<Vec<Value>, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(DbError::from)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let declared_boolean = column.type_info().name() == "BOOLEAN";
        let value = decode_value(raw, declared_boolean).map_err(|msg| {
            DbError::value(format!("cannot read column `{}`: {msg}", column.name()))
        })?;
        values.push(value);
    }
    Ok(values)
}

fn decode_value(raw: SqliteValueRef<'_>, declared_boolean: bool) -> Result<Value, String> {
    let storage = raw.type_info().name().to_owned();
    Ok(match storage.as_str() {
        "INTEGER" => {
            let i = <i64 as Decode<Sqlite>>::decode(raw).map_err(|e| e.to_string())?;
            match (declared_boolean, i) {
                (true, 0) => Value::Bool(false),
                (true, 1) => Value::Bool(true),
                (true, n) => return Err(format!("BOOLEAN column holds {n}, which is not 0 or 1")),
                (false, i) => Value::Int(i),
            }
        }
        "REAL" => Value::Float(<f64 as Decode<Sqlite>>::decode(raw).map_err(|e| e.to_string())?),
        "TEXT" => Value::Text(
            <&str as Decode<Sqlite>>::decode(raw)
                .map_err(|_| "text is not valid UTF-8".to_owned())?
                .to_owned(),
        ),
        "BLOB" => Value::Bytes(
            <&[u8] as Decode<Sqlite>>::decode(raw)
                .map_err(|e| e.to_string())?
                .to_vec(),
        ),
        other => return Err(format!("unexpected storage class {other}")),
    })
}
