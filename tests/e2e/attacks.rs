//! Least privilege that holds: a hostile plugin with ordinary write grants
//! tries to commit outside its unit, write its read-only source, touch files on
//! migrun's machine, change data during a dry-run and write before the backup,
//! through every spelling the servers accept and the host's lexer might not.
//!
//! The plugin is `tests/guests/sql-attack`: it sends the configured SQL and
//! ignores every error. Each test asserts what a user would check: the tables
//! (checksums), the files on disk, the exit code and what the report says —
//! never only that an error was returned. See docs/SECURITY.md, "Least
//! privilege", for the guarantee each test proves.

use std::path::Path;

use migrun::db::Dialect;

use crate::support::arena::{Arena, expect_all_refused, sha256_of, sqlite_path};

#[tokio::test]
async fn sqlite_plugin_cannot_reach_files_on_the_migrun_host() {
    let Some(arena) = Arena::new(Dialect::Sqlite).await else {
        return;
    };
    let dir = arena.ws.path();
    let created = dir.join("escaped.db");
    let copied = dir.join("copied.db");
    // A stand-in for the run's before-run backup: a SQLite file beside the run.
    let backup = dir.join("earlier-backup.sqlite");
    std::fs::copy(sqlite_path(&arena.target.url), &backup).unwrap();
    let source = sqlite_path(&arena.source.url).to_owned();
    let (source_sha, backup_sha) = (sha256_of(&source), sha256_of(&backup));
    let q = |p: &Path| p.display().to_string();
    let attacks = [
        format!("ATTACH DATABASE '{}' AS evil", q(&created)),
        format!("\x0bATTACH '{}' AS evil", q(&created)),
        format!("\x0c attach '{}' as evil", q(&created)),
        format!("/* hi */ ATTACH '{}' AS evil", q(&created)),
        format!("\x0bVACUUM INTO '{}'", q(&copied)),
        format!("VACUUM INTO '{}'", q(&copied)),
        format!("\x0bATTACH '{}' AS src", q(&source)),
        "\x0bINSERT INTO src.secrets VALUES (2, 'stolen')".to_owned(),
        format!("\x0bATTACH '{}' AS bak", q(&backup)),
        "\x0bDELETE FROM bak.victim".to_owned(),
        "\x0bPRAGMA query_only = OFF".to_owned(),
        "PRAGMA writable_schema = ON".to_owned(),
        "SELECT load_extension('/tmp/evil')".to_owned(),
    ];
    let attacks: Vec<&str> = attacks.iter().map(String::as_str).collect();
    arena.configure("target", "run-unit", &attacks, &[], "fail");
    let before = arena.checksums().await;
    let out = arena.migrun(&[]);
    out.expect_code(1)
        .expect_output("failing on purpose after the attack")
        .expect_output("unit `attack` was rolled back on every connection");
    expect_all_refused(&out, &attacks);
    assert!(
        !created.exists(),
        "ATTACH created a file on the migrun host"
    );
    assert!(
        !copied.exists(),
        "VACUUM INTO wrote a file on the migrun host"
    );
    assert_eq!(
        sha256_of(&source),
        source_sha,
        "the read-only source file changed"
    );
    assert_eq!(sha256_of(&backup), backup_sha, "the backup file changed");
    assert_eq!(arena.checksums().await, before, "a table changed");
}

/// `COMMIT` (and the other ways to end a transaction) spelled as the server reads it,
/// followed by a write: the write must be rolled back with the failed unit.
fn commit_spellings(dialect: Dialect) -> Vec<&'static str> {
    let mut attacks = vec![
        "\x0bCOMMIT",
        "\x0cCOMMIT",
        "\x0bEND",
        "\u{85}COMMIT",
        "\x0bROLLBACK",
        "\x0bBEGIN",
        "/*x*/\x0bCOMMIT",
    ];
    match dialect {
        Dialect::MySql => attacks.extend([
            "IF 1=1 THEN COMMIT; END IF",
            "BEGIN NOT ATOMIC COMMIT; START TRANSACTION; END",
            "lbl: BEGIN NOT ATOMIC COMMIT; END",
            "WHILE 1=1 DO COMMIT; START TRANSACTION; END WHILE",
            "CASE WHEN 1=1 THEN COMMIT; END CASE",
            "REPEAT COMMIT; UNTIL 1=1 END REPEAT",
            "FOR i IN 1..1 DO COMMIT; END FOR",
            "EXECUTE IMMEDIATE 'COMMIT'",
            "PREPARE s FROM 'COMMIT'",
            "SET STATEMENT max_statement_time=100 FOR COMMIT",
            "SET autocommit = 1",
            "/*! COMMIT */",
            "/*!99999 SELECT 1 */ COMMIT",
            "/*M! COMMIT */",
            "XA END 'x'",
        ]),
        Dialect::Postgres => {
            attacks.extend(["DO $$BEGIN COMMIT; END$$", "PREPARE TRANSACTION 'x'"])
        }
        Dialect::Sqlite => attacks.extend(["\x0bEND TRANSACTION", "\x0bCOMMIT TRANSACTION"]),
    }
    attacks
}

async fn commit_cannot_escape_the_unit(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    let attacks = commit_spellings(dialect);
    // After each attack, a write: if any attack had ended the unit's transaction,
    // the write after it would commit on its own.
    let mut statements = Vec::new();
    for attack in &attacks {
        statements.push(*attack);
        statements.push("INSERT INTO victim (id, v) VALUES (99, 'escaped')");
        statements.push("DELETE FROM victim WHERE id = 99");
    }
    arena.configure(
        "target",
        "run-unit",
        &statements,
        &["UPDATE victim SET v = 'changed' WHERE id = 1"],
        "fail",
    );
    let before = arena.checksums().await;
    let out = arena.migrun(&[]);
    out.expect_code(1)
        .expect_output("unit `attack` was rolled back on every connection");
    expect_all_refused(&out, &attacks);
    assert_eq!(
        arena.checksums().await,
        before,
        "something committed outside the unit"
    );
}

#[tokio::test]
async fn commit_cannot_escape_the_unit_sqlite() {
    commit_cannot_escape_the_unit(Dialect::Sqlite).await;
}

#[tokio::test]
async fn commit_cannot_escape_the_unit_postgres() {
    commit_cannot_escape_the_unit(Dialect::Postgres).await;
}

#[tokio::test]
async fn commit_cannot_escape_the_unit_mysql() {
    commit_cannot_escape_the_unit(Dialect::MySql).await;
}

async fn read_only_source_stays_read_only(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    let mut attacks: Vec<&str> = vec![
        "\x0bCOMMIT",
        "INSERT INTO secrets VALUES (2, 'written')",
        "\x0bINSERT INTO secrets VALUES (3, 'written')",
    ];
    match dialect {
        Dialect::MySql => attacks.extend([
            "\x0bSET SESSION TRANSACTION READ WRITE",
            "SET SESSION TRANSACTION READ WRITE",
            "SET @@session.tx_read_only = 0",
            "SET STATEMENT tx_read_only=0 FOR INSERT INTO secrets VALUES (4, 'w')",
            "IF 1=1 THEN COMMIT; SET SESSION TRANSACTION READ WRITE; INSERT INTO secrets VALUES (5, 'w'); END IF",
            "BEGIN NOT ATOMIC COMMIT; SET SESSION TRANSACTION READ WRITE; INSERT INTO secrets VALUES (6, 'w'); END",
            "WHILE 1=1 DO COMMIT; SET SESSION TRANSACTION READ WRITE; INSERT INTO secrets VALUES (7, 'w'); END WHILE",
            "CALL commit_and_write()",
            "EXECUTE IMMEDIATE 'INSERT INTO secrets VALUES (8, ''w'')'",
            "INSERT INTO secrets VALUES (9, 'after')",
        ]),
        Dialect::Postgres => attacks.extend([
            "SET TRANSACTION READ WRITE",
            "DO $$BEGIN INSERT INTO secrets VALUES (5, 'w'); END$$",
            "INSERT INTO secrets VALUES (9, 'after')",
        ]),
        Dialect::Sqlite => attacks.extend([
            "PRAGMA query_only = OFF",
            "\x0bPRAGMA query_only = 0",
            "INSERT INTO secrets VALUES (9, 'after')",
        ]),
    }
    if dialect == Dialect::MySql {
        // A procedure that commits and writes, created by the owner (as a real attacker
        // with CREATE ROUTINE on another database could): calling it is refused.
        arena
            .source
            .exec(
                "CREATE PROCEDURE commit_and_write() BEGIN COMMIT; SET SESSION TRANSACTION READ WRITE; \
                 INSERT INTO secrets VALUES (10, 'proc'); END",
            )
            .await;
    }
    // Statements the session accepts but that must change nothing: PostgreSQL lets a
    // session change its default, which no longer applies to the open read-only transaction.
    let mut statements = attacks.clone();
    if dialect == Dialect::Postgres {
        statements.insert(0, "SET default_transaction_read_only = off");
        statements.push("INSERT INTO secrets VALUES (11, 'after the default')");
    }
    arena.configure("source", "run-unit", &statements, &[], "ok");
    let before = arena.checksums().await.0;
    let out = arena.migrun(&[]);
    expect_all_refused(&out, &attacks);
    assert_eq!(
        arena.checksums().await.0,
        before,
        "the read-only source changed:\n{}",
        out.all()
    );
    // Nothing escaped, so the run itself is an ordinary success.
    out.expect_code(0);
}

#[tokio::test]
async fn read_only_source_stays_read_only_sqlite() {
    read_only_source_stays_read_only(Dialect::Sqlite).await;
}

#[tokio::test]
async fn read_only_source_stays_read_only_postgres() {
    read_only_source_stays_read_only(Dialect::Postgres).await;
}

#[tokio::test]
async fn read_only_source_stays_read_only_mysql() {
    read_only_source_stays_read_only(Dialect::MySql).await;
}

/// A procedure on the read-write connection that commits: the host cannot stop a
/// procedure's body (only the role can), but it notices, closes the connection to the
/// plugin, fails the unit and says that work may have been committed — never "rolled back".
#[tokio::test]
async fn a_procedure_that_commits_is_reported_as_a_possible_commit_mysql() {
    let Some(arena) = Arena::new(Dialect::MySql).await else {
        return;
    };
    arena
        .target
        .exec(
            "CREATE PROCEDURE sneaky() BEGIN COMMIT; START TRANSACTION; \
             INSERT INTO victim VALUES (50, 'proc'); END",
        )
        .await;
    arena.configure(
        "target",
        "run-unit",
        &[
            "INSERT INTO victim VALUES (40, 'before')",
            "CALL sneaky()",
            "INSERT INTO victim VALUES (60, 'after')",
        ],
        &[],
        "ok",
    );
    let out = arena.migrun(&[]);
    out.expect_code(1)
        .expect_output("MAY HAVE BEEN COMMITTED")
        .expect_output("connection `target`");
    assert!(
        !out.all().contains("was rolled back on every connection"),
        "the report claims a rollback:\n{}",
        out.all()
    );
    // The statement after the escape did not run.
    assert!(
        out.all()
            .contains("refused: \"INSERT INTO victim VALUES (60, 'after')\""),
        "{}",
        out.all()
    );
    let rows = crate::support::checksum::row_count(&arena.target.url, "victim").await;
    assert!(rows <= 3, "the write after the escape landed: {rows} rows");
}

/// Plugin code before the backup (`configure`, `list-units`) sees every connection
/// read-only: a delete followed by DDL (an implicit commit on MariaDB) changes nothing,
/// so the backup holds every row.
async fn nothing_is_written_before_the_backup(dialect: Dialect, phase: &str) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    let attacks = [
        "DELETE FROM victim",
        "CREATE TABLE implicit_commit (i INTEGER)",
        "DELETE FROM victim WHERE id = 1",
    ];
    arena.configure("target", phase, &attacks, &[], "ok");
    let before = arena.checksums().await;
    let out = arena.migrun(&[]);
    expect_all_refused(&out, &attacks);
    out.expect_code(0);
    assert_eq!(
        arena.checksums().await,
        before,
        "{phase} wrote before the backup"
    );
}

#[tokio::test]
async fn nothing_is_written_before_the_backup_in_configure_mysql() {
    nothing_is_written_before_the_backup(Dialect::MySql, "configure").await;
}

#[tokio::test]
async fn nothing_is_written_before_the_backup_in_list_units_mysql() {
    nothing_is_written_before_the_backup(Dialect::MySql, "list-units").await;
}

#[tokio::test]
async fn nothing_is_written_before_the_backup_in_configure_postgres() {
    nothing_is_written_before_the_backup(Dialect::Postgres, "configure").await;
}

#[tokio::test]
async fn nothing_is_written_before_the_backup_in_list_units_sqlite() {
    nothing_is_written_before_the_backup(Dialect::Sqlite, "list-units").await;
}

/// Server files through spellings the guard once missed: a quoted function name on
/// PostgreSQL, MariaDB's `--` that is not a comment before a digit.
async fn server_files_stay_out_of_reach(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    let marker = format!("/tmp/migrun-attack-{}-{}", dialect, std::process::id());
    let _ = std::fs::remove_file(&marker);
    let attacks: Vec<String> = match dialect {
        Dialect::Postgres => vec![
            "SELECT \"pg_read_file\"('/etc/hostname')".into(),
            "SELECT pg_catalog.\"pg_read_file\"('/etc/hostname')".into(),
            "SELECT \"lo_export\"(0, '/tmp/x')".into(),
            format!("\x0bCOPY secrets TO '{marker}'"),
            format!("COPY (SELECT 1) TO PROGRAM 'touch {marker}'"),
        ],
        _ => vec![
            format!("SELECT 5--1 INTO OUTFILE '{marker}'"),
            format!("SELECT 5 --\x0b\nINTO OUTFILE '{marker}'"),
            format!("SELECT 1 INTO DUMPFILE '{marker}'"),
            "SELECT LOAD_FILE('/etc/hostname')".into(),
            "SET GLOBAL general_log = 1".into(),
            format!("SET GLOBAL general_log_file = '{marker}'"),
            "SET @@global.init_connect = 'DROP DATABASE x'".into(),
        ],
    };
    let attacks: Vec<&str> = attacks.iter().map(String::as_str).collect();
    arena.configure("source", "run-unit", &attacks, &[], "ok");
    let out = arena.migrun(&[]);
    expect_all_refused(&out, &attacks);
    assert!(
        !Path::new(&marker).exists(),
        "a file was written on the database server"
    );
    if dialect == Dialect::MySql {
        let mut admin = arena.target.connect(migrun::db::Access::ReadOnly).await;
        let rows = admin
            .query("SELECT CAST(@@global.init_connect AS CHAR)", &[])
            .await
            .unwrap();
        assert_eq!(
            rows.rows[0][0],
            migrun::value::Value::Text(String::new()),
            "init_connect changed"
        );
        admin.close().await;
    }
}

#[tokio::test]
async fn server_files_stay_out_of_reach_postgres() {
    server_files_stay_out_of_reach(Dialect::Postgres).await;
}

#[tokio::test]
async fn server_files_stay_out_of_reach_mysql() {
    server_files_stay_out_of_reach(Dialect::MySql).await;
}

/// A dry-run on MariaDB: a compound statement that commits, or `USE` of the real
/// database, changes no real data, and the report does not claim "nothing was changed"
/// for something it did not stop.
#[tokio::test]
async fn dry_run_cannot_write_mysql() {
    let Some(arena) = Arena::new(Dialect::MySql).await else {
        return;
    };
    let use_real = format!("USE `{}`", arena.target.name);
    let attacks = [
        "IF 1=1 THEN COMMIT; INSERT INTO victim VALUES (70, 'dry'); END IF",
        use_real.as_str(),
        "\x0bCOMMIT",
        "INSERT INTO victim VALUES (71, 'dry')",
    ];
    arena.configure("target", "run-unit", &attacks, &[], "ok");
    let before = arena.checksums().await;
    let out = arena.migrun(&["--dry-run"]);
    expect_all_refused(&out, &attacks[..3]);
    assert_eq!(
        arena.checksums().await,
        before,
        "a dry-run changed real data"
    );
}

/// A MariaDB dry-run that cannot make its scratch copy (the role may not create
/// databases) is refused unless the operator accepts the risk by name; with
/// `--dry-run-unsafe-mariadb` it runs in the real database with DDL refused and still
/// changes nothing.
#[tokio::test]
async fn mariadb_dry_run_without_a_scratch_needs_the_operators_consent() {
    let Some(arena) = Arena::new(Dialect::MySql).await else {
        return;
    };
    let user = format!(
        "{}_nc",
        &arena.target.name[..arena.target.name.len().min(20)]
    );
    arena
        .target
        .exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await;
    arena
        .target
        .exec(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON `{}`.* TO '{user}'@'%'",
            arena.target.name
        ))
        .await;
    let server = crate::support::database::server_url(Dialect::MySql).unwrap();
    let host = server
        .rsplit('@')
        .next()
        .unwrap()
        .trim_start_matches("mysql://");
    let url = format!("mysql://{user}:pw@{host}/{}", arena.target.name);
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    arena.ws.config(&format!(
        "[connections.source]\nurl = {}\naccess = \"read-only\"\n\n\
         [connections.target]\nurl = {}\naccess = \"read-write\"\n\n\
         [config]\nsql = {}\n",
        quote(&arena.source.rw_url),
        quote(&url),
        quote("INSERT INTO victim VALUES (80, 'dry')\n;;\nCREATE TABLE dry_ddl (i INTEGER)"),
    ));
    let before = arena.checksums().await;
    let refused = arena.migrun(&["--dry-run"]);
    refused
        .expect_code(2)
        .expect_output("no scratch database could be made")
        .expect_output("--dry-run-unsafe-mariadb");
    let consented = arena.migrun(&["--dry-run", "--dry-run-unsafe-mariadb"]);
    consented
        .expect_code(0)
        .expect_output("ok (1): \"INSERT INTO victim VALUES (80, 'dry')\"")
        .expect_output("refused: \"CREATE TABLE dry_ddl (i INTEGER)\"");
    assert_eq!(
        arena.checksums().await,
        before,
        "a dry-run changed real data"
    );
    arena.target.exec(&format!("DROP USER '{user}'@'%'")).await;
}
