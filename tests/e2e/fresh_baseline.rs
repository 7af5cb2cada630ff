//! Seed 004 end to end: the fresh baseline on SQLite (`plugins/fresh-baseline`).
//!
//! - `fresh_baseline_constraints_hold`: on an empty database the plugin creates the
//!   schema and the alembic baseline row, every probe of `verify` holds, a rerun is
//!   skipped, and the run's backup undoes the baseline.
//! - `seed_commands_fit_the_schema_and_invalid_rows_are_refused`: rows as the seed's
//!   `!add location <location_name>` and `!add geographic <lat> <lon> [radius]` write
//!   them, inserted by the test itself (not by the plugin), go in; the seed's invalid
//!   example and the other invalid rows are refused by the database's constraints;
//!   `alembic_version` holds the seed's baseline revision, or the configured one.
//! - `reset_backs_up_the_old_database_then_drops_it`: an old database is refused
//!   unless `wipe_old_database = true`; with it, the reset snapshots every old table,
//!   drops them, the baseline follows; `migrun restore` of that snapshot brings the old
//!   database back table for table, and the next run resets it again.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::{database_checksums, row_count, user_tables};
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

const PLUGIN: &str = "fresh-baseline";
/// The seed's baseline migration, `9275fe03c648_create_initial_baseline_from_new_schema.py`.
const SEED_REVISION: &str = "9275fe03c648";
const BASELINE: [&str; 4] = [
    "alembic_version",
    "channel_configs",
    "monitoring_targets",
    "seen_submissions",
];

fn workspace(db: &TestDatabase) -> (Workspace, String) {
    let plugin = plugins::plugin(PLUGIN).to_str().unwrap().to_owned();
    let ws = Workspace::new();
    ws.config(&format!("[connections.app]\nurl = \"{}\"\n", db.url));
    (ws, plugin)
}

/// The user tables of the database, migrun's ledger left out.
async fn tables(url: &str) -> Vec<String> {
    user_tables(url)
        .await
        .into_iter()
        .filter(|t| t != "migrun_ledger")
        .collect()
}

/// The status of every unit in a `--json` report, in order.
fn statuses(report: &serde_json::Value) -> Vec<String> {
    report["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Every value of the first column of `sql`, as text.
async fn column(db: &TestDatabase, sql: &str) -> Vec<String> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn.query(sql, &[]).await.expect(sql);
    conn.close().await;
    rows.rows
        .into_iter()
        .map(|r| match r.into_iter().next() {
            Some(Value::Text(t)) => t,
            other => panic!("{sql}: {other:?}"),
        })
        .collect()
}

/// Seed 004: the baseline schema on SQLite, whose constraints reject invalid rows.
#[tokio::test(flavor = "multi_thread")]
async fn fresh_baseline_constraints_hold() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let (ws, plugin) = workspace(&db);
    let out = ws.migrun(&[&plugin, "--json"]);
    out.expect_code(0)
        .expect_output("the database holds no table: nothing to reset");
    let report = out.json();
    let checks = report["checks"].as_array().unwrap();
    let failed: Vec<_> = checks.iter().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in [
        "table monitoring_targets exists",
        "alembic_version holds the baseline revision 9275fe03c648",
        "latitude 200 is rejected (!add geographic 200 300 5)",
        "a text latitude is rejected (STRICT types)",
        "a geographic target is accepted (!add geographic 40.7128 -74.0060 25)",
        "a geographic target without a radius is accepted (!add geographic 40.7128 -74.0060)",
        "a location target by name is accepted (!add location \"Test Location\")",
        "the same location name twice in a channel is rejected",
        "a target of an unknown channel is rejected (foreign key)",
    ] {
        assert!(
            names.contains(&expected),
            "missing check {expected:?}: {names:?}"
        );
    }
    let rejected = checks
        .iter()
        .find(|c| c["name"] == "latitude 200 is rejected (!add geographic 200 300 5)")
        .unwrap();
    assert!(
        rejected["detail"]
            .as_str()
            .unwrap()
            .contains("CHECK constraint failed"),
        "{rejected}"
    );
    // verify's probes were rolled back: the baseline is empty but for its revision.
    for table in ["channel_configs", "monitoring_targets", "seen_submissions"] {
        assert_eq!(row_count(&db.url, table).await, 0, "{table}");
    }
    assert_eq!(row_count(&db.url, "alembic_version").await, 1);
    // A second run finds both units finished.
    let again = ws.migrun(&[&plugin, "--json"]);
    again.expect_code(0);
    assert_eq!(statuses(&again.json()), ["skipped", "skipped"]);

    // The first run backed up the empty file (its tables absent); one restore undoes the
    // baseline, and the plugin then lays it down again.
    let id = report["backups"][0]["id"]
        .as_str()
        .expect("the run's backup");
    let mut backed_up: Vec<&str> = report["backups"][0]["tables"]
        .as_array()
        .expect("backed-up tables")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default())
        .collect();
    backed_up.sort_unstable();
    assert_eq!(backed_up, BASELINE);
    ws.migrun(&["restore", id, "--yes"])
        .expect_code(0)
        .expect_output("every table matches it");
    let left = tables(&db.url).await;
    assert!(left.is_empty(), "the restore undid the baseline: {left:?}");
    let rebuilt = ws.migrun(&[&plugin, "--json"]);
    rebuilt.expect_code(0);
    assert_eq!(rebuilt.json()["units"][1]["status"], "committed");
}

/// The seed's own commands, as rows the application writes: checked by the database
/// from the test's side, not by the plugin's report of itself.
#[tokio::test(flavor = "multi_thread")]
async fn seed_commands_fit_the_schema_and_invalid_rows_are_refused() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let (ws, plugin) = workspace(&db);
    ws.migrun(&[&plugin]).expect_code(0);
    assert_eq!(
        column(&db, "SELECT version_num FROM alembic_version").await,
        [SEED_REVISION],
        "`alembic current` reports the seed's baseline"
    );

    const CHANNEL: i64 = 1_187_243_601_925_341_194;
    db.exec_with(
        "INSERT INTO channel_configs (channel_id, guild_id) VALUES (?, ?)",
        &[Value::Int(CHANNEL), Value::Int(42)],
    )
    .await;
    let insert = "INSERT INTO monitoring_targets \
        (channel_id, target_type, display_name, location_id, latitude, longitude, radius_miles) \
        VALUES (?, ?, ?, ?, ?, ?, ?)";
    let row = |kind: &str, name: &str, lat: Value, lon: Value, radius: Value| {
        vec![
            Value::Int(CHANNEL),
            Value::Text(kind.into()),
            Value::Text(name.into()),
            Value::Null,
            lat,
            lon,
            radius,
        ]
    };
    let location = |name: &str| row("location", name, Value::Null, Value::Null, Value::Null);
    let area = |lat: f64, lon: f64, radius: Option<f64>| {
        row(
            "geographic",
            &format!("{lat} {lon}"),
            Value::Float(lat),
            Value::Float(lon),
            radius.map_or(Value::Null, Value::Float),
        )
    };
    // `!add location "Test Location"`, `!add geographic 40.7128 -74.0060 25`, and the same
    // area without the optional radius.
    for accepted in [
        location("Test Location"),
        area(40.7128, -74.0060, Some(25.0)),
        area(40.7128, -74.0060, None),
    ] {
        db.exec_with(insert, &accepted).await;
    }
    let mut conn = db.connect(Access::ReadWrite).await;
    for (what, refused, because) in [
        (
            "!add geographic 200 300 5",
            area(200.0, 300.0, Some(5.0)),
            "CHECK constraint failed",
        ),
        (
            "longitude 300",
            area(10.0, 300.0, Some(5.0)),
            "CHECK constraint failed",
        ),
        (
            "a radius of -1",
            area(10.0, 10.0, Some(-1.0)),
            "CHECK constraint failed",
        ),
        (
            "a text latitude",
            row(
                "geographic",
                "north",
                Value::Text("north".into()),
                Value::Float(1.0),
                Value::Null,
            ),
            "cannot store TEXT value in REAL column",
        ),
        (
            "a geographic target without coordinates",
            row("geographic", "vague", Value::Null, Value::Null, Value::Null),
            "CHECK constraint failed",
        ),
        (
            "a blank location name",
            location("  "),
            "CHECK constraint failed",
        ),
        (
            "the same location twice",
            location("test location"),
            "UNIQUE constraint failed",
        ),
        (
            "the same area without a radius twice",
            area(40.7128, -74.0060, None),
            "UNIQUE constraint failed",
        ),
    ] {
        let error = conn
            .execute(insert, &refused)
            .await
            .expect_err(&format!("{what} must be refused"));
        assert!(error.message.contains(because), "{what}: {error}");
    }
    conn.close().await;
    assert_eq!(row_count(&db.url, "monitoring_targets").await, 3);
    let radii = column(
        &db,
        "SELECT coalesce(CAST(radius_miles AS TEXT), 'none') FROM monitoring_targets \
         WHERE target_type = 'geographic' ORDER BY 1",
    )
    .await;
    assert_eq!(radii, ["25.0", "none"]);

    // The revision is configurable; a value that is no revision id is refused up front.
    let Some(other) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let (ws, plugin) = workspace(&other);
    ws.migrun(&[&plugin, "--set", "alembic_revision=0a1b2c3d4e5f"])
        .expect_code(0);
    assert_eq!(
        column(&other, "SELECT version_num FROM alembic_version").await,
        ["0a1b2c3d4e5f"]
    );
    let Some(third) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let (ws, plugin) = workspace(&third);
    let refused = ws.migrun(&[&plugin, "--set", "alembic_revision=head; DROP"]);
    assert_ne!(refused.code, 0);
    refused.expect_output("is not an alembic revision id");
    assert!(tables(&third.url).await.is_empty());
}

/// The schema before the redesign, with rows, an index, a trigger, a table the baseline
/// does not have and an old alembic revision.
const OLD_SCHEMA: &str = "
CREATE TABLE channel_configs (channel_id INTEGER PRIMARY KEY, guild_id INTEGER, poll_rate INTEGER, active BOOLEAN);
CREATE TABLE monitoring_targets (
    id INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL REFERENCES channel_configs (channel_id),
    target_type TEXT NOT NULL,
    target_name TEXT NOT NULL,
    target_data TEXT
);
CREATE INDEX ix_old_targets_channel ON monitoring_targets (channel_id);
CREATE TABLE target_notes (id INTEGER PRIMARY KEY, target_id INTEGER REFERENCES monitoring_targets (id), note TEXT);
CREATE TABLE seen_submissions (id INTEGER PRIMARY KEY, channel_id INTEGER, submission_id INTEGER);
CREATE TRIGGER old_targets_touch AFTER INSERT ON monitoring_targets BEGIN
    INSERT INTO target_notes (target_id, note) VALUES (NEW.id, 'added');
END;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('3f1e2d4c5b6a');
INSERT INTO channel_configs VALUES (1001, 42, 5, 1), (1002, 42, 60, 0);
INSERT INTO monitoring_targets (channel_id, target_type, target_name, target_data) VALUES
    (1001, 'latlong', '40.7128,-74.0060,25', NULL),
    (1001, 'location', 'Test Location', '874'),
    (1002, 'city', 'Portland, OR', NULL);
INSERT INTO target_notes (target_id, note) VALUES (2, 'the pub on 5th');
INSERT INTO seen_submissions (channel_id, submission_id) VALUES (1001, 77), (1001, 78);
";

/// The schema SQL of every table, index and trigger, by name.
async fn schema_sql(db: &TestDatabase) -> Vec<String> {
    column(
        db,
        "SELECT type || ' ' || name || ': ' || sql FROM sqlite_master \
         WHERE sql IS NOT NULL AND name NOT LIKE 'migrun\\_%' ESCAPE '\\' ORDER BY type, name",
    )
    .await
}

/// Seed 004's reset: the old database is backed up, then wiped, and one command restores it.
#[tokio::test(flavor = "multi_thread")]
async fn reset_backs_up_the_old_database_then_drops_it() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    db.admin_exec(OLD_SCHEMA).await;
    let old_sums = database_checksums(&db.url).await;
    let old_schema = schema_sql(&db).await;
    assert_eq!(old_sums.len(), 5, "{old_sums:?}");
    let (ws, plugin) = workspace(&db);

    // Without the opt-in, the old tables are refused and nothing changes.
    let refused = ws.migrun(&[&plugin]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    refused
        .expect_output("the database holds 5 old table(s)")
        .expect_output("wipe_old_database = true")
        .expect_output("nothing was changed");
    let mut now = database_checksums(&db.url).await;
    now.remove("migrun_ledger");
    assert_eq!(now, old_sums, "a refused reset changed the database");

    // A dry-run plans the whole reset and baseline, takes no backup and changes nothing.
    let dry = ws.migrun(&[
        &plugin,
        "--dry-run",
        "--set",
        "wipe_old_database=true",
        "--json",
    ]);
    let plan = dry.expect_code(0).json();
    assert!(
        plan["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{}",
        plan["checks"]
    );
    dry.expect_output("a dry-run takes no backup: a run backs up ");
    let mut now = database_checksums(&db.url).await;
    now.remove("migrun_ledger");
    assert_eq!(now, old_sums, "a dry-run changed the database");

    // With it: backed up, dropped, baseline.
    let out = ws.migrun(&[&plugin, "--set", "wipe_old_database=true", "--json"]);
    out.expect_code(0)
        .expect_output("old database backed up as ")
        .expect_output("bring it back with: migrun restore ");
    let report = out.json();
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{}",
        report["checks"]
    );
    assert_eq!(tables(&db.url).await, BASELINE, "the old tables are gone");
    assert_eq!(
        column(&db, "SELECT version_num FROM alembic_version").await,
        [SEED_REVISION]
    );
    assert_eq!(row_count(&db.url, "monitoring_targets").await, 0);

    // The reset's own snapshot holds every old table, and the baseline's as they were.
    let listed = ws.migrun(&["backup", "list", "--json"]);
    listed.expect_code(0);
    let listed = listed.json();
    let reset = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["id"]
                .as_str()
                .is_some_and(|id| id.ends_with(".app.before-reset"))
        })
        .unwrap_or_else(|| panic!("the reset's backup: {listed}"))
        .clone();
    let id = reset["id"].as_str().unwrap();
    out.expect_output(&format!("migrun restore {id} --yes"));
    let mut held: Vec<(String, bool)> = reset["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["present"].as_bool().unwrap(),
            )
        })
        .collect();
    held.sort();
    let mut expected: Vec<(String, bool)> = old_sums.keys().map(|t| (t.clone(), true)).collect();
    expected.sort();
    assert_eq!(held, expected);

    // One command brings the old database back, table for table.
    ws.migrun(&["restore", id, "--yes"])
        .expect_code(0)
        .expect_output("every table matches it");
    let mut restored = database_checksums(&db.url).await;
    restored.remove("migrun_ledger");
    assert_eq!(restored, old_sums, "the old rows are back");
    assert_eq!(schema_sql(&db).await, old_schema, "the old schema is back");
    assert_eq!(
        column(&db, "SELECT version_num FROM alembic_version").await,
        ["3f1e2d4c5b6a"]
    );

    // The restore made the ledger forget the run: the next run resets again.
    let again = ws.migrun(&[&plugin, "--set", "wipe_old_database=true", "--json"]);
    again.expect_code(0);
    assert_eq!(statuses(&again.json()), ["committed", "committed"]);
    assert_eq!(tables(&db.url).await, BASELINE);
}
