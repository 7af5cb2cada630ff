//! Contract `migrun:plugin@0.1.1`, the current one (the SDK's target): generated
//! bindings and their conversions.
//!
//! The capability modules implement this version's `Host` traits, as thin
//! delegations over their version-free contexts, and the runtime's 0.1.x
//! linker is built from them. Components built against 0.1.0 link against the
//! same implementations: wasmtime matches a `…@0.1.0` import with the
//! `…@0.1.1` definition (semver-compatible), which is why 0.1.1 only adds (the
//! `backup` and `checkpoint` interfaces) and never changes a type. A contract
//! that changes types gets a line of its own ([`v0_2_0`](super::v0_2_0)).
//!
//! The generated types never leave this module except through the
//! conversions below and the `Host` traits the capability modules implement.
//! Values are validated here, on the way in: a plugin that passes
//! `date("2024-13-01")` gets a `value` database error, never a trap.

pub mod host;

use crate::contract::{ConfigKey, ConnectionNeed, PluginError, PluginInfo, UnitInfo};
use migrun_db::{Access, DbError, DbErrorKind, Dialect};
use migrun_types::value::Value;

#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../guest-sdk/wit/v0.1.1",
        world: "migrun:plugin/migration",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "migrun:plugin/database.connection": crate::capability::database::ConnectionResource,
            "migrun:plugin/database.cursor": crate::capability::database::CursorResource,
        },
    });
}

pub use bindings::Migration;
pub use bindings::migrun::plugin::{backup, checkpoint, checks, database, log, types};

use bindings::exports::migrun::plugin::plugin as exports;

/// Converts a generated value into the host's, validating canonical text forms.
pub fn value_from_wit(value: types::Value) -> Result<Value, DbError> {
    use types::Value as W;
    let parsed = match value {
        W::Null => Ok(Value::Null),
        W::Boolean(b) => Ok(Value::Bool(b)),
        W::Int(i) => Ok(Value::Int(i)),
        W::Float(f) => Ok(Value::Float(f)),
        W::Text(s) => Ok(Value::Text(s)),
        W::Bytes(b) => Ok(Value::Bytes(b)),
        W::Json(s) => Value::parse_json(s),
        W::Uuid(s) => Value::parse_uuid(&s),
        W::Date(s) => Value::parse_date(&s),
        W::Time(s) => Value::parse_time(&s),
        W::Timestamp(s) => Value::parse_timestamp(&s),
        W::Timestamptz(s) => Value::parse_timestamptz(&s),
        W::Decimal(s) => Value::parse_decimal(&s),
        W::Float32Array(v) => Ok(Value::Float32Array(v.into())),
        W::TextArray(v) => Ok(Value::TextArray(v)),
    };
    parsed.map_err(|e| DbError {
        kind: DbErrorKind::Value,
        code: None,
        message: e.to_string(),
    })
}

/// Converts a list of generated values.
pub fn values_from_wit(values: Vec<types::Value>) -> Result<Vec<Value>, DbError> {
    values.into_iter().map(value_from_wit).collect()
}

/// Converts a host value into its generated form (canonical text for temporal,
/// uuid and decimal); a typed value has no 0.1.x form: its type name is the error.
pub fn value_to_wit(value: Value) -> Result<types::Value, String> {
    use types::Value as W;
    Ok(match value {
        Value::Null => W::Null,
        Value::Bool(b) => W::Boolean(b),
        Value::Int(i) => W::Int(i),
        Value::Float(f) => W::Float(f),
        Value::Text(s) => W::Text(s),
        Value::Bytes(b) => W::Bytes(b),
        Value::Json(s) => W::Json(s),
        Value::Decimal(s) => W::Decimal(s),
        // Moved when the value is the only holder of its floats; copied when the
        // journal (or its window, in a replay) shares them.
        Value::Float32Array(v) => {
            W::Float32Array(std::sync::Arc::try_unwrap(v).unwrap_or_else(|v| (*v).clone()))
        }
        Value::TextArray(v) => W::TextArray(v),
        other @ (Value::Uuid(_)
        | Value::Date(_)
        | Value::Time(_)
        | Value::Timestamp(_)
        | Value::Timestamptz(_)) => {
            let text = other.canonical_text().expect("non-null value has text");
            match other {
                Value::Uuid(_) => W::Uuid(text),
                Value::Date(_) => W::Date(text),
                Value::Time(_) => W::Time(text),
                Value::Timestamp(_) => W::Timestamp(text),
                _ => W::Timestamptz(text),
            }
        }
        Value::Typed { type_name, .. } => return Err(type_name),
    })
}

/// Converts rows of host values read from `columns` (`(name, type name)`).
///
/// A typed value (a type the host does not model, contract 0.2.0's `typed`)
/// is a `value` error naming the column, as reading such a column always was
/// for a 0.1.x plugin: it casts in SQL (`tree::text`). pgvector's `vector`
/// and `halfvec` are no typed values: they read as `float32-array` here too.
pub fn rows_to_wit(
    rows: Vec<Vec<Value>>,
    columns: &[(String, String)],
) -> Result<Vec<Vec<types::Value>>, DbError> {
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(i, value)| {
                    value_to_wit(value).map_err(|type_name| {
                        let column = columns.get(i).map_or("?", |(name, _)| name.as_str());
                        DbError::value(migrun_db::postgres::unreadable_column(column, &type_name))
                    })
                })
                .collect()
        })
        .collect()
}

impl From<DbError> for types::DbError {
    fn from(e: DbError) -> Self {
        use types::DbErrorKind as K;
        types::DbError {
            kind: match e.kind {
                DbErrorKind::UnknownConnection => K::UnknownConnection,
                DbErrorKind::ReadOnly => K::ReadOnly,
                DbErrorKind::Constraint => K::Constraint,
                DbErrorKind::Conflict => K::Conflict,
                DbErrorKind::Connection => K::Connection,
                DbErrorKind::Value => K::Value,
                DbErrorKind::Usage => K::Usage,
                DbErrorKind::Refused => K::Refused,
                DbErrorKind::Other => K::Other,
            },
            code: e.code,
            message: e.message,
        }
    }
}

impl From<types::DbError> for DbError {
    fn from(e: types::DbError) -> Self {
        use types::DbErrorKind as K;
        DbError {
            kind: match e.kind {
                K::UnknownConnection => DbErrorKind::UnknownConnection,
                K::ReadOnly => DbErrorKind::ReadOnly,
                K::Constraint => DbErrorKind::Constraint,
                K::Conflict => DbErrorKind::Conflict,
                K::Connection => DbErrorKind::Connection,
                K::Value => DbErrorKind::Value,
                K::Usage => DbErrorKind::Usage,
                K::Refused => DbErrorKind::Refused,
                K::Other => DbErrorKind::Other,
            },
            code: e.code,
            message: e.message,
        }
    }
}

impl From<Dialect> for database::Dialect {
    fn from(d: Dialect) -> Self {
        match d {
            Dialect::Sqlite => database::Dialect::Sqlite,
            Dialect::Postgres => database::Dialect::Postgres,
            Dialect::MySql => database::Dialect::Mysql,
        }
    }
}

impl From<Access> for database::Access {
    fn from(a: Access) -> Self {
        match a {
            Access::ReadOnly => database::Access::ReadOnly,
            Access::ReadWrite => database::Access::ReadWrite,
        }
    }
}

impl From<exports::PluginInfo> for PluginInfo {
    fn from(info: exports::PluginInfo) -> Self {
        PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            connections: info
                .connections
                .into_iter()
                .map(ConnectionNeed::from)
                .collect(),
            units: info.units.into_iter().map(UnitInfo::from).collect(),
            config: info.config.into_iter().map(ConfigKey::from).collect(),
        }
    }
}

impl From<database::Access> for Access {
    fn from(a: database::Access) -> Self {
        match a {
            database::Access::ReadOnly => Access::ReadOnly,
            database::Access::ReadWrite => Access::ReadWrite,
        }
    }
}

impl From<exports::ConnectionNeed> for ConnectionNeed {
    fn from(c: exports::ConnectionNeed) -> Self {
        ConnectionNeed {
            name: c.name,
            access: c.access.into(),
            description: c.description,
            writes: c.writes,
            optional: false,
        }
    }
}

impl From<exports::UnitInfo> for UnitInfo {
    fn from(u: exports::UnitInfo) -> Self {
        UnitInfo::transactional(u.name, u.description)
    }
}

impl From<exports::ConfigKey> for ConfigKey {
    fn from(k: exports::ConfigKey) -> Self {
        ConfigKey {
            name: k.name,
            description: k.description,
            required: k.required,
            default_value: k.default_value,
            secret: k.secret,
        }
    }
}

impl From<exports::PluginError> for PluginError {
    fn from(e: exports::PluginError) -> Self {
        match e {
            exports::PluginError::Database(db) => PluginError::Database(db.into()),
            exports::PluginError::Failed(message) => PluginError::Failed(message),
        }
    }
}
