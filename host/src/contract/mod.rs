//! The plugin contract: which WIT versions this host speaks, how a component's
//! version is detected before instantiation, and the version-independent
//! types the rest of the host uses.
//!
//! # Layout
//!
//! - `mod.rs` (this file): [`ContractVersion`], [`detect_version`], and the
//!   plain Rust mirror of what a plugin declares ([`PluginInfo`] and friends).
//! - [`v0_1_1`]: the current contract, `guest-sdk/wit/v0.1.1`: its `bindgen!` output,
//!   whose `Host` traits the capability modules implement, and the
//!   conversions between its generated types and ours.
//! - [`v0_1_0`]: the first contract, `guest-sdk/wit/v0.1.0`: only its exports are used
//!   (its imports are served by the 0.1.1 implementations, which wasmtime
//!   links semver-compatibly), converted to the same host types.
//!
//! A new contract version gets a sibling module; the capability modules and
//! the runner keep working with the types defined here, so older plugins stay
//! loadable (the Zed extension host's `since_vX` pattern).

pub mod v0_1_0;
pub mod v0_1_1;

use std::fmt;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::db::{Access, DbError};

/// The WIT package every plugin targets.
pub const PACKAGE: &str = "migrun:plugin";

/// The contract versions this host can run, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1.1", "0.1.0"];

/// The version new plugins (the SDK, `migrun new`) target.
pub const CURRENT_VERSION: &str = "0.1.1";

/// The version of the `migrun:plugin` package a component was built against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractVersion(pub String);

impl ContractVersion {
    /// The release this version names. Only [`detect_version`] makes a
    /// `ContractVersion` for a component, and it accepts supported releases only.
    pub fn release(&self) -> ContractRelease {
        ContractRelease::of(&self.0).expect("detect_version accepts supported releases only")
    }
}

/// A contract release this host implements. Exhaustive on purpose: the
/// places that dispatch on it (the export bindings in `runtime`) stop
/// compiling until a new release is handled, instead of falling back to
/// another release's bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractRelease {
    /// `migrun:plugin@0.1.0`, the first contract.
    V0_1_0,
    /// `migrun:plugin@0.1.1`: adds `backup` and `checkpoint`.
    V0_1_1,
}

impl ContractRelease {
    /// Every release, newest first (as [`SUPPORTED_VERSIONS`]).
    pub const ALL: [ContractRelease; 2] = [ContractRelease::V0_1_1, ContractRelease::V0_1_0];

    /// Its version text.
    pub fn version(self) -> &'static str {
        match self {
            ContractRelease::V0_1_0 => "0.1.0",
            ContractRelease::V0_1_1 => "0.1.1",
        }
    }

    /// The release with this exact version, if this host implements it.
    pub fn of(version: &str) -> Option<ContractRelease> {
        Self::ALL.into_iter().find(|r| r.version() == version)
    }
}

/// `major.minor.patch` of a version text, if it is one.
fn semver(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let triple = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(triple)
}

/// What to do about an unsupported version: it is newer than the newest release this
/// host speaks (upgrade migrun), older than the oldest (rebuild the plugin), or neither.
fn unsupported_hint(found: &str) -> &'static str {
    let newest = semver(ContractRelease::ALL[0].version());
    let oldest = semver(ContractRelease::ALL[ContractRelease::ALL.len() - 1].version());
    match (semver(found), newest, oldest) {
        (Some(v), Some(n), _) if v > n => {
            "it is newer than the newest contract this migrun speaks: upgrade migrun, or rebuild the plugin against an older contract"
        }
        (Some(v), _, Some(o)) if v < o => {
            "it is older than the oldest contract this migrun speaks: rebuild the plugin against a supported contract"
        }
        _ => "rebuild the plugin against a supported contract (guest-sdk/wit/), or upgrade migrun",
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PACKAGE}@{}", self.0)
    }
}

/// Why a component cannot be run by this host. Nothing was instantiated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// The component does not export the `migrun:plugin/plugin` interface at all.
    #[error(
        "not a migrun plugin: the component does not export `{PACKAGE}/plugin` (it exports: {exports})"
    )]
    NotAPlugin {
        /// What it exports instead.
        exports: String,
    },
    /// The component targets a contract version this host does not speak.
    #[error(
        "unsupported contract version: the plugin targets {PACKAGE}@{found}, this migrun supports {supported}; {hint}"
    )]
    Unsupported {
        /// The version the plugin targets.
        found: String,
        /// The versions this host supports.
        supported: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The component mixes several versions of the contract.
    #[error("the plugin mixes contract versions {0}; build it against one wit/ folder")]
    Mixed(String),
}

/// Reads the contract version from the component's import and export names
/// (`migrun:plugin/database@0.1.0`, …) and checks that this host supports it.
pub fn detect_version(
    engine: &Engine,
    component: &Component,
) -> Result<ContractVersion, ContractError> {
    let ty = component.component_type();
    let export_names: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    let import_names = ty.imports(engine).map(|(n, _)| n.to_owned());
    let mut versions: Vec<String> = export_names
        .iter()
        .cloned()
        .chain(import_names)
        .filter_map(|name| {
            let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
            Some(rest.split_once('@').map_or("", |(_, v)| v).to_owned())
        })
        .collect();
    versions.sort();
    versions.dedup();
    let exports_plugin = export_names
        .iter()
        .any(|n| n.starts_with(&format!("{PACKAGE}/plugin")));
    if !exports_plugin {
        return Err(ContractError::NotAPlugin {
            exports: if export_names.is_empty() {
                "nothing".to_owned()
            } else {
                export_names.join(", ")
            },
        });
    }
    match versions.as_slice() {
        [one] if ContractRelease::of(one).is_some() => Ok(ContractVersion(one.clone())),
        [one] => Err(ContractError::Unsupported {
            hint: unsupported_hint(one),
            found: if one.is_empty() {
                "(unversioned)".into()
            } else {
                one.clone()
            },
            supported: SUPPORTED_VERSIONS
                .iter()
                .map(|v| format!("{PACKAGE}@{v}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        many => Err(ContractError::Mixed(many.join(", "))),
    }
}

/// What a plugin declares about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line on what it migrates.
    pub description: String,
    /// The connections it needs.
    pub connections: Vec<ConnectionNeed>,
    /// Its statically known units.
    pub units: Vec<UnitInfo>,
    /// Its configuration keys.
    pub config: Vec<ConfigKey>,
}

/// A connection a plugin needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionNeed {
    /// The name it opens.
    pub name: String,
    /// The least access it needs.
    pub access: Access,
    /// What it is for.
    pub description: String,
    /// Tables it writes through it.
    pub writes: Vec<String>,
}

/// A unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitInfo {
    /// Its stable name.
    pub name: String,
    /// What it does.
    pub description: String,
}

/// A configuration key a plugin reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigKey {
    /// The key.
    pub name: String,
    /// What it controls.
    pub description: String,
    /// Whether a value must be given.
    pub required: bool,
    /// The value used when none is given.
    pub default_value: Option<String>,
    /// Whether reports must redact it.
    pub secret: bool,
}

/// A plugin's own error value (not a trap).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// A database call failed and the plugin gave up on it.
    #[error("database error: {0}")]
    Database(DbError),
    /// The plugin's own failure.
    #[error("{0}")]
    Failed(String),
}

/// Converts one contract version's exported `plugin` types into the host's.
///
/// Every version module invokes it on its generated `exports` module; the
/// exported interface has not changed shape since 0.1.0, so one body serves all.
macro_rules! export_conversions {
    ($exports:ident, $kinds:path) => {
        fn access_from_export(a: $exports::Access) -> $crate::db::Access {
            match a {
                $exports::Access::ReadOnly => $crate::db::Access::ReadOnly,
                $exports::Access::ReadWrite => $crate::db::Access::ReadWrite,
            }
        }

        fn db_error_from_export(e: $exports::DbError) -> $crate::db::DbError {
            use $crate::db::DbErrorKind as H;
            use $kinds as K;
            $crate::db::DbError {
                kind: match e.kind {
                    K::UnknownConnection => H::UnknownConnection,
                    K::ReadOnly => H::ReadOnly,
                    K::Constraint => H::Constraint,
                    K::Conflict => H::Conflict,
                    K::Connection => H::Connection,
                    K::Value => H::Value,
                    K::Usage => H::Usage,
                    K::Refused => H::Refused,
                    K::Other => H::Other,
                },
                code: e.code,
                message: e.message,
            }
        }

        impl From<$exports::PluginInfo> for $crate::contract::PluginInfo {
            fn from(info: $exports::PluginInfo) -> Self {
                $crate::contract::PluginInfo {
                    name: info.name,
                    version: info.version,
                    description: info.description,
                    connections: info
                        .connections
                        .into_iter()
                        .map(|c| $crate::contract::ConnectionNeed {
                            name: c.name,
                            access: access_from_export(c.access),
                            description: c.description,
                            writes: c.writes,
                        })
                        .collect(),
                    units: info
                        .units
                        .into_iter()
                        .map($crate::contract::UnitInfo::from)
                        .collect(),
                    config: info
                        .config
                        .into_iter()
                        .map(|k| $crate::contract::ConfigKey {
                            name: k.name,
                            description: k.description,
                            required: k.required,
                            default_value: k.default_value,
                            secret: k.secret,
                        })
                        .collect(),
                }
            }
        }

        impl From<$exports::UnitInfo> for $crate::contract::UnitInfo {
            fn from(u: $exports::UnitInfo) -> Self {
                $crate::contract::UnitInfo {
                    name: u.name,
                    description: u.description,
                }
            }
        }

        impl From<$exports::PluginError> for $crate::contract::PluginError {
            fn from(e: $exports::PluginError) -> Self {
                match e {
                    $exports::PluginError::Database(db) => {
                        $crate::contract::PluginError::Database(db_error_from_export(db))
                    }
                    $exports::PluginError::Failed(message) => {
                        $crate::contract::PluginError::Failed(message)
                    }
                }
            }
        }
    };
}
pub(crate) use export_conversions;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_and_supported_versions_agree_newest_first() {
        let versions: Vec<&str> = ContractRelease::ALL.iter().map(|r| r.version()).collect();
        assert_eq!(versions, SUPPORTED_VERSIONS);
        assert_eq!(
            ContractRelease::of(CURRENT_VERSION),
            Some(ContractRelease::ALL[0])
        );
        assert_eq!(ContractRelease::of("0.2.0"), None);
    }

    #[test]
    fn unsupported_versions_get_a_hint_by_semver() {
        assert!(unsupported_hint("0.2.0").starts_with("it is newer"));
        assert!(unsupported_hint("1.0.0").starts_with("it is newer"));
        assert!(unsupported_hint("0.0.9").starts_with("it is older"));
        assert!(unsupported_hint("").starts_with("rebuild"));
        assert!(unsupported_hint("0.1.x").starts_with("rebuild"));
    }
}
