//! Auth consolidation: seed 000 as a migrun plugin.
//!
//! Copies the Devise `users` table of the `openneo_id` database into
//! `auth_users` in `openneo_impress`, preserving ids, then verifies the copy
//! the way the seed's deployment checklist does: row counts match, sampled
//! records match, and the four indexes exist.
//!
//! # Layout
//!
//! - `schema.rs`: the 21 columns, the `auth_users` DDL per dialect, the four
//!   unique indexes and the catalog queries that read them back.
//! - `create.rs`: unit `create-auth-users`.
//! - `copy.rs`: unit `copy-users`.
//! - `verify.rs`: the checks.
//! - `values.rs`: per-column coercion and the comparison used by the checks.
//!
//! # Connections and configuration
//!
//! - `source` (read-only): holds `users`.
//! - `target` (read-write): receives `auth_users`.
//! - `batch_size` (default 1000): rows per cursor batch and per bulk insert.
//! - `sample_size` (default 100): rows compared field by field in `verify`.
//!
//! # Units
//!
//! 1. `create-auth-users` creates `auth_users` when it is absent, checks an
//!    existing one has every column, and creates whichever of the four unique
//!    indexes is missing. During a MariaDB dry-run the host refuses DDL
//!    (it would commit), so there the dry-run stops at this unit with the
//!    host's `refused` error and nothing changed.
//! 2. `copy-users` streams `users` in id order and bulk-inserts every row
//!    whose id `auth_users` does not hold yet, so a rerun after success copies
//!    nothing; on PostgreSQL it then restarts the id identity after the
//!    largest id so new registrations do not collide.

use migrun_sdk::{Config, ConfigKey, Need, Plugin, PluginInfo, Result, bail, ensure};

mod copy;
mod create;
mod schema;
mod values;
mod verify;

/// Unit creating the table and its indexes.
pub const UNIT_CREATE: &str = "create-auth-users";
/// Unit copying the rows.
pub const UNIT_COPY: &str = "copy-users";

/// The plugin's version; the `auth_consolidation_v2` build (a behaviour change used by the
/// replay-comparison tests) reports the next one.
const VERSION: &str = if cfg!(auth_consolidation_v2) {
    "0.2.0"
} else {
    env!("CARGO_PKG_VERSION")
};

/// The plugin's state between calls.
#[derive(Debug)]
pub struct AuthConsolidation {
    batch_size: u32,
    sample_size: u32,
}

impl Plugin for AuthConsolidation {
    fn describe() -> PluginInfo {
        PluginInfo::new("auth-consolidation", VERSION)
            .description("Copies openneo_id's Devise users into openneo_impress.auth_users, ids preserved")
            .connection(Need::read_only(
                "source",
                "the openneo_id database, holding Devise's users table",
            ))
            .connection(
                Need::read_write("target", "the openneo_impress database, receiving auth_users")
                    .writes([schema::TARGET_TABLE]),
            )
            .unit(
                UNIT_CREATE,
                "creates auth_users and its unique indexes on email, provider+uid, \
                 reset_password_token and unlock_token, when absent",
            )
            .unit(
                UNIT_COPY,
                "copies every user into auth_users in id order, skipping ids already present",
            )
            .config_key(
                ConfigKey::new("batch_size", "rows fetched and inserted per batch").default("1000"),
            )
            .config_key(
                ConfigKey::new(
                    "sample_size",
                    "rows compared column by column during verification (first, last, evenly spaced)",
                )
                .default("100"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let batch_size: u32 = config.parse_or("batch_size", 1000)?;
        let sample_size: u32 = config.parse_or("sample_size", 100)?;
        ensure!(
            batch_size >= 1,
            "config key `batch_size` must be at least 1"
        );
        ensure!(
            sample_size >= 1,
            "config key `sample_size` must be at least 1"
        );
        Ok(AuthConsolidation {
            batch_size,
            sample_size,
        })
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        match unit {
            UNIT_CREATE => create::run(),
            UNIT_COPY => copy::run(self),
            other => bail!("unknown unit {other:?} (expected {UNIT_CREATE} or {UNIT_COPY})"),
        }
    }

    fn verify(&mut self) -> Result<()> {
        verify::run(self)
    }
}

migrun_sdk::export_plugin!(AuthConsolidation);
