//! Seed 004's fresh baseline: instead of migrating data, the SQLite database
//! is reset and gets the redesigned schema, with the constraints that keep
//! invalid data out and the `alembic_version` row of the seed's baseline
//! migration; `verify` proves the constraints work.
//!
//! # Units
//!
//! 1. `reset` — the seed's "Database Reset" (`rm -f production_database.db`),
//!    made undoable: when the database holds tables (the old schema), it
//!    snapshots every one of them, and the baseline's tables as absent, into
//!    one backup (`backup::snapshot`, label `before-reset`), then drops them.
//!    `migrun restore <that id> --yes` puts the old database back (its tables,
//!    rows, indexes and triggers; the baseline's tables dropped) and makes the
//!    ledger forget the run, so the seed's rollback (`cp database_backup.db
//!    production_database.db`) is one command. Dropping is destructive, so it
//!    is opted into: without `wipe_old_database = true` a database with old
//!    tables is refused with nothing changed. An empty database needs no flag.
//!    migrun's own tables (`migrun_*`, the ledger) are kept. A backup that
//!    cannot be taken drops nothing; a dry-run takes none and shows the drops.
//! 2. `baseline` — the seed's "Apply New Schema" (`alembic upgrade head`):
//!    the three tables below, and alembic's `alembic_version` table holding the
//!    baseline revision, `9275fe03c648` (the seed's
//!    `9275fe03c648_create_initial_baseline_from_new_schema.py`; config key
//!    `alembic_revision`), so `alembic current` reports the baseline and the
//!    next `alembic upgrade` starts after it.
//!
//! # The schema
//!
//! - `channel_configs`: one row per channel (Discord ids are 64-bit
//!   integers), its polling rate (1–1440 minutes) and notification switch.
//! - `monitoring_targets`: what a channel watches, as the seed's two commands
//!   add it. `!add location <location_name>`: `target_type = 'location'`, the
//!   name in `display_name`, `location_id` optional (the id the application
//!   may resolve the name to later), no coordinates. `!add geographic <lat>
//!   <lon> [radius]`: latitude in [-90, 90], longitude in [-180, 180], the
//!   radius optional — `NULL` when the command gives none (the seed names no
//!   default; the application applies its own) — and otherwise in (0, 250]
//!   miles; no location id. `display_name` is never blank. A table CHECK ties
//!   the fields to the type; a location name is unique per channel
//!   (case-insensitively), and so is an area (latitude, longitude, radius, an
//!   omitted radius counting as one value).
//! - `seen_submissions`: submissions already announced per channel, unique
//!   per (channel, submission).
//!
//! The tables are `STRICT`, so SQLite checks every value's type (a text
//! latitude is rejected, not stored), and foreign keys cascade from
//! `channel_configs`.
//!
//! `verify` runs in a transaction the host rolls back: it checks the
//! `alembic_version` row, then inserts valid rows (the seed's own examples,
//! `!add location "Test Location"`, `!add geographic 40.7128 -74.0060 25`, and
//! the same without its optional radius) and invalid ones (the seed's `200 300
//! 5`, a text latitude, a blank name, an unknown channel, …) and reports one
//! check per row: accepted when valid, rejected by a constraint when invalid.

use migrun_sdk::{
    Config, ConfigKey, Connection, DbErrorKind, Dialect, Need, Plugin, PluginInfo, Result, Steps,
    Unit, Value, backup, bail, check, info, params, warn,
};

/// The baseline schema, statement by statement.
const SCHEMA: &[&str] = &[
    "CREATE TABLE channel_configs (
        channel_id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        poll_rate_minutes INTEGER NOT NULL DEFAULT 60 CHECK (poll_rate_minutes BETWEEN 1 AND 1440),
        notifications_enabled INTEGER NOT NULL DEFAULT 1 CHECK (notifications_enabled IN (0, 1)),
        last_polled_at TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    ) STRICT",
    "CREATE TABLE monitoring_targets (
        id INTEGER PRIMARY KEY,
        channel_id INTEGER NOT NULL REFERENCES channel_configs (channel_id) ON DELETE CASCADE,
        target_type TEXT NOT NULL CHECK (target_type IN ('location', 'geographic')),
        display_name TEXT NOT NULL CHECK (length(trim(display_name)) > 0),
        location_id INTEGER,
        latitude REAL CHECK (latitude BETWEEN -90.0 AND 90.0),
        longitude REAL CHECK (longitude BETWEEN -180.0 AND 180.0),
        radius_miles REAL CHECK (radius_miles > 0 AND radius_miles <= 250),
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        CHECK (
            (target_type = 'location'
                AND latitude IS NULL AND longitude IS NULL AND radius_miles IS NULL)
            OR (target_type = 'geographic' AND location_id IS NULL
                AND latitude IS NOT NULL AND longitude IS NOT NULL)
        ),
        UNIQUE (channel_id, location_id)
    ) STRICT",
    "CREATE INDEX ix_monitoring_targets_channel ON monitoring_targets (channel_id)",
    "CREATE UNIQUE INDEX uq_monitoring_targets_location_name
        ON monitoring_targets (channel_id, trim(display_name) COLLATE NOCASE)
        WHERE target_type = 'location'",
    "CREATE UNIQUE INDEX uq_monitoring_targets_area
        ON monitoring_targets (channel_id, latitude, longitude, ifnull(radius_miles, 0))
        WHERE target_type = 'geographic'",
    "CREATE TABLE seen_submissions (
        id INTEGER PRIMARY KEY,
        channel_id INTEGER NOT NULL REFERENCES channel_configs (channel_id) ON DELETE CASCADE,
        submission_id INTEGER NOT NULL,
        seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        UNIQUE (channel_id, submission_id)
    ) STRICT",
    // Alembic's own table, as `alembic upgrade` creates it on SQLite.
    "CREATE TABLE alembic_version (
        version_num VARCHAR(32) NOT NULL,
        CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
    )",
];

/// The seed's tables.
const TABLES: &[&str] = &["channel_configs", "monitoring_targets", "seen_submissions"];

/// Alembic's revision table.
const ALEMBIC_TABLE: &str = "alembic_version";

/// Every table the baseline creates.
const BASELINE_TABLES: &[&str] = &[
    "channel_configs",
    "monitoring_targets",
    "seen_submissions",
    ALEMBIC_TABLE,
];

/// The seed's baseline migration: `9275fe03c648_create_initial_baseline_from_new_schema.py`.
pub const SEED_REVISION: &str = "9275fe03c648";

/// The label of the snapshot `reset` takes (its id ends in `.app.before-reset`).
const RESET_LABEL: &str = "before-reset";

const TARGET_INSERT: &str = "INSERT INTO monitoring_targets \
    (channel_id, target_type, display_name, location_id, latitude, longitude, radius_miles) \
    VALUES (?, ?, ?, ?, ?, ?, ?)";

/// One row `verify` tries to insert, and whether the schema must accept it.
struct Probe {
    name: &'static str,
    sql: &'static str,
    params: Vec<Value>,
    valid: bool,
    /// How the database rejects it: `constraint`, or `value` for a STRICT type mismatch
    /// (SQLite's `SQLITE_CONSTRAINT_DATATYPE`, which the host reports as a value error).
    rejected_as: DbErrorKind,
}

/// A `monitoring_targets` row: `geo` is (latitude, longitude, radius), the radius optional.
fn target(
    channel: i64,
    kind: &str,
    name: &str,
    location: Option<i64>,
    geo: Option<(Value, f64, Option<f64>)>,
) -> Vec<Value> {
    let (lat, lon, radius) = match geo {
        Some((lat, lon, radius)) => (
            lat,
            Value::Float(lon),
            radius.map_or(Value::Null, Value::Float),
        ),
        None => (Value::Null, Value::Null, Value::Null),
    };
    vec![
        Value::Int(channel),
        Value::Text(kind.into()),
        Value::Text(name.into()),
        location.map_or(Value::Null, Value::Int),
        lat,
        lon,
        radius,
    ]
}

/// The seed's examples and the ways a row can be wrong.
fn probes() -> Vec<Probe> {
    const CHANNEL: i64 = 1_187_243_601_925_341_194; // a 64-bit Discord id
    let channel = |id: i64, rate: i64| Probe {
        name: "",
        sql: "INSERT INTO channel_configs (channel_id, guild_id, poll_rate_minutes) VALUES (?, ?, ?)",
        params: vec![Value::Int(id), Value::Int(42), Value::Int(rate)],
        valid: true,
        rejected_as: DbErrorKind::Constraint,
    };
    let t = |name, params, valid| Probe {
        name,
        sql: TARGET_INSERT,
        params,
        valid,
        rejected_as: DbErrorKind::Constraint,
    };
    let geo = |lat: f64, lon: f64, radius: Option<f64>| Some((Value::Float(lat), lon, radius));
    vec![
        Probe {
            name: "a channel with a 64-bit id is accepted",
            ..channel(CHANNEL, 60)
        },
        Probe {
            name: "a polling rate of 0 minutes is rejected",
            valid: false,
            ..channel(CHANNEL + 1, 0)
        },
        t(
            "a location target by name is accepted (!add location \"Test Location\")",
            target(CHANNEL, "location", "Test Location", None, None),
            true,
        ),
        t(
            "a location target with a resolved location id is accepted",
            target(CHANNEL, "location", "Pinball Pub", Some(7), None),
            true,
        ),
        t(
            "a geographic target is accepted (!add geographic 40.7128 -74.0060 25)",
            target(
                CHANNEL,
                "geographic",
                "New York",
                None,
                geo(40.7128, -74.0060, Some(25.0)),
            ),
            true,
        ),
        t(
            "a geographic target without a radius is accepted (!add geographic 40.7128 -74.0060)",
            target(
                CHANNEL,
                "geographic",
                "New York, default radius",
                None,
                geo(40.7128, -74.0060, None),
            ),
            true,
        ),
        t(
            "latitude 200 is rejected (!add geographic 200 300 5)",
            target(
                CHANNEL,
                "geographic",
                "Nowhere",
                None,
                geo(200.0, 300.0, Some(5.0)),
            ),
            false,
        ),
        t(
            "longitude 300 is rejected",
            target(
                CHANNEL,
                "geographic",
                "Nowhere",
                None,
                geo(10.0, 300.0, Some(5.0)),
            ),
            false,
        ),
        t(
            "a radius of 0 miles is rejected",
            target(
                CHANNEL,
                "geographic",
                "Pinpoint",
                None,
                geo(10.0, 10.0, Some(0.0)),
            ),
            false,
        ),
        t(
            "a radius over 250 miles is rejected",
            target(
                CHANNEL,
                "geographic",
                "Everywhere",
                None,
                geo(10.0, 10.0, Some(251.0)),
            ),
            false,
        ),
        Probe {
            rejected_as: DbErrorKind::Value,
            ..t(
                "a text latitude is rejected (STRICT types)",
                target(
                    CHANNEL,
                    "geographic",
                    "Somewhere",
                    None,
                    Some((Value::Text("north".into()), 10.0, Some(5.0))),
                ),
                false,
            )
        },
        t(
            "an unknown target type is rejected",
            target(CHANNEL, "planet", "Mars", None, None),
            false,
        ),
        t(
            "a geographic target without coordinates is rejected",
            target(CHANNEL, "geographic", "Vague", None, None),
            false,
        ),
        t(
            "a geographic target with a location id is rejected",
            target(
                CHANNEL,
                "geographic",
                "Both ways",
                Some(12),
                geo(1.0, 1.0, None),
            ),
            false,
        ),
        t(
            "a location target with coordinates is rejected",
            target(CHANNEL, "location", "Both", None, geo(1.0, 1.0, Some(1.0))),
            false,
        ),
        t(
            "a blank display name is rejected",
            target(CHANNEL, "location", "   ", None, None),
            false,
        ),
        t(
            "a target of an unknown channel is rejected (foreign key)",
            target(CHANNEL + 99, "location", "Orphan", None, None),
            false,
        ),
        t(
            "the same location name twice in a channel is rejected",
            target(CHANNEL, "location", "test location ", None, None),
            false,
        ),
        t(
            "the same location id twice in a channel is rejected",
            target(CHANNEL, "location", "Pinball Pub again", Some(7), None),
            false,
        ),
        t(
            "the same area without a radius twice in a channel is rejected",
            target(
                CHANNEL,
                "geographic",
                "New York again",
                None,
                geo(40.7128, -74.0060, None),
            ),
            false,
        ),
        Probe {
            name: "a seen submission is accepted",
            sql: "INSERT INTO seen_submissions (channel_id, submission_id) VALUES (?, ?)",
            params: vec![Value::Int(CHANNEL), Value::Int(1001)],
            valid: true,
            rejected_as: DbErrorKind::Constraint,
        },
        Probe {
            name: "the same submission seen twice in a channel is rejected",
            sql: "INSERT INTO seen_submissions (channel_id, submission_id) VALUES (?, ?)",
            params: vec![Value::Int(CHANNEL), Value::Int(1001)],
            valid: false,
            rejected_as: DbErrorKind::Constraint,
        },
    ]
}

/// `name` as an SQLite identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Opens `app`, refusing anything but SQLite with nothing changed.
fn open_app() -> Result<Connection> {
    let db = Connection::open("app")?;
    if db.dialect() != Dialect::Sqlite {
        bail!(
            "the baseline is SQLite's (seed 004); `app` is {}: nothing was changed",
            db.dialect()
        );
    }
    Ok(db)
}

/// The names of the database's objects of `kind` (`table`, `view`), SQLite's and
/// migrun's own (`migrun_*`: the ledger) left out.
fn objects(db: &Connection, kind: &str) -> Result<Vec<String>> {
    db.query(
        "SELECT name FROM sqlite_master WHERE type = ? \
           AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'migrun\\_%' ESCAPE '\\' \
         ORDER BY name",
        params![kind],
    )?
    .into_iter()
    .map(|row| row.get::<String>("name"))
    .collect()
}

struct FreshBaseline {
    /// Whether `reset` may back up and drop the tables it finds.
    wipe_old_database: bool,
    /// The revision written to `alembic_version`.
    alembic_revision: String,
}

impl Plugin for FreshBaseline {
    fn describe() -> PluginInfo {
        PluginInfo::new("fresh-baseline", env!("CARGO_PKG_VERSION"))
            .description(
                "seed 004 on SQLite: resets the old database (backed up first), creates the \
                 baseline schema with the alembic baseline revision, proves its constraints",
            )
            .connection(
                Need::read_write("app", "the application's SQLite database (old or empty)")
                    .writes(BASELINE_TABLES.iter().copied()),
            )
            .config_key(
                ConfigKey::new(
                    "wipe_old_database",
                    "`true`: `reset` backs up every old table, then drops it (seed 004's database \
                     reset); `false`: a database holding tables is refused, nothing changed",
                )
                .default("false"),
            )
            .config_key(
                ConfigKey::new(
                    "alembic_revision",
                    "the revision `baseline` writes to alembic_version (seed 004's baseline migration)",
                )
                .default(SEED_REVISION),
            )
    }

    fn steps() -> Steps<Self> {
        Steps::new()
            .step(
                Unit::new(
                    "reset",
                    "backs up every old table (one `migrun restore` brings them back), then drops them",
                ),
                Self::reset,
            )
            .step(
                Unit::new(
                    "baseline",
                    "creates channel_configs, monitoring_targets, seen_submissions and the \
                     alembic_version row of the baseline revision",
                ),
                Self::baseline,
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let alembic_revision = config.get_or("alembic_revision", SEED_REVISION).to_owned();
        let plain = !alembic_revision.is_empty()
            && alembic_revision.len() <= 32
            && alembic_revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            bail!(
                "config key `alembic_revision`: {alembic_revision:?} is not an alembic revision id \
                 (1 to 32 letters, digits or `_`, like {SEED_REVISION})"
            );
        }
        Ok(FreshBaseline {
            wipe_old_database: config.flag("wipe_old_database", false)?,
            alembic_revision,
        })
    }

    fn verify(&mut self) -> Result<()> {
        let db = Connection::open("app")?;
        for table in BASELINE_TABLES {
            let n: i64 = db.query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                params![*table],
            )?;
            check(&format!("table {table} exists"), n == 1, "");
            if n != 1 {
                return Ok(());
            }
        }
        let revisions: Vec<String> = db.query_as(
            "SELECT version_num FROM alembic_version ORDER BY 1",
            params![],
        )?;
        check(
            &format!(
                "alembic_version holds the baseline revision {}",
                self.alembic_revision
            ),
            revisions == [self.alembic_revision.as_str()],
            &format!("alembic_version: {}", revisions.join(", ")),
        );
        // Inside verify's transaction, which the host rolls back: nothing stays.
        for probe in probes() {
            let outcome = db.execute(probe.sql, probe.params);
            let (ok, detail) = match (&outcome, probe.valid) {
                (Ok(_), true) => (true, "accepted".to_owned()),
                (Ok(_), false) => (
                    false,
                    "accepted, but the schema should reject it".to_owned(),
                ),
                (Err(e), false) => match e.as_db_error() {
                    Some(db) if db.kind == probe.rejected_as => {
                        (true, format!("rejected: {}", db.message))
                    }
                    _ => (
                        false,
                        format!("failed, but not as a {} error: {e}", probe.rejected_as),
                    ),
                },
                (Err(e), true) => (false, format!("rejected, but it is valid: {e}")),
            };
            check(probe.name, ok, &detail);
        }
        Ok(())
    }
}

impl FreshBaseline {
    /// Seed 004's database reset: back up every old table, then drop it.
    fn reset(&mut self) -> Result<()> {
        let db = open_app()?;
        let old = objects(&db, "table")?;
        if old.is_empty() {
            info!("the database holds no table: nothing to reset");
            return Ok(());
        }
        if !self.wipe_old_database {
            bail!(
                "the database holds {} old table(s) ({}); seed 004 wipes them before the \
                 baseline. Set config key `wipe_old_database = true` (`--set \
                 wipe_old_database=true`) to back them up and drop them: nothing was changed",
                old.len(),
                old.join(", ")
            );
        }
        let views = objects(&db, "view")?;
        if !views.is_empty() {
            bail!(
                "the database holds view(s) ({}), which a migrun backup does not hold: drop or \
                 save them yourself before the reset; nothing was changed",
                views.join(", ")
            );
        }
        // The old tables, and the baseline's (absent ones recorded as absent), so that
        // restoring this one backup drops what the baseline creates and brings the old back.
        let mut covered: Vec<&str> = old.iter().map(String::as_str).collect();
        for table in BASELINE_TABLES {
            if !covered.contains(table) {
                covered.push(table);
            }
        }
        match backup::snapshot("app", &covered, RESET_LABEL) {
            Ok(snapshot) => {
                let rows: u64 = snapshot.tables.iter().map(|(_, rows, _)| rows).sum();
                info!(backup = snapshot.id, tables = old.len(), rows = rows;
                    "old database backed up as {} ({} tables, {rows} rows); bring it back with: \
                     migrun restore {} --yes",
                    snapshot.id, old.len(), snapshot.id);
            }
            Err(e) if e.to_string().contains("a dry-run takes no backups") => {
                warn!(
                    "a dry-run takes no backup: a run backs up {} before dropping them",
                    old.join(", ")
                );
            }
            Err(e) => bail!("the old tables could not be backed up, so none was dropped: {e}"),
        }
        // The old tables may reference each other: their foreign keys are checked once
        // all are gone (none is left), then immediately again for what follows in the
        // same transaction (a dry-run's later units and probes).
        db.execute("PRAGMA defer_foreign_keys = ON", params![])?;
        for table in &old {
            db.execute(&format!("DROP TABLE {}", quote(table)), params![])?;
        }
        db.execute("PRAGMA defer_foreign_keys = OFF", params![])?;
        info!(tables = old.len(); "dropped the old tables: {}", old.join(", "));
        Ok(())
    }

    /// Seed 004's `alembic upgrade head`: the baseline schema and its revision row.
    fn baseline(&mut self) -> Result<()> {
        let db = open_app()?;
        let existing: Vec<String> = objects(&db, "table")?
            .into_iter()
            .filter(|t| BASELINE_TABLES.contains(&t.as_str()))
            .collect();
        if !existing.is_empty() {
            bail!(
                "a fresh baseline needs a reset database, but {} exist(s) already (run the \
                 `reset` unit first): nothing was changed",
                existing.join(", ")
            );
        }
        for statement in SCHEMA {
            db.execute(statement, params![])?;
        }
        db.execute(
            "INSERT INTO alembic_version (version_num) VALUES (?)",
            params![self.alembic_revision.as_str()],
        )?;
        info!(tables = TABLES.len(), revision = self.alembic_revision;
            "baseline schema created at alembic revision {}", self.alembic_revision);
        Ok(())
    }
}

migrun_sdk::export_plugin!(FreshBaseline);
