//! The statement classifier of the plan: which table and operation a
//! statement's affected-row count belongs to, and what DDL it runs. Pure: a
//! token stream in ([`super::lexer::tokens`]), a [`Classified`] out.

use serde::{Deserialize, Serialize};

use super::Dialect;
use super::lexer::{self as sql, Token};

/// How a write's affected-row count is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteOp {
    /// Rows inserted (`INSERT`, `INSERT … ON CONFLICT DO NOTHING`, `INSERT IGNORE`).
    Insert,
    /// Rows updated.
    Update,
    /// Rows deleted.
    Delete,
    /// One total for rows inserted, updated (and for `MERGE`, deleted):
    /// upserts, `REPLACE`, `MERGE`.
    Upsert,
}

/// What a statement does to data or schema, as [`classify`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The main statement's effect.
    pub effect: Effect,
    /// Tables written by data-modifying CTEs, whose rows the database does not count.
    pub side_writes: Vec<(WriteOp, String)>,
    /// Whether the statement returns the rows it writes (`RETURNING`).
    pub returning: bool,
}

/// The effect of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Writes rows of `table`; the affected count reads as `op`.
    Write {
        /// How the count reads.
        op: WriteOp,
        /// The table, as the statement names it (PostgreSQL: unquoted words folded to lowercase).
        table: String,
    },
    /// Changes the schema.
    Ddl(Ddl),
    /// Only reads.
    Read,
    /// Anything else: session settings, savepoints, procedure calls, …
    Other,
}

/// A schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddl {
    /// `CREATE TABLE`, `CREATE INDEX`, `ALTER TABLE`, `DROP TABLE`, `TRUNCATE`, …
    pub action: String,
    /// The object created, altered or dropped.
    pub object: Option<String>,
    /// The table concerned: the table itself, or an index's or trigger's table.
    pub table: Option<String>,
    /// Whether it fills `table` with rows (`CREATE TABLE … AS SELECT`, `SELECT … INTO`).
    pub fills: bool,
}

/// Classifies the first statement of `text` (see the module docs): the
/// table written and how its affected count reads, or the schema change.
///
/// It reads tokens, not a grammar: enough for the statements migrations
/// send (`INSERT`/`UPDATE`/`DELETE`/`MERGE`/`REPLACE`, upserts, CTEs, the DDL
/// verbs), with quoted and schema-qualified names. For MySQL multi-table
/// `UPDATE`/`DELETE` the first table named is the one reported.
pub fn classify(dialect: Dialect, text: &str) -> Classified {
    let tokens = sql::tokens(text, dialect);
    let statements = sql::split_statements(&tokens);
    match statements.first() {
        Some(first) => classify_tokens(dialect, first),
        None => Classified {
            effect: Effect::Other,
            side_writes: Vec::new(),
            returning: false,
        },
    }
}

fn classify_tokens(d: Dialect, t: &[Token]) -> Classified {
    let mut i = 0;
    while t.get(i).is_some_and(|x| x.is_punct('(')) {
        i += 1;
    }
    let mut side_writes = Vec::new();
    if t.get(i).is_some_and(|x| x.is("WITH")) {
        i += 1;
        if t.get(i).is_some_and(|x| x.is("RECURSIVE")) {
            i += 1;
        }
        while let Some((_, after)) = sql::name_at(t, i, d) {
            i = sql::skip_group(t, after);
            if t.get(i).is_some_and(|x| x.is("AS")) {
                i += 1;
            }
            if t.get(i).is_some_and(|x| x.is("NOT")) {
                i += 1;
            }
            if t.get(i).is_some_and(|x| x.is("MATERIALIZED")) {
                i += 1;
            }
            let end = sql::skip_group(t, i);
            if end > i + 1 {
                let body = classify_tokens(d, &t[i + 1..end - 1]);
                side_writes.extend(body.side_writes);
                if let Effect::Write { op, table } = body.effect {
                    side_writes.push((op, table));
                }
            }
            i = end;
            if t.get(i).is_some_and(|x| x.is_punct(',')) {
                i += 1;
            } else {
                break;
            }
        }
    }
    let main = &t[i.min(t.len())..];
    let returning = sql::top_level(main).any(|j| main[j].is("RETURNING"));
    Classified {
        effect: effect(d, main),
        side_writes,
        returning,
    }
}

/// Skips the words in `skip` from `i`; returns the index of the first other token.
fn skip_words(t: &[Token], mut i: usize, skip: &[&str]) -> usize {
    while t.get(i).is_some_and(|x| skip.iter().any(|w| x.is(w))) {
        i += 1;
    }
    i
}

/// Whether the top level of `t` holds the words `seq` in a row.
fn has_sequence(t: &[Token], seq: &[&str]) -> bool {
    let top: Vec<usize> = sql::top_level(t).collect();
    top.windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(&j, word)| t[j].is(word)))
}

fn effect(d: Dialect, t: &[Token]) -> Effect {
    let Some(first) = t.first() else {
        return Effect::Other;
    };
    let write = |op: WriteOp, i: usize| match sql::name_at(t, i, d) {
        Some((table, _)) => Effect::Write { op, table },
        None => Effect::Other,
    };
    match first.upper().as_str() {
        "INSERT" => {
            let mut i = skip_words(
                t,
                1,
                &["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"],
            );
            let mut op = WriteOp::Insert;
            if t.get(i).is_some_and(|x| x.is("OR")) {
                if t.get(i + 1).is_some_and(|x| x.is("REPLACE")) {
                    op = WriteOp::Upsert;
                }
                i += 2;
            }
            i = skip_words(t, i, &["INTO"]);
            let upsert = has_sequence(t, &["ON", "DUPLICATE", "KEY", "UPDATE"])
                || (has_sequence(t, &["ON", "CONFLICT"]) && has_sequence(t, &["DO", "UPDATE"]));
            if upsert {
                op = WriteOp::Upsert;
            }
            write(op, i)
        }
        "REPLACE" => write(
            WriteOp::Upsert,
            skip_words(t, 1, &["LOW_PRIORITY", "DELAYED", "INTO"]),
        ),
        "UPDATE" => {
            let mut i = skip_words(t, 1, &["LOW_PRIORITY", "IGNORE", "ONLY"]);
            if t.get(i).is_some_and(|x| x.is("OR")) {
                i += 2;
            }
            write(WriteOp::Update, i)
        }
        "DELETE" => {
            let i = skip_words(t, 1, &["LOW_PRIORITY", "QUICK", "IGNORE", "FROM", "ONLY"]);
            write(WriteOp::Delete, i)
        }
        "MERGE" => write(WriteOp::Upsert, skip_words(t, 1, &["INTO", "ONLY"])),
        "SELECT" => select_into(d, t).map_or(Effect::Read, Effect::Ddl),
        "VALUES" | "TABLE" | "SHOW" | "EXPLAIN" | "DESCRIBE" | "DESC" => Effect::Read,
        "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME" | "COMMENT" | "REINDEX" | "CLUSTER"
        | "VACUUM" | "ANALYZE" | "OPTIMIZE" | "REPAIR" | "GRANT" | "REVOKE" | "REFRESH" => {
            Effect::Ddl(ddl(d, t))
        }
        _ => Effect::Other,
    }
}

/// PostgreSQL `SELECT … INTO new_table …`, which creates and fills a table.
fn select_into(d: Dialect, t: &[Token]) -> Option<Ddl> {
    if d != Dialect::Postgres {
        return None; // MySQL's SELECT … INTO assigns variables or writes files
    }
    let at = sql::top_level(t).find(|&j| t[j].is("INTO"))?;
    let i = skip_words(t, at + 1, &["TEMPORARY", "TEMP", "UNLOGGED", "TABLE"]);
    let (table, _) = sql::name_at(t, i, d)?;
    Some(Ddl {
        action: "CREATE TABLE".into(),
        object: Some(table.clone()),
        table: Some(table),
        fills: true,
    })
}

/// Words between a DDL verb and the kind of object.
const CREATE_MODIFIERS: &[&str] = &[
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "GLOBAL",
    "LOCAL",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "RECURSIVE",
    "ONLINE",
    "OFFLINE",
    "IGNORE",
    "CONSTRAINT",
    "AGGREGATE",
    "TRUSTED",
    "PROCEDURAL",
    "DEFAULT",
];

fn ddl(d: Dialect, t: &[Token]) -> Ddl {
    let verb = t[0].upper();
    let mut i = 1;
    if verb == "CREATE" && t.get(1).is_some_and(|x| x.is("OR")) {
        i = 3; // OR REPLACE
    }
    // MySQL's `CREATE ALGORITHM=… DEFINER=… SQL SECURITY … VIEW` and plain modifiers.
    loop {
        let before = i;
        i = skip_words(t, i, CREATE_MODIFIERS);
        if t.get(i)
            .is_some_and(|x| x.is("ALGORITHM") || x.is("DEFINER"))
            && t.get(i + 1).is_some_and(|x| x.is_punct('='))
        {
            i += 2;
            let mut end = t.get(i).map_or(0, |x| x.end);
            i += 1;
            while t.get(i).is_some_and(|x| x.start == end) {
                end = t[i].end;
                i += 1;
            }
        }
        if t.get(i).is_some_and(|x| x.is("SQL")) && t.get(i + 1).is_some_and(|x| x.is("SECURITY")) {
            i += 3;
        }
        if i == before {
            break;
        }
    }
    let object_kind = |i: usize| -> (String, usize) {
        let Some(word) = t.get(i).map(Token::upper).filter(|w| !w.is_empty()) else {
            return (String::new(), i);
        };
        match word.as_str() {
            "MATERIALIZED" | "FOREIGN" | "EVENT"
                if t.get(i + 1).is_some_and(|x| !x.upper().is_empty()) =>
            {
                (format!("{word} {}", t[i + 1].upper()), i + 2)
            }
            _ => (word, i + 1),
        }
    };
    let named = |i: usize| {
        let i = skip_words(t, i, &["CONCURRENTLY", "IF", "NOT", "EXISTS", "ONLY"]);
        sql::name_at(t, i, d)
    };
    match verb.as_str() {
        "CREATE" => {
            let (kind, i) = object_kind(i);
            let action = format!("CREATE {kind}");
            match kind.as_str() {
                "INDEX" => {
                    let i = skip_words(t, i, &["CONCURRENTLY", "IF", "NOT", "EXISTS"]);
                    let (object, i) = if t.get(i).is_some_and(|x| x.is("ON")) {
                        (None, i)
                    } else {
                        match sql::name_at(t, i, d) {
                            Some((name, j)) => (Some(name), j),
                            None => (None, i),
                        }
                    };
                    let on = (i..t.len()).find(|&j| t[j].is("ON"));
                    let table = on
                        .and_then(|j| sql::name_at(t, skip_words(t, j + 1, &["ONLY"]), d))
                        .map(|(n, _)| n);
                    Ddl {
                        action,
                        object,
                        table,
                        fills: false,
                    }
                }
                "TRIGGER" => {
                    let object = named(i).map(|(n, _)| n);
                    let table = sql::top_level(t)
                        .find(|&j| j > i && t[j].is("ON"))
                        .and_then(|j| sql::name_at(t, j + 1, d))
                        .map(|(n, _)| n);
                    Ddl {
                        action,
                        object,
                        table,
                        fills: false,
                    }
                }
                "TABLE" => {
                    let found = named(i);
                    let table = found.as_ref().map(|(n, _)| n.clone());
                    let after = found.map_or(i, |(_, j)| j);
                    let fills = sql::top_level(t).filter(|&j| j >= after).any(|j| {
                        t[j].is("SELECT")
                            || (t[j].is("AS")
                                && t.get(j + 1).is_some_and(|x| {
                                    x.is("SELECT")
                                        || x.is("WITH")
                                        || x.is("VALUES")
                                        || x.is("TABLE")
                                        || x.is_punct('(')
                                }))
                    });
                    Ddl {
                        action,
                        object: table.clone(),
                        table,
                        fills,
                    }
                }
                _ => Ddl {
                    action,
                    object: named(i).map(|(n, _)| n),
                    table: None,
                    fills: false,
                },
            }
        }
        "ALTER" | "DROP" => {
            let i = skip_words(t, i, &["ONLINE", "IGNORE"]);
            let (kind, i) = object_kind(i);
            let object = named(i).map(|(n, _)| n);
            let table = match kind.as_str() {
                "TABLE" => object.clone(),
                // MySQL: DROP INDEX name ON table
                "INDEX" => sql::top_level(t)
                    .find(|&j| j > i && t[j].is("ON"))
                    .and_then(|j| sql::name_at(t, j + 1, d))
                    .map(|(n, _)| n),
                _ => None,
            };
            Ddl {
                action: format!("{verb} {kind}").trim_end().to_owned(),
                object,
                table,
                fills: false,
            }
        }
        "TRUNCATE" | "RENAME" => {
            let i = skip_words(t, i, &["TABLE", "ONLY"]);
            let table = sql::name_at(t, i, d).map(|(n, _)| n);
            Ddl {
                action: if verb == "RENAME" {
                    "RENAME TABLE".into()
                } else {
                    verb
                },
                object: table.clone(),
                table,
                fills: false,
            }
        }
        _ => Ddl {
            action: verb,
            object: None,
            table: None,
            fills: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(d: Dialect, s: &str) -> (WriteOp, String) {
        match classify(d, s).effect {
            Effect::Write { op, table } => (op, table),
            other => panic!("{s}: {other:?}"),
        }
    }

    fn ddl_of(d: Dialect, s: &str) -> Ddl {
        match classify(d, s).effect {
            Effect::Ddl(ddl) => ddl,
            other => panic!("{s}: {other:?}"),
        }
    }

    use Dialect::{MySql, Postgres, Sqlite};
    use WriteOp::{Delete, Insert, Update, Upsert};

    #[test]
    fn dml_statements_name_their_table_and_count() {
        let cases: &[(Dialect, &str, WriteOp, &str)] = &[
            (
                Postgres,
                "INSERT INTO users (id) VALUES ($1)",
                Insert,
                "users",
            ),
            (
                Postgres,
                "insert into Public.Users select * from x",
                Insert,
                "public.users",
            ),
            (
                Postgres,
                r#"INSERT INTO "Auth"."Users" VALUES (1)"#,
                Insert,
                "Auth.Users",
            ),
            (
                Postgres,
                "INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING",
                Insert,
                "t",
            ),
            (
                Postgres,
                "INSERT INTO t AS x VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 2",
                Upsert,
                "t",
            ),
            (
                Postgres,
                "UPDATE ONLY accounts SET a = 1 WHERE id IN (SELECT id FROM b)",
                Update,
                "accounts",
            ),
            (Postgres, "DELETE FROM ONLY s.t WHERE x", Delete, "s.t"),
            (
                Postgres,
                "MERGE INTO target t USING src s ON t.id = s.id WHEN MATCHED THEN DELETE",
                Upsert,
                "target",
            ),
            (
                Postgres,
                "-- note\n/* c */ UPDATE t SET a = 'x;y' WHERE b = $1",
                Update,
                "t",
            ),
            (
                MySql,
                "INSERT IGNORE INTO `order items` (a) VALUES (?)",
                Insert,
                "order items",
            ),
            (
                MySql,
                "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)",
                Upsert,
                "t",
            ),
            (MySql, "REPLACE INTO db.t VALUES (1)", Upsert, "db.t"),
            (MySql, "REPLACE t SET a = 1", Upsert, "t"),
            (MySql, "INSERT t SET a = 1", Insert, "t"),
            (
                MySql,
                "UPDATE LOW_PRIORITY a JOIN b ON a.id = b.id SET a.x = b.x",
                Update,
                "a",
            ),
            (MySql, "DELETE QUICK FROM Logs WHERE ts < ?", Delete, "Logs"),
            (
                MySql,
                "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id",
                Delete,
                "t1",
            ),
            (
                Sqlite,
                "INSERT OR REPLACE INTO kv VALUES (?1, ?2)",
                Upsert,
                "kv",
            ),
            (
                Sqlite,
                "INSERT OR IGNORE INTO [my table] VALUES (1)",
                Insert,
                "my table",
            ),
            (Sqlite, "UPDATE OR ROLLBACK t SET a = 1", Update, "t"),
            (
                Sqlite,
                "INSERT INTO t VALUES (1) ON CONFLICT(id) DO UPDATE SET v = excluded.v",
                Upsert,
                "t",
            ),
            (Sqlite, "REPLACE INTO t VALUES (1)", Upsert, "t"),
        ];
        for (d, s, op, table) in cases {
            assert_eq!(write(*d, s), (*op, (*table).to_owned()), "{s}");
        }
    }

    #[test]
    fn ctes_classify_the_main_statement_and_keep_side_writes() {
        let c = classify(
            Postgres,
            "WITH src AS (SELECT * FROM users WHERE active) INSERT INTO auth_users SELECT * FROM src",
        );
        assert_eq!(
            c.effect,
            Effect::Write {
                op: Insert,
                table: "auth_users".into()
            }
        );
        assert!(c.side_writes.is_empty());
        let c = classify(
            Postgres,
            "WITH RECURSIVE moved(id) AS (DELETE FROM a WHERE x RETURNING id), b AS NOT MATERIALIZED (SELECT 1) \
             INSERT INTO archive SELECT id FROM moved RETURNING id",
        );
        assert_eq!(
            c.effect,
            Effect::Write {
                op: Insert,
                table: "archive".into()
            }
        );
        assert_eq!(c.side_writes, vec![(Delete, "a".to_owned())]);
        assert!(c.returning);
        let c = classify(
            Postgres,
            "WITH d AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM d",
        );
        assert_eq!(c.effect, Effect::Read);
        assert_eq!(c.side_writes, vec![(Update, "t".to_owned())]);
        assert!(!classify(Postgres, "SELECT 'RETURNING' FROM t").returning);
    }

    #[test]
    fn reads_and_others() {
        for s in [
            "SELECT * FROM t",
            "(SELECT 1) UNION (SELECT 2)",
            "VALUES (1)",
            "SHOW TABLES",
            "EXPLAIN SELECT 1",
        ] {
            assert_eq!(classify(MySql, s).effect, Effect::Read, "{s}");
        }
        for s in [
            "SET search_path = x",
            "SAVEPOINT a",
            "CALL p()",
            "",
            "  ;  ",
        ] {
            assert_eq!(classify(Postgres, s).effect, Effect::Other, "{s}");
        }
        // MySQL's SELECT … INTO assigns variables; PostgreSQL's creates a table.
        assert_eq!(
            classify(MySql, "SELECT a INTO @x FROM t").effect,
            Effect::Read
        );
        let d = ddl_of(Postgres, "SELECT * INTO TEMP copy FROM t");
        assert_eq!(
            (d.action.as_str(), d.table.as_deref(), d.fills),
            ("CREATE TABLE", Some("copy"), true)
        );
    }

    #[test]
    fn ddl_kinds_objects_and_tables() {
        type Case<'a> = (
            Dialect,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let cases: &[Case] = &[
            (
                Postgres,
                "CREATE TABLE IF NOT EXISTS auth_users (id int)",
                "CREATE TABLE",
                Some("auth_users"),
                Some("auth_users"),
                false,
            ),
            (
                Postgres,
                "CREATE UNLOGGED TABLE s.t AS SELECT * FROM u",
                "CREATE TABLE",
                Some("s.t"),
                Some("s.t"),
                true,
            ),
            (
                MySql,
                "CREATE TABLE t2 SELECT * FROM t",
                "CREATE TABLE",
                Some("t2"),
                Some("t2"),
                true,
            ),
            (
                MySql,
                "CREATE TABLE t2 (LIKE t)",
                "CREATE TABLE",
                Some("t2"),
                Some("t2"),
                false,
            ),
            (
                Postgres,
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON ONLY public.Users (email)",
                "CREATE INDEX",
                Some("ix"),
                Some("public.users"),
                false,
            ),
            (
                Postgres,
                "CREATE INDEX ON t (a)",
                "CREATE INDEX",
                None,
                Some("t"),
                false,
            ),
            (
                MySql,
                "CREATE FULLTEXT INDEX ft ON `docs` (body)",
                "CREATE INDEX",
                Some("ft"),
                Some("docs"),
                false,
            ),
            (
                Postgres,
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE VIEW",
                Some("v"),
                None,
                false,
            ),
            (
                Postgres,
                "CREATE MATERIALIZED VIEW mv AS SELECT 1",
                "CREATE MATERIALIZED VIEW",
                Some("mv"),
                None,
                false,
            ),
            (
                MySql,
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1",
                "CREATE VIEW",
                Some("v"),
                None,
                false,
            ),
            (
                MySql,
                "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
                "CREATE TRIGGER",
                Some("tr"),
                Some("t"),
                false,
            ),
            (
                Postgres,
                "ALTER TABLE IF EXISTS ONLY \"Big\" ADD COLUMN c int",
                "ALTER TABLE",
                Some("Big"),
                Some("Big"),
                false,
            ),
            (
                MySql,
                "ALTER ONLINE TABLE t ADD INDEX (a)",
                "ALTER TABLE",
                Some("t"),
                Some("t"),
                false,
            ),
            (
                Postgres,
                "ALTER SEQUENCE s RESTART",
                "ALTER SEQUENCE",
                Some("s"),
                None,
                false,
            ),
            (
                Postgres,
                "DROP TABLE IF EXISTS a, b CASCADE",
                "DROP TABLE",
                Some("a"),
                Some("a"),
                false,
            ),
            (
                Postgres,
                "DROP INDEX CONCURRENTLY ix",
                "DROP INDEX",
                Some("ix"),
                None,
                false,
            ),
            (
                MySql,
                "DROP INDEX ix ON t",
                "DROP INDEX",
                Some("ix"),
                Some("t"),
                false,
            ),
            (
                Postgres,
                "TRUNCATE TABLE ONLY t RESTART IDENTITY",
                "TRUNCATE",
                Some("t"),
                Some("t"),
                false,
            ),
            (
                MySql,
                "RENAME TABLE a TO b",
                "RENAME TABLE",
                Some("a"),
                Some("a"),
                false,
            ),
            (
                Postgres,
                "COMMENT ON TABLE t IS 'x'",
                "COMMENT",
                None,
                None,
                false,
            ),
        ];
        for (d, s, action, object, table, fills) in cases {
            let got = ddl_of(*d, s);
            assert_eq!(
                (
                    got.action.as_str(),
                    got.object.as_deref(),
                    got.table.as_deref(),
                    got.fills
                ),
                (*action, *object, *table, *fills),
                "{s}"
            );
        }
    }
}
