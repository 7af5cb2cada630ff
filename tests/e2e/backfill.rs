//! Batched backfills with checkpoints (seeds 002 and 003).
//!
//! The rename runs on every dialect on a table of many batches while an "old
//! application" — a thread with its own connection that knows only the old
//! column — keeps inserting and updating rows. The backfill is interrupted
//! after some batches and rerun: it resumes after its last checkpoint (the
//! ledger, the report, the journal and the progress all say so), and at the
//! end every row's new column holds exactly what the old application last
//! wrote. A dry-run plans a checkpoint per batch and changes nothing; the
//! journal of a run with checkpoints replays to "verified".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use migrun::db::{Access, Connection, Dialect};
use migrun::journal::reader::JournalReader;
use migrun::journal::{CallResult, Entry, HostCall};
use migrun::value::Value;

use crate::support::checksum::row_count;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

const ROWS: i64 = 20_000;
const BATCH: i64 = 500;
const FAIL_AFTER: i64 = 10;
/// Ids the old application inserts start here, above every seeded id.
const WRITER_IDS: i64 = 1_000_000;

fn seeded_email(id: i64) -> String {
    format!("user{id}@example.org")
}

pub(crate) async fn create_accounts(db: &TestDatabase) {
    let ddl = match db.dialect {
        Dialect::Postgres => "CREATE TABLE accounts (id BIGINT PRIMARY KEY, email TEXT)",
        Dialect::MySql => "CREATE TABLE accounts (id BIGINT PRIMARY KEY, email VARCHAR(255))",
        Dialect::Sqlite => "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT)",
    };
    db.exec(ddl).await;
    let mut conn = db.connect(Access::ReadWrite).await;
    let columns = ["id".to_owned(), "email".to_owned()];
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<Vec<Value>> = chunk
            .iter()
            .map(|id| vec![Value::Int(*id), Value::Text(seeded_email(*id))])
            .collect();
        conn.bulk_insert("accounts", &columns, &rows)
            .await
            .expect("seed accounts");
    }
    conn.close().await;
}

pub(crate) fn rename_config(db: &TestDatabase, fail_after: i64, pause_ms: u64) -> String {
    rename_config_with(db, BATCH, fail_after, pause_ms, 0)
}

pub(crate) fn rename_config_with(
    db: &TestDatabase,
    batch_size: i64,
    fail_after: i64,
    pause_ms: u64,
    conflict_retries: u32,
) -> String {
    format!(
        "[connections.app]\nurl = \"{}\"\n[limits]\nconflict_retries = {conflict_retries}\n[config]\ntable = \"accounts\"\nold_column = \"email\"\nnew_column = \"email_address\"\nbatch_size = {batch_size}\npause_ms = {pause_ms}\nfail_after_batches = {fail_after}\n",
        db.url
    )
}

/// A SQLite `accounts` table of `ROWS` rows, expanded (new column and triggers), with the
/// rename configured as given: the start of the SQLite-only backfill tests.
pub(crate) async fn expanded_sqlite_accounts(
    batch_size: i64,
    pause_ms: u64,
    conflict_retries: u32,
) -> Option<(TestDatabase, Workspace, String)> {
    let db = TestDatabase::create(Dialect::Sqlite).await?;
    create_accounts(&db).await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap().to_owned();
    let ws = Workspace::new();
    ws.config(&rename_config_with(
        &db,
        batch_size,
        0,
        pause_ms,
        conflict_retries,
    ));
    ws.migrun(&[&plugin, "--only", "expand"]).expect_code(0);
    Some((db, ws, plugin))
}

/// The old application: writes only the old column, through its own connection, until told to
/// stop; remembers the last value it wrote per id. Failed writes (a lock wait that gave up,
/// SQLite's busy) are retried, so every write it records is committed.
struct OldApplication {
    stop: Arc<AtomicBool>,
    /// Committed writes so far.
    writes: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<(BTreeMap<i64, String>, u64)>,
}

impl OldApplication {
    fn start(dialect: Dialect, url: String) -> OldApplication {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let committed = Arc::new(AtomicU64::new(0));
        let counter = committed.clone();
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = Connection::connect("old-app", &url, Access::ReadWrite)
                    .await
                    .expect("old application connects");
                let p = |n: usize| match dialect {
                    Dialect::Postgres => format!("${n}"),
                    _ => "?".to_owned(),
                };
                let insert = format!(
                    "INSERT INTO accounts (id, email) VALUES ({}, {})",
                    p(1),
                    p(2)
                );
                let update = format!("UPDATE accounts SET email = {} WHERE id = {}", p(1), p(2));
                let mut written = BTreeMap::new();
                let mut writes = 0u64;
                let mut seed = 0x2545_f491_4f6c_dd1d_u64;
                while !flag.load(Ordering::Relaxed) {
                    writes += 1;
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let (sql, id) = if writes.is_multiple_of(2) {
                        (&insert, WRITER_IDS + writes as i64)
                    } else {
                        (&update, (seed % ROWS as u64) as i64 + 1)
                    };
                    let email = format!("old-app-{writes}@example.org");
                    let params = if sql == &insert {
                        vec![Value::Int(id), Value::Text(email.clone())]
                    } else {
                        vec![Value::Text(email.clone()), Value::Int(id)]
                    };
                    let mut attempts = 0;
                    while let Err(e) = conn.execute(sql, &params).await {
                        attempts += 1;
                        assert!(attempts < 200, "the old application cannot write: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    written.insert(id, email);
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                conn.close().await;
                (written, writes)
            })
        });
        OldApplication {
            stop,
            writes: committed,
            handle,
        }
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn stop(self) -> (BTreeMap<i64, String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("old application thread")
    }
}

/// The column names of `accounts`, in order, as a query reports them.
async fn account_columns(url: &str) -> Vec<String> {
    let mut conn = Connection::connect("columns", url, Access::ReadOnly)
        .await
        .expect("connect");
    let rows = conn
        .query("SELECT * FROM accounts WHERE 1 = 0", &[])
        .await
        .expect("columns of accounts");
    conn.close().await;
    rows.columns.into_iter().map(|c| c.name).collect()
}

/// Every entry of a journal after its header.
fn journal_entries(path: &Path) -> Vec<Entry> {
    let (mut reader, _) = JournalReader::open(path).expect("open journal");
    let mut entries = Vec::new();
    while let Some((_, entry)) = reader.next_entry().expect("journal entry") {
        entries.push(entry);
    }
    entries
}

fn journal_path(ws: &Workspace, report: &serde_json::Value) -> PathBuf {
    ws.path()
        .join(report["journal"]["path"].as_str().expect("journal path"))
}

/// The batch count of a backfill checkpoint state (`backfill/1`, task, rows, batches, …).
fn batches_in(state: &str) -> i64 {
    let lines: Vec<&str> = state.lines().collect();
    assert_eq!(lines[0], "backfill/1", "a backfill state: {state:?}");
    lines[3].parse().expect("batch count")
}

async fn query_rows(url: &str, sql: &str) -> Vec<Vec<Value>> {
    let mut conn = Connection::connect("check", url, Access::ReadOnly)
        .await
        .expect("connect");
    let rows = conn.query(sql, &[]).await.expect(sql).rows;
    conn.close().await;
    rows
}

async fn rename_under_concurrent_writes(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_accounts(&db).await;
    let before = crate::support::checksum::table_checksum(&db.url, "accounts").await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    let batches = ROWS / BATCH;

    // A dry-run plans one checkpoint per batch and changes nothing.
    ws.config(&rename_config(&db, 0, 0));
    let dry = ws.migrun(&[plugin, "--dry-run", "--json"]);
    dry.expect_code(0);
    let plan = &dry.json()["plan"];
    assert_eq!(
        plan["checkpoints"]["backfill"], batches,
        "{dialect:?}: plan {plan}"
    );
    assert_eq!(
        crate::support::checksum::table_checksum(&db.url, "accounts").await,
        before,
        "{dialect:?}: the dry-run changed accounts"
    );

    // Expand: the new column and the triggers.
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);

    // The old application writes through the old column from now on.
    let old_app = OldApplication::start(dialect, db.url.clone());
    let pause_ms = 20;

    // The backfill dies before batch 11: ten batches stay committed with their checkpoint.
    ws.config(&rename_config(&db, FAIL_AFTER, pause_ms));
    let before_first = old_app.writes();
    let first = ws.migrun(&[plugin, "--only", "backfill", "--json"]);
    let during_first = old_app.writes() - before_first;
    first.expect_code(1);
    let report = first.json();
    assert_eq!(report["units"][0]["status"], "failed", "{report}");
    let failure = &report["failure"];
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("stopping before batch 11"),
        "{failure}"
    );
    assert!(
        failure["consequence"]
            .as_str()
            .unwrap()
            .contains("10 saved checkpoint(s)"),
        "{failure}"
    );
    let ledger = query_rows(
        &db.url,
        "SELECT status, checkpoint_state FROM migrun_ledger WHERE unit = 'backfill'",
    )
    .await;
    assert_eq!(ledger.len(), 1, "{dialect:?}: {ledger:?}");
    assert_eq!(ledger[0][0], Value::Text("checkpoint".into()));
    let Value::Text(state) = &ledger[0][1] else {
        panic!("a checkpoint state: {ledger:?}");
    };
    assert_eq!(batches_in(state), FAIL_AFTER);
    let first_journal = journal_entries(&journal_path(&ws, &report));
    let saves = |entries: &[Entry]| -> Vec<String> {
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Call {
                    call: HostCall::CheckpointSave { state },
                    result: CallResult::Unit,
                } => Some(state.clone()),
                _ => None,
            })
            .collect()
    };
    let commits = |entries: &[Entry]| {
        entries
            .iter()
            .filter(|e| matches!(e, Entry::Tx { connection, op, error: None } if connection == "app" && op == "commit"))
            .count()
    };
    assert_eq!(saves(&first_journal).len() as i64, FAIL_AFTER);
    assert_eq!(
        commits(&first_journal) as i64,
        FAIL_AFTER,
        "{dialect:?}: one commit per checkpoint, none at the failed end"
    );

    // The rerun resumes after batch 10.
    ws.config(&rename_config(&db, 0, pause_ms));
    let before_second = old_app.writes();
    let second = ws.migrun(&[plugin, "--only", "backfill", "--json"]);
    let during_second = old_app.writes() - before_second;
    second.expect_code(0);
    let report = second.json();
    assert_eq!(report["units"][0]["status"], "committed", "{report}");
    assert!(
        report["units"][0]["note"]
            .as_str()
            .unwrap_or_default()
            .starts_with("resumed from the checkpoint saved by run"),
        "{report}"
    );
    let (written, writes) = old_app.stop();
    let path = journal_path(&ws, &report);
    let entries = journal_entries(&path);
    let last = entries.iter().find_map(|e| match e {
        Entry::Call {
            call: HostCall::CheckpointLast,
            result: CallResult::Checkpoint { state },
        } => Some(state.clone()),
        _ => None,
    });
    assert_eq!(
        last.flatten().as_deref().map(batches_in),
        Some(FAIL_AFTER),
        "checkpoint.last answered the first run's state"
    );
    let resumed_saves = saves(&entries);
    assert_eq!(
        batches_in(&resumed_saves[0]),
        FAIL_AFTER + 1,
        "{dialect:?}: the rerun's first batch is batch 11, not batch 1"
    );
    // Every batch boundary is in the journal: one save and one commit per batch, then the
    // unit's own commit; batch numbers run on without a gap.
    for (i, state) in resumed_saves.iter().enumerate() {
        assert_eq!(batches_in(state), FAIL_AFTER + 1 + i as i64);
    }
    assert!(resumed_saves.len() as i64 >= batches - FAIL_AFTER);
    assert_eq!(commits(&entries), resumed_saves.len() + 1);
    let progress: Vec<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Call {
                call: HostCall::Progress { done, .. },
                ..
            } => Some(*done),
            _ => None,
        })
        .collect();
    assert_eq!(progress.len(), resumed_saves.len());
    assert_eq!(
        progress[0],
        ((FAIL_AFTER + 1) * BATCH) as u64,
        "progress continues from the rows done before"
    );
    // Not a terminal: progress comes as plain lines, with an ETA once the speed is known.
    let lines: Vec<&str> = second
        .stderr
        .lines()
        .filter(|l| l.contains("backfill accounts.email_address: "))
        .collect();
    assert!(
        lines.len() >= 2 && lines[1..].iter().any(|l| l.contains(", ETA ")),
        "{}",
        second.stderr
    );
    let ledger = query_rows(
        &db.url,
        "SELECT status FROM migrun_ledger WHERE unit = 'backfill'",
    )
    .await;
    assert_eq!(ledger, vec![vec![Value::Text("finished".into())]]);
    // The old application's writes went on while each backfill run was running. On SQLite
    // (one writer at a time) this holds because the transaction after a checkpoint begins
    // with the next batch's first statement, so the pause between batches holds no lock.
    assert!(
        during_first > 0 && during_second > 0,
        "{dialect:?}: writes during the runs: {during_first}, {during_second} (of {writes})"
    );

    // The journal with its checkpoints replays to "verified".
    ws.migrun(&["replay", path.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified");

    // Contract: no row differs, so the old column goes.
    let contract = ws.migrun(&[plugin, "--only", "contract", "--json"]);
    contract.expect_code(0);
    let checks = contract.json()["checks"].clone();
    assert!(
        checks.as_array().unwrap().iter().any(|c| c["name"]
            == "accounts.email_address equals accounts.email on every row"
            && c["ok"] == true),
        "{checks}"
    );

    // Every seeded row and every write of the old application is there, under the new name.
    let mut expected: BTreeMap<i64, String> = (1..=ROWS).map(|id| (id, seeded_email(id))).collect();
    expected.extend(written);
    let rows = query_rows(
        &db.url,
        "SELECT id, email_address FROM accounts ORDER BY id",
    )
    .await;
    let actual: BTreeMap<i64, String> = rows
        .into_iter()
        .map(|r| match (&r[0], &r[1]) {
            (Value::Int(id), Value::Text(email)) => (*id, email.clone()),
            other => panic!("{dialect:?}: unexpected row {other:?}"),
        })
        .collect();
    assert_eq!(actual.len(), expected.len(), "{dialect:?}: row count");
    assert_eq!(row_count(&db.url, "accounts").await, expected.len() as i64);
    let lost: Vec<_> = expected
        .iter()
        .filter(|(id, email)| actual.get(id) != Some(email))
        .take(5)
        .collect();
    assert!(lost.is_empty(), "{dialect:?}: writes lost: {lost:?}");
    let columns = query_rows(&db.url, "SELECT * FROM accounts WHERE id = 1").await;
    assert_eq!(columns[0].len(), 2, "{dialect:?}: the old column is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_under_concurrent_writes_sqlite() {
    rename_under_concurrent_writes(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_under_concurrent_writes_postgres() {
    rename_under_concurrent_writes(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_under_concurrent_writes_mysql() {
    rename_under_concurrent_writes(Dialect::MySql).await;
}

/// On SQLite one writer holds the database at a time. Between batches the backfill pauses with
/// its work committed and holds no lock: the transaction after a checkpoint begins with the next
/// batch's first statement. A writer that does not wait at all (busy timeout 0) gets through
/// during the pause, and its write reaches the new column through the expand triggers.
#[tokio::test(flavor = "multi_thread")]
async fn pause_between_batches_holds_no_write_lock_sqlite() {
    use sqlx::ConnectOptions;
    use std::str::FromStr;

    // Two batches of 10,000 rows, with a long pause after each.
    let Some((db, ws, plugin)) = expanded_sqlite_accounts(10_000, 3000, 0).await else {
        return;
    };
    let mut run = ws.spawn(&[&plugin, "--only", "backfill"]);
    crate::support::cli::wait_for_line(&mut run, "backfill accounts.email_address: 10000/20000");
    // The first batch is committed and the plugin is pausing.
    let mut impatient = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
        .expect("sqlite url")
        .busy_timeout(std::time::Duration::ZERO)
        .connect()
        .await
        .expect("connect without a busy timeout");
    let mut refusals = Vec::new();
    let mut written = false;
    for _ in 0..20 {
        match sqlx::query(
            "UPDATE accounts SET email = 'during-the-pause@example.org' WHERE id = 15000",
        )
        .execute(&mut impatient)
        .await
        {
            Ok(_) => {
                written = true;
                break;
            }
            Err(e) => refusals.push(e.to_string()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(impatient);
    let status = run.wait().expect("wait for migrun");
    assert!(
        written,
        "a writer that does not wait was locked out during the pause: {refusals:?}"
    );
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        query_rows(
            &db.url,
            "SELECT email, email_address FROM accounts WHERE id = 15000"
        )
        .await,
        vec![vec![
            Value::Text("during-the-pause@example.org".into()),
            Value::Text("during-the-pause@example.org".into())
        ]]
    );
}

/// A conflict in the middle of a backfill (here SQLite's busy: another writer holds the
/// database longer than the busy timeout) under `[limits] conflict_retries`: the unit runs
/// again and resumes after the batches this run already committed — it does not redo them.
#[tokio::test(flavor = "multi_thread")]
async fn conflict_retry_resumes_after_this_runs_checkpoints_sqlite() {
    use std::io::{BufRead, BufReader};

    // Four batches of 5,000 rows with a pause after each; one retry for conflicts.
    let Some((db, ws, plugin)) = expanded_sqlite_accounts(5000, 1000, 1).await else {
        return;
    };
    let mut run = ws.spawn(&[&plugin, "--only", "backfill", "--json"]);
    let lines = BufReader::new(run.stderr.take().expect("piped stderr")).lines();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stderr = Vec::new();
    let mut wait_for = |needle: &str| loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {needle:?} on stderr:\n{}", stderr.join("\n")));
        let found = line.contains(needle);
        stderr.push(line);
        if found {
            return;
        }
    };
    // After batch 2 the backfill pauses; another writer takes the database and keeps it
    // past the busy timeout, so batch 3 fails with a conflict.
    wait_for("backfill accounts.email_address: 10000/20000");
    let mut other = Connection::connect("other-writer", &db.url, Access::ReadWrite)
        .await
        .expect("connect");
    other
        .begin()
        .await
        .expect("the other writer takes the database during the pause");
    wait_for("runs again");
    other.commit().await.expect("the other writer lets go");
    other.close().await;
    let output = run.wait_with_output().expect("wait for migrun");
    let stderr = stderr.join("\n");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "committed", "{unit}");
    assert!(
        unit["note"]
            .as_str()
            .unwrap_or_default()
            .contains("conflicts (1) were retried"),
        "{unit}"
    );
    // Batches 1 and 2 were saved once; the retry went on with batches 3 and 4.
    let batches: Vec<i64> = journal_entries(&journal_path(&ws, &report))
        .iter()
        .filter_map(|e| match e {
            Entry::Call {
                call: HostCall::CheckpointSave { state },
                result: CallResult::Unit,
            } => Some(batches_in(state)),
            _ => None,
        })
        .collect();
    assert_eq!(batches, [1, 2, 3, 4], "{stderr}");
    assert_eq!(
        query_rows(
            &db.url,
            "SELECT count(*) FROM accounts WHERE email_address IS NULL OR email_address <> email"
        )
        .await,
        vec![vec![Value::Int(0)]]
    );
}

/// The rename's table comes from the configuration and is declared as `${table}`: every run
/// backs it up first. After expand, backfill and contract (three runs), restoring the expand
/// run's backup with one command gives back the table as it was (old column, every row), and
/// the ledger forgets all three runs, so the whole rename can run again.
async fn rename_undone_by_one_restore(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_accounts(&db).await;
    let before = crate::support::checksum::table_checksum(&db.url, "accounts").await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&rename_config(&db, 0, 0));

    ws.migrun(&[plugin, "--dry-run"])
        .expect_code(0)
        .expect_output("backup before the first write: accounts (20,000 rows)");
    let expand = ws.migrun(&[plugin, "--only", "expand", "--json"]);
    expand.expect_code(0);
    let expand = expand.json();
    let backup = &expand["backups"][0];
    let id = backup["id"].as_str().expect("the expand run's backup");
    assert_eq!(backup["tables"][0]["name"], "accounts", "{backup}");
    assert_eq!(backup["tables"][0]["rows"], ROWS, "{backup}");
    ws.migrun(&[plugin, "--only", "backfill"]).expect_code(0);
    ws.migrun(&[plugin, "--only", "contract"]).expect_code(0);
    assert_eq!(
        account_columns(&db.url).await,
        ["id", "email_address"],
        "{dialect:?}: the rename is done"
    );

    ws.migrun(&["restore", id, "--yes"])
        .expect_code(0)
        .expect_output("every table matches it");
    assert_eq!(
        crate::support::checksum::table_checksum(&db.url, "accounts").await,
        before,
        "{dialect:?}: the restored table holds the rows it held before the rename"
    );
    assert_eq!(
        account_columns(&db.url).await,
        ["id", "email"],
        "{dialect:?}: and its columns"
    );
    // All three runs were undone: the rename runs again from the start.
    let again = ws.migrun(&[plugin, "--json"]);
    again.expect_code(0);
    let statuses: Vec<String> = again.json()["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["committed", "committed", "committed"],
        "{dialect:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_undone_by_one_restore_sqlite() {
    rename_undone_by_one_restore(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_undone_by_one_restore_postgres() {
    rename_undone_by_one_restore(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_undone_by_one_restore_mysql() {
    rename_undone_by_one_restore(Dialect::MySql).await;
}

/// Backups only when something will be written (issue 22, item 5). The backfill is stopped
/// twice (`fail_after_batches`): its first run backs `accounts` up; the two resumes take no
/// backup of their own but name that one as still covering the table (the resumed unit's
/// checkpoints tie them to it, the second resume through the first's `.reuses` record); a
/// rerun with nothing left to do takes none and prints no undo line; restoring the lineage's
/// one backup gives back the table as it was before the backfill's first batch.
async fn resumes_reuse_the_lineage_backup(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_accounts(&db).await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&rename_config(&db, 0, 0));
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    let expanded = crate::support::checksum::table_checksum(&db.url, "accounts").await;
    let backups = |ws: &Workspace| -> Vec<String> {
        let list = ws.migrun(&["backup", "list", "--json"]);
        list.expect_code(0);
        list.json()["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        backups(&ws).len(),
        1,
        "{dialect:?}: the expand run's backup"
    );

    ws.config(&rename_config(&db, 3, 0));
    let first = ws.migrun(&[plugin, "--only", "backfill", "--json"]);
    first.expect_code(1);
    let first = first.json();
    let lineage = first["backups"][0]["id"]
        .as_str()
        .expect("the backfill's first run takes a backup")
        .to_owned();
    let first_run = first["journal"]["path"].as_str().unwrap().to_owned();
    assert_eq!(backups(&ws).len(), 2, "{dialect:?}");

    let second = ws.migrun(&[plugin, "--only", "backfill", "--json"]);
    second.expect_code(1);
    let second = second.json();
    assert!(
        second["backups"].as_array().is_none_or(|b| b.is_empty()),
        "{dialect:?}: the resume takes no backup: {second}"
    );
    let reused = &second["backups_reused"][0];
    assert_eq!(
        reused["snapshot"]["id"],
        lineage.as_str(),
        "{dialect:?}: {second}"
    );
    // The unit with its scope (the rename it is configured for), as the ledger keys it.
    assert_eq!(
        reused["resumed_units"],
        serde_json::json!(["backfill@accounts.email->email_address"])
    );
    assert!(
        lineage.starts_with(reused["taken_by_run"].as_str().unwrap()),
        "{dialect:?}: {reused}"
    );
    assert_ne!(second["journal"]["path"].as_str().unwrap(), first_run);

    ws.config(&rename_config(&db, 0, 0));
    let last = ws.migrun(&[plugin, "--only", "backfill"]);
    last.expect_code(0)
        .expect_output(&format!("backup    {lineage} (taken before run"))
        .expect_output(
            "still covers `app`: this run resumes `backfill@accounts.email->email_address`",
        )
        .expect_output(&format!("migrun restore {lineage} --yes"));
    assert_eq!(
        backups(&ws).len(),
        2,
        "{dialect:?}: no resume took a backup"
    );

    let nothing = ws.migrun(&[plugin, "--only", "backfill"]);
    nothing
        .expect_code(0)
        .expect_output("no backup: no unit will run");
    assert!(!nothing.all().contains("undo with"), "{}", nothing.all());
    // The dry-run's plan says the same before anything runs.
    ws.migrun(&[plugin, "--only", "backfill", "--dry-run"])
        .expect_code(0)
        .expect_output("no backup before the run: no unit will run");
    assert_eq!(
        backups(&ws).len(),
        2,
        "{dialect:?}: a rerun of finished work takes none"
    );

    ws.migrun(&["restore", &lineage, "--yes"])
        .expect_code(0)
        .expect_output("every table matches it");
    assert_eq!(
        crate::support::checksum::table_checksum(&db.url, "accounts").await,
        expanded,
        "{dialect:?}: one restore undoes the backfill's three runs"
    );

    // Pruning the lineage's backup takes the resumes' records of it along: nothing on
    // disk points at a snapshot that is gone.
    let reuse_records = |ws: &Workspace| -> usize {
        std::fs::read_dir(ws.path().join("migrun-backups"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".reuses")
            })
            .count()
    };
    assert_eq!(reuse_records(&ws), 2, "{dialect:?}: one record per resume");
    ws.migrun(&["backup", "prune", "--keep", "0", "--force"])
        .expect_code(0);
    assert!(backups(&ws).is_empty(), "{dialect:?}");
    assert_eq!(
        reuse_records(&ws),
        0,
        "{dialect:?}: prune removed the records naming the pruned backup"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_reuse_the_lineage_backup_sqlite() {
    resumes_reuse_the_lineage_backup(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_reuse_the_lineage_backup_postgres() {
    resumes_reuse_the_lineage_backup(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_reuse_the_lineage_backup_mysql() {
    resumes_reuse_the_lineage_backup(Dialect::MySql).await;
}

/// The contract unit refuses, changing nothing, while a row's new value differs from its old.
#[tokio::test(flavor = "multi_thread")]
async fn contract_refuses_while_rows_differ() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    db.exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT)")
        .await;
    db.exec("INSERT INTO accounts (id, email) VALUES (1, 'a@example.org'), (2, 'b@example.org')")
        .await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&rename_config(&db, 0, 0));
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    let out = ws.migrun(&[plugin, "--only", "contract", "--json"]);
    out.expect_code(1);
    let report = out.json();
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("2 row(s) of `accounts` have `email_address` different from `email`"),
        "{report}"
    );
    let rows = query_rows(
        &db.url,
        "SELECT id, email, email_address FROM accounts ORDER BY id",
    )
    .await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][2],
        Value::Null,
        "the old column and the rows stayed as they were"
    );
}

/// A table without a primary or unique key cannot be paged: the backfill says so.
#[tokio::test(flavor = "multi_thread")]
async fn backfill_without_a_key_is_refused() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE accounts (id BIGINT, email TEXT)")
        .await;
    db.exec("INSERT INTO accounts VALUES (1, 'a@example.org')")
        .await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&rename_config(&db, 0, 0));
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    let out = ws.migrun(&[plugin, "--only", "backfill", "--json"]);
    out.expect_code(1);
    let message = out.json()["failure"]["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("cannot page through `accounts`: it has no one-column primary key"),
        "{message}"
    );
}

/// kill -9 in the middle of the backfill: the batches up to the last checkpoint stay, and the
/// rerun continues after it.
#[tokio::test(flavor = "multi_thread")]
async fn killed_backfill_resumes_after_its_last_checkpoint() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    create_accounts(&db).await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    // Slow batches, so the kill lands well before the end.
    ws.config(&rename_config(&db, 0, 100));
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    let mut child = ws.spawn(&[plugin, "--only", "backfill"]);
    crate::support::cli::wait_for_line(&mut child, "backfill accounts.email_address: ");
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "killed by the signal: {status:?}");

    let ledger = query_rows(
        &db.url,
        "SELECT status, checkpoint_state FROM migrun_ledger WHERE unit = 'backfill'",
    )
    .await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0][0], Value::Text("checkpoint".into()));
    let Value::Text(state) = &ledger[0][1] else {
        panic!("a checkpoint state: {ledger:?}");
    };
    let saved = batches_in(state);
    assert!(
        (1..ROWS / BATCH).contains(&saved),
        "killed mid-way: {saved}"
    );
    // Exactly the saved batches' rows were copied.
    let copied = query_rows(
        &db.url,
        "SELECT COUNT(*) FROM accounts WHERE email_address IS NOT NULL",
    )
    .await;
    assert_eq!(copied[0][0], Value::Int(saved * BATCH));

    // A dry-run does not resume (checkpoint.last is none there): it plans every batch, and
    // leaves the checkpoint alone.
    ws.config(&rename_config(&db, 0, 0));
    let dry = ws.migrun(&[plugin, "--only", "backfill", "--dry-run", "--json"]);
    dry.expect_code(0);
    assert_eq!(dry.json()["plan"]["checkpoints"]["backfill"], ROWS / BATCH);
    let after_dry = query_rows(
        &db.url,
        "SELECT status, checkpoint_state FROM migrun_ledger WHERE unit = 'backfill'",
    )
    .await;
    assert_eq!(after_dry, ledger, "the dry-run left the ledger as it was");

    let out = ws.migrun(&[plugin, "--only", "backfill", "--json"]);
    out.expect_code(0);
    let report = out.json();
    let entries = journal_entries(&journal_path(&ws, &report));
    let first_save = entries.iter().find_map(|e| match e {
        Entry::Call {
            call: HostCall::CheckpointSave { state },
            ..
        } => Some(batches_in(state)),
        _ => None,
    });
    assert_eq!(
        first_save,
        Some(saved + 1),
        "the rerun continued after batch {saved}"
    );
    let differing = query_rows(
        &db.url,
        "SELECT COUNT(*) FROM accounts WHERE email_address IS DISTINCT FROM email",
    )
    .await;
    assert_eq!(differing[0][0], Value::Int(0));
}
