//! Backups before writes and `migrun restore`, on every dialect: the host's
//! own snapshot of the tables a plugin declares it writes, snapshots a plugin
//! takes itself (through `sql-script`'s `-- migrun:backup` lines), `backup
//! list|verify`, restores that bring back byte-identical tables, corrupted
//! backups, and backup directories that cannot be written.

use std::collections::BTreeMap;

use migrun::db::Dialect;

use crate::support::checksum::database_checksums;
use crate::support::cli::Workspace;
use crate::support::database::{TestDatabase, require_dbs};
use crate::support::plugins;

/// Every table's checksum except the ledger's, which a restore does not put back (it
/// forgets the undone run's rows instead).
pub(crate) async fn data_checksums(url: &str) -> BTreeMap<String, String> {
    database_checksums(url)
        .await
        .into_iter()
        .filter(|(table, _)| !table.ends_with("migrun_ledger"))
        .collect()
}

fn auth_config(source: &str, target: &str, extra: &str) -> String {
    format!(
        r#"
[connections.source]
url = "{source}"
access = "read-only"

[connections.target]
url = "{target}"
access = "read-write"

[config]
batch_size = 100
{extra}
"#
    )
}

/// The host snapshots `auth_users` (declared in `writes`) before the first write;
/// the dry-run plans it without taking it; restoring undoes the run.
async fn host_backup_scenario(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 300, 3)
        .await
        .expect("seed users");
    // Something already on the target that the run must not disturb, and the restore must keep.
    target
        .exec("CREATE TABLE keep_me (id INTEGER PRIMARY KEY, note VARCHAR(40))")
        .await;
    target
        .exec("INSERT INTO keep_me VALUES (1, 'before'), (2, 'the run')")
        .await;
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, ""));
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    let before = data_checksums(&target.url).await;

    ws.migrun(&[plugin, "--dry-run"])
        .expect_code(0)
        .expect_output("backup before the first write: auth_users (does not exist yet)");
    assert!(
        !ws.path().join("migrun-backups").exists()
            || std::fs::read_dir(ws.path().join("migrun-backups"))
                .unwrap()
                .next()
                .is_none(),
        "a dry-run takes no backup"
    );

    let run = ws.migrun(&[plugin, "--json"]);
    run.expect_code(0);
    let report = run.json();
    let backup = &report["backups"][0];
    let id = backup["id"].as_str().expect("the run names its backup");
    assert!(id.ends_with(".target.before-run"), "{id}");
    assert_eq!(backup["tables"][0]["name"], "auth_users");
    assert_eq!(backup["tables"][0]["rows"], 0);
    assert_ne!(data_checksums(&target.url).await, before, "the run wrote");

    let list = ws.migrun(&["backup", "list", "--json"]);
    list.expect_code(0);
    let listed = list.json();
    assert_eq!(listed["schema"], "migrun.backup-list/1");
    assert_eq!(listed["backups"][0]["id"], id);
    let journal = report["journal"]["path"].as_str().expect("journal path");
    assert_eq!(
        listed["backups"][0]["journal"], journal,
        "the manifest names the run's journal"
    );
    assert!(
        id.starts_with(listed["backups"][0]["run_id"].as_str().unwrap()),
        "the id starts with the run id"
    );
    assert_eq!(listed["backups"][0]["tables"][0]["present"], false);
    ws.migrun(&["backup", "verify", id])
        .expect_code(0)
        .expect_output("verified");

    // Without a terminal and without --yes, nothing happens.
    ws.migrun(&["restore", id])
        .expect_code(2)
        .expect_output("pass --yes");
    ws.migrun(&["restore", id, "--yes"])
        .expect_code(0)
        .expect_output("auth_users dropped")
        .expect_output("every table matches it");
    assert_eq!(
        data_checksums(&target.url).await,
        before,
        "restore brings the target back to before the run"
    );
    // The restore undid the run: its units run again, as on a fresh target.
    let again = ws.migrun(&[plugin, "--json"]);
    again.expect_code(0);
    assert_eq!(again.json()["units"][1]["status"], "committed");
}

/// `migrun backup prune` (issue 22, item 5): three runs' backups (each run undone by a restore,
/// so the next one has work to do and backs up again); `--dry-run` deletes nothing; `--keep 1`
/// deletes the two older runs' backups; the newest run's is kept unless `--force`; `--older-than`
/// spares recent ones; a bad age is refused.
#[tokio::test(flavor = "multi_thread")]
async fn backup_prune_keeps_the_newest_runs() {
    let Some(source) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 50, 3)
        .await
        .expect("seed users");
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, ""));
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    // Each run backs up the target and the read-only source (`users`, which seed 000's
    // rollback restores); a run's backups go together, so the target's stand for the run.
    let of_target = |id: &str| id.ends_with(".target.before-run");
    let listed = |ws: &Workspace| -> Vec<String> {
        let list = ws.migrun(&["backup", "list", "--json"]);
        list.expect_code(0);
        list.json()["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .filter(|id| of_target(id))
            .collect()
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run = ws.migrun(&[plugin, "--json"]);
        run.expect_code(0);
        let id = run.json()["backups"][0]["id"].as_str().unwrap().to_owned();
        ws.migrun(&["restore", &id, "--yes"]).expect_code(0);
        ids.push(id);
    }
    assert_eq!(listed(&ws), ids, "oldest first");

    let dry = ws.migrun(&["backup", "prune", "--keep", "1", "--dry-run"]);
    dry.expect_code(0)
        .expect_output("would delete")
        .expect_output(&ids[0])
        .expect_output(&ids[1]);
    assert_eq!(listed(&ws), ids, "--dry-run deletes nothing");

    ws.migrun(&["backup", "prune", "--older-than", "1h"])
        .expect_code(0)
        .expect_output("nothing to delete");
    assert_eq!(listed(&ws), ids, "every backup is younger than an hour");

    let pruned = ws.migrun(&["backup", "prune", "--keep", "1", "--json"]);
    pruned.expect_code(0);
    let pruned = pruned.json();
    assert_eq!(pruned["schema"], "migrun.backup-prune/1");
    let removed: Vec<&str> = pruned["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 4, "two runs, two backups each: {removed:?}");
    assert_eq!(
        removed
            .into_iter()
            .filter(|id| of_target(id))
            .collect::<Vec<_>>(),
        [ids[1].as_str(), ids[0].as_str()]
    );
    assert!(pruned["bytes_freed"].as_u64().unwrap() > 0, "{pruned}");
    assert_eq!(listed(&ws), [ids[2].clone()]);
    let folders: Vec<String> = std::fs::read_dir(ws.path().join("migrun-backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut folders = folders;
    folders.sort();
    let newest_source = ids[2].replace(".target.before-run", ".source.before-run");
    let mut kept = vec![ids[2].clone(), newest_source];
    kept.sort();
    assert_eq!(folders, kept, "nothing left behind on disk");

    ws.migrun(&["backup", "prune", "--keep", "0"])
        .expect_code(0)
        .expect_output("newest run of its plugin")
        .expect_output("--force");
    assert_eq!(listed(&ws), [ids[2].clone()], "the newest run is protected");
    ws.migrun(&["backup", "prune", "--keep", "0", "--force"])
        .expect_code(0);
    assert!(listed(&ws).is_empty(), "--force deletes it too");

    ws.migrun(&["backup", "prune", "--older-than", "soon"])
        .expect_code(2)
        .expect_output("does not start with a number");
    ws.migrun(&["backup", "prune"]).expect_code(2);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_backup_before_run_is_restored_sqlite() {
    host_backup_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_backup_before_run_is_restored_postgres() {
    host_backup_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_backup_before_run_is_restored_mysql() {
    host_backup_scenario(Dialect::MySql).await;
}

pub(crate) fn script_config(target: &str, sql: &str, extra: &str) -> String {
    format!(
        r#"
[connections.target]
url = "{target}"
access = "read-write"

[config]
sql = """
{sql}
"""
{extra}
"#
    )
}

async fn seed_items(db: &TestDatabase) {
    db.exec(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(10,2), tag VARCHAR(20))",
    )
    .await;
    db.exec("CREATE INDEX items_tag ON items (tag)").await;
    let values: Vec<String> = (1..=200)
        .map(|i| {
            let tag = if i % 7 == 0 {
                "NULL".to_owned()
            } else {
                format!("'t{}'", i % 5)
            };
            format!("({i}, 'item {i}', {}.{:02}, {tag})", i * 3, i % 100)
        })
        .collect();
    db.exec(&format!("INSERT INTO items VALUES {}", values.join(", ")))
        .await;
}

/// A plugin snapshots `items` itself, then changes rows (and, with a dump or SQLite's
/// copy, the schema); restoring its snapshot brings the table back byte for byte.
async fn plugin_snapshot_scenario(dialect: Dialect, method: &str) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    seed_items(&target).await;
    let schema_change = if method == "native" {
        // A native PostgreSQL snapshot holds rows, not schema: keep the columns.
        "DELETE FROM items WHERE tag IS NULL"
    } else {
        "ALTER TABLE items ADD COLUMN note VARCHAR(20)"
    };
    let sql = format!(
        "-- migrun:backup pre items\n;;\nUPDATE items SET price = price * 2 WHERE id % 2 = 0\n;;\nDELETE FROM items WHERE id % 3 = 0\n;;\n{schema_change}\n;;\nINSERT INTO items (id, name, price) VALUES (1000, 'new', 1.00)"
    );
    let ws = Workspace::new();
    ws.config(&script_config(
        &target.url,
        &sql,
        &format!(
            "[backup]\nmethod = \"{}\"",
            if method == "native" { "native" } else { "auto" }
        ),
    ));
    let plugin = plugins::plugin("sql-script");
    let before = data_checksums(&target.url).await;
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    assert_ne!(data_checksums(&target.url).await, before);

    let listed = ws.migrun(&["backup", "list", "--json"]);
    listed.expect_code(0);
    let backups = listed.json()["backups"].as_array().unwrap().clone();
    let snapshot = backups
        .iter()
        .find(|b| b["label"] == "pre")
        .expect("the plugin's snapshot is listed");
    let expected_method = match (dialect, method) {
        (Dialect::Sqlite, _) => "sqlite-backup",
        (_, "native") => "native",
        (Dialect::Postgres, _) => "pg-dump",
        (Dialect::MySql, _) => "mariadb-dump",
    };
    assert_eq!(snapshot["method"], expected_method);
    assert_eq!(snapshot["tables"][0]["rows"], 200);
    let id = snapshot["id"].as_str().unwrap();
    ws.migrun(&["backup", "verify", id]).expect_code(0);
    let restored = ws.migrun(&["restore", id, "--tables", "items", "--yes", "--json"]);
    restored.expect_code(0);
    let restored = restored.json();
    assert_eq!(restored["verified"], true);
    assert_eq!(restored["report"]["tables"][0]["rows"], 200);
    assert_eq!(
        data_checksums(&target.url).await,
        before,
        "items is back to what it was, value for value"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_snapshot_is_restored_sqlite() {
    plugin_snapshot_scenario(Dialect::Sqlite, "auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_snapshot_is_restored_postgres_pg_dump() {
    plugin_snapshot_scenario(Dialect::Postgres, "auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_snapshot_is_restored_postgres_native() {
    plugin_snapshot_scenario(Dialect::Postgres, "native").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_snapshot_is_restored_mysql_dump() {
    plugin_snapshot_scenario(Dialect::MySql, "auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_snapshot_is_restored_mysql_native() {
    plugin_snapshot_scenario(Dialect::MySql, "native").await;
}

/// Flipping one byte of a backup file fails `verify`, naming the file, and `restore`
/// refuses it without touching the database.
async fn corrupted_scenario(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    seed_items(&target).await;
    let ws = Workspace::new();
    ws.config(&script_config(
        &target.url,
        "-- migrun:backup pre items\n;;\nDELETE FROM items WHERE id > 100",
        "",
    ));
    ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap()])
        .expect_code(0);
    let after_run = data_checksums(&target.url).await;
    let listed = ws.migrun(&["backup", "list", "--json"]).json();
    let id = listed["backups"][0]["id"].as_str().unwrap().to_owned();
    let file = listed["backups"][0]["files"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = ws.path().join("migrun-backups").join(&id).join(&file);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&path, bytes).unwrap();

    let verify = ws.migrun(&["backup", "verify", &id]);
    verify.expect_code(1).expect_output("CORRUPT");
    assert!(
        verify.stdout.contains(&file),
        "names the file: {}",
        verify.stdout
    );
    ws.migrun(&["restore", &id, "--yes"])
        .expect_code(2)
        .expect_output("is corrupt")
        .expect_output(&file);
    assert_eq!(
        data_checksums(&target.url).await,
        after_run,
        "a corrupt backup restores nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_backup_fails_verify_sqlite() {
    corrupted_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_backup_fails_verify_postgres() {
    corrupted_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_backup_fails_verify_mysql() {
    corrupted_scenario(Dialect::MySql).await;
}

/// A backup directory that cannot be created stops the run before any write.
#[tokio::test(flavor = "multi_thread")]
async fn unwritable_backup_dir_stops_the_run_before_any_write() {
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
        let Some(source) = TestDatabase::create(dialect).await else {
            continue;
        };
        let Some(target) = TestDatabase::create(dialect).await else {
            continue;
        };
        migrun_fixtures::seed_auth_users(&source.url, 50, 1)
            .await
            .expect("seed");
        let ws = Workspace::new();
        // A file where the directory should be: no one, root included, can create it.
        std::fs::write(ws.path().join("not-a-dir"), b"x").unwrap();
        ws.config(&auth_config(
            &source.ro_url,
            &target.url,
            "[backup]\ndir = \"not-a-dir/backups\"",
        ));
        let before = database_checksums(&target.url).await;
        ws.migrun(&[plugins::plugin("auth-consolidation").to_str().unwrap()])
            .expect_code(2)
            .expect_output("backup before the run failed")
            .expect_output("no database was changed");
        assert_eq!(
            database_checksums(&target.url).await,
            before,
            "{dialect}: nothing written, not even the ledger"
        );
    }
}

/// A full backup directory (a tiny tmpfs) stops the run before any write and leaves no
/// half-written snapshot behind.
#[tokio::test(flavor = "multi_thread")]
async fn full_backup_dir_stops_the_run_before_any_write() {
    let Some(source) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 50, 1)
        .await
        .expect("seed");
    // The target holds more than the tmpfs can take.
    target
        .exec("CREATE TABLE auth_users (id INTEGER PRIMARY KEY, blob TEXT)")
        .await;
    target
        .exec(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO auth_users SELECT i, hex(randomblob(200)) FROM n",
        )
        .await;
    let ws = Workspace::new();
    let Some(mount) = SmallTmpfs::mount(&ws.path().join("small"), "192k") else {
        return;
    };
    ws.config(&auth_config(
        &source.ro_url,
        &target.url,
        "[backup]\ndir = \"small\"",
    ));
    let before = database_checksums(&target.url).await;
    let out = ws.migrun(&[plugins::plugin("auth-consolidation").to_str().unwrap()]);
    out.expect_code(2)
        .expect_output("backup before the run failed")
        .expect_output("full");
    assert_eq!(database_checksums(&target.url).await, before);
    assert!(
        mount.is_empty(),
        "no half-written snapshot: {:?}",
        mount.entries()
    );
}

/// A small tmpfs mounted for one test (needs root; unmounted on drop).
struct SmallTmpfs(std::path::PathBuf);

impl SmallTmpfs {
    /// Mounts a tmpfs of `size` at `path`; `None` (the test skips) when mounting is not
    /// possible here, which fails the test under `MIGRUN_REQUIRE_DBS=1`.
    fn mount(path: &std::path::Path, size: &str) -> Option<SmallTmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                !require_dbs(),
                "cannot mount a small tmpfs to fill (needs root)"
            );
            crate::support::skips::skipped("cannot mount a small tmpfs (needs root)");
            return None;
        }
        Some(SmallTmpfs(path.to_owned()))
    }

    fn entries(&self) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The backup directory filling up in the middle of a run: the plugin's snapshot fails
/// with a storage error it can read, its unit rolls back, nothing half-written is left.
#[tokio::test(flavor = "multi_thread")]
async fn backup_dir_full_mid_run_rolls_the_unit_back() {
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    seed_items(&target).await;
    target
        .exec("CREATE TABLE bulk (id INTEGER PRIMARY KEY, payload TEXT)")
        .await;
    target
        .exec(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO bulk SELECT i, hex(randomblob(200)) FROM n",
        )
        .await;
    let ws = Workspace::new();
    let Some(mount) = SmallTmpfs::mount(&ws.path().join("small"), "192k") else {
        return;
    };
    ws.config(&script_config(
        &target.url,
        "DELETE FROM items WHERE id > 100\n;;\n-- migrun:backup mid items bulk\n;;\nDELETE FROM bulk",
        "[backup]\ndir = \"small\"",
    ));
    let before = data_checksums(&target.url).await;
    ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap()])
        .expect_code(1)
        .expect_output("backup storage")
        .expect_output("full")
        .expect_output("rolled back");
    assert_eq!(
        data_checksums(&target.url).await,
        before,
        "the unit's delete before the failed snapshot is rolled back"
    );
    assert!(
        mount.is_empty(),
        "no half-written snapshot: {:?}",
        mount.entries()
    );
}

/// A plugin cannot name a snapshot so that it lands outside the backup directory, and
/// the operator commands refuse such ids too.
#[tokio::test(flavor = "multi_thread")]
async fn backup_names_cannot_escape_the_backup_dir() {
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    seed_items(&target).await;
    let ws = Workspace::new();
    ws.config(&script_config(
        &target.url,
        "DELETE FROM items\n;;\n-- migrun:backup ../../escaped items",
        "",
    ));
    let before = data_checksums(&target.url).await;
    ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap()])
        .expect_code(1)
        .expect_output("invalid name")
        .expect_output("not a plain name");
    assert_eq!(
        data_checksums(&target.url).await,
        before,
        "the unit rolled back"
    );
    assert!(!ws.path().join("escaped").exists());
    assert!(!ws.path().parent().unwrap().join("escaped").exists());
    for id in ["../x", "/etc", "a/b"] {
        ws.migrun(&["backup", "verify", id])
            .expect_code(2)
            .expect_output("not a plain name");
    }
}

/// What a PostgreSQL target holds, as a user would compare it: its schemas, their
/// functions, and per table the row count and a digest of its rows (the ledger, which a
/// restore keeps, left out). Extensions the run installed are not backed up: left out too.
async fn postgres_target_state(url: &str) -> BTreeMap<String, String> {
    let mut state = crate::multiplayer::snapshot(url, &["migrun_ledger"]).await;
    state.remove("extensions");
    state
}

/// The tables in `during` but not in `before` that match multiplayer-etl's patterns
/// (`me_<slug>.memory`, `me_<slug>.embedding_queue`), as `--drop` takes them: a full
/// restore drops tables created since the backup only when they are named.
fn created_pattern_tables(
    before: &BTreeMap<String, String>,
    during: &BTreeMap<String, String>,
) -> String {
    during
        .keys()
        .filter(|t| !before.contains_key(*t) && t.starts_with("me_"))
        .filter(|t| t.ends_with(".memory") || t.ends_with(".embedding_queue"))
        .cloned()
        .collect::<Vec<_>>()
        .join(",")
}

/// The manifest of backup `id` in the workspace's backup directory.
fn manifest(ws: &Workspace, id: &str) -> serde_json::Value {
    let path = ws
        .path()
        .join("migrun-backups")
        .join(id)
        .join("manifest.json");
    serde_json::from_slice(&std::fs::read(&path).expect("manifest.json")).expect("manifest JSON")
}

/// multiplayer-etl declares `me_<slug>.memory` and `me_<slug>.embedding_queue`: on a fresh
/// target they match nothing; the run creates `auth`, `core` and one `me_<slug>` schema per
/// engine; one `migrun restore` brings the target back to exactly what it was.
#[tokio::test(flavor = "multi_thread")]
async fn pattern_writes_are_undone_by_restore_postgres() {
    let Some(s) = crate::multiplayer::Setup::new().await else {
        return;
    };
    let before = postgres_target_state(&s.target.url).await;
    assert_eq!(before["schemas"], "public");

    s.migrun(&["--dry-run"])
        .expect_code(0)
        .expect_output("pattern me_<slug>.memory: matches no table yet")
        .expect_output("pattern me_<slug>.embedding_queue: matches no table yet");

    let run = s.migrun(&["--json"]);
    let report = run.expect_code(0).json();
    let id = report["backups"][0]["id"]
        .as_str()
        .expect("backup id")
        .to_owned();
    let during = postgres_target_state(&s.target.url).await;
    assert!(
        during["schemas"].contains("me_") && during["schemas"].contains("core"),
        "the run created its schemas: {}",
        during["schemas"]
    );
    let m = manifest(&s.ws, &id);
    assert_eq!(m["format"], "migrun.backup/1");
    assert_eq!(m["patterns"][0]["pattern"], "me_<slug>.memory");
    assert_eq!(m["patterns"][0]["tables"], serde_json::json!([]));
    assert_eq!(m["absent_schemas"], serde_json::json!(["auth", "core"]));

    let created = created_pattern_tables(&before, &during);
    let restore = s.ws.migrun(&["restore", &id, "--yes", "--drop", &created]);
    restore
        .expect_code(0)
        .expect_output("auth.users dropped")
        .expect_output("schema auth dropped")
        .expect_output("schema core dropped")
        .expect_output("every table matches it");
    let created_memory = during
        .keys()
        .find(|t| t.starts_with("me_") && t.ends_with(".memory"))
        .expect("a space's memory table")
        .clone();
    restore.expect_output(&format!("{created_memory} dropped"));
    assert_eq!(
        postgres_target_state(&s.target.url).await,
        before,
        "restore brings back the same schemas, functions and tables"
    );
    // A second restore finds nothing more to undo and changes nothing.
    s.ws.migrun(&["restore", &id, "--yes"]).expect_code(0);
    assert_eq!(postgres_target_state(&s.target.url).await, before);
}

/// A `me_<slug>` schema that exists before the run, with rows, matches the pattern: it is
/// snapshotted and restored with the same checksum, and kept, while everything the run
/// created is dropped. A table the run did not declare, put into a schema the run created,
/// keeps that schema: a restore never drops data it did not back up.
async fn pattern_tables_existing_before_the_run_scenario(method: &str) {
    let Some(s) = crate::multiplayer::Setup::new().await else {
        return;
    };
    let config = s.ws.path().join("migrun.toml");
    let mut toml = std::fs::read_to_string(&config).expect("config");
    toml.push_str(&format!("\n[backup]\nmethod = \"{method}\"\n"));
    s.ws.config(&toml);
    for sql in [
        "CREATE SCHEMA me_legacy",
        "CREATE TABLE me_legacy.memory (id integer PRIMARY KEY, content text NOT NULL)",
        "INSERT INTO me_legacy.memory SELECT i, 'legacy ' || i FROM generate_series(1, 25) i",
        "CREATE TABLE me_legacy.embedding_queue (memory_id integer PRIMARY KEY)",
    ] {
        s.target.exec(sql).await;
    }
    let before = postgres_target_state(&s.target.url).await;
    assert_eq!(
        before["me_legacy.memory"].split(' ').next(),
        Some("25"),
        "{before:?}"
    );

    s.migrun(&["--dry-run"])
        .expect_code(0)
        .expect_output("pattern me_<slug>.memory: matches me_legacy.memory")
        .expect_output("me_legacy.memory (25 rows)");

    let run = s.migrun(&["--json"]);
    let report = run.expect_code(0).json();
    let id = report["backups"][0]["id"]
        .as_str()
        .expect("backup id")
        .to_owned();
    let m = manifest(&s.ws, &id);
    assert_eq!(
        m["patterns"][0]["tables"],
        serde_json::json!(["me_legacy.memory"])
    );
    assert_eq!(
        m["patterns"][0]["schemas"],
        serde_json::json!(["me_legacy"])
    );
    let legacy = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "me_legacy.memory")
        .expect("the matching table is snapshotted");
    assert_eq!(legacy["rows"], 25);
    assert_eq!(legacy["present"], true);

    // After the run, the legacy rows change and a user table lands in a schema the run made.
    s.target
        .exec("DELETE FROM me_legacy.memory WHERE id > 10")
        .await;
    let during = postgres_target_state(&s.target.url).await;
    let created_schema = during["schemas"]
        .split(',')
        .find(|n| n.starts_with("me_") && *n != "me_legacy")
        .expect("a schema the run created")
        .to_owned();
    s.target
        .exec(&format!("CREATE TABLE {created_schema}.notes (id integer)"))
        .await;

    let created = created_pattern_tables(&before, &during);
    let restore = s.ws.migrun(&["restore", &id, "--yes", "--drop", &created]);
    restore
        .expect_code(0)
        .expect_output("me_legacy.memory restored: 25 rows, checksum matches the backup")
        .expect_output(&format!("{created_schema}.memory dropped"))
        .expect_output(&format!("schema {created_schema} kept"))
        .expect_output("never drops data")
        .expect_output("schema core dropped");
    let mut after = postgres_target_state(&s.target.url).await;
    assert_eq!(
        after.remove(&format!("{created_schema}.notes")),
        Some("0 d41d8cd98f00b204e9800998ecf8427e".to_owned()),
        "the user's table is left alone"
    );
    // The kept schema keeps the trigger function the run created in it (it is dropped only
    // with its schema).
    let functions = after.remove("functions").unwrap_or_default();
    assert!(
        functions
            .split(',')
            .all(|f| f.starts_with(&format!("{created_schema}."))),
        "{functions}"
    );
    let mut expected = before.clone();
    expected.remove("functions");
    expected.insert(
        "schemas".into(),
        format!("{created_schema},me_legacy,public")
            .split(',')
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(","),
    );
    assert_eq!(after, expected, "everything else is back to before the run");
}

#[tokio::test(flavor = "multi_thread")]
async fn pattern_tables_existing_before_the_run_are_restored_postgres_pg_dump() {
    pattern_tables_existing_before_the_run_scenario("auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pattern_tables_existing_before_the_run_are_restored_postgres_native() {
    pattern_tables_existing_before_the_run_scenario("native").await;
}

/// A plugin snapshots the pattern `log_<n>` (two tables match), then empties one and
/// creates a third: `--tables log_<n>` restores the two it matched and leaves the new one;
/// the full restore drops the new one too.
async fn pattern_snapshot_scenario(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    for sql in [
        "CREATE TABLE log_1 (id INTEGER PRIMARY KEY, line VARCHAR(40))",
        "INSERT INTO log_1 VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        "CREATE TABLE log_2 (id INTEGER PRIMARY KEY, line VARCHAR(40))",
        "INSERT INTO log_2 VALUES (1, 'uno'), (2, 'dos')",
        "CREATE TABLE logbook (id INTEGER PRIMARY KEY)",
    ] {
        target.exec(sql).await;
    }
    let sql = "-- migrun:backup pre log_<n>\n;;\nDELETE FROM log_1 WHERE id > 1\n;;\n\
               CREATE TABLE log_3 (id INTEGER PRIMARY KEY)\n;;\nINSERT INTO log_3 VALUES (7)";
    let ws = Workspace::new();
    ws.config(&script_config(&target.url, sql, ""));
    let plugin = plugins::plugin("sql-script");
    let before = data_checksums(&target.url).await;
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    let during = data_checksums(&target.url).await;
    assert!(during.keys().any(|t| t.ends_with("log_3")), "{during:?}");

    let listed = ws.migrun(&["backup", "list", "--json"]);
    listed.expect_code(0);
    let backups = listed.json()["backups"].as_array().unwrap().clone();
    let snapshot = backups
        .iter()
        .find(|b| b["label"] == "pre")
        .expect("listed");
    let id = snapshot["id"].as_str().unwrap().to_owned();
    let names: Vec<&str> = snapshot["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["log_1", "log_2"],
        "`logbook` does not match `log_<n>`"
    );

    ws.migrun(&["restore", &id, "--tables", "log_<n>", "--yes"])
        .expect_code(0)
        .expect_output("log_1 restored: 3 rows")
        .expect_output("ledger: unchanged");
    let partly = data_checksums(&target.url).await;
    assert!(
        partly.keys().any(|t| t.ends_with("log_3")),
        "--tables drops nothing"
    );

    ws.migrun(&["restore", &id, "--yes", "--drop", "log_3"])
        .expect_code(0)
        .expect_output("log_3 dropped")
        .expect_output("every table matches it");
    assert_eq!(data_checksums(&target.url).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn pattern_snapshot_is_restored_sqlite() {
    pattern_snapshot_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pattern_snapshot_is_restored_mysql() {
    pattern_snapshot_scenario(Dialect::MySql).await;
}

/// accounts-merge creates two tables, `identities` referencing `accounts`, and declares both.
/// One full restore of its backup drops both again (the reference must not block the drop on
/// any dialect), and the plugin then runs again on the restored target.
async fn accounts_merge_restore_scenario(dialect: Dialect, method: &str) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 300, 5)
        .await
        .expect("seed users");
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n\
         [connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n\
         [backup]\nmethod = \"{method}\"\n",
        source.ro_url, target.url
    ));
    let plugin = plugins::plugin("accounts-merge");
    let plugin = plugin.to_str().unwrap();
    let tables_before = crate::support::checksum::user_tables(&target.url).await;
    assert!(tables_before.is_empty(), "{tables_before:?}");

    let run = ws.migrun(&[plugin, "--json"]);
    run.expect_code(0);
    let report = run.json();
    let id = report["backups"][0]["id"]
        .as_str()
        .expect("the run's backup");
    let written: BTreeMap<String, String> = data_checksums(&target.url).await;
    assert_eq!(
        written.keys().filter(|t| !t.is_empty()).count(),
        2,
        "{dialect:?}: the run created accounts and identities: {written:?}"
    );

    ws.migrun(&["restore", id, "--yes"])
        .expect_code(0)
        .expect_output("every table matches it");
    let tables_after: Vec<String> = crate::support::checksum::user_tables(&target.url)
        .await
        .into_iter()
        .filter(|t| !t.ends_with("migrun_ledger"))
        .collect();
    assert!(
        tables_after.is_empty(),
        "{dialect:?}: the restore drops what the run created: {tables_after:?}"
    );
    let again = ws.migrun(&[plugin, "--json"]);
    again.expect_code(0);
    assert_eq!(data_checksums(&target.url).await, written, "{dialect:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_merge_is_undone_by_one_restore_sqlite() {
    accounts_merge_restore_scenario(Dialect::Sqlite, "auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_merge_is_undone_by_one_restore_postgres() {
    accounts_merge_restore_scenario(Dialect::Postgres, "auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_merge_is_undone_by_one_restore_mysql() {
    accounts_merge_restore_scenario(Dialect::MySql, "auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_merge_is_undone_by_one_restore_mysql_native() {
    accounts_merge_restore_scenario(Dialect::MySql, "native").await;
}
