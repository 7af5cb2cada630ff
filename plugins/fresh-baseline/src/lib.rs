//! Seed 004's fresh baseline: instead of migrating data, a new SQLite database
//! gets the redesigned schema in one unit, with the constraints that keep
//! invalid data out, and `verify` proves the constraints work.
//!
//! The schema (three tables):
//!
//! - `channel_configs`: one row per channel (Discord ids are 64-bit
//!   integers), its polling rate (1–1440 minutes) and notification switch.
//! - `monitoring_targets`: what a channel watches. `target_type` is
//!   `location` (a `location_id`, no coordinates) or `geographic` (latitude
//!   in [-90, 90], longitude in [-180, 180], a radius in (0, 250] miles, no
//!   location id); `display_name` is never blank. A table CHECK ties the
//!   fields to the type.
//! - `seen_submissions`: submissions already announced per channel, unique
//!   per (channel, submission).
//!
//! The tables are `STRICT`, so SQLite checks every value's type (a text
//! latitude is rejected, not stored), and foreign keys cascade from
//! `channel_configs`.
//!
//! `verify` runs in a transaction the host rolls back: it inserts valid rows
//! (the seed's own examples, `40.7128 -74.0060 25`) and invalid ones (the
//! seed's `200 300 5`, a text latitude, a blank name, an unknown channel, …)
//! and reports one check per row: accepted when valid, rejected by a
//! constraint when invalid.

use migrun_sdk::{
    Config, Connection, DbErrorKind, Dialect, Need, Plugin, PluginInfo, Result, Value, bail, check,
    info, params,
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
            (target_type = 'location' AND location_id IS NOT NULL
                AND latitude IS NULL AND longitude IS NULL AND radius_miles IS NULL)
            OR (target_type = 'geographic' AND location_id IS NULL
                AND latitude IS NOT NULL AND longitude IS NOT NULL AND radius_miles IS NOT NULL)
        ),
        UNIQUE (channel_id, location_id),
        UNIQUE (channel_id, latitude, longitude, radius_miles)
    ) STRICT",
    "CREATE INDEX ix_monitoring_targets_channel ON monitoring_targets (channel_id)",
    "CREATE TABLE seen_submissions (
        id INTEGER PRIMARY KEY,
        channel_id INTEGER NOT NULL REFERENCES channel_configs (channel_id) ON DELETE CASCADE,
        submission_id INTEGER NOT NULL,
        seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        UNIQUE (channel_id, submission_id)
    ) STRICT",
];

const TABLES: &[&str] = &["channel_configs", "monitoring_targets", "seen_submissions"];

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

fn target(
    channel: i64,
    kind: &str,
    name: &str,
    location: Option<i64>,
    geo: Option<(Value, f64, f64)>,
) -> Vec<Value> {
    let (lat, lon, radius) = match geo {
        Some((lat, lon, radius)) => (lat, Value::Float(lon), Value::Float(radius)),
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
            "a location target is accepted (!add location \"Test Location\")",
            target(CHANNEL, "location", "Test Location", Some(7), None),
            true,
        ),
        t(
            "a geographic target is accepted (!add geographic 40.7128 -74.0060 25)",
            target(
                CHANNEL,
                "geographic",
                "New York",
                None,
                Some((Value::Float(40.7128), -74.0060, 25.0)),
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
                Some((Value::Float(200.0), 300.0, 5.0)),
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
                Some((Value::Float(10.0), 300.0, 5.0)),
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
                Some((Value::Float(10.0), 10.0, 0.0)),
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
                    Some((Value::Text("north".into()), 10.0, 5.0)),
                ),
                false,
            )
        },
        t(
            "an unknown target type is rejected",
            target(CHANNEL, "planet", "Mars", Some(8), None),
            false,
        ),
        t(
            "a geographic target without coordinates is rejected",
            target(CHANNEL, "geographic", "Vague", None, None),
            false,
        ),
        t(
            "a location target with coordinates is rejected",
            target(
                CHANNEL,
                "location",
                "Both",
                Some(9),
                Some((Value::Float(1.0), 1.0, 1.0)),
            ),
            false,
        ),
        t(
            "a blank display name is rejected",
            target(CHANNEL, "location", "   ", Some(10), None),
            false,
        ),
        t(
            "a target of an unknown channel is rejected (foreign key)",
            target(CHANNEL + 99, "location", "Orphan", Some(11), None),
            false,
        ),
        t(
            "the same location twice in a channel is rejected",
            target(CHANNEL, "location", "Test Location again", Some(7), None),
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

struct FreshBaseline;

impl Plugin for FreshBaseline {
    fn describe() -> PluginInfo {
        PluginInfo::new("fresh-baseline", env!("CARGO_PKG_VERSION"))
            .description("creates seed 004's baseline schema on SQLite and proves its constraints")
            .connection(
                Need::read_write("app", "the new, empty SQLite database")
                    .writes(TABLES.iter().copied()),
            )
            .unit(
                "baseline",
                "creates channel_configs, monitoring_targets and seen_submissions",
            )
    }

    fn configure(_config: &Config) -> Result<Self> {
        Ok(FreshBaseline)
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        if unit != "baseline" {
            bail!("unknown unit `{unit}`");
        }
        let db = Connection::open("app")?;
        if db.dialect() != Dialect::Sqlite {
            bail!(
                "the baseline is SQLite's (seed 004); `app` is {}: nothing was changed",
                db.dialect()
            );
        }
        let existing: Vec<String> = db
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?) ORDER BY name",
                params![TABLES[0], TABLES[1], TABLES[2]],
            )?
            .into_iter()
            .map(|row| row.get::<String>("name"))
            .collect::<Result<_>>()?;
        if !existing.is_empty() {
            bail!(
                "a fresh baseline needs an empty database, but {} exist(s) already: nothing was changed",
                existing.join(", ")
            );
        }
        for statement in SCHEMA {
            db.execute(statement, params![])?;
        }
        info!(tables = TABLES.len(); "baseline schema created");
        Ok(())
    }

    fn verify(&mut self) -> Result<()> {
        let db = Connection::open("app")?;
        for table in TABLES {
            let n: i64 = db.query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                params![*table],
            )?;
            check(&format!("table {table} exists"), n == 1, "");
            if n != 1 {
                return Ok(());
            }
        }
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

migrun_sdk::export_plugin!(FreshBaseline);
