//! The SQL of each step, per dialect: the new column, the triggers that keep
//! the old and the new column equal while both exist, the null-safe
//! comparison, and the catalog lookups.
//!
//! The triggers make both applications right at once: a writer that knows
//! only the old column (the "old application") and one that writes only the
//! new column each see their write mirrored into the other column.
//!
//! - Insert: whichever column was left NULL takes the other's value.
//! - Update: when exactly one of the two columns changed, the other follows.
//!   When both changed (a writer that writes both), they are kept as written.
//!
//! Per dialect:
//!
//! - PostgreSQL: one PL/pgSQL function and one `BEFORE INSERT OR UPDATE … FOR
//!   EACH ROW` trigger that assigns `NEW.<column>`.
//! - MariaDB: two triggers, `BEFORE INSERT` and `BEFORE UPDATE`, that `SET
//!   NEW.<column>` (MariaDB has no trigger functions).
//! - SQLite: `BEFORE` triggers cannot assign `NEW`, so three `AFTER`
//!   triggers (`INSERT`, `UPDATE OF old`, `UPDATE OF new`) each run an
//!   `UPDATE … WHERE rowid = NEW.rowid`, guarded by `WHEN` so the two update
//!   triggers never chase each other (SQLite's `recursive_triggers` is off by
//!   default, and the guards hold even when it is on).

use migrun_sdk::{Connection, Dialect, Result, Value};

/// Names and quoted identifiers of one rename.
pub struct Rename {
    pub dialect: Dialect,
    pub table: String,
    pub old: String,
    pub new: String,
}

impl Rename {
    fn q(&self, ident: &str) -> String {
        self.dialect.quote_ident(ident)
    }

    /// `migrun_ecr_<table>_<new>`, the stem of every trigger and function name (kept short
    /// for MariaDB's 64-character identifiers).
    fn stem(&self) -> String {
        let raw = format!("migrun_ecr_{}_{}", self.table, self.new);
        raw.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(56)
            .collect()
    }

    /// A condition true when `a` and `b` differ, NULLs included.
    pub fn differ(&self, a: &str, b: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("{a} IS DISTINCT FROM {b}"),
            Dialect::MySql => format!("NOT ({a} <=> {b})"),
            _ => format!("{a} IS NOT {b}"),
        }
    }

    /// `ALTER TABLE … ADD COLUMN new <type>` (nullable: rows get their value from the backfill).
    pub fn add_column(&self, column_type: &str) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {column_type}",
            self.q(&self.table),
            self.q(&self.new)
        )
    }

    /// The statements that (re)create the sync triggers, dropping earlier ones first so
    /// that a rerun of `expand` is harmless.
    pub fn create_triggers(&self) -> Vec<String> {
        let (t, o, n, stem) = (
            self.q(&self.table),
            self.q(&self.old),
            self.q(&self.new),
            self.stem(),
        );
        let mut sql = self.drop_triggers();
        match self.dialect {
            Dialect::Postgres => {
                sql.push(format!(
                    "CREATE FUNCTION {stem}() RETURNS trigger LANGUAGE plpgsql AS $body$\n\
                     BEGIN\n\
                       IF TG_OP = 'INSERT' THEN\n\
                         IF NEW.{n} IS NULL THEN NEW.{n} := NEW.{o};\n\
                         ELSIF NEW.{o} IS NULL THEN NEW.{o} := NEW.{n};\n\
                         END IF;\n\
                       ELSIF NEW.{o} IS DISTINCT FROM OLD.{o} AND NEW.{n} IS NOT DISTINCT FROM OLD.{n} THEN\n\
                         NEW.{n} := NEW.{o};\n\
                       ELSIF NEW.{n} IS DISTINCT FROM OLD.{n} AND NEW.{o} IS NOT DISTINCT FROM OLD.{o} THEN\n\
                         NEW.{o} := NEW.{n};\n\
                       END IF;\n\
                       RETURN NEW;\n\
                     END\n\
                     $body$"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {stem} BEFORE INSERT OR UPDATE ON {t} \
                     FOR EACH ROW EXECUTE FUNCTION {stem}()"
                ));
            }
            Dialect::MySql => {
                sql.push(format!(
                    "CREATE TRIGGER {stem}_ins BEFORE INSERT ON {t} FOR EACH ROW \
                     BEGIN \
                       IF NEW.{n} IS NULL THEN SET NEW.{n} = NEW.{o}; \
                       ELSEIF NEW.{o} IS NULL THEN SET NEW.{o} = NEW.{n}; \
                       END IF; \
                     END"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {stem}_upd BEFORE UPDATE ON {t} FOR EACH ROW \
                     BEGIN \
                       IF NOT (NEW.{o} <=> OLD.{o}) AND (NEW.{n} <=> OLD.{n}) THEN SET NEW.{n} = NEW.{o}; \
                       ELSEIF NOT (NEW.{n} <=> OLD.{n}) AND (NEW.{o} <=> OLD.{o}) THEN SET NEW.{o} = NEW.{n}; \
                       END IF; \
                     END"
                ));
            }
            _ => {
                sql.push(format!(
                    "CREATE TRIGGER {stem}_ins AFTER INSERT ON {t} \
                     WHEN NEW.{n} IS NULL OR NEW.{o} IS NULL \
                     BEGIN UPDATE {t} SET {n} = COALESCE(NEW.{n}, NEW.{o}), {o} = COALESCE(NEW.{o}, NEW.{n}) \
                     WHERE rowid = NEW.rowid; END"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {stem}_upd_old AFTER UPDATE OF {o} ON {t} \
                     WHEN NEW.{o} IS NOT OLD.{o} AND NEW.{n} IS OLD.{n} AND NEW.{n} IS NOT NEW.{o} \
                     BEGIN UPDATE {t} SET {n} = NEW.{o} WHERE rowid = NEW.rowid; END"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {stem}_upd_new AFTER UPDATE OF {n} ON {t} \
                     WHEN NEW.{n} IS NOT OLD.{n} AND NEW.{o} IS OLD.{o} AND NEW.{o} IS NOT NEW.{n} \
                     BEGIN UPDATE {t} SET {o} = NEW.{n} WHERE rowid = NEW.rowid; END"
                ));
            }
        }
        sql
    }

    /// The statements that drop the sync triggers (and PostgreSQL's function), if present.
    pub fn drop_triggers(&self) -> Vec<String> {
        let (t, stem) = (self.q(&self.table), self.stem());
        match self.dialect {
            Dialect::Postgres => vec![
                format!("DROP TRIGGER IF EXISTS {stem} ON {t}"),
                format!("DROP FUNCTION IF EXISTS {stem}()"),
            ],
            Dialect::MySql => vec![
                format!("DROP TRIGGER IF EXISTS {stem}_ins"),
                format!("DROP TRIGGER IF EXISTS {stem}_upd"),
            ],
            _ => vec![
                format!("DROP TRIGGER IF EXISTS {stem}_ins"),
                format!("DROP TRIGGER IF EXISTS {stem}_upd_old"),
                format!("DROP TRIGGER IF EXISTS {stem}_upd_new"),
            ],
        }
    }

    /// `ALTER TABLE … DROP COLUMN old`.
    pub fn drop_old(&self) -> String {
        format!(
            "ALTER TABLE {} DROP COLUMN {}",
            self.q(&self.table),
            self.q(&self.old)
        )
    }

    /// The statements that finish a plain rename (the new column has the old one's type):
    /// drop the new column, then give the old column the new name. The column that stays is
    /// physically the old one, so its whole definition survives as it was — type,
    /// NOT NULL, DEFAULT, collation, CHECKs, the indexes and UNIQUE constraints that cover
    /// it, foreign keys from it and to it — and its values are the ones `contract` just
    /// compared equal to the new column's. Both steps change only the catalog (no table
    /// rewrite); each dialect keeps them atomic:
    ///
    /// - MariaDB: one `ALTER TABLE … DROP COLUMN new, RENAME COLUMN old TO new` (10.5+),
    ///   since its DDL commits on its own and a crash between two statements would leave
    ///   the table with neither name complete.
    /// - PostgreSQL and SQLite: two statements in the unit's transaction (both have
    ///   transactional DDL; SQLite needs 3.35 for `DROP COLUMN`). SQLite rewrites the
    ///   indexes, foreign keys and CHECKs that name the column on `RENAME COLUMN`.
    pub fn keep_old_under_new_name(&self) -> Vec<String> {
        let (t, o, n) = (self.q(&self.table), self.q(&self.old), self.q(&self.new));
        match self.dialect {
            Dialect::MySql => vec![format!(
                "ALTER TABLE {t} DROP COLUMN {n}, RENAME COLUMN {o} TO {n}"
            )],
            _ => vec![
                format!("ALTER TABLE {t} DROP COLUMN {n}"),
                format!("ALTER TABLE {t} RENAME COLUMN {o} TO {n}"),
            ],
        }
    }

    /// The backfill of one key range: copies old into new where they differ.
    pub fn copy_range(&self, range: &str) -> String {
        format!(
            "UPDATE {} SET {n} = {o} WHERE {range} AND {}",
            self.q(&self.table),
            self.differ(&self.q(&self.new), &self.q(&self.old)),
            n = self.q(&self.new),
            o = self.q(&self.old),
        )
    }

    /// Counts the rows whose old and new values differ.
    pub fn count_differing(&self) -> String {
        format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            self.q(&self.table),
            self.differ(&self.q(&self.new), &self.q(&self.old))
        )
    }
}

/// The column's declared type, or `None` when the column does not exist.
pub fn column_type(conn: &Connection, table: &str, column: &str) -> Result<Option<String>> {
    let params = vec![
        Value::Text(table.to_owned()),
        Value::Text(column.to_owned()),
    ];
    let rows = match conn.dialect() {
        Dialect::Postgres => conn.query(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1::text) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            params,
        )?,
        Dialect::MySql => conn.query(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            params,
        )?,
        _ => conn.query(
            "SELECT type FROM pragma_table_info(?) WHERE name = ?",
            params,
        )?,
    };
    match rows.rows().first() {
        Some(row) => Ok(Some(row.get_at::<String>(0)?)),
        None => Ok(None),
    }
}
