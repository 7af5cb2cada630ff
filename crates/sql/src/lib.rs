//! Pure SQL text analysis: the lexer, the statement classifier of the plan and
//! the lint's locking/rewriting rules.
//!
//! This crate owns everything migrun reads out of a statement's text alone.
//! Invariants: no I/O and no dependency on sqlx, tokio, a database connection
//! or wasmtime — the only outside type is [`Dialect`] (from `migrun-types`),
//! so it builds in seconds and can be fuzzed. Callers that need the database (row counts for the lint, guards,
//! dry-run mechanics) live in the db and plan layers and call in here.
//!
//! - [`lexer`]: leading keywords, the token stream and its walkers, the SQLite
//!   single-statement check.
//! - [`classify`]: which table and operation a statement's count belongs to,
//!   and its DDL.
//! - [`lint`]: seed 003's locking anti-patterns per dialect, given row counts.

#![deny(missing_docs)]

pub mod classify;
pub mod lexer;
pub mod lint;

pub use migrun_types::Dialect;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::classify::{Effect, WriteOp, classify};
    use super::lint::{lint, tables_to_count};
    use super::*;

    const ALL: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql];

    #[test]
    fn the_same_statements_classify_alike_on_every_dialect() {
        for d in ALL {
            let quoted = if d == Dialect::MySql {
                "UPDATE `Accounts` SET a = 1 WHERE id = 2"
            } else {
                r#"UPDATE "Accounts" SET a = 1 WHERE id = 2"#
            };
            assert_eq!(
                classify(d, quoted).effect,
                Effect::Write {
                    op: WriteOp::Update,
                    table: "Accounts".into()
                },
                "{d}"
            );
            assert_eq!(
                classify(d, "-- note\nDELETE FROM t").effect,
                Effect::Write {
                    op: WriteOp::Delete,
                    table: "t".into()
                },
                "{d}"
            );
            assert_eq!(classify(d, "SELECT 1").effect, Effect::Read, "{d}");
            match classify(d, "CREATE INDEX ix ON t (a)").effect {
                Effect::Ddl(ddl) => assert_eq!(ddl.table.as_deref(), Some("t"), "{d}"),
                other => panic!("{d}: {other:?}"),
            }
        }
    }

    #[test]
    fn lint_rules_differ_by_dialect_and_need_no_connection() {
        let rules = |d| -> Vec<String> {
            lint(d, "CREATE INDEX ix ON t (a)", &|_| Some(10))
                .into_iter()
                .map(|w| w.rule)
                .collect()
        };
        assert_eq!(rules(Dialect::Postgres), ["pg-create-index-blocking"]);
        assert!(rules(Dialect::MySql).is_empty(), "online on MariaDB");
        assert!(
            rules(Dialect::Sqlite).is_empty(),
            "one writer whatever the statement"
        );
        assert_eq!(
            tables_to_count(Dialect::Postgres, "CREATE INDEX ix ON t (a)"),
            ["t"]
        );
        assert!(tables_to_count(Dialect::Sqlite, "CREATE INDEX ix ON t (a)").is_empty());
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
