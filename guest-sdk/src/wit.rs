//! Conversions between the generated WIT types and the SDK's own.
//!
//! Generated types stay at this edge: the rest of the SDK and every plugin
//! work with [`Value`], [`DbError`] and friends, so a new WIT version changes
//! this file and not the plugins.

use crate::bindings::exports::migrun::plugin::plugin as export;
use crate::bindings::migrun::plugin::{database, types};
use crate::{Access, Column, DbError, DbErrorKind, Dialect, Error, Value};

pub(crate) fn value_to_wit(v: Value) -> types::Value {
    use types::Value as W;
    match v {
        Value::Null => W::Null,
        Value::Bool(b) => W::Boolean(b),
        Value::Int(i) => W::Int(i),
        Value::Float(f) => W::Float(f),
        Value::Text(s) => W::Text(s),
        Value::Bytes(b) => W::Bytes(b),
        Value::Json(s) => W::Json(s),
        Value::Uuid(s) => W::Uuid(s),
        Value::Date(s) => W::Date(s),
        Value::Time(s) => W::Time(s),
        Value::Timestamp(s) => W::Timestamp(s),
        Value::Timestamptz(s) => W::Timestamptz(s),
        Value::Decimal(s) => W::Decimal(s),
        Value::Float32Array(v) => W::Float32Array(v),
        Value::TextArray(v) => W::TextArray(v),
        Value::Typed { type_name, bytes } => W::Typed(types::TypedValue { type_name, bytes }),
    }
}

pub(crate) fn value_from_wit(v: types::Value) -> Value {
    use types::Value as W;
    match v {
        W::Null => Value::Null,
        W::Boolean(b) => Value::Bool(b),
        W::Int(i) => Value::Int(i),
        W::Float(f) => Value::Float(f),
        W::Text(s) => Value::Text(s),
        W::Bytes(b) => Value::Bytes(b),
        W::Json(s) => Value::Json(s),
        W::Uuid(s) => Value::Uuid(s),
        W::Date(s) => Value::Date(s),
        W::Time(s) => Value::Time(s),
        W::Timestamp(s) => Value::Timestamp(s),
        W::Timestamptz(s) => Value::Timestamptz(s),
        W::Decimal(s) => Value::Decimal(s),
        W::Float32Array(v) => Value::Float32Array(v),
        W::TextArray(v) => Value::TextArray(v),
        W::Typed(t) => Value::Typed {
            type_name: t.type_name,
            bytes: t.bytes,
        },
    }
}

pub(crate) fn values_to_wit(values: Vec<Value>) -> Vec<types::Value> {
    values.into_iter().map(value_to_wit).collect()
}

pub(crate) fn rows_from_wit(rows: Vec<types::Row>) -> Vec<Vec<Value>> {
    rows.into_iter()
        .map(|row| row.into_iter().map(value_from_wit).collect())
        .collect()
}

pub(crate) fn columns_from_wit(columns: Vec<types::Column>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|c| Column::new(c.name, c.type_name))
        .collect()
}

impl From<types::DbError> for DbError {
    fn from(e: types::DbError) -> Self {
        use types::DbErrorKind as K;
        let kind = match e.kind {
            K::UnknownConnection => DbErrorKind::UnknownConnection,
            K::ReadOnly => DbErrorKind::ReadOnly,
            K::Constraint => DbErrorKind::Constraint,
            K::Conflict => DbErrorKind::Conflict,
            K::Connection => DbErrorKind::Connection,
            K::Value => DbErrorKind::Value,
            K::Usage => DbErrorKind::Usage,
            K::Refused => DbErrorKind::Refused,
            K::Other => DbErrorKind::Other,
        };
        DbError {
            kind,
            code: e.code,
            message: e.message,
        }
    }
}

impl From<types::DbError> for Error {
    fn from(e: types::DbError) -> Self {
        Error::Database(e.into())
    }
}

fn db_error_to_wit(e: DbError) -> types::DbError {
    use types::DbErrorKind as K;
    let kind = match e.kind {
        DbErrorKind::UnknownConnection => K::UnknownConnection,
        DbErrorKind::ReadOnly => K::ReadOnly,
        DbErrorKind::Constraint => K::Constraint,
        DbErrorKind::Conflict => K::Conflict,
        DbErrorKind::Connection => K::Connection,
        DbErrorKind::Value => K::Value,
        DbErrorKind::Usage => K::Usage,
        DbErrorKind::Refused => K::Refused,
        DbErrorKind::Other => K::Other,
    };
    types::DbError {
        kind,
        code: e.code,
        message: e.message,
    }
}

pub(crate) fn error_to_wit(e: Error) -> export::PluginError {
    match e {
        Error::Database(db) => export::PluginError::Database(db_error_to_wit(db)),
        Error::Failed(message) => export::PluginError::Failed(message),
    }
}

pub(crate) fn dialect_from_wit(d: database::Dialect) -> Dialect {
    match d {
        database::Dialect::Sqlite => Dialect::Sqlite,
        database::Dialect::Postgres => Dialect::Postgres,
        database::Dialect::Mysql => Dialect::MySql,
    }
}

pub(crate) fn access_from_wit(a: database::Access) -> Access {
    match a {
        database::Access::ReadOnly => Access::ReadOnly,
        database::Access::ReadWrite => Access::ReadWrite,
    }
}

pub(crate) fn access_to_wit(a: Access) -> database::Access {
    match a {
        Access::ReadOnly => database::Access::ReadOnly,
        Access::ReadWrite => database::Access::ReadWrite,
    }
}
