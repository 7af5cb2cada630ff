//! The session on in-memory SQLite (and one SQLite file for a read-only connection):
//! what a user would check after each step — rows present or absent, ledger rows,
//! the counts the report shows.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{BeginMode, CallObserver, RunLedger, Session, SessionError, WriteCounts};
use crate::tape::Tape;
use migrun_db::ledger::{self, Ledger, UnitKey};
use migrun_db::{self as db, Access};
use migrun_journal::{CallResult, HostCall};
use migrun_types::value::Value;

/// An unscoped unit's ledger key.
fn key(unit: &str) -> UnitKey {
    UnitKey::new(unit, None)
}

const ROLLBACK: Duration = Duration::from_secs(5);
const PLUGIN: &str = "demo";

async fn memory(name: &str) -> db::Connection {
    db::Connection::connect(name, "sqlite::memory:", Access::ReadWrite)
        .await
        .expect("in-memory SQLite opens")
}

/// A live session over `connections`, each given a table `t (id INTEGER PRIMARY KEY)`
/// when it is writable, and the ledger table when `ledger` is set.
async fn session(connections: Vec<db::Connection>, ledger: bool) -> Session {
    let mut live = BTreeMap::new();
    for mut conn in connections {
        if conn.access() == Access::ReadWrite {
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)", &[])
                .await
                .unwrap();
            if ledger {
                Ledger::new(ledger::DEFAULT_TABLE)
                    .ensure(&mut conn)
                    .await
                    .unwrap();
            }
        }
        live.insert(conn.name().to_owned(), conn);
    }
    let mut session = Session::live(live, Tape::Off);
    if ledger {
        session.set_ledger(run_ledger(), BTreeMap::new());
    }
    session
}

fn run_ledger() -> RunLedger {
    RunLedger {
        ledger: Ledger::new(ledger::DEFAULT_TABLE),
        plugin_name: PLUGIN.to_owned(),
        plugin_version: "1.0.0".to_owned(),
        plugin_sha256: "a".repeat(64),
        run_id: "run-1".to_owned(),
        journal_id: "journal-1".to_owned(),
    }
}

fn conn<'a>(session: &'a mut Session, name: &str) -> &'a mut db::Connection {
    session
        .connections_mut()
        .find(|c| c.name() == name)
        .expect("a connection of the session")
}

/// The ids in `t` on `name`, read as the user would, outside the session's calls.
async fn ids(session: &mut Session, name: &str) -> Vec<i64> {
    let rows = conn(session, name)
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap();
    rows.rows
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Int(id)] => *id,
            other => panic!("unexpected row {other:?}"),
        })
        .collect()
}

async fn insert(session: &mut Session, name: &str, id: i64) -> CallResult {
    session
        .execute(
            name.into(),
            format!("INSERT INTO t (id) VALUES ({id})"),
            vec![],
        )
        .await
        .unwrap()
}

fn error_kind(result: &CallResult) -> Option<&str> {
    match result {
        CallResult::Error { error_kind, .. } => Some(error_kind),
        _ => None,
    }
}

async fn finished_units(session: &mut Session, name: &str) -> Vec<String> {
    let finished = Ledger::new(ledger::DEFAULT_TABLE)
        .finished(conn(session, name), PLUGIN)
        .await
        .unwrap();
    finished.into_iter().map(|row| row.unit).collect()
}

async fn saved_checkpoints(session: &mut Session, name: &str) -> Vec<(String, String)> {
    let saved = Ledger::new(ledger::DEFAULT_TABLE)
        .checkpoints(conn(session, name), PLUGIN)
        .await
        .unwrap();
    saved.into_iter().map(|row| (row.unit, row.state)).collect()
}

#[tokio::test]
async fn begin_commit_and_rollback_reach_every_connection() {
    let mut s = session(vec![memory("a").await, memory("b").await], false).await;

    s.begin_all(BeginMode::Now).await.unwrap();
    assert_eq!(insert(&mut s, "a", 1).await, CallResult::Count { n: 1 });
    assert_eq!(insert(&mut s, "b", 1).await, CallResult::Count { n: 1 });
    s.commit_all().await.unwrap();

    s.begin_all(BeginMode::Now).await.unwrap();
    insert(&mut s, "a", 2).await;
    insert(&mut s, "b", 2).await;
    s.rollback_all(ROLLBACK).await;

    assert_eq!(
        ids(&mut s, "a").await,
        [1],
        "a: committed row kept, rolled-back gone"
    );
    assert_eq!(
        ids(&mut s, "b").await,
        [1],
        "b: committed row kept, rolled-back gone"
    );
    assert!(s.connections_mut().all(|c| !c.in_transaction()));
}

#[tokio::test]
async fn a_units_ledger_row_commits_with_its_work() {
    let mut s = session(vec![memory("target").await], true).await;
    s.start_unit(&key("load"), false, "2026-01-01T00:00:00Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    insert(&mut s, "target", 1).await;
    s.commit_unit().await.unwrap();
    assert_eq!(s.end_unit(), 0, "no checkpoint was saved");

    assert_eq!(ids(&mut s, "target").await, [1]);
    assert_eq!(finished_units(&mut s, "target").await, ["load"]);
}

#[tokio::test]
async fn a_non_transactional_unit_commits_each_statement_and_its_row_after_success() {
    let mut s = session(vec![memory("target").await], true).await;
    s.start_unit(&key("index"), false, "2026-01-01T00:00:00Z", None);
    s.set_unit_non_transactional();
    // No transaction is begun: the statement commits on its own; a rollback undoes nothing.
    insert(&mut s, "target", 1).await;
    assert!(s.connections_mut().all(|c| !c.in_transaction()));
    s.rollback_all(ROLLBACK).await;
    assert_eq!(ids(&mut s, "target").await, [1]);
    assert_eq!(finished_units(&mut s, "target").await, Vec::<String>::new());

    // Bulk inserts and checkpoints are refused by name; nothing of them is written.
    let refused = s
        .bulk_insert(
            "target".into(),
            "t".into(),
            vec!["id".into()],
            vec![vec![Value::Int(2)]],
        )
        .await
        .unwrap();
    assert_eq!(error_kind(&refused), Some("refused"));
    let CallResult::Error { message, .. } = s.save_checkpoint("half".into()).await.unwrap() else {
        panic!("checkpoint.save was not refused");
    };
    assert!(
        message.starts_with(
            "checkpoint.save is refused in unit `index`, which is declared non-transactional"
        ),
        "{message}"
    );
    assert_eq!(ids(&mut s, "target").await, [1]);

    // Its end writes the ledger row in a transaction of its own.
    s.commit_unit().await.unwrap();
    s.end_unit();
    assert!(s.connections_mut().all(|c| !c.in_transaction()));
    assert_eq!(finished_units(&mut s, "target").await, ["index"]);

    // The next unit is transactional again.
    s.start_unit(&key("load"), false, "2026-01-01T00:00:00Z", None);
    assert!(!s.in_non_transactional_unit());
    assert!(s.non_transactional_refusal("bulk-insert").is_none());
}

#[tokio::test]
async fn a_units_ledger_row_is_gone_after_its_rollback() {
    let mut s = session(vec![memory("a").await, memory("b").await], true).await;
    // `b` loses its ledger table: its row fails after `a`'s was written inside a's transaction.
    conn(&mut s, "b")
        .host_simple(&format!("DROP TABLE {}", ledger::DEFAULT_TABLE))
        .await
        .unwrap();

    s.start_unit(&key("load"), false, "2026-01-01T00:00:00Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    insert(&mut s, "a", 1).await;
    insert(&mut s, "b", 1).await;
    let failed = s.commit_unit().await.unwrap_err();
    assert!(
        matches!(&failed, SessionError::Ledger { connection, .. } if connection == "b"),
        "{failed}"
    );
    assert!(failed.db_error().is_some());
    s.rollback_all(ROLLBACK).await;

    assert_eq!(finished_units(&mut s, "a").await, Vec::<String>::new());
    assert_eq!(ids(&mut s, "a").await, Vec::<i64>::new());
    assert_eq!(ids(&mut s, "b").await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_checkpoint_commits_its_batch_and_is_the_resume_point() {
    let mut s = session(vec![memory("target").await], true).await;
    s.start_unit(&key("backfill"), false, "2026-01-01T00:00:00Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    assert_eq!(
        s.last_checkpoint().unwrap(),
        CallResult::Checkpoint { state: None },
        "a fresh unit starts from nothing"
    );
    insert(&mut s, "target", 1).await;
    assert_eq!(
        s.save_checkpoint("after-1".into()).await.unwrap(),
        CallResult::Unit
    );
    insert(&mut s, "target", 2).await;
    // The unit fails after its checkpoint: only the batch after it is rolled back.
    s.rollback_all(ROLLBACK).await;
    assert_eq!(s.end_unit(), 1);

    assert_eq!(ids(&mut s, "target").await, [1]);
    assert_eq!(
        saved_checkpoints(&mut s, "target").await,
        [("backfill".to_owned(), "after-1".to_owned())]
    );
    assert!(finished_units(&mut s, "target").await.is_empty());
    assert_eq!(s.resume_point(&key("backfill")).unwrap().state, "after-1");

    // The next run reads the saved checkpoints from the ledger and resumes from it.
    let resume = Ledger::new(ledger::DEFAULT_TABLE)
        .checkpoints(conn(&mut s, "target"), PLUGIN)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.key(), row))
        .collect();
    s.set_ledger(run_ledger(), resume);
    s.start_unit(&key("backfill"), false, "2026-01-02T00:00:00Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    assert_eq!(
        s.last_checkpoint().unwrap(),
        CallResult::Checkpoint {
            state: Some("after-1".into())
        }
    );
    insert(&mut s, "target", 2).await;
    s.commit_unit().await.unwrap();

    assert_eq!(ids(&mut s, "target").await, [1, 2]);
    assert!(
        saved_checkpoints(&mut s, "target").await.is_empty(),
        "the finished row replaced the checkpoint row"
    );
    assert_eq!(finished_units(&mut s, "target").await, ["backfill"]);
}

#[tokio::test]
async fn checkpoints_and_rows_are_per_scope_and_an_always_run_unit_keeps_one_row() {
    let mut s = session(vec![memory("target").await], true).await;
    let a = UnitKey::new("rename", Some("accounts.email"));
    let b = UnitKey::new("rename", Some("accounts.name"));
    s.start_unit(&a, false, "2026-01-01T00:00:00Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    insert(&mut s, "target", 1).await;
    s.save_checkpoint("a-1".into()).await.unwrap();
    s.rollback_all(ROLLBACK).await;
    s.end_unit();

    // The next run: scope `b` starts afresh and finishes beside `a`'s checkpoint.
    let resume = Ledger::new(ledger::DEFAULT_TABLE)
        .checkpoints(conn(&mut s, "target"), PLUGIN)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.key(), row))
        .collect();
    s.set_ledger(run_ledger(), resume);
    s.start_unit(&b, false, "2026-01-02T00:00:00Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    assert_eq!(
        s.last_checkpoint().unwrap(),
        CallResult::Checkpoint { state: None },
        "another scope's checkpoint is another unit's"
    );
    insert(&mut s, "target", 2).await;
    s.commit_unit().await.unwrap();
    s.end_unit();
    assert_eq!(
        saved_checkpoints(&mut s, "target").await,
        [("rename".to_owned(), "a-1".to_owned())]
    );
    s.start_unit(&a, false, "2026-01-02T00:00:01Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    assert_eq!(
        s.last_checkpoint().unwrap(),
        CallResult::Checkpoint {
            state: Some("a-1".into())
        }
    );
    s.commit_unit().await.unwrap();
    s.end_unit();
    let finished: Vec<UnitKey> = Ledger::new(ledger::DEFAULT_TABLE)
        .finished(conn(&mut s, "target"), PLUGIN)
        .await
        .unwrap()
        .iter()
        .map(ledger::LedgerRow::key)
        .collect();
    assert_eq!(finished, [b, a]);

    // An always-run unit finishing twice in the same build keeps one row: its last.
    for at in ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"] {
        s.start_unit(&key("stamp"), true, at, None);
        s.begin_all(BeginMode::Now).await.unwrap();
        s.commit_unit().await.unwrap();
        s.end_unit();
    }
    let stamps: Vec<String> = Ledger::new(ledger::DEFAULT_TABLE)
        .finished(conn(&mut s, "target"), PLUGIN)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.unit == "stamp")
        .map(|r| r.started_at)
        .collect();
    assert_eq!(stamps, ["2026-01-04T00:00:00Z"]);
}

#[tokio::test]
async fn a_checkpoint_is_refused_outside_a_unit_and_with_a_cursor_open() {
    let mut s = session(vec![memory("target").await], true).await;
    s.begin_all(BeginMode::Now).await.unwrap();
    let outside = s.save_checkpoint("x".into()).await.unwrap();
    assert_eq!(error_kind(&outside), Some("usage"));

    s.start_unit(&key("backfill"), false, "2026-01-01T00:00:00Z", None);
    insert(&mut s, "target", 1).await;
    insert(&mut s, "target", 2).await;
    let opened = s
        .open_cursor("target".into(), "SELECT id FROM t".into(), vec![], 1)
        .await
        .unwrap();
    let CallResult::Cursor { cursor, .. } = opened else {
        panic!("{opened:?}")
    };
    let with_cursor = s.save_checkpoint("x".into()).await.unwrap();
    assert_eq!(error_kind(&with_cursor), Some("usage"));
    s.close_cursor(cursor).await.unwrap();
    s.rollback_all(ROLLBACK).await;

    assert!(
        ids(&mut s, "target").await.is_empty(),
        "nothing was committed"
    );
    assert!(saved_checkpoints(&mut s, "target").await.is_empty());
}

#[tokio::test]
async fn write_counts_are_per_connection_and_taken_per_unit() {
    let mut s = session(vec![memory("a").await, memory("b").await], false).await;
    s.begin_all(BeginMode::Now).await.unwrap();
    s.execute(
        "a".into(),
        "INSERT INTO t (id) VALUES (1), (2), (3)".into(),
        vec![],
    )
    .await
    .unwrap();
    let bulk = s
        .bulk_insert(
            "a".into(),
            "t".into(),
            vec!["id".into()],
            vec![vec![Value::Int(4)], vec![Value::Int(5)]],
        )
        .await
        .unwrap();
    assert_eq!(bulk, CallResult::Count { n: 2 });
    s.execute("b".into(), "UPDATE t SET id = id".into(), vec![])
        .await
        .unwrap();
    // A failed statement writes nothing and counts nothing.
    let duplicate = insert(&mut s, "b", 7).await;
    assert_eq!(duplicate, CallResult::Count { n: 1 });
    let failed = insert(&mut s, "b", 7).await;
    assert_eq!(error_kind(&failed), Some("constraint"));
    s.query("a".into(), "SELECT id FROM t".into(), vec![])
        .await
        .unwrap();

    let writes = s.take_writes();
    assert_eq!(
        writes,
        BTreeMap::from([
            (
                "a".to_owned(),
                WriteCounts {
                    statements: 1,
                    rows: 5,
                    bulk_inserts: 1,
                    bulk_writes: 0
                }
            ),
            (
                "b".to_owned(),
                WriteCounts {
                    statements: 2,
                    rows: 1,
                    bulk_inserts: 0,
                    bulk_writes: 0
                }
            ),
        ])
    );
    assert!(s.writes().is_empty(), "taken: the next unit counts afresh");
    s.commit_all().await.unwrap();
    assert_eq!(ids(&mut s, "a").await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_read_only_begin_refuses_writes() {
    // A read-write connection in the read-only phase (configure, list-units).
    let mut s = session(vec![memory("target").await], false).await;
    s.begin_all(BeginMode::ReadOnlyPhase).await.unwrap();
    let refused = insert(&mut s, "target", 1).await;
    assert_eq!(error_kind(&refused), Some("read-only"), "{refused:?}");
    let read = s
        .query("target".into(), "SELECT id FROM t".into(), vec![])
        .await
        .unwrap();
    assert!(matches!(read, CallResult::Rows { .. }), "{read:?}");
    s.rollback_all(ROLLBACK).await;
    assert!(s.take_writes().is_empty());

    // The phase is over: the unit after it writes.
    s.begin_all(BeginMode::Now).await.unwrap();
    insert(&mut s, "target", 2).await;
    s.commit_all().await.unwrap();
    assert_eq!(ids(&mut s, "target").await, [2]);
}

#[tokio::test]
async fn a_read_only_connection_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("source.db").display());
    let mut owner = db::Connection::connect("owner", &url, Access::ReadWrite)
        .await
        .unwrap();
    owner
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY)", &[])
        .await
        .unwrap();
    owner.close().await;
    let source = db::Connection::connect("source", &url, Access::ReadOnly)
        .await
        .unwrap();
    let mut s = session(vec![source, memory("target").await], true).await;
    assert_eq!(s.writable_count(), 1);

    s.start_unit(&key("copy"), false, "2026-01-01T00:00:00Z", None);
    s.begin_all(BeginMode::Now).await.unwrap();
    let refused = insert(&mut s, "source", 1).await;
    assert_eq!(error_kind(&refused), Some("read-only"), "{refused:?}");
    insert(&mut s, "target", 1).await;
    s.commit_unit().await.unwrap();

    assert!(ids(&mut s, "source").await.is_empty());
    assert_eq!(ids(&mut s, "target").await, [1]);
    assert_eq!(
        s.take_writes().keys().collect::<Vec<_>>(),
        ["target"],
        "only the writable connection counts writes"
    );
}

#[tokio::test]
async fn a_plugin_commit_never_ends_the_units_transaction() {
    let mut s = session(vec![memory("target").await], false).await;
    s.begin_all(BeginMode::Now).await.unwrap();
    insert(&mut s, "target", 1).await;
    for commit in ["COMMIT", "END TRANSACTION", "\x0bCOMMIT"] {
        let refused = s
            .execute("target".into(), commit.into(), vec![])
            .await
            .unwrap();
        assert!(error_kind(&refused).is_some(), "{commit:?}: {refused:?}");
    }
    assert!(s.escapes().is_empty(), "nothing escaped: all were refused");
    s.rollback_all(ROLLBACK).await;
    assert!(
        ids(&mut s, "target").await.is_empty(),
        "the row before the COMMIT was rolled back with the unit"
    );
}

#[tokio::test]
async fn a_transaction_the_database_ended_is_detected_and_nothing_commits() {
    let mut s = session(vec![memory("target").await], false).await;
    // A trigger that makes SQLite roll the whole transaction back: the session check
    // sees the host's transaction gone after the statement (set up by the host).
    conn(&mut s, "target")
        .host_simple(
            "CREATE TABLE boom (id INTEGER); CREATE TRIGGER boom_rollback BEFORE INSERT ON boom \
             BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
        )
        .await
        .unwrap();

    s.begin_all(BeginMode::Now).await.unwrap();
    insert(&mut s, "target", 1).await;
    let rolled_back = s
        .execute(
            "target".into(),
            "INSERT INTO boom VALUES (1)".into(),
            vec![],
        )
        .await
        .unwrap();
    assert!(error_kind(&rolled_back).is_some(), "{rolled_back:?}");
    let escape = conn(&mut s, "target").escape().cloned().expect("detected");
    assert!(!escape.may_have_committed, "{escape:?}");
    // The connection no longer runs the plugin's statements, and the host commits nothing.
    let after = insert(&mut s, "target", 2).await;
    assert_eq!(error_kind(&after), Some("refused"), "{after:?}");
    let commit = s.commit_all().await.unwrap_err();
    assert!(matches!(commit, SessionError::Commit { .. }), "{commit}");
    s.rollback_all(ROLLBACK).await;

    assert!(ids(&mut s, "target").await.is_empty());
    assert!(
        s.escapes().is_empty(),
        "rolled back, so nothing may have committed"
    );
}

/// Records what the session shows its observer.
#[derive(Default)]
struct Seen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl CallObserver for Seen {
    fn before_write<'a>(
        &'a mut self,
        conn: &'a mut db::Connection,
        sql: &'a str,
    ) -> BoxFuture<'a, ()> {
        let line = format!("before {}: {sql}", conn.name());
        Box::pin(async move { self.0.lock().unwrap().push(line) })
    }

    fn after_call(&mut self, call: &HostCall, result: &CallResult) {
        let what = match call {
            HostCall::Execute { .. } => "execute",
            HostCall::Query { .. } => "query",
            _ => "other",
        };
        let answer = match result {
            CallResult::Count { n } => format!("count {n}"),
            CallResult::Rows { rows, .. } => format!("rows {}", rows.len()),
            other => format!("{other:?}"),
        };
        self.0.lock().unwrap().push(format!("{what}: {answer}"));
    }

    fn checkpoint_saved(&mut self, unit: &str) {
        self.0.lock().unwrap().push(format!("checkpoint {unit}"));
    }
}

#[tokio::test]
async fn a_dry_run_shows_its_calls_and_checkpoints_to_the_observer_and_commits_nothing() {
    // A dry-run: no ledger, one transaction for the run, rolled back at the end.
    let mut s = session(vec![memory("target").await], false).await;
    let seen = Seen::default();
    let log = seen.0.clone();
    s.observe_calls(Box::new(seen));
    s.begin_all(BeginMode::Now).await.unwrap();
    s.start_unit(&key("backfill"), false, "2026-01-01T00:00:00Z", None);
    insert(&mut s, "target", 1).await;
    assert_eq!(
        s.save_checkpoint("after-1".into()).await.unwrap(),
        CallResult::Unit
    );
    assert_eq!(
        s.last_checkpoint().unwrap(),
        CallResult::Checkpoint { state: None },
        "a dry-run always starts afresh"
    );
    s.query("target".into(), "SELECT id FROM t".into(), vec![])
        .await
        .unwrap();
    assert_eq!(s.end_unit(), 0, "a dry-run commits no checkpoint");
    s.rollback_all(ROLLBACK).await;

    assert_eq!(
        *log.lock().unwrap(),
        [
            "before target: INSERT INTO t (id) VALUES (1)",
            "execute: count 1",
            "checkpoint backfill",
            "query: rows 1",
        ]
    );
    assert!(ids(&mut s, "target").await.is_empty());
}
