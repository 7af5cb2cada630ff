//! Warnings for schema changes that lock or rewrite a populated table — the
//! anti-patterns of seed 003 — each naming the table, its row count and the
//! safer pattern.
//!
//! [`lint`] is pure: it reads one statement and asks the caller for row
//! counts; `crate::lint::lint_statement` looks the counts up on a connection first.
//! During a dry-run the host lints every statement a plugin executes on a
//! writable connection and adds the warnings to the dry-run plan.
//!
//! # Threshold
//!
//! A warning fires when the table holds at least [`POPULATED`] row (one). The
//! dry-run runs against the real target, so the count is the real one; but a
//! count taken once is a poor predictor of a lock's cost (staging is small,
//! production is not; the table grows until the run), and every pattern
//! warned about has a safer form that costs nothing on a small table. The
//! count is in the warning for the reviewer to weigh. An empty or missing
//! table gets no warning: nobody waits on it, and one the run creates itself
//! is filtered out by the plan.
//!
//! # Rules
//!
//! PostgreSQL (11 and later; checked against PostgreSQL 15):
//!
//! | rule | fires on | why |
//! |---|---|---|
//! | `pg-create-index-blocking` | `CREATE INDEX` without `CONCURRENTLY` | SHARE lock for the whole build: writes wait |
//! | `pg-add-column-rewrite` | `ADD COLUMN` with a volatile default (`random()`, `clock_timestamp()`, `gen_random_uuid()`, `nextval()`, …), a serial type, `GENERATED … AS IDENTITY` or a `STORED` generated column | table rewrite under ACCESS EXCLUSIVE; constant and stable defaults (`now()`) are stored once, instantly |
//! | `pg-alter-column-type` | `ALTER COLUMN … TYPE` | rewrite of table and indexes under ACCESS EXCLUSIVE unless binary-coercible |
//! | `pg-set-not-null` | `ALTER COLUMN … SET NOT NULL` | full scan under ACCESS EXCLUSIVE |
//! | `pg-add-constraint-validates` | `ADD CHECK` / `ADD FOREIGN KEY` without `NOT VALID` | full scan under a lock that blocks writes |
//! | `pg-add-key-builds-index` | `ADD PRIMARY KEY` / `ADD UNIQUE` without `USING INDEX` | index build under ACCESS EXCLUSIVE |
//!
//! MariaDB (10.11 rules, each checked against a 10.11 server with
//! `ALGORITHM=INSTANT`/`NOCOPY`/`INPLACE`; MySQL 8 is close but not identical).
//! An `ALTER` that states `ALGORITHM=INSTANT` or `NOCOPY`, or `INPLACE` with
//! `LOCK=NONE`, gets no warning: the server refuses it rather than block.
//!
//! | rule | fires on | why |
//! |---|---|---|
//! | `mysql-alter-copies` | `ADD COLUMN` with a per-row default (`UUID()`, `UUID_SHORT()`, `SYSDATE()`, a sequence), `AUTO_INCREMENT` or `STORED`; `ADD CHECK`; `ADD FOREIGN KEY`; `CONVERT TO CHARACTER SET`; `ORDER BY`; `ALGORITHM=COPY` | ALGORITHM=COPY: every row copied, writes blocked |
//! | `mysql-modify-column` | `MODIFY` / `CHANGE` | COPY when the type or charset changes, rebuild for NULL → NOT NULL; instant only for renames, reordering, widening a VARCHAR, dropping NOT NULL |
//! | `mysql-fulltext-index` | `FULLTEXT` / `SPATIAL` index | LOCK=SHARED: writes wait for the build |
//! | `mysql-alter-rebuilds` | `ADD`/`DROP PRIMARY KEY`, `FORCE`, `ENGINE=`, `ROW_FORMAT=` | in-place rebuild: writes continue, but time, disk and replica lag grow with the table |
//!
//! Instant or online on MariaDB 10.11, hence not warned about: `ADD COLUMN`
//! anywhere with a constant, `NOW()`/`CURRENT_TIMESTAMP` or `RAND()` default,
//! `DROP COLUMN`, `RENAME COLUMN`, `ALTER COLUMN … SET DEFAULT`, `ADD INDEX`
//! and `ADD UNIQUE` (NOCOPY, LOCK=NONE), `DROP INDEX`.
//!
//! SQLite has one writer at a time whatever the statement: no lock rules.
//!
//! Seed 003's two named anti-patterns, on every dialect (SQLite included): they
//! are about deploying while an application runs, so they fire even where the
//! server adds or drops the column instantly.
//!
//! | rule | fires on | why |
//! |---|---|---|
//! | `add-column-not-null-default` | `ADD COLUMN … NOT NULL … DEFAULT …` in one statement | every existing row takes the default as if written with it (the real backfill never runs); a table rewrite on PostgreSQL before 11 and older MySQL/MariaDB. Not repeated when a lock rule already fired for the statement |
//! | `drop-column-still-read` | `DROP [COLUMN] c` | instances of the running release that still read `c` fail (seed 003's Pattern 2: ignore it in the application, deploy, then drop); the host names the views, indexes and triggers that use it |

use serde::{Deserialize, Serialize};

use super::Dialect;
use super::lexer::{self as sql, Tok, Token};
use super::thousands;

/// The rules about deploying while an application runs (seed 003's two named
/// anti-patterns) rather than about a lock: the CLI calls their warnings deployment hazards.
pub const DEPLOYMENT_RULES: &[&str] = &["add-column-not-null-default", "drop-column-still-read"];

/// A table with at least this many rows is populated (see the module docs).
pub const POPULATED: u64 = 1;

/// An operation that locks or rewrites a populated table, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWarning {
    /// The connection the statement ran on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Which rule fired (`pg-create-index-blocking`, …; see the module docs).
    pub rule: String,
    /// The table locked or rewritten.
    pub table: String,
    /// Its rows when the statement ran (an estimate for big tables).
    pub rows: u64,
    /// The statement.
    pub statement: String,
    /// What it does to the table, naming the table and its row count.
    pub problem: String,
    /// The safer pattern.
    pub safer: String,
}

/// One rule that fired, before the table's row count is known.
struct Finding {
    rule: &'static str,
    /// What the statement does (`CREATE INDEX without CONCURRENTLY`).
    what: String,
    /// What that means for the table.
    consequence: String,
    safer: String,
}

/// The warnings for every statement of `text` (see the module docs).
/// `row_count` gives a table's rows (`None`: unknown or no such table, which
/// never warns); it is asked only about tables a rule fired for.
pub fn lint(
    dialect: Dialect,
    text: &str,
    row_count: &dyn Fn(&str) -> Option<u64>,
) -> Vec<LockWarning> {
    let tokens = sql::tokens(text, dialect);
    let mut warnings = Vec::new();
    for statement in sql::split_statements(&tokens) {
        let Some((table, findings)) = inspect(dialect, statement) else {
            continue;
        };
        let Some(rows) = row_count(&table).filter(|&n| n >= POPULATED) else {
            continue;
        };
        let source = &text[statement[0].start..statement[statement.len() - 1].end];
        for f in findings {
            warnings.push(LockWarning {
                connection: None,
                rule: f.rule.to_owned(),
                table: table.clone(),
                rows,
                statement: source.to_owned(),
                problem: format!(
                    "{} on {table} ({} rows): {}",
                    f.what,
                    thousands(rows),
                    f.consequence
                ),
                safer: f.safer,
            });
        }
    }
    warnings
}

/// The tables whose row counts [`lint`] needs for `text`: those of
/// statements some rule fires for.
pub fn tables_to_count(dialect: Dialect, text: &str) -> Vec<String> {
    let tokens = sql::tokens(text, dialect);
    let mut tables: Vec<String> = sql::split_statements(&tokens)
        .into_iter()
        .filter_map(|s| inspect(dialect, s).map(|(table, _)| table))
        .collect();
    tables.dedup();
    tables
}

/// The table a statement locks and the rules it trips, if any: the dialect's lock rules,
/// then seed 003's two deployment rules (which a lock rule about the same column makes
/// redundant: its safer pattern is the same split).
fn inspect(d: Dialect, t: &[Token]) -> Option<(String, Vec<Finding>)> {
    let locks = match d {
        Dialect::Postgres => postgres(t),
        Dialect::MySql => mysql(t),
        Dialect::Sqlite => None,
    };
    let (table, mut findings) = match (locks, alter_table(d, t)) {
        (Some(found), _) => found,
        (None, Some((table, _))) => (table, Vec::new()),
        (None, None) => return None,
    };
    let rewrites = findings
        .iter()
        .any(|f| matches!(f.rule, "pg-add-column-rewrite" | "mysql-alter-copies"));
    for finding in seed_003(d, t) {
        if !(rewrites && finding.rule == "add-column-not-null-default") {
            findings.push(finding);
        }
    }
    (!findings.is_empty()).then_some((table, findings))
}

/// The columns `text` drops (`ALTER TABLE t DROP [COLUMN] c`), as `(table, column)`: the
/// host looks up what still uses each (views, indexes, triggers) for the warning.
pub fn dropped_columns(dialect: Dialect, text: &str) -> Vec<(String, String)> {
    let tokens = sql::tokens(text, dialect);
    let mut dropped = Vec::new();
    for statement in sql::split_statements(&tokens) {
        if let Some((table, actions)) = alter_table(dialect, statement) {
            for a in actions {
                if let Some(column) = dropped_column(dialect, a) {
                    dropped.push((table.clone(), column));
                }
            }
        }
    }
    dropped
}

/// The column an `ALTER TABLE` action drops: `DROP [COLUMN] [IF EXISTS] c [CASCADE]`, not
/// `DROP CONSTRAINT`, `DROP INDEX`, `DROP PRIMARY KEY`… (PostgreSQL, MariaDB and SQLite all
/// allow leaving out `COLUMN`).
fn dropped_column(d: Dialect, a: &[Token]) -> Option<String> {
    if !a[0].is("DROP") {
        return None;
    }
    const NOT_A_COLUMN: &[&str] = &[
        "CONSTRAINT",
        "INDEX",
        "KEY",
        "PRIMARY",
        "FOREIGN",
        "CHECK",
        "PARTITION",
        "SYSTEM",
        "PERIOD",
        "DEFAULT",
        "EXPRESSION",
        "IDENTITY",
    ];
    if a.get(1)
        .is_some_and(|x| NOT_A_COLUMN.iter().any(|w| x.is(w)))
    {
        return None;
    }
    let j = skip(a, 1, &["COLUMN"]);
    let j = skip(a, j, &["IF", "EXISTS"]);
    sql::name_at(a, j, d).map(|(name, _)| name)
}

/// The column an `ALTER TABLE` action adds with both NOT NULL and a DEFAULT at its top
/// level (not inside a CHECK), if it does.
fn added_not_null_with_default(d: Dialect, a: &[Token]) -> Option<String> {
    if !a[0].is("ADD") {
        return None;
    }
    let j = skip(a, 1, &["COLUMN"]);
    let j = skip(a, j, &["IF", "NOT", "EXISTS"]);
    const NOT_A_COLUMN: &[&str] = &[
        "CONSTRAINT",
        "CHECK",
        "FOREIGN",
        "PRIMARY",
        "UNIQUE",
        "EXCLUDE",
        "INDEX",
        "KEY",
        "FULLTEXT",
        "SPATIAL",
        "PERIOD",
        "SYSTEM",
        "PARTITION",
    ];
    if a.get(j)
        .is_none_or(|x| x.is_punct('(') || NOT_A_COLUMN.iter().any(|w| x.is(w)))
    {
        return None;
    }
    let top: Vec<usize> = sql::top_level(a).collect();
    let not_null = top
        .windows(2)
        .any(|w| a[w[0]].is("NOT") && a[w[1]].is("NULL"));
    let default = top.iter().any(|&k| a[k].is("DEFAULT"));
    (not_null && default)
        .then(|| sql::name_at(a, j, d).map(|(name, _)| name))
        .flatten()
}

/// Seed 003's two named anti-patterns, on every dialect: they are about the deployment
/// (rows that take a value nobody computed, an application that still reads a column),
/// not only about locks, so they fire whether or not the server adds or drops the column
/// instantly.
fn seed_003(d: Dialect, t: &[Token]) -> Vec<Finding> {
    let Some((_, actions)) = alter_table(d, t) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    for a in actions {
        if let Some(column) = added_not_null_with_default(d, a) {
            let locking = match d {
                Dialect::Postgres => {
                    "PostgreSQL 11+ stores a constant default in the catalog instead of rewriting the table, but before 11 (and with a volatile default) the table is rewritten under an ACCESS EXCLUSIVE lock — seed 003's \"this locks the table\""
                }
                Dialect::MySql => {
                    "MariaDB 10.3+ adds it instantly, but older servers and any ALTER that also needs a copy rebuild the table with writes blocked — seed 003's \"this locks the table\""
                }
                Dialect::Sqlite => {
                    "SQLite only edits the schema, but the same migration locks the table on PostgreSQL before 11 and on older MySQL/MariaDB — seed 003's \"this locks the table\""
                }
            };
            let not_null = match d {
                Dialect::Postgres => {
                    "ADD CONSTRAINT … CHECK (c IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL (PostgreSQL 12+ uses the valid CHECK instead of a scan)"
                }
                Dialect::MySql => "MODIFY the column NOT NULL off-peak (an in-place rebuild)",
                Dialect::Sqlite => {
                    "NOT NULL through a table rebuild (SQLite cannot add it to an existing column), or a CHECK in the application"
                }
            };
            findings.push(Finding {
                rule: "add-column-not-null-default",
                what: format!("ADD COLUMN {column} … NOT NULL DEFAULT … in one step"),
                consequence: format!(
                    "every existing row takes the default as if it had been written with it, so the backfill that should give each row its real value never runs and nothing tells defaulted rows from real ones; {locking}"
                ),
                safer: format!(
                    "seed 003's split, one migration each: ADD COLUMN {column} without NOT NULL and without a default; then SET DEFAULT (applies to new rows only); then backfill the existing rows in batches with their real values; then add NOT NULL: {not_null}"
                ),
            });
        }
        if let Some(column) = dropped_column(d, a) {
            findings.push(Finding {
                rule: "drop-column-still-read",
                what: format!("DROP COLUMN {column}"),
                consequence: format!(
                    "an application instance still running a release that reads or writes {column} fails as soon as it is gone (Rails caches a table's columns at boot, so every query of the model breaks), and the column's values are lost with it"
                ),
                safer: format!(
                    "seed 003's Pattern 2: first deploy the application with {column} ignored (Rails `self.ignored_columns = [\"{column}\"]`, no query naming it), then drop it in the next release, after a backup of the table"
                ),
            });
        }
    }
    findings
}

/// Skips the words in `skip` from `i`.
fn skip(t: &[Token], mut i: usize, words: &[&str]) -> usize {
    while t.get(i).is_some_and(|x| words.iter().any(|w| x.is(w))) {
        i += 1;
    }
    i
}

fn is(t: &[Token], i: usize, word: &str) -> bool {
    t.get(i).is_some_and(|x| x.is(word))
}

/// Whether the top level of `t` holds the words `seq` in a row.
fn has(t: &[Token], seq: &[&str]) -> bool {
    let top: Vec<usize> = sql::top_level(t).collect();
    top.windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(&j, word)| t[j].is(word)))
}

/// Whether any token of `t` is a call of one of `functions` (`name(`, any depth).
fn calls(t: &[Token], functions: &[&str]) -> Option<String> {
    t.windows(2).find_map(|w| match &w[0].tok {
        Tok::Word(name)
            if w[1].is_punct('(') && functions.iter().any(|f| name.eq_ignore_ascii_case(f)) =>
        {
            Some(name.to_lowercase())
        }
        _ => None,
    })
}

/// `CREATE [UNIQUE …] INDEX`: whether it is one, its table, and the tokens
/// between `CREATE` and `INDEX`.
fn create_index(d: Dialect, t: &[Token]) -> Option<(String, &[Token], usize)> {
    if !is(t, 0, "CREATE") {
        return None;
    }
    let at = skip(
        t,
        1,
        &[
            "UNIQUE", "FULLTEXT", "SPATIAL", "OR", "REPLACE", "ONLINE", "OFFLINE",
        ],
    );
    if !is(t, at, "INDEX") {
        return None;
    }
    let on = (at..t.len()).find(|&j| t[j].is("ON"))?;
    let (table, _) = sql::name_at(t, skip(t, on + 1, &["ONLY"]), d)?;
    Some((table, &t[1..at], at))
}

/// `ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] [ONLY] name [*] action, …`:
/// the table and its actions (split at top-level commas).
fn alter_table(d: Dialect, t: &[Token]) -> Option<(String, Vec<&[Token]>)> {
    if !is(t, 0, "ALTER") {
        return None;
    }
    let i = skip(t, 1, &["ONLINE", "IGNORE"]);
    if !is(t, i, "TABLE") {
        return None;
    }
    let i = skip(t, i + 1, &["IF", "EXISTS", "ONLY"]);
    let (table, mut i) = sql::name_at(t, i, d)?;
    if t.get(i).is_some_and(|x| x.is_punct('*')) {
        i += 1;
    }
    let rest = &t[i.min(t.len())..];
    let mut actions = Vec::new();
    let mut start = 0;
    for j in sql::top_level(rest) {
        if rest[j].is_punct(',') {
            actions.push(&rest[start..j]);
            start = j + 1;
        }
    }
    actions.push(&rest[start..]);
    actions.retain(|a| !a.is_empty());
    Some((table, actions))
}

// -- PostgreSQL -------------------------------------------------------------

/// Functions PostgreSQL marks VOLATILE that appear in column defaults.
/// (`now()`, `current_timestamp`, `statement_timestamp()` are STABLE: a
/// default made of them is evaluated once, when the column is added.)
const PG_VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "nextval",
];

const PG_SERIAL: &[&str] = &[
    "SERIAL",
    "BIGSERIAL",
    "SMALLSERIAL",
    "SERIAL2",
    "SERIAL4",
    "SERIAL8",
];

/// Where a statement that cannot run in a transaction block goes: a unit of its own that
/// contract 0.2.0 declares non-transactional, written to be rerun safely.
const OUTSIDE_TRANSACTION: &str = "it cannot run inside a transaction block, so put it in a unit of its own declared `transactional: false` (contract 0.2.0), which migrun runs in autocommit, and write it with IF NOT EXISTS so that a rerun after a failure is safe";

fn postgres(t: &[Token]) -> Option<(String, Vec<Finding>)> {
    if let Some((table, modifiers, at)) = create_index(Dialect::Postgres, t) {
        let concurrently =
            is(t, at + 1, "CONCURRENTLY") || modifiers.iter().any(|m| m.is("CONCURRENTLY"));
        let mut findings = Vec::new();
        if !concurrently {
            findings.push(Finding {
                rule: "pg-create-index-blocking",
                what: "CREATE INDEX without CONCURRENTLY".into(),
                consequence: "it holds a SHARE lock for the whole build, so every INSERT, UPDATE and DELETE on the table waits until the index is built".into(),
                safer: format!(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS: writes continue during the build; {OUTSIDE_TRANSACTION}; a failed build leaves an INVALID index, which IF NOT EXISTS would keep: drop it before the rerun"
                ),
            });
        }
        return Some((table, findings));
    }
    let (table, actions) = alter_table(Dialect::Postgres, t)?;
    let mut findings = Vec::new();
    for a in actions {
        if a[0].is("ADD") {
            let mut j = 1;
            let column_keyword = is(a, j, "COLUMN");
            if column_keyword {
                j += 1;
            }
            j = skip(a, j, &["IF", "NOT", "EXISTS"]);
            if is(a, j, "CONSTRAINT") {
                j += 2;
            }
            let kind = a.get(j).map(Token::upper).unwrap_or_default();
            if !column_keyword && matches!(kind.as_str(), "CHECK" | "FOREIGN") {
                if !has(a, &["NOT", "VALID"]) {
                    let (what, consequence) = if kind == "CHECK" {
                        (
                            "ADD CHECK constraint without NOT VALID",
                            "validating it scans every row under an ACCESS EXCLUSIVE lock: reads and writes wait for the scan",
                        )
                    } else {
                        (
                            "ADD FOREIGN KEY without NOT VALID",
                            "validating it scans every row while SHARE ROW EXCLUSIVE locks on this table and the referenced one make writes to both wait",
                        )
                    };
                    findings.push(Finding {
                        rule: "pg-add-constraint-validates",
                        what: what.into(),
                        consequence: consequence.into(),
                        safer: "add the constraint NOT VALID (instant; new rows are checked at once), then ALTER TABLE … VALIDATE CONSTRAINT in a later statement, which scans under a SHARE UPDATE EXCLUSIVE lock that lets writes continue".into(),
                    });
                }
                continue;
            }
            if !column_keyword && matches!(kind.as_str(), "PRIMARY" | "UNIQUE" | "EXCLUDE") {
                if !has(a, &["USING", "INDEX"]) {
                    findings.push(Finding {
                        rule: "pg-add-key-builds-index",
                        what: format!("ADD {kind} constraint"),
                        consequence: "its index is built under an ACCESS EXCLUSIVE lock: reads and writes wait for the build".into(),
                        safer: format!(
                            "CREATE UNIQUE INDEX CONCURRENTLY first ({OUTSIDE_TRANSACTION}), then ADD CONSTRAINT … {} USING INDEX, which is instant",
                            if kind == "PRIMARY" { "PRIMARY KEY" } else { "UNIQUE" }
                        ),
                    });
                }
                continue;
            }
            // A column: its name, its type, then its options.
            let ty = a.get(j + 1).map(Token::upper).unwrap_or_default();
            let why = if PG_SERIAL.contains(&ty.as_str()) {
                Some(format!("of type {}", ty.to_lowercase()))
            } else if has(a, &["AS", "IDENTITY"]) {
                Some("GENERATED … AS IDENTITY".into())
            } else if has(a, &["GENERATED", "ALWAYS", "AS"]) && has(a, &["STORED"]) {
                Some("GENERATED ALWAYS AS (…) STORED".into())
            } else {
                sql::top_level(a)
                    .find(|&k| a[k].is("DEFAULT"))
                    .and_then(|k| calls(&a[k..], PG_VOLATILE))
                    .map(|f| format!("with the volatile default {f}()"))
            };
            if let Some(why) = why {
                findings.push(Finding {
                    rule: "pg-add-column-rewrite",
                    what: format!("ADD COLUMN {why}"),
                    consequence: "PostgreSQL rewrites the whole table to store a value in every row, holding an ACCESS EXCLUSIVE lock: reads and writes wait for the rewrite (a constant or stable default such as now() is stored once, instantly)".into(),
                    safer: "add the column without a default (instant), then ALTER COLUMN … SET DEFAULT (applies to new rows only), then backfill existing rows in batches, each in its own transaction".into(),
                });
            }
        } else if a[0].is("ALTER") {
            let j = skip(a, 1, &["COLUMN"]);
            let column = sql::name_at(a, j, Dialect::Postgres)
                .map(|(n, _)| n)
                .unwrap_or_default();
            let k = j + 1;
            if is(a, k, "TYPE") || (is(a, k, "SET") && is(a, k + 1, "DATA") && is(a, k + 2, "TYPE"))
            {
                findings.push(Finding {
                    rule: "pg-alter-column-type",
                    what: format!("ALTER COLUMN {column} TYPE"),
                    consequence: "changing a column's type rewrites the table and rebuilds its indexes under an ACCESS EXCLUSIVE lock (reads and writes wait), unless the change is binary-coercible (varchar(n) to a longer varchar or to text)".into(),
                    safer: "expand and contract: add a column of the new type, backfill it in batches, switch the application to it, then drop the old column; a binary-coercible change needs only SET lock_timeout so it cannot queue behind long transactions".into(),
                });
            } else if is(a, k, "SET") && is(a, k + 1, "NOT") && is(a, k + 2, "NULL") {
                findings.push(Finding {
                    rule: "pg-set-not-null",
                    what: format!("ALTER COLUMN {column} SET NOT NULL"),
                    consequence: "PostgreSQL scans every row for NULLs while holding an ACCESS EXCLUSIVE lock: reads and writes wait for the scan".into(),
                    safer: format!(
                        "ADD CONSTRAINT {column}_not_null CHECK ({column} IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (writes continue), then SET NOT NULL, which PostgreSQL 12+ proves from the valid constraint without a scan, then drop the CHECK"
                    ),
                });
            }
        }
    }
    Some((table, findings))
}

// -- MariaDB / MySQL --------------------------------------------------------

/// Defaults MariaDB 10.11 evaluates per row, which make ADD COLUMN copy the table.
const MYSQL_PER_ROW_DEFAULTS: &[&str] = &["UUID", "UUID_SHORT", "SYSDATE", "NEXTVAL"];

const MYSQL_INSTANT_HINT: &str = "state ALGORITHM=INSTANT (or NOCOPY) on the ALTER so that the server refuses instead of copying";

fn mysql(t: &[Token]) -> Option<(String, Vec<Finding>)> {
    if let Some((table, modifiers, _)) = create_index(Dialect::MySql, t) {
        let mut findings = Vec::new();
        if modifiers
            .iter()
            .any(|m| m.is("FULLTEXT") || m.is("SPATIAL"))
        {
            findings.push(fulltext_finding());
        }
        return Some((table, findings));
    }
    let (table, actions) = alter_table(Dialect::MySql, t)?;
    let option = |name: &str| -> Option<String> {
        actions.iter().find_map(|a| {
            (a[0].is(name) && a.get(1).is_some_and(|x| x.is_punct('=')))
                .then(|| a.get(2).map(Token::upper).unwrap_or_default())
        })
    };
    let (algorithm, lock) = (option("ALGORITHM"), option("LOCK"));
    match algorithm.as_deref() {
        Some("INSTANT" | "NOCOPY") => return Some((table, Vec::new())),
        Some("INPLACE") if lock.as_deref() == Some("NONE") => return Some((table, Vec::new())),
        _ => {}
    }
    let mut copies: Vec<String> = Vec::new();
    let mut rebuilds: Vec<String> = Vec::new();
    let mut fulltext = false;
    let mut modified: Vec<String> = Vec::new();
    if algorithm.as_deref() == Some("COPY") {
        copies.push("ALGORITHM=COPY".into());
    }
    for a in &actions {
        let first = a[0].upper();
        match first.as_str() {
            "ADD" => {
                let mut j = skip(a, 1, &["COLUMN", "IF", "NOT", "EXISTS"]);
                if is(a, j, "CONSTRAINT") {
                    j += 1;
                    if !a.get(j).is_some_and(|x| {
                        ["CHECK", "FOREIGN", "PRIMARY", "UNIQUE"]
                            .iter()
                            .any(|w| x.is(w))
                    }) {
                        j += 1;
                    }
                }
                match a.get(j).map(Token::upper).unwrap_or_default().as_str() {
                    "CHECK" => copies.push("ADD CHECK".into()),
                    "FOREIGN" => {
                        copies.push("ADD FOREIGN KEY (unless foreign_key_checks=0)".into())
                    }
                    "PRIMARY" => rebuilds.push("ADD PRIMARY KEY".into()),
                    "FULLTEXT" | "SPATIAL" => fulltext = true,
                    "INDEX" | "KEY" | "UNIQUE" => {}
                    _ => {
                        // One column, or `ADD (a …, b …)`.
                        if let Some(f) = calls(a, MYSQL_PER_ROW_DEFAULTS).or_else(|| {
                            has(a, &["NEXT", "VALUE", "FOR"]).then(|| "next value for".into())
                        }) {
                            copies.push(format!(
                                "ADD COLUMN with the per-row default {}",
                                f.to_uppercase()
                            ));
                        } else if a.iter().any(|x| x.is("AUTO_INCREMENT")) {
                            copies.push("ADD COLUMN … AUTO_INCREMENT".into());
                        } else if a.iter().any(|x| x.is("STORED") || x.is("PERSISTENT")) {
                            copies.push("ADD COLUMN … STORED (generated)".into());
                        }
                    }
                }
            }
            "MODIFY" | "CHANGE" => {
                let j = skip(a, 1, &["COLUMN", "IF", "EXISTS"]);
                let column = sql::name_at(a, j, Dialect::MySql)
                    .map(|(n, _)| n)
                    .unwrap_or_default();
                modified.push(format!("{first} {column}"));
            }
            "CONVERT" => copies.push("CONVERT TO CHARACTER SET".into()),
            "ORDER" => copies.push("ORDER BY".into()),
            "FORCE" => rebuilds.push("FORCE".into()),
            "ENGINE" | "ROW_FORMAT" | "KEY_BLOCK_SIZE" => rebuilds.push(format!("{first}=")),
            "DROP" if is(a, 1, "PRIMARY") => rebuilds.push("DROP PRIMARY KEY".into()),
            _ => {}
        }
    }
    let mut findings = Vec::new();
    if !copies.is_empty() {
        findings.push(Finding {
            rule: "mysql-alter-copies",
            what: format!("ALTER TABLE with {}", copies.join(", ")),
            consequence: "MariaDB 10.11 runs it with ALGORITHM=COPY, copying every row into a new table while writes are blocked (LOCK=SHARED) until the copy is done".into(),
            safer: format!(
                "split it into instant steps: add the column without a per-row default (instant) and backfill it in batches; add CHECK and FOREIGN KEY constraints with an online schema change tool (pt-online-schema-change, gh-ost) or off-peak; {MYSQL_INSTANT_HINT}"
            ),
        });
    } else {
        if !modified.is_empty() {
            findings.push(Finding {
                rule: "mysql-modify-column",
                what: modified.join(", "),
                consequence: "MariaDB 10.11 copies the table (ALGORITHM=COPY, writes blocked) when the column's type or character set changes (INT→BIGINT, shrinking, VARCHAR→TEXT) and rebuilds it when NULL becomes NOT NULL; only renames, reordering, widening a VARCHAR and dropping NOT NULL are instant".into(),
                safer: format!(
                    "{MYSQL_INSTANT_HINT}; for a real type change add a column of the new type, backfill it in batches, switch the application, then drop the old column"
                ),
            });
        }
        if !rebuilds.is_empty() {
            findings.push(Finding {
                rule: "mysql-alter-rebuilds",
                what: format!("ALTER TABLE with {}", rebuilds.join(", ")),
                consequence: "MariaDB 10.11 rebuilds the table in place: writes continue, but every row and index is rewritten (time and disk in proportion to the table, replicas lag as long) and an exclusive metadata lock is needed at the start and the end".into(),
                safer: "run it off-peak stating ALGORITHM=INPLACE, LOCK=NONE (the server then refuses rather than block writes), with a short lock_wait_timeout, or with an online schema change tool".into(),
            });
        }
    }
    if fulltext {
        findings.push(fulltext_finding());
    }
    Some((table, findings))
}

fn fulltext_finding() -> Finding {
    Finding {
        rule: "mysql-fulltext-index",
        what: "a FULLTEXT/SPATIAL index".into(),
        consequence: "MariaDB builds it with LOCK=SHARED: every write to the table waits for the build".into(),
        safer: "build it with an online schema change tool (pt-online-schema-change, gh-ost) or in a maintenance window".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: u64 = 1_204;

    fn fired(d: Dialect, sql: &str) -> Vec<String> {
        lint(d, sql, &|_| Some(ROWS))
            .into_iter()
            .map(|w| w.rule)
            .collect()
    }

    fn pg(sql: &str) -> Vec<String> {
        fired(Dialect::Postgres, sql)
    }

    fn my(sql: &str) -> Vec<String> {
        fired(Dialect::MySql, sql)
    }

    #[test]
    fn postgres_anti_patterns_fire() {
        let cases = [
            (
                "CREATE INDEX users_email ON users (email)",
                "pg-create-index-blocking",
            ),
            (
                "create unique index on public.users using btree (lower(email))",
                "pg-create-index-blocking",
            ),
            (
                "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()",
                "pg-add-column-rewrite",
            ),
            (
                "ALTER TABLE users ADD COLUMN seen timestamptz NOT NULL DEFAULT clock_timestamp()",
                "pg-add-column-rewrite",
            ),
            (
                "ALTER TABLE users ADD r float8 DEFAULT random() * 10",
                "pg-add-column-rewrite",
            ),
            (
                "ALTER TABLE users ADD COLUMN n bigint DEFAULT nextval('s')",
                "pg-add-column-rewrite",
            ),
            (
                "ALTER TABLE users ADD COLUMN id2 bigserial",
                "pg-add-column-rewrite",
            ),
            (
                "ALTER TABLE users ADD COLUMN id2 int GENERATED ALWAYS AS IDENTITY",
                "pg-add-column-rewrite",
            ),
            (
                "ALTER TABLE users ADD COLUMN x int GENERATED ALWAYS AS (a + 1) STORED",
                "pg-add-column-rewrite",
            ),
            (
                "ALTER TABLE users ALTER COLUMN id TYPE bigint",
                "pg-alter-column-type",
            ),
            (
                "ALTER TABLE users ALTER id SET DATA TYPE bigint USING id::bigint",
                "pg-alter-column-type",
            ),
            (
                "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
                "pg-set-not-null",
            ),
            (
                "ALTER TABLE users ADD CONSTRAINT c CHECK (a > 0)",
                "pg-add-constraint-validates",
            ),
            (
                "ALTER TABLE users ADD FOREIGN KEY (org) REFERENCES orgs (id)",
                "pg-add-constraint-validates",
            ),
            (
                "ALTER TABLE users ADD PRIMARY KEY (id)",
                "pg-add-key-builds-index",
            ),
            (
                "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email)",
                "pg-add-key-builds-index",
            ),
        ];
        for (sql, rule) in cases {
            assert_eq!(pg(sql), [rule], "{sql}");
        }
    }

    #[test]
    fn postgres_safe_patterns_do_not_fire() {
        for sql in [
            "CREATE INDEX CONCURRENTLY users_email ON users (email)",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON users (email)",
            "ALTER TABLE users ADD COLUMN status text",
            "ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now()",
            "ALTER TABLE users ADD COLUMN created timestamptz DEFAULT CURRENT_TIMESTAMP",
            "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'pending'",
            "ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID",
            "ALTER TABLE users VALIDATE CONSTRAINT c",
            "ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org) REFERENCES orgs (id) NOT VALID",
            "ALTER TABLE users ADD CONSTRAINT pk PRIMARY KEY USING INDEX users_pk",
            "ALTER TABLE users ALTER COLUMN email DROP NOT NULL",
            "ALTER TABLE users RENAME COLUMN a TO b",
            "INSERT INTO users SELECT * FROM x",
            "CREATE TABLE t (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())",
        ] {
            assert!(pg(sql).is_empty(), "{sql}: {:?}", pg(sql));
        }
    }

    #[test]
    fn mariadb_anti_patterns_fire() {
        let cases = [
            (
                "ALTER TABLE users ADD COLUMN token CHAR(36) DEFAULT (UUID())",
                "mysql-alter-copies",
            ),
            (
                "ALTER TABLE users ADD COLUMN at DATETIME DEFAULT (SYSDATE())",
                "mysql-alter-copies",
            ),
            (
                "ALTER TABLE users ADD COLUMN n BIGINT AUTO_INCREMENT UNIQUE",
                "mysql-alter-copies",
            ),
            (
                "ALTER TABLE users ADD COLUMN x INT AS (a + 1) STORED",
                "mysql-alter-copies",
            ),
            (
                "ALTER TABLE users ADD CONSTRAINT c CHECK (a > 0)",
                "mysql-alter-copies",
            ),
            (
                "ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org) REFERENCES orgs (id)",
                "mysql-alter-copies",
            ),
            (
                "ALTER TABLE users CONVERT TO CHARACTER SET latin1",
                "mysql-alter-copies",
            ),
            (
                "ALTER TABLE users ADD COLUMN c INT, ALGORITHM=COPY",
                "mysql-alter-copies",
            ),
            ("ALTER TABLE users MODIFY id BIGINT", "mysql-modify-column"),
            (
                "ALTER TABLE `users` CHANGE COLUMN email email VARCHAR(300) NOT NULL",
                "mysql-modify-column",
            ),
            (
                "ALTER TABLE users ADD FULLTEXT INDEX ft (bio)",
                "mysql-fulltext-index",
            ),
            (
                "CREATE FULLTEXT INDEX ft ON users (bio)",
                "mysql-fulltext-index",
            ),
            (
                "ALTER TABLE users DROP PRIMARY KEY, ADD PRIMARY KEY (id, org)",
                "mysql-alter-rebuilds",
            ),
            ("ALTER TABLE users ENGINE=InnoDB", "mysql-alter-rebuilds"),
            ("ALTER TABLE users FORCE", "mysql-alter-rebuilds"),
        ];
        for (sql, rule) in cases {
            assert_eq!(my(sql), [rule], "{sql}");
        }
        // One COPY makes the whole ALTER a copy: one warning listing why.
        let warnings = lint(
            Dialect::MySql,
            "ALTER TABLE users MODIFY a BIGINT, ADD CHECK (a > 0), ADD COLUMN t CHAR(36) DEFAULT (uuid())",
            &|_| Some(5),
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .problem
                .contains("ADD CHECK, ADD COLUMN with the per-row default UUID"),
            "{}",
            warnings[0].problem
        );
    }

    #[test]
    fn mariadb_safe_patterns_do_not_fire() {
        for sql in [
            "ALTER TABLE users ADD COLUMN status VARCHAR(20)",
            "ALTER TABLE users ADD COLUMN created DATETIME DEFAULT CURRENT_TIMESTAMP",
            "ALTER TABLE users ADD COLUMN r DOUBLE DEFAULT (RAND())",
            "ALTER TABLE users ADD COLUMN v INT AS (a + 1) VIRTUAL",
            "ALTER TABLE users RENAME COLUMN a TO b",
            "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'x'",
            "ALTER TABLE users ADD INDEX ix (email)",
            "ALTER TABLE users ADD UNIQUE KEY ux (email)",
            "CREATE UNIQUE INDEX ux ON users (email)",
            "ALTER TABLE users DROP INDEX ix",
            "ALTER TABLE users MODIFY id BIGINT, ALGORITHM=INSTANT",
            "ALTER TABLE users ADD CHECK (a > 0), ALGORITHM=NOCOPY",
            "ALTER TABLE users MODIFY email VARCHAR(20) NOT NULL, ALGORITHM=INPLACE, LOCK=NONE",
        ] {
            assert!(my(sql).is_empty(), "{sql}: {:?}", my(sql));
        }
    }

    #[test]
    fn seed_003_anti_patterns_fire_on_every_dialect() {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            for (sql, rule) in [
                (
                    "ALTER TABLE documents ADD COLUMN status varchar(20) NOT NULL DEFAULT 'pending'",
                    "add-column-not-null-default",
                ),
                (
                    "ALTER TABLE documents ADD status text DEFAULT 'pending' NOT NULL",
                    "add-column-not-null-default",
                ),
                (
                    "ALTER TABLE documents DROP COLUMN old_field",
                    "drop-column-still-read",
                ),
                (
                    "ALTER TABLE documents DROP old_field",
                    "drop-column-still-read",
                ),
            ] {
                assert_eq!(fired(d, sql), [rule], "{d:?}: {sql}");
            }
            for sql in [
                "ALTER TABLE documents ADD COLUMN status varchar(20)",
                "ALTER TABLE documents ADD COLUMN status varchar(20) DEFAULT 'pending'",
                "ALTER TABLE documents ADD COLUMN status varchar(20) NOT NULL",
                "ALTER TABLE documents ADD COLUMN n int CHECK (n IS NOT NULL) DEFAULT 1",
                "ALTER TABLE documents ALTER COLUMN status SET DEFAULT 'pending'",
                "ALTER TABLE documents DROP CONSTRAINT documents_status_check",
                "ALTER TABLE documents RENAME COLUMN a TO b",
                "CREATE TABLE documents (status text NOT NULL DEFAULT 'pending')",
            ] {
                let fired = fired(d, sql);
                assert!(
                    !fired.iter().any(
                        |r| r == "add-column-not-null-default" || r == "drop-column-still-read"
                    ),
                    "{d:?}: {sql}: {fired:?}"
                );
            }
        }
        // Not on an empty table, and not twice when a lock rule gives the same split.
        assert!(
            lint(
                Dialect::Sqlite,
                "ALTER TABLE documents DROP COLUMN old_field",
                &|_| Some(0)
            )
            .is_empty()
        );
        assert_eq!(
            pg("ALTER TABLE users ADD COLUMN seen timestamptz NOT NULL DEFAULT clock_timestamp()"),
            ["pg-add-column-rewrite"]
        );
        assert!(my("ALTER TABLE users DROP INDEX ix").is_empty());
        assert!(
            my("ALTER TABLE users DROP PRIMARY KEY, ADD PRIMARY KEY (id, org)")
                .iter()
                .all(|r| r != "drop-column-still-read")
        );
    }

    #[test]
    fn seed_003_warnings_name_rows_and_the_safer_pattern() {
        let w = lint(
            Dialect::Postgres,
            "ALTER TABLE documents ADD COLUMN status text NOT NULL DEFAULT 'pending'",
            &|_| Some(48_213),
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].problem.starts_with(
                "ADD COLUMN status … NOT NULL DEFAULT … in one step on documents (48,213 rows): every existing row takes the default"
            ),
            "{}",
            w[0].problem
        );
        assert!(
            w[0].safer.starts_with("seed 003's split, one migration each: ADD COLUMN status without NOT NULL and without a default; then SET DEFAULT")
                && w[0].safer.contains("NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL"),
            "{}",
            w[0].safer
        );
        let w = lint(
            Dialect::MySql,
            "ALTER TABLE `documents` DROP COLUMN `old_field`",
            &|_| Some(12),
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].problem.starts_with("DROP COLUMN old_field on documents (12 rows): an application instance still running"),
            "{}",
            w[0].problem
        );
        assert!(
            w[0].safer.contains("Pattern 2") && w[0].safer.contains("ignored_columns"),
            "{}",
            w[0].safer
        );
        assert_eq!(
            dropped_columns(
                Dialect::Postgres,
                "ALTER TABLE a DROP COLUMN IF EXISTS x, DROP y CASCADE, DROP CONSTRAINT c"
            ),
            [
                ("a".to_owned(), "x".to_owned()),
                ("a".to_owned(), "y".to_owned())
            ]
        );
    }

    #[test]
    fn warnings_name_table_rows_and_safer_pattern_and_need_rows() {
        let w = lint(
            Dialect::Postgres,
            "CREATE INDEX ix ON \"Users\" (email)",
            &|t| (t == "Users").then_some(1_234_567),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].table, "Users");
        assert_eq!(w[0].rows, 1_234_567);
        assert!(
            w[0].problem
                .starts_with("CREATE INDEX without CONCURRENTLY on Users (1,234,567 rows)"),
            "{}",
            w[0].problem
        );
        // The advice names the feature that runs it: a non-transactional unit of contract 0.2.0.
        assert!(
            w[0].safer
                .starts_with("CREATE INDEX CONCURRENTLY IF NOT EXISTS: ")
                && w[0]
                    .safer
                    .contains("declared `transactional: false` (contract 0.2.0)")
                && w[0].safer.contains("INVALID index"),
            "{}",
            w[0].safer
        );
        assert_eq!(w[0].statement, "CREATE INDEX ix ON \"Users\" (email)");
        // Empty, unknown and missing tables do not warn.
        assert!(
            lint(
                Dialect::Postgres,
                "CREATE INDEX ix ON users (a)",
                &|_| Some(0)
            )
            .is_empty()
        );
        assert!(lint(Dialect::Postgres, "CREATE INDEX ix ON users (a)", &|_| None).is_empty());
        assert!(
            lint(Dialect::Sqlite, "CREATE INDEX ix ON users (a)", &|_| Some(
                ROWS
            ))
            .is_empty()
        );
    }

    #[test]
    fn counts_are_asked_only_for_tables_a_rule_fires_for() {
        assert_eq!(
            tables_to_count(
                Dialect::Postgres,
                "CREATE INDEX ON a (x); CREATE INDEX CONCURRENTLY ON b (x); ALTER TABLE S.C ALTER x SET NOT NULL"
            ),
            ["a", "s.c"]
        );
        assert!(tables_to_count(Dialect::MySql, "ALTER TABLE t ADD COLUMN c INT").is_empty());
        let w = lint(
            Dialect::Postgres,
            "select 1; CREATE INDEX ON a (x)",
            &|_| Some(3),
        );
        assert_eq!(w[0].statement, "CREATE INDEX ON a (x)");
    }
}
