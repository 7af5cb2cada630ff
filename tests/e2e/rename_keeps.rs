//! Issue 19, item 5 (first half): a rename by `expand-contract-rename` keeps the column's
//! whole definition. The renamed column has NOT NULL, a DEFAULT, a non-default collation,
//! a CHECK, a plain index, a UNIQUE constraint, a foreign key to another table and a foreign
//! key from a third table to it. After expand, backfill and contract (three runs, as three
//! deployments) the catalog describes the column exactly as before with only its name
//! changed — same constraint and index names, same position — the rows are intact, and
//! each constraint still rejects what it rejected before.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

const ACCOUNTS: i64 = 50;

fn email(id: i64) -> String {
    format!("user{id}@example.org")
}

/// `directory` (the emails that may be used), `accounts` whose `email` is renamed, and
/// `logins` whose `owner` references `accounts.email`.
async fn create_schema(db: &TestDatabase) {
    let statements: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "CREATE TABLE directory (address TEXT COLLATE \"C\" PRIMARY KEY)",
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, \
             email TEXT COLLATE \"C\" NOT NULL DEFAULT 'nobody@example.org' \
               CONSTRAINT accounts_email_key UNIQUE \
               CONSTRAINT accounts_email_fkey REFERENCES directory (address) \
               CONSTRAINT accounts_email_check CHECK (email LIKE '%@%'), \
             note TEXT)",
            "CREATE INDEX accounts_email_id ON accounts (email, id)",
            "CREATE TABLE logins (id BIGINT PRIMARY KEY, \
             owner TEXT COLLATE \"C\" CONSTRAINT logins_owner_fkey REFERENCES accounts (email))",
        ],
        Dialect::MySql => &[
            "CREATE TABLE directory (address VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY) ENGINE=InnoDB",
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, \
             email VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT 'nobody@example.org', \
             note TEXT, \
             CONSTRAINT accounts_email_check CHECK (email LIKE '%@%'), \
             UNIQUE KEY accounts_email_key (email), \
             KEY accounts_email_id (email, id), \
             CONSTRAINT accounts_email_fkey FOREIGN KEY (email) REFERENCES directory (address)) ENGINE=InnoDB",
            "CREATE TABLE logins (id BIGINT PRIMARY KEY, \
             owner VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, \
             CONSTRAINT logins_owner_fkey FOREIGN KEY (owner) REFERENCES accounts (email)) ENGINE=InnoDB",
        ],
        Dialect::Sqlite => &[
            "CREATE TABLE directory (address TEXT PRIMARY KEY)",
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, \
             email TEXT COLLATE NOCASE NOT NULL DEFAULT 'nobody@example.org' \
               CONSTRAINT accounts_email_key UNIQUE \
               CONSTRAINT accounts_email_fkey REFERENCES directory (address) \
               CONSTRAINT accounts_email_check CHECK (email LIKE '%@%'), \
             note TEXT)",
            "CREATE INDEX accounts_email_id ON accounts (email, id)",
            "CREATE TABLE logins (id INTEGER PRIMARY KEY, \
             owner TEXT CONSTRAINT logins_owner_fkey REFERENCES accounts (email))",
        ],
    };
    for statement in statements {
        db.exec(statement).await;
    }
    let mut directory = vec![
        "nobody@example.org".to_owned(),
        "ghost-free@example.org".to_owned(),
        "no-at-sign".to_owned(),
        // Differs from user1's address only in case: a duplicate of it in `accounts` under
        // SQLite's NOCASE, a distinct value under MariaDB's utf8mb4_bin.
        "USER1@example.org".to_owned(),
    ];
    directory.extend((1..=ACCOUNTS).map(email));
    let mut conn = db.connect(Access::ReadWrite).await;
    let rows: Vec<Vec<Value>> = directory
        .into_iter()
        .map(|e| vec![Value::Text(e)])
        .collect();
    conn.bulk_insert("directory", &["address".to_owned()], &rows)
        .await
        .expect("seed directory");
    let rows: Vec<Vec<Value>> = (1..=ACCOUNTS)
        .map(|id| {
            vec![
                Value::Int(id),
                Value::Text(email(id)),
                Value::Text(format!("note {id}")),
            ]
        })
        .collect();
    conn.bulk_insert(
        "accounts",
        &["id".to_owned(), "email".to_owned(), "note".to_owned()],
        &rows,
    )
    .await
    .expect("seed accounts");
    conn.bulk_insert(
        "logins",
        &["id".to_owned(), "owner".to_owned()],
        &[vec![Value::Int(1), Value::Text(email(1))]],
    )
    .await
    .expect("seed logins");
    conn.close().await;
}

/// `text` with every whole-word occurrence of `column` (not inside a longer identifier such
/// as `accounts_email_key`) replaced by `<col>`, and double quotes removed (SQLite quotes a
/// renamed column in the stored `CREATE TABLE`).
fn with_column_as_placeholder(text: &str, column: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(column) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + column.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(word) || after.is_some_and(word) {
            out.push_str(column);
        } else {
            out.push_str("<col>");
        }
        rest = &rest[at + column.len()..];
    }
    out.push_str(rest);
    out.replace('"', "")
}

fn cell(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => "NULL".to_owned(),
        other => other.to_string(),
    }
}

/// Everything the catalog says about `accounts.<column>` and what covers it, one line per
/// fact, with the column's name as `<col>`.
async fn column_definition(db: &TestDatabase, column: &str) -> Vec<String> {
    let param = |s: &str| vec![Value::Text(s.to_owned())];
    let queries: Vec<(String, Vec<Value>)> = match db.dialect {
        Dialect::Postgres => vec![
            (
                "SELECT a.attnum::text, format_type(a.atttypid, a.atttypmod), a.attnotnull::text, \
                 pg_get_expr(d.adbin, d.adrelid), c.collname::text \
                 FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 LEFT JOIN pg_collation c ON c.oid = a.attcollation \
                 WHERE a.attrelid = 'accounts'::regclass AND a.attname = $1"
                    .to_owned(),
                param(column),
            ),
            (
                "SELECT indexname::text, indexdef FROM pg_indexes \
                 WHERE tablename IN ('accounts', 'logins', 'directory') ORDER BY indexname"
                    .to_owned(),
                vec![],
            ),
            (
                "SELECT conname::text, conrelid::regclass::text, contype::text, pg_get_constraintdef(oid) \
                 FROM pg_constraint WHERE conrelid IN ('accounts'::regclass, 'logins'::regclass, 'directory'::regclass) \
                 ORDER BY conname"
                    .to_owned(),
                vec![],
            ),
        ],
        Dialect::MySql => vec![
            (
                "SELECT ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME, COLLATION_NAME \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = ?"
                    .to_owned(),
                param(column),
            ),
            ("SHOW CREATE TABLE accounts".to_owned(), vec![]),
            ("SHOW CREATE TABLE logins".to_owned(), vec![]),
            (
                "SELECT CONSTRAINT_NAME, TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME \
                 FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME IN ('accounts', 'logins', 'directory') \
                 ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"
                    .to_owned(),
                vec![],
            ),
            (
                "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY CONSTRAINT_NAME"
                    .to_owned(),
                vec![],
            ),
        ],
        Dialect::Sqlite => vec![
            (
                "SELECT cid, type, \"notnull\", dflt_value, pk FROM pragma_table_info('accounts') WHERE name = ?"
                    .to_owned(),
                param(column),
            ),
            (
                "SELECT type, name, tbl_name, sql FROM sqlite_master \
                 WHERE tbl_name IN ('accounts', 'logins', 'directory') ORDER BY type, name"
                    .to_owned(),
                vec![],
            ),
            (
                "SELECT 'accounts', * FROM pragma_foreign_key_list('accounts') \
                 UNION ALL SELECT 'logins', * FROM pragma_foreign_key_list('logins')"
                    .to_owned(),
                vec![],
            ),
            (
                "SELECT l.name, l.\"unique\", i.name FROM pragma_index_list('accounts') l, \
                 pragma_index_info(l.name) i ORDER BY l.name, i.seqno"
                    .to_owned(),
                vec![],
            ),
        ],
    };
    let mut conn = db.connect(Access::ReadOnly).await;
    let mut lines = Vec::new();
    for (sql, params) in queries {
        let rows = conn.query(&sql, &params).await.expect(&sql);
        assert!(
            !rows.rows.is_empty(),
            "{:?}: nothing from {sql}",
            db.dialect
        );
        for row in rows.rows {
            let line: Vec<String> = row.iter().map(cell).collect();
            lines.push(with_column_as_placeholder(&line.join(" | "), column));
        }
    }
    conn.close().await;
    lines
}

async fn rows_of(db: &TestDatabase, column: &str) -> Vec<Vec<String>> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            &format!("SELECT id, {column}, note FROM accounts ORDER BY id"),
            &[],
        )
        .await
        .expect("rows of accounts");
    conn.close().await;
    rows.rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect()
}

/// Runs `sql` and returns its error, or `None` when it succeeded.
async fn refusal(db: &TestDatabase, sql: &str) -> Option<String> {
    let mut conn = db.connect(Access::ReadWrite).await;
    let result = conn.execute(sql, &[]).await;
    conn.close().await;
    result.err().map(|e| e.to_string())
}

async fn rename_keeps_the_column_definition(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_schema(&db).await;
    let definition_before = column_definition(&db, "email").await;
    let rows_before = rows_of(&db, "email").await;
    assert_eq!(rows_before.len() as i64, ACCOUNTS);

    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.app]\nurl = \"{}\"\n[config]\ntable = \"accounts\"\nold_column = \"email\"\nnew_column = \"email_address\"\nbatch_size = 7\n",
        db.url
    ));
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    // Between expand and contract the old column's constraints still act, on writes through
    // either name (the triggers copy a new-column write into the old column).
    assert!(
        refusal(
            &db,
            "INSERT INTO accounts (id, email, note) VALUES (900, 'user2@example.org', 'dup')"
        )
        .await
        .is_some(),
        "{dialect:?}: a duplicate through the old column during the transition"
    );
    ws.migrun(&[plugin, "--only", "backfill"]).expect_code(0);
    let contract = ws.migrun(&[plugin, "--only", "contract"]);
    contract
        .expect_code(0)
        .expect_output("renamed the old column to `email_address`");

    let definition_after = column_definition(&db, "email_address").await;
    assert_eq!(
        definition_after, definition_before,
        "{dialect:?}: the column's definition changed beyond its name"
    );
    assert_eq!(
        rows_of(&db, "email_address").await,
        rows_before,
        "{dialect:?}: rows or values changed"
    );
    let mut conn = db.connect(Access::ReadOnly).await;
    let columns = conn
        .query("SELECT * FROM accounts WHERE id = 1", &[])
        .await
        .expect("accounts")
        .columns;
    conn.close().await;
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "email_address", "note"], "{dialect:?}");

    // Every constraint still acts on the renamed column.
    for (what, sql) in [
        (
            "NOT NULL",
            "INSERT INTO accounts (id, email_address) VALUES (100, NULL)",
        ),
        (
            "UNIQUE",
            "INSERT INTO accounts (id, email_address) VALUES (101, 'user3@example.org')",
        ),
        (
            "the foreign key to directory",
            "INSERT INTO accounts (id, email_address) VALUES (102, 'ghost@example.org')",
        ),
        (
            "the CHECK",
            "INSERT INTO accounts (id, email_address) VALUES (103, 'no-at-sign')",
        ),
        (
            "the foreign key from logins",
            "INSERT INTO logins (id, owner) VALUES (2, 'ghost-free@example.org')",
        ),
        (
            "the foreign key from logins (delete)",
            "DELETE FROM accounts WHERE id = 1",
        ),
    ] {
        assert!(
            refusal(&db, sql).await.is_some(),
            "{dialect:?}: {what} no longer rejects `{sql}`"
        );
    }
    // The DEFAULT fills an omitted value.
    assert_eq!(
        refusal(
            &db,
            "INSERT INTO accounts (id, note) VALUES (104, 'default')"
        )
        .await,
        None,
        "{dialect:?}"
    );
    let mut conn = db.connect(Access::ReadOnly).await;
    let defaulted = conn
        .query("SELECT email_address FROM accounts WHERE id = 104", &[])
        .await
        .expect("defaulted row")
        .rows;
    conn.close().await;
    // (MariaDB reports a `_bin` collation's text as bytes.)
    let defaulted: Vec<String> = defaulted.iter().map(|r| cell(&r[0])).collect();
    assert_eq!(defaulted, ["nobody@example.org"], "{dialect:?}");
    // The collation still decides what counts as a duplicate.
    let case_variant = "INSERT INTO accounts (id, email_address) VALUES (105, 'USER1@example.org')";
    match dialect {
        Dialect::Sqlite => assert!(
            refusal(&db, case_variant).await.is_some(),
            "NOCASE: a case variant is a duplicate"
        ),
        Dialect::MySql => assert_eq!(
            refusal(&db, case_variant).await,
            None,
            "utf8mb4_bin: a case variant is a distinct value"
        ),
        Dialect::Postgres => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_keeps_the_column_definition_sqlite() {
    rename_keeps_the_column_definition(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_keeps_the_column_definition_postgres() {
    rename_keeps_the_column_definition(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_keeps_the_column_definition_mariadb() {
    rename_keeps_the_column_definition(Dialect::MySql).await;
}
