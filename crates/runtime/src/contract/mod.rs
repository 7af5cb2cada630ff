//! The plugin contract: which WIT versions this host speaks, and the
//! version-independent types the rest of the host uses.
//!
//! # Layout (one module per contract version, side by side)
//!
//! - `mod.rs` (this file): the plain Rust mirror of what a plugin declares
//!   ([`PluginInfo`] and friends) and what it returns ([`PluginError`]). Nothing
//!   outside `contract` and `capability` sees a generated type.
//! - [`version`]: [`Semver`], the supported range ([`MIN_SUPPORTED`]..=[`MAX_SUPPORTED`]),
//!   [`ContractRelease`] and its [`ContractLine`] (one linker per line), and
//!   [`detect_version`], which refuses anything else before instantiation.
//! - [`v0_1_1`]: `guest-sdk/wit/v0.1.1`: bindings, the `Host` traits the 0.1.x
//!   linker is built from (implemented by the capability modules), and `From`
//!   conversions of its exports.
//! - [`v0_1_0`]: `guest-sdk/wit/v0.1.0`: only its exports are bound (with their
//!   own `From` conversions); its imports are served by the 0.1.1
//!   implementations, which wasmtime links semver-compatibly.
//! - [`v0_2_0`]: `guest-sdk/wit/v0.2.0` (preview): its own bindings, conversions and
//!   `Host` implementations, delegating to the version-free capability
//!   contexts (and, for `database`/`checkpoint`, to the 0.1.1 implementations).
//!
//! A new contract version gets a sibling module and a [`ContractRelease`]; the
//! capability logic and the runner keep working with the types defined here
//! (the Zed extension host's `since_vX` pattern).
//!
//! Invariant: a declaration this host cannot honour is refused by name before
//! any unit runs ([`UnitInfo::refusal`]), never dropped on the way in.

pub mod v0_1_0;
pub mod v0_1_1;
pub mod v0_2_0;
pub mod version;

use serde::Serialize;

use migrun_db::{Access, DbError};

pub use version::{
    CURRENT_VERSION, ContractError, ContractLine, ContractRelease, ContractVersion, MAX_SUPPORTED,
    MIN_SUPPORTED, PACKAGE, SUPPORTED_VERSIONS, Semver, Unsupported, detect_version,
};

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
    /// Contract 0.2.0 (preview): the plugin can run without it. Always `false` before 0.2.0,
    /// and then left out of JSON (reports of 0.1 plugins are unchanged).
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// A unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitInfo {
    /// Its stable name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Contract 0.2.0 (preview): the unit's instance key, derived by the plugin from its
    /// configuration. Not part of the ledger identity yet: [`UnitInfo::warning`] says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Contract 0.2.0 (preview): whether the unit runs inside the host's transactions.
    /// Always `true` before 0.2.0 (and then left out of JSON). `false`: the runner opens no
    /// transaction around it (each statement commits on its own), writes its ledger row
    /// after it succeeded, refuses its bulk inserts and checkpoints, and a dry-run plans it
    /// without running it (see docs/plugins-rust.md, "Steps outside a transaction").
    #[serde(skip_serializing_if = "is_true")]
    pub transactional: bool,
    /// Contract 0.2.0 (preview): the unit's own lock timeout, in milliseconds, overriding
    /// `[limits] lock_timeout` (see [`UnitInfo::timeouts`]). Always `None` before 0.2.0
    /// (and then left out of JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_timeout_ms: Option<u32>,
    /// Contract 0.2.0 (preview): the unit's own statement timeout, in milliseconds,
    /// overriding `[limits] statement_timeout`. Always `None` before 0.2.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_timeout_ms: Option<u32>,
}

impl UnitInfo {
    /// A unit as every 0.1 contract declares it: no scope, transactional.
    pub fn transactional(name: String, description: String) -> UnitInfo {
        UnitInfo {
            name,
            description,
            scope: None,
            transactional: true,
            lock_timeout_ms: None,
            statement_timeout_ms: None,
        }
    }

    /// The timeouts the unit's transactions run with: the unit's own where it declares one
    /// (a 0 is no override), the operator's `[limits]` otherwise; unset on both sides
    /// leaves the database's default.
    pub fn timeouts(&self, limits: &migrun_config::Limits) -> migrun_db::UnitTimeouts {
        let own = |ms: Option<u32>| ms.and_then(migrun_config::TimeLimit::from_millis);
        migrun_db::UnitTimeouts {
            lock: own(self.lock_timeout_ms).or(limits.lock_timeout),
            statement: own(self.statement_timeout_ms).or(limits.statement_timeout),
        }
    }

    /// Why this host cannot run the unit as declared, if it cannot. Every declaration of
    /// the contracts this host speaks is honoured today (`transactional: false` was the
    /// last one refused); the check stays so that the next one is refused by name.
    pub fn refusal(&self) -> Option<UnsupportedDeclaration> {
        None
    }

    /// What the operator must know about a declaration this host accepts but does not act on yet.
    pub fn warning(&self) -> Option<String> {
        self.scope.as_ref().map(|scope| {
            format!(
                "unit `{}` declares scope `{scope}` (contract 0.2.0 preview), which this migrun does not yet \
                 record in the ledger: once the unit has finished, a run configured with another scope skips it",
                self.name
            )
        })
    }
}

/// A declaration this host refuses: it cannot honour it yet, and running the plugin
/// as if it had not been made would do something else than the plugin asked for.
/// None today: `unit-info.transactional = false`, the first, is honoured since contract
/// 0.2.0's non-transactional units landed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsupportedDeclaration {}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_transactional_unit_is_accepted_and_a_scope_is_warned_about() {
        let plain = UnitInfo::transactional("u".into(), String::new());
        assert_eq!(plain.refusal(), None);
        assert_eq!(plain.warning(), None);
        let step = UnitInfo {
            transactional: false,
            ..UnitInfo::transactional("reindex".into(), String::new())
        };
        assert_eq!(step.refusal(), None);
        assert_eq!(step.warning(), None);
        let scoped = UnitInfo {
            scope: Some("accounts.email".into()),
            ..UnitInfo::transactional("rename".into(), String::new())
        };
        assert_eq!(scoped.refusal(), None);
        assert!(
            scoped
                .warning()
                .expect("warned")
                .starts_with("unit `rename` declares scope `accounts.email`")
        );
    }

    /// A unit's own timeout wins over `[limits]`; a 0 is no override; unset on both sides
    /// leaves the database's default.
    #[test]
    fn a_units_own_timeouts_override_the_limits() {
        let limits = migrun_config::Limits {
            lock_timeout: "5s".parse().ok(),
            ..Default::default()
        };
        let plain = UnitInfo::transactional("u".into(), String::new());
        let t = plain.timeouts(&limits);
        assert_eq!(t.lock.map(|l| l.as_millis()), Some(5000));
        assert_eq!(t.statement, None);
        let own = UnitInfo {
            lock_timeout_ms: Some(1000),
            statement_timeout_ms: Some(250),
            ..plain.clone()
        };
        let t = own.timeouts(&limits);
        assert_eq!(t.lock.map(|l| l.as_millis()), Some(1000));
        assert_eq!(t.statement.map(|l| l.as_millis()), Some(250));
        let zero = UnitInfo {
            lock_timeout_ms: Some(0),
            ..plain
        };
        assert_eq!(
            zero.timeouts(&limits).lock.map(|l| l.as_millis()),
            Some(5000)
        );
        assert!(zero.timeouts(&Default::default()).is_empty());
    }

    #[test]
    fn declarations_of_0_1_plugins_serialize_as_before() {
        let unit = serde_json::to_value(UnitInfo::transactional("u".into(), "d".into())).unwrap();
        assert_eq!(unit, serde_json::json!({"name": "u", "description": "d"}));
        let need = ConnectionNeed {
            name: "t".into(),
            access: Access::ReadWrite,
            description: String::new(),
            writes: Vec::new(),
            optional: false,
        };
        assert_eq!(serde_json::to_value(&need).unwrap().get("optional"), None);
        let scoped = UnitInfo {
            scope: Some("s".into()),
            transactional: false,
            ..UnitInfo::transactional("u".into(), "d".into())
        };
        let json = serde_json::to_value(scoped).unwrap();
        assert_eq!(json["scope"], "s");
        assert_eq!(json["transactional"], false);
    }
}
