//! Contract `migrun:plugin@0.1.0`, the first one: still loadable.
//!
//! Only the exported `plugin` interface is bound from these bindings, with its
//! own `From` conversions below. A 0.1.0 component's imports
//! (`database@0.1.0`, `log@0.1.0`, …) are served by the 0.1.x line's linker,
//! built from the [`v0_1_1`](super::v0_1_1) implementations: wasmtime matches an
//! import with a semver-compatible definition, and 0.1.1 only added
//! interfaces. The generated import traits here are therefore never
//! implemented.

#[allow(missing_docs, dead_code)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../guest-sdk/wit/v0.1.0",
        world: "migrun:plugin/migration",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use bindings::Migration;

use bindings::exports::migrun::plugin::plugin as exports;
use bindings::migrun::plugin::types;

use crate::contract::{ConfigKey, ConnectionNeed, PluginError, PluginInfo, UnitInfo};
use migrun_db::{Access, DbError, DbErrorKind};

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
                exports::Access::ReadOnly => Access::ReadOnly,
                exports::Access::ReadWrite => Access::ReadWrite,
            },
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
            exports::PluginError::Database(db) => PluginError::Database(DbError::from(db)),
            exports::PluginError::Failed(message) => PluginError::Failed(message),
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
