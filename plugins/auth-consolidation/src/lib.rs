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
//! - `source` (read-only): holds `users`. The plugin declares `users` backed up
//!   (`Need::backs_up`): the seed backs up `openneo_id` before the copy and its
//!   rollback restores it, so the host snapshots it before the run's first write
//!   and `migrun restore <run>.source.before-run --db source=<writable url>`
//!   puts it back.
//! - `target` (read-write): receives `auth_users` and Rails' `schema_migrations` row.
//! - `batch_size` (default 1000): rows per cursor batch and per bulk insert.
//! - `sample_size` (default 100): rows compared field by field in `verify`.
//! - `schema_migrations_version` (default `20251102064247`, the seed's migration):
//!   the row written into the target's `schema_migrations`, so `rails db:migrate`
//!   does not run the migration again and `db:migrate:down VERSION=…` finds it.
//!
//! # Units
//!
//! 1. `create-auth-users` creates `auth_users` when it is absent, checks an
//!    existing one has every column, creates whichever of the four unique
//!    indexes is missing, and creates Rails' `schema_migrations(version
//!    varchar(255) primary key)` when the target has none. During a MariaDB
//!    dry-run without a scratch database the host refuses DDL (it would commit).
//! 2. `copy-users` (runs on every run) re-syncs `auth_users` with `users`:
//!    it streams `users` in id order, bulk-inserts the ids `auth_users` lacks,
//!    and updates every copied row that differs from its source in any column,
//!    so a rerun after an earlier (rehearsal) copy brings changed rows up to
//!    date, not only missing ones. A copy whose `updated_at` is later than its
//!    source's changed after the switch (the application writes `auth_users`
//!    then): it is left as it is and counted in a warning, as are ids only
//!    `auth_users` holds. In the same transaction it records the migration's
//!    version in `schema_migrations` (once). On PostgreSQL it then restarts the
//!    id identity after the largest id so new registrations do not collide.

use migrun_sdk::{Config, ConfigKey, Need, Plugin, PluginInfo, Result, Unit, bail, ensure};

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
    /// The `schema_migrations` version recorded on the target.
    migration_version: String,
}

impl Plugin for AuthConsolidation {
    fn describe() -> PluginInfo {
        PluginInfo::new("auth-consolidation", VERSION)
            .description("Copies openneo_id's Devise users into openneo_impress.auth_users, ids preserved")
            .connection(
                Need::read_only(
                    "source",
                    "the openneo_id database, holding Devise's users table",
                )
                .backs_up([schema::SOURCE_TABLE]),
            )
            .connection(
                Need::read_write(
                    "target",
                    "the openneo_impress database, receiving auth_users and Rails' schema_migrations row",
                )
                .writes([schema::TARGET_TABLE, schema::SCHEMA_MIGRATIONS]),
            )
            .unit(
                UNIT_CREATE,
                "creates auth_users and its unique indexes on email, provider+uid, \
                 reset_password_token and unlock_token, and Rails' schema_migrations, when absent",
            )
            .with_unit(
                Unit::new(
                    UNIT_COPY,
                    "re-syncs auth_users with users in id order (inserts missing ids, updates \
                     changed rows) and records the migration in schema_migrations",
                )
                .always_run(),
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
            .config_key(
                ConfigKey::new(
                    "schema_migrations_version",
                    "the Rails migration version recorded in the target's schema_migrations",
                )
                .default(schema::DEFAULT_MIGRATION_VERSION),
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
        let migration_version: String = config.parse_or(
            "schema_migrations_version",
            schema::DEFAULT_MIGRATION_VERSION.to_owned(),
        )?;
        ensure!(
            !migration_version.is_empty()
                && migration_version.len() <= 255
                && migration_version.bytes().all(|b| b.is_ascii_digit()),
            "config key `schema_migrations_version` must be a Rails migration version (digits, \
             like {}), not {migration_version:?}",
            schema::DEFAULT_MIGRATION_VERSION
        );
        Ok(AuthConsolidation {
            batch_size,
            sample_size,
            migration_version,
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
