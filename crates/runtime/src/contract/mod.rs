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
    /// configuration. Part of the ledger identity (`migrun_db::ledger::UnitKey`): the same
    /// unit with another scope is another piece of work. Checked by [`UnitInfo::refusal`].
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
    /// Contract 0.2.0 (preview): the unit runs on every run, whatever the ledger says.
    /// Always `false` before 0.2.0 (and then left out of JSON).
    #[serde(skip_serializing_if = "is_false")]
    pub always_run: bool,
    /// Contract 0.2.0 (preview): the plugin lists the unit but skips it, for this reason;
    /// it never runs. Always `None` before 0.2.0 (and then left out of JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The longest scope a unit may declare, in characters: the ledger's key columns are
/// `VARCHAR(190)` on MariaDB (so the primary key fits InnoDB's index limit), and every
/// dialect holds the same limit so a plugin behaves alike on all three.
pub const MAX_SCOPE_CHARS: usize = 190;

impl UnitInfo {
    /// A unit as every 0.1 contract declares it: no scope, transactional, run once, not skipped.
    pub fn transactional(name: String, description: String) -> UnitInfo {
        UnitInfo {
            name,
            description,
            scope: None,
            transactional: true,
            lock_timeout_ms: None,
            statement_timeout_ms: None,
            always_run: false,
            skipped: None,
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

    /// The unit as the ledger knows it: its name and scope.
    pub fn key(&self) -> migrun_db::ledger::UnitKey {
        migrun_db::ledger::UnitKey::new(&self.name, self.scope.as_deref())
    }

    /// Why this host cannot run the unit as declared, if it cannot: a scope the ledger
    /// cannot hold as a key (empty, longer than [`MAX_SCOPE_CHARS`], or with control
    /// characters, which reports could not show). (`transactional: false`, once refused
    /// here, is honoured since contract 0.2.0's non-transactional units landed.)
    pub fn refusal(&self) -> Option<UnsupportedDeclaration> {
        let scope = self.scope.as_deref()?;
        let problem = if scope.is_empty() {
            "is empty (declare `none` for no scope)"
        } else if scope.chars().count() > MAX_SCOPE_CHARS {
            "is longer than 190 characters"
        } else if scope.chars().any(char::is_control) {
            "holds a control character"
        } else {
            return None;
        };
        Some(UnsupportedDeclaration::InvalidScope {
            unit: self.name.clone(),
            problem,
        })
    }

    /// What the operator must know about a declaration this host accepts but does not act on
    /// yet. Nothing since scopes are part of the ledger identity; kept so that the next
    /// preview field has its place.
    pub fn warning(&self) -> Option<String> {
        None
    }
}

/// The first unit `units` lists twice with different scopes, refused: one run runs one
/// scope of a unit ([`UnsupportedDeclaration::UnitScopedTwice`]).
pub fn scoped_twice(units: &[UnitInfo]) -> Option<UnsupportedDeclaration> {
    let mut seen: std::collections::BTreeMap<&str, Option<&str>> = Default::default();
    for unit in units {
        match seen.get(unit.name.as_str()) {
            Some(first) if *first != unit.scope.as_deref() => {
                return Some(UnsupportedDeclaration::UnitScopedTwice {
                    unit: unit.name.clone(),
                    first: first.unwrap_or("none").to_owned(),
                    second: unit.scope.as_deref().unwrap_or("none").to_owned(),
                });
            }
            Some(_) => {}
            None => {
                seen.insert(&unit.name, unit.scope.as_deref());
            }
        }
    }
    None
}

/// A declaration this host refuses: it cannot honour it yet, and running the plugin
/// as if it had not been made would do something else than the plugin asked for.
/// (`unit-info.transactional = false`, the first, is honoured since contract 0.2.0's
/// non-transactional units landed.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsupportedDeclaration {
    /// One unit listed with two scopes (contract 0.2.0): `run-unit` names a unit by its
    /// name alone, so the plugin could not tell which scope to run.
    #[error(
        "list-units returned unit `{unit}` with two scopes (`{first}` and `{second}`): `run-unit` \
         names a unit by its name only, so one run runs one scope of a unit (give each its own \
         name), and nothing was run"
    )]
    UnitScopedTwice {
        /// The unit.
        unit: String,
        /// The first scope (`none` for none).
        first: String,
        /// The other scope.
        second: String,
    },
    /// A `unit-info.scope` the ledger cannot key a unit by (contract 0.2.0).
    #[error(
        "unit `{unit}` declares a scope that {problem}: a scope is part of the unit's ledger \
         identity (1 to 190 characters, no control characters), so nothing was run"
    )]
    InvalidScope {
        /// The unit.
        unit: String,
        /// What is wrong with the scope.
        problem: &'static str,
    },
}

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
    fn a_non_transactional_unit_is_accepted_and_a_bad_scope_is_refused_by_name() {
        let plain = UnitInfo::transactional("u".into(), String::new());
        assert_eq!(plain.refusal(), None);
        assert_eq!(plain.warning(), None);
        let step = UnitInfo {
            transactional: false,
            ..UnitInfo::transactional("reindex".into(), String::new())
        };
        assert_eq!(step.refusal(), None);
        assert_eq!(step.warning(), None);
        let scoped = |scope: &str| UnitInfo {
            scope: Some(scope.into()),
            ..UnitInfo::transactional("rename".into(), String::new())
        };
        assert_eq!(scoped("accounts.email→email_address").refusal(), None);
        assert_eq!(
            scoped(&"é".repeat(190)).refusal(),
            None,
            "characters, not bytes"
        );
        for (scope, problem) in [
            ("", "is empty"),
            (&"s".repeat(191) as &str, "is longer than 190 characters"),
            ("a\nb", "holds a control character"),
        ] {
            let refused = scoped(scope).refusal().expect("refused").to_string();
            assert!(
                refused.starts_with(&format!("unit `rename` declares a scope that {problem}")),
                "{refused}"
            );
        }
        assert_eq!(
            scoped("accounts.email").key().to_string(),
            "rename@accounts.email"
        );
        assert_eq!(
            scoped_twice(&[scoped("a"), scoped("a"), plain.clone()]),
            None
        );
        let twice = scoped_twice(&[scoped("a"), plain, scoped("b")])
            .expect("refused")
            .to_string();
        assert!(
            twice.starts_with("list-units returned unit `rename` with two scopes (`a` and `b`)"),
            "{twice}"
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
        assert_eq!(json.get("always_run"), None, "false is left out");
        assert_eq!(json.get("skipped"), None, "none is left out");
    }
}
