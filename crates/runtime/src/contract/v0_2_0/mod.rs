//! Contract `migrun:plugin@0.2.0` (preview), `guest-sdk/wit/v0.2.0`: its own
//! bindings, the conversions of its types, and (in [`host`]) its own `Host`
//! implementations, served by the 0.2.x line's linker.
//!
//! 0.2.0 changes exported types (`unit-info` gains `scope` and
//! `transactional`, `connection-need` gains `optional`), so it cannot share the
//! 0.1.x linker the way 0.1.0 does: wasmtime would match `…@0.2.0` imports only
//! with `…@0.2.x` definitions, and its exports need their own bindings. The
//! `types.value` gains the `typed` case (a value of a type the host does not
//! model, in its binary form). The imported interfaces' implementations are
//! thin delegations: `log`, `checks` and `backup` to the version-free
//! contexts, the value-carrying `database` calls to the version-free surface
//! of [`DatabaseCtx`](crate::capability::database::DatabaseCtx) with this
//! version's value conversions (below), the rest of `database` and
//! `checkpoint` to the 0.1.1 implementations.
//!
//! Invariant: the new declaration fields reach the host's types unchanged
//! ([`PluginInfo`], [`UnitInfo`], [`ConnectionNeed`]); nothing is dropped here.

pub mod host;

#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../guest-sdk/wit/v0.2.0",
        world: "migrun:plugin/migration",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "migrun:plugin/database.connection": crate::capability::database::ConnectionResource,
            "migrun:plugin/database.cursor": crate::capability::database::CursorResource,
            "migrun:plugin/files.file": crate::capability::files::FileResource,
        },
    });
}

pub use bindings::Migration;
pub use bindings::migrun::plugin::{backup, checkpoint, checks, database, files, log, types};

use bindings::exports::migrun::plugin::plugin as exports;

use crate::capability::backup::PluginBackupError;
use crate::capability::files::PluginFileError;
use crate::contract::v0_1_1;
use crate::contract::{ConfigKey, ConnectionNeed, PluginError, PluginInfo, UnitInfo};
use crate::observer::Level;
use migrun_db::{Access, DbError, DbErrorKind};
use migrun_types::value::Value;

// ---- exports: what the plugin declares and returns ----

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

impl From<exports::ConnectionNeed> for ConnectionNeed {
    fn from(c: exports::ConnectionNeed) -> Self {
        ConnectionNeed {
            name: c.name,
            access: match c.access {
                database::Access::ReadOnly => Access::ReadOnly,
                database::Access::ReadWrite => Access::ReadWrite,
            },
            description: c.description,
            writes: c.writes,
            optional: c.optional,
        }
    }
}

impl From<exports::UnitInfo> for UnitInfo {
    fn from(u: exports::UnitInfo) -> Self {
        UnitInfo {
            name: u.name,
            description: u.description,
            scope: u.scope,
            transactional: u.transactional,
            lock_timeout_ms: u.lock_timeout_ms,
            statement_timeout_ms: u.statement_timeout_ms,
            always_run: u.always_run,
            skipped: u.skipped,
        }
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

// ---- types: the host's error and the 0.1.1 forms the delegations speak ----

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

impl From<v0_1_1::types::DbError> for types::DbError {
    fn from(e: v0_1_1::types::DbError) -> Self {
        DbError::from(e).into()
    }
}

impl From<types::DbError> for v0_1_1::types::DbError {
    fn from(e: types::DbError) -> Self {
        DbError::from(e).into()
    }
}

/// Converts a 0.2.0 value into the host's, validating canonical text forms
/// (a malformed one is a `value` error, never a trap).
pub fn value_from_wit(value: types::Value) -> Result<Value, DbError> {
    use types::Value as W;
    use v0_1_1::types::Value as V1;
    let earlier = match value {
        W::Typed(typed) => {
            return Ok(Value::Typed {
                type_name: typed.type_name,
                bytes: typed.bytes,
            });
        }
        W::Null => V1::Null,
        W::Boolean(b) => V1::Boolean(b),
        W::Int(i) => V1::Int(i),
        W::Float(f) => V1::Float(f),
        W::Text(s) => V1::Text(s),
        W::Bytes(b) => V1::Bytes(b),
        W::Json(s) => V1::Json(s),
        W::Uuid(s) => V1::Uuid(s),
        W::Date(s) => V1::Date(s),
        W::Time(s) => V1::Time(s),
        W::Timestamp(s) => V1::Timestamp(s),
        W::Timestamptz(s) => V1::Timestamptz(s),
        W::Decimal(s) => V1::Decimal(s),
        W::Float32Array(v) => V1::Float32Array(v),
        W::TextArray(v) => V1::TextArray(v),
    };
    // Every other case is 0.1.1's, with 0.1.1's validation.
    v0_1_1::value_from_wit(earlier)
}

/// Converts a list of 0.2.0 values.
pub fn values_from_wit(values: Vec<types::Value>) -> Result<Vec<Value>, DbError> {
    values.into_iter().map(value_from_wit).collect()
}

/// Converts a host value into its 0.2.0 form: 0.1.1's, plus `typed`.
pub fn value_to_wit(value: Value) -> types::Value {
    use types::Value as W;
    use v0_1_1::types::Value as V1;
    let earlier = match value {
        Value::Typed { type_name, bytes } => {
            return W::Typed(types::TypedValue { type_name, bytes });
        }
        other => v0_1_1::value_to_wit(other).expect("only typed values have no 0.1.1 form"),
    };
    match earlier {
        V1::Null => W::Null,
        V1::Boolean(b) => W::Boolean(b),
        V1::Int(i) => W::Int(i),
        V1::Float(f) => W::Float(f),
        V1::Text(s) => W::Text(s),
        V1::Bytes(b) => W::Bytes(b),
        V1::Json(s) => W::Json(s),
        V1::Uuid(s) => W::Uuid(s),
        V1::Date(s) => W::Date(s),
        V1::Time(s) => W::Time(s),
        V1::Timestamp(s) => W::Timestamp(s),
        V1::Timestamptz(s) => W::Timestamptz(s),
        V1::Decimal(s) => W::Decimal(s),
        V1::Float32Array(v) => W::Float32Array(v),
        V1::TextArray(v) => W::TextArray(v),
    }
}

/// Converts rows of host values.
pub fn rows_to_wit(rows: Vec<Vec<Value>>) -> Vec<types::Row> {
    rows.into_iter()
        .map(|row| row.into_iter().map(value_to_wit).collect())
        .collect()
}

impl From<v0_1_1::types::Column> for types::Column {
    fn from(c: v0_1_1::types::Column) -> Self {
        types::Column {
            name: c.name,
            type_name: c.type_name,
        }
    }
}

impl From<v0_1_1::database::Dialect> for database::Dialect {
    fn from(d: v0_1_1::database::Dialect) -> Self {
        match d {
            v0_1_1::database::Dialect::Sqlite => database::Dialect::Sqlite,
            v0_1_1::database::Dialect::Postgres => database::Dialect::Postgres,
            v0_1_1::database::Dialect::Mysql => database::Dialect::Mysql,
        }
    }
}

impl From<v0_1_1::database::Access> for database::Access {
    fn from(a: v0_1_1::database::Access) -> Self {
        match a {
            v0_1_1::database::Access::ReadOnly => database::Access::ReadOnly,
            v0_1_1::database::Access::ReadWrite => database::Access::ReadWrite,
        }
    }
}

// ---- log and backup: from and to the version-free contexts ----

impl From<log::Level> for Level {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        }
    }
}

impl From<migrun_backup::SnapshotInfo> for backup::SnapshotInfo {
    fn from(info: migrun_backup::SnapshotInfo) -> Self {
        backup::SnapshotInfo {
            id: info.id,
            connection: info.connection,
            method: info.method,
            tables: info
                .tables
                .into_iter()
                .map(|t| backup::TableSnapshot {
                    name: t.name,
                    rows: t.rows,
                    checksum: t.checksum,
                })
                .collect(),
        }
    }
}

impl From<PluginBackupError> for backup::BackupError {
    fn from(e: PluginBackupError) -> Self {
        use PluginBackupError as H;
        use backup::BackupError as E;
        match e {
            H::UnknownConnection(m) => E::UnknownConnection(m),
            H::UnknownTable(m) => E::UnknownTable(m),
            H::InvalidName(m) => E::InvalidName(m),
            H::Storage(m) => E::Storage(m),
            H::Database(m) => E::Database(m),
            H::NotFound(m) => E::NotFound(m),
            H::Corrupt(m) => E::Corrupt(m),
            H::Disabled(m) => E::Disabled(m),
        }
    }
}

// ---- files: errors ----

impl From<PluginFileError> for files::FileError {
    fn from(e: PluginFileError) -> Self {
        match e {
            PluginFileError::NotGranted(m) => files::FileError::NotGranted(m),
            PluginFileError::NotFound(m) => files::FileError::NotFound(m),
            PluginFileError::Escape(m) => files::FileError::Escape(m),
            PluginFileError::InvalidName(m) => files::FileError::InvalidName(m),
            PluginFileError::Io(m) => files::FileError::Io(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_keep_the_new_fields() {
        let info = PluginInfo::from(exports::PluginInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            connections: vec![exports::ConnectionNeed {
                name: "survey".into(),
                access: database::Access::ReadOnly,
                description: String::new(),
                writes: Vec::new(),
                optional: true,
            }],
            units: vec![exports::UnitInfo {
                name: "index".into(),
                description: String::new(),
                scope: Some("accounts.email".into()),
                transactional: false,
                lock_timeout_ms: Some(2000),
                statement_timeout_ms: None,
                always_run: true,
                skipped: Some("retired".into()),
            }],
            config: Vec::new(),
        });
        assert!(info.connections[0].optional);
        assert_eq!(info.units[0].scope.as_deref(), Some("accounts.email"));
        assert!(!info.units[0].transactional);
        assert_eq!(info.units[0].lock_timeout_ms, Some(2000));
        assert_eq!(info.units[0].statement_timeout_ms, None);
        assert!(info.units[0].always_run);
        assert_eq!(info.units[0].skipped.as_deref(), Some("retired"));
    }

    #[test]
    fn values_and_errors_cross_to_the_host_and_back_unchanged() {
        let values = vec![
            types::Value::Null,
            types::Value::Int(-7),
            types::Value::Text("t".into()),
            types::Value::Date("2024-01-31".into()),
            types::Value::Float32Array(vec![0.5]),
            types::Value::Typed(types::TypedValue {
                type_name: "interval".into(),
                bytes: vec![0, 1, 2],
            }),
        ];
        let host = values_from_wit(values.clone()).unwrap();
        assert_eq!(
            host[5],
            Value::Typed {
                type_name: "interval".into(),
                bytes: vec![0, 1, 2]
            }
        );
        let back = rows_to_wit(vec![host]);
        assert_eq!(format!("{back:?}"), format!("{:?}", vec![values]));
        let bad = value_from_wit(types::Value::Date("2024-13-01".into())).unwrap_err();
        assert_eq!(bad.kind, DbErrorKind::Value);
        let error = types::DbError {
            kind: types::DbErrorKind::Conflict,
            code: Some("40001".into()),
            message: "m".into(),
        };
        let round = types::DbError::from(v0_1_1::types::DbError::from(error.clone()));
        assert_eq!(format!("{round:?}"), format!("{error:?}"));
    }
}
