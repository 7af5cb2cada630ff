//! The SQL of each step, per dialect: the copy of the table's definition, the
//! triggers that mirror one table's writes into the other, the triggers that
//! freeze the old table, the row comparison and the catalog lookups.
//!
//! Every trigger and function this plugin creates is named after the new
//! table (`mtr_<new>_…`), so the state of a rename can be read from the
//! catalog alone (see [`Phase`]):
//!
//! - `…_fwd…` on the old table: each insert, update and delete of the old
//!   table is repeated on the new one (before the switch);
//! - `…_rev…` on the new table: the same the other way (after the switch);
//! - `…_frz…` on the old table: every write is refused (after the freeze).
//!
//! Per dialect:
//!
//! - PostgreSQL: one PL/pgSQL function per direction and one `AFTER INSERT OR
//!   UPDATE OR DELETE … FOR EACH ROW` trigger; the copy is `CREATE TABLE new
//!   (LIKE old INCLUDING ALL)` (columns, defaults, NOT NULL, CHECKs, indexes,
//!   identity, generated columns, comments) plus the old table's foreign keys.
//! - MariaDB: three `AFTER` triggers per direction (no trigger functions);
//!   the copy is `CREATE TABLE new LIKE old` (columns, indexes, CHECKs) plus
//!   the old table's foreign keys under new names (MariaDB's foreign key
//!   names are per database).
//! - SQLite: three `AFTER` triggers per direction; the copy is the old
//!   table's stored `CREATE TABLE` under the new name (foreign keys and
//!   CHECKs included) and each stored `CREATE INDEX` on the new table.
//!
//! Rows are compared column by column, NULL-safely and byte for byte (a
//! change of case under a case-insensitive collation is a change): on
//! PostgreSQL as text in the `C` collation (so `json` and other types
//! without an equality operator compare too), on MariaDB with `<=>` and
//! `BINARY` for character columns, on SQLite with `IS … COLLATE BINARY`.

use migrun_sdk::{Connection, Dialect, Result, Value, bail};

/// A column of the table, as the copy and the comparison need it.
#[derive(Debug, Clone)]
pub struct Col {
    pub name: String,
    /// Character data with a collation (MariaDB: compared as `BINARY`).
    pub collated: bool,
}

/// Where a rename stands, read from the triggers it left in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The new table does not exist.
    NotStarted,
    /// The new table exists without the forward triggers (MariaDB: a crash between
    /// `CREATE TABLE` and `CREATE TRIGGER`, which commit one by one).
    Created,
    /// The old table's writes are mirrored into the new one.
    Expanded,
    /// The new table's writes are mirrored into the old one.
    Switched,
    /// The old table refuses writes.
    Frozen,
    /// The old table is gone, the new one stays.
    Contracted,
}

impl Phase {
    /// What an operator reads in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::NotStarted => "not started (the new table does not exist)",
            Phase::Created => "the new table exists but the dual-write triggers do not",
            Phase::Expanded => "expanded (writes to the old table are mirrored into the new one)",
            Phase::Switched => "switched (writes to the new table are mirrored into the old one)",
            Phase::Frozen => "frozen (the old table refuses writes)",
            Phase::Contracted => "contracted (the old table is dropped)",
        }
    }
}

/// One table rename on one connection: names, key, columns.
pub struct TableRename {
    pub dialect: Dialect,
    pub old: String,
    pub new: String,
    /// The one-column unique NOT NULL key rows are matched by.
    pub key: String,
    pub columns: Vec<Col>,
}

/// Which way a set of mirror triggers copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Old table → new table (`_fwd`), from `expand` to `switch`.
    Forward,
    /// New table → old table (`_rev`), from `switch` to `freeze`.
    Reverse,
}

impl TableRename {
    pub fn q(&self, ident: &str) -> String {
        self.dialect.quote_ident(ident)
    }

    /// `mtr_<new>`, the stem of every trigger and function name (short enough for
    /// MariaDB's 64 and PostgreSQL's 63 characters with the longest suffix).
    pub fn stem(new: &str) -> String {
        let raw = format!("mtr_{new}");
        raw.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(52)
            .collect()
    }

    fn prefix(&self, what: &str) -> String {
        format!("{}_{what}", Self::stem(&self.new))
    }

    fn column_list(&self, alias: Option<&str>) -> String {
        self.columns
            .iter()
            .map(|c| match alias {
                Some(a) => format!("{a}.{}", self.q(&c.name)),
                None => self.q(&c.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A condition true when column `c` holds the same value in the rows `a` and `b`.
    fn same(&self, a: &str, b: &str, c: &Col) -> String {
        let c_q = self.q(&c.name);
        match self.dialect {
            Dialect::Postgres => format!(
                "{a}.{c_q}::text COLLATE \"C\" IS NOT DISTINCT FROM {b}.{c_q}::text COLLATE \"C\""
            ),
            Dialect::MySql if c.collated => format!("BINARY {a}.{c_q} <=> BINARY {b}.{c_q}"),
            Dialect::MySql => format!("{a}.{c_q} <=> {b}.{c_q}"),
            _ => format!("{a}.{c_q} IS {b}.{c_q} COLLATE BINARY"),
        }
    }

    /// A condition true when rows `a` and `b` hold the same values in every column.
    pub fn same_row(&self, a: &str, b: &str) -> String {
        self.columns
            .iter()
            .map(|c| self.same(a, b, c))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The key-range condition of one batch on `qualifier.key`, with its parameters from
    /// placeholder 1: `key > after AND key <= last`, or `key <= last` for the first batch.
    pub fn range(
        &self,
        qualifier: &str,
        after: Option<&Value>,
        last: &Value,
    ) -> (String, Vec<Value>) {
        let k = format!("{qualifier}.{}", self.q(&self.key));
        match after {
            Some(after) => (
                format!(
                    "{k} > {} AND {k} <= {}",
                    self.dialect.placeholder(1),
                    self.dialect.placeholder(2)
                ),
                vec![after.clone(), last.clone()],
            ),
            None => (
                format!("{k} <= {}", self.dialect.placeholder(1)),
                vec![last.clone()],
            ),
        }
    }

    /// Locks the old table's rows in `range` (on `o`) until the unit's transaction ends, so
    /// that no application write to them interleaves with their copy: a copy made from a
    /// snapshot older than a concurrent write would otherwise overwrite the write's mirror.
    /// `None` on SQLite, where the writer holds the whole database.
    pub fn lock_range(&self, range: &str) -> Option<String> {
        match self.dialect {
            Dialect::Postgres | Dialect::MySql => Some(format!(
                "SELECT o.{k} FROM {old} o WHERE {range} FOR UPDATE",
                k = self.q(&self.key),
                old = self.q(&self.old)
            )),
            _ => None,
        }
    }

    /// Blocks every write to the old table until the unit's transaction ends (the switch's
    /// final catch-up). `None` on SQLite (one writer at a time already).
    pub fn lock_old_table(&self) -> Option<String> {
        match self.dialect {
            Dialect::Postgres => Some(format!("LOCK TABLE {} IN SHARE MODE", self.q(&self.old))),
            Dialect::MySql => Some(format!(
                "SELECT COUNT(*) FROM {} FOR UPDATE",
                self.q(&self.old)
            )),
            _ => None,
        }
    }

    /// Deletes the new table's rows (in `range`, on the new table's name) that the old table
    /// does not hold with the same values: rows changed or deleted since they were copied
    /// without the change reaching the new table. [`insert_missing`](Self::insert_missing)
    /// then copies them again.
    pub fn delete_stale(&self, range: Option<&str>) -> String {
        let (old, new, k) = (self.q(&self.old), self.q(&self.new), self.q(&self.key));
        let range = range.map(|r| format!("{r} AND ")).unwrap_or_default();
        format!(
            "DELETE FROM {new} WHERE {range}NOT EXISTS (SELECT 1 FROM {old} o WHERE o.{k} = {new}.{k} AND {})",
            self.same_row("o", &new)
        )
    }

    /// Copies the old table's rows (in `range`, on `o`) that the new table lacks.
    pub fn insert_missing(&self, range: Option<&str>) -> String {
        let (old, new, k) = (self.q(&self.old), self.q(&self.new), self.q(&self.key));
        let range = range.map(|r| format!(" AND {r}")).unwrap_or_default();
        format!(
            "INSERT INTO {new} ({}) SELECT {} FROM {old} o LEFT JOIN {new} n ON n.{k} = o.{k} WHERE n.{k} IS NULL{range}",
            self.column_list(None),
            self.column_list(Some("o"))
        )
    }

    /// Counts the rows that differ between the two tables: rows of the old table without an
    /// equal row in the new one, plus rows of the new table whose key the old one lacks.
    pub fn count_differing(&self) -> String {
        let (old, new, k) = (self.q(&self.old), self.q(&self.new), self.q(&self.key));
        format!(
            "SELECT (SELECT COUNT(*) FROM {old} o WHERE NOT EXISTS (SELECT 1 FROM {new} n WHERE n.{k} = o.{k} AND {})) \
             + (SELECT COUNT(*) FROM {new} n WHERE NOT EXISTS (SELECT 1 FROM {old} o WHERE o.{k} = n.{k}))",
            self.same_row("o", "n")
        )
    }

    /// The names of the mirror triggers (and PostgreSQL function) of `direction`.
    fn mirror_prefix(direction: Direction) -> &'static str {
        match direction {
            Direction::Forward => "fwd",
            Direction::Reverse => "rev",
        }
    }

    /// (source, target) of `direction`.
    fn ends(&self, direction: Direction) -> (String, String) {
        match direction {
            Direction::Forward => (self.old.clone(), self.new.clone()),
            Direction::Reverse => (self.new.clone(), self.old.clone()),
        }
    }

    /// The statements that (re)create the triggers repeating every insert, update and delete
    /// of the source table on the target table, dropping earlier ones first so a rerun is
    /// harmless. An update that changes the key deletes the target's row under the old key.
    pub fn create_mirror(&self, direction: Direction) -> Vec<String> {
        let (from, to) = self.ends(direction);
        let (from, to, k) = (self.q(&from), self.q(&to), self.q(&self.key));
        let p = self.prefix(Self::mirror_prefix(direction));
        let cols = self.column_list(None);
        let values = self.column_list(Some("NEW"));
        let mut sql = self.drop_mirror(direction);
        match self.dialect {
            Dialect::Postgres => {
                let set = self
                    .columns
                    .iter()
                    .map(|c| format!("{0} = EXCLUDED.{0}", self.q(&c.name)))
                    .collect::<Vec<_>>()
                    .join(", ");
                sql.push(format!(
                    "CREATE FUNCTION {p}() RETURNS trigger LANGUAGE plpgsql AS $body$\n\
                     BEGIN\n\
                       IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.{k} IS DISTINCT FROM OLD.{k}) THEN\n\
                         DELETE FROM {to} WHERE {k} = OLD.{k};\n\
                       END IF;\n\
                       IF TG_OP IN ('INSERT', 'UPDATE') THEN\n\
                         INSERT INTO {to} ({cols}) VALUES ({values})\n\
                         ON CONFLICT ({k}) DO UPDATE SET {set};\n\
                       END IF;\n\
                       RETURN NULL;\n\
                     END\n\
                     $body$"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {p} AFTER INSERT OR UPDATE OR DELETE ON {from} \
                     FOR EACH ROW EXECUTE FUNCTION {p}()"
                ));
            }
            Dialect::MySql => {
                let set = self
                    .columns
                    .iter()
                    .map(|c| format!("{0} = VALUES({0})", self.q(&c.name)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let upsert = format!(
                    "INSERT INTO {to} ({cols}) VALUES ({values}) ON DUPLICATE KEY UPDATE {set}"
                );
                sql.push(format!(
                    "CREATE TRIGGER {p}_ins AFTER INSERT ON {from} FOR EACH ROW {upsert}"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {p}_upd AFTER UPDATE ON {from} FOR EACH ROW \
                     BEGIN \
                       IF NOT (NEW.{k} <=> OLD.{k}) THEN DELETE FROM {to} WHERE {k} = OLD.{k}; END IF; \
                       {upsert}; \
                     END"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {p}_del AFTER DELETE ON {from} FOR EACH ROW \
                     DELETE FROM {to} WHERE {k} = OLD.{k}"
                ));
            }
            _ => {
                let set = self
                    .columns
                    .iter()
                    .map(|c| format!("{0} = excluded.{0}", self.q(&c.name)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let upsert = format!(
                    "INSERT INTO {to} ({cols}) VALUES ({values}) ON CONFLICT ({k}) DO UPDATE SET {set}"
                );
                sql.push(format!(
                    "CREATE TRIGGER {p}_ins AFTER INSERT ON {from} BEGIN {upsert}; END"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {p}_upd AFTER UPDATE ON {from} BEGIN \
                     DELETE FROM {to} WHERE {k} = OLD.{k} AND OLD.{k} IS NOT NEW.{k}; \
                     {upsert}; END"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {p}_del AFTER DELETE ON {from} BEGIN \
                     DELETE FROM {to} WHERE {k} = OLD.{k}; END"
                ));
            }
        }
        sql
    }

    /// The statements that drop the mirror triggers of `direction` (and PostgreSQL's
    /// function), if present. The source table must exist on PostgreSQL.
    pub fn drop_mirror(&self, direction: Direction) -> Vec<String> {
        let (from, _) = self.ends(direction);
        self.drop_named(&self.prefix(Self::mirror_prefix(direction)), &from)
    }

    fn drop_named(&self, p: &str, on: &str) -> Vec<String> {
        match self.dialect {
            Dialect::Postgres => vec![
                format!("DROP TRIGGER IF EXISTS {p} ON {}", self.q(on)),
                format!("DROP TRIGGER IF EXISTS {p}_t ON {}", self.q(on)),
                format!("DROP FUNCTION IF EXISTS {p}()"),
            ],
            _ => ["ins", "upd", "del"]
                .iter()
                .map(|s| format!("DROP TRIGGER IF EXISTS {p}_{s}"))
                .collect(),
        }
    }

    /// What a write to the frozen old table is refused with (at most 128 characters, MariaDB's
    /// limit for `MESSAGE_TEXT`; no quotes, it goes into a string literal).
    pub fn frozen_message(&self) -> String {
        format!("table {} is frozen: renamed to {}", self.old, self.new)
    }

    /// The statements that (re)create the triggers refusing every write to the old table
    /// (PostgreSQL: `TRUNCATE` too).
    pub fn create_freeze(&self) -> Vec<String> {
        let old = self.q(&self.old);
        let p = self.prefix("frz");
        let message = self.frozen_message();
        let mut sql = self.drop_freeze();
        match self.dialect {
            Dialect::Postgres => {
                sql.push(format!(
                    "CREATE FUNCTION {p}() RETURNS trigger LANGUAGE plpgsql AS $body$\n\
                     BEGIN\n\
                       RAISE EXCEPTION USING ERRCODE = '25006', MESSAGE = '{message}';\n\
                     END\n\
                     $body$"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {p} BEFORE INSERT OR UPDATE OR DELETE ON {old} \
                     FOR EACH ROW EXECUTE FUNCTION {p}()"
                ));
                sql.push(format!(
                    "CREATE TRIGGER {p}_t BEFORE TRUNCATE ON {old} \
                     FOR EACH STATEMENT EXECUTE FUNCTION {p}()"
                ));
            }
            Dialect::MySql => {
                for (s, event) in [("ins", "INSERT"), ("upd", "UPDATE"), ("del", "DELETE")] {
                    sql.push(format!(
                        "CREATE TRIGGER {p}_{s} BEFORE {event} ON {old} FOR EACH ROW \
                         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'"
                    ));
                }
            }
            _ => {
                for (s, event) in [("ins", "INSERT"), ("upd", "UPDATE"), ("del", "DELETE")] {
                    sql.push(format!(
                        "CREATE TRIGGER {p}_{s} BEFORE {event} ON {old} \
                         BEGIN SELECT RAISE(ABORT, '{message}'); END"
                    ));
                }
            }
        }
        sql
    }

    /// The statements that drop the freezing triggers (and PostgreSQL's function).
    pub fn drop_freeze(&self) -> Vec<String> {
        self.drop_named(&self.prefix("frz"), &self.old)
    }

    /// The statements that drop what is left of PostgreSQL's functions after the old table
    /// was dropped (its triggers went with it).
    pub fn drop_functions(&self) -> Vec<String> {
        match self.dialect {
            Dialect::Postgres => ["fwd", "frz"]
                .iter()
                .map(|w| format!("DROP FUNCTION IF EXISTS {}()", self.prefix(w)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `DROP TABLE old`.
    pub fn drop_old(&self) -> String {
        format!("DROP TABLE {}", self.q(&self.old))
    }
}

/// The names of this rename's triggers in the catalog (those starting with its stem).
pub fn rename_triggers(db: &Connection, new: &str) -> Result<Vec<String>> {
    let stem = TableRename::stem(new);
    let names: Vec<String> = match db.dialect() {
        Dialect::Postgres => db.query_as(
            "SELECT tgname::text FROM pg_trigger WHERE NOT tgisinternal",
            vec![],
        )?,
        Dialect::MySql => db.query_as(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
            vec![],
        )?,
        _ => db.query_as(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'",
            vec![],
        )?,
    };
    Ok(names
        .into_iter()
        .filter(|n| n.starts_with(&format!("{stem}_")))
        .collect())
}

/// Where the rename of `old` to `new` stands, from the tables and triggers in the catalog.
pub fn phase(db: &Connection, old: &str, new: &str) -> Result<Phase> {
    if !db.table_exists(new)? {
        return Ok(Phase::NotStarted);
    }
    if !db.table_exists(old)? {
        return Ok(Phase::Contracted);
    }
    let triggers = rename_triggers(db, new)?;
    let stem = TableRename::stem(new);
    let has = |what: &str| {
        triggers
            .iter()
            .any(|t| t == &format!("{stem}_{what}") || t.starts_with(&format!("{stem}_{what}_")))
    };
    Ok(if has("frz") {
        Phase::Frozen
    } else if has("rev") {
        Phase::Switched
    } else if has("fwd") {
        Phase::Expanded
    } else {
        Phase::Created
    })
}

/// The table's columns in order, without generated ones (they are computed, never copied).
pub fn columns(db: &Connection, table: &str) -> Result<Vec<Col>> {
    let param = vec![Value::Text(table.to_owned())];
    Ok(match db.dialect() {
        Dialect::Postgres => db
            .query_as::<String>(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1::text) \
                 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                param,
            )?
            .into_iter()
            .map(|name| Col {
                name,
                collated: false,
            })
            .collect(),
        Dialect::MySql => db
            .query_as::<(String, i64)>(
                "SELECT COLUMN_NAME, COLLATION_NAME IS NOT NULL FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND EXTRA NOT LIKE '%GENERATED%' \
                 ORDER BY ORDINAL_POSITION",
                param,
            )?
            .into_iter()
            .map(|(name, collated)| Col {
                name,
                collated: collated != 0,
            })
            .collect(),
        _ => db
            .query_as::<String>("SELECT name FROM pragma_table_info(?) ORDER BY cid", param)?
            .into_iter()
            .map(|name| Col {
                name,
                collated: false,
            })
            .collect(),
    })
}

/// A MariaDB foreign key read from `information_schema`, one column per row.
struct ForeignKey {
    name: String,
    columns: Vec<String>,
    parent: String,
    parent_columns: Vec<String>,
    on_update: String,
    on_delete: String,
}

/// The statements that create `new` with `old`'s definition, as far as the dialect lets a
/// table be copied (see the module comment).
pub fn copy_definition(db: &Connection, old: &str, new: &str) -> Result<Vec<String>> {
    let d = db.dialect();
    let (old_q, new_q) = (d.quote_ident(old), d.quote_ident(new));
    let param = || vec![Value::Text(old.to_owned())];
    let mut sql = Vec::new();
    match d {
        Dialect::Postgres => {
            sql.push(format!("CREATE TABLE {new_q} (LIKE {old_q} INCLUDING ALL)"));
            let fks: Vec<(String, String)> = db.query_as(
                "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = to_regclass($1::text) AND contype = 'f' ORDER BY conname",
                param(),
            )?;
            for (name, definition) in fks {
                sql.push(format!(
                    "ALTER TABLE {new_q} ADD CONSTRAINT {} {definition}",
                    d.quote_ident(&derived_name(&name, old, new))
                ));
            }
        }
        Dialect::MySql => {
            sql.push(format!("CREATE TABLE {new_q} LIKE {old_q}"));
            // One row per column of each foreign key, in key order.
            let fk_columns: Vec<(String, String, String, String, String, String)> = db.query_as(
                "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, \
                 r.UPDATE_RULE, r.DELETE_RULE \
                 FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                 ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                 AND r.TABLE_NAME = k.TABLE_NAME \
                 WHERE k.TABLE_SCHEMA = DATABASE() AND k.TABLE_NAME = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL \
                 ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
                param(),
            )?;
            let mut fks: Vec<ForeignKey> = Vec::new();
            for (name, column, parent, parent_column, on_update, on_delete) in fk_columns {
                match fks.last_mut() {
                    Some(fk) if fk.name == name => {
                        fk.columns.push(column);
                        fk.parent_columns.push(parent_column);
                    }
                    _ => fks.push(ForeignKey {
                        name,
                        columns: vec![column],
                        parent,
                        parent_columns: vec![parent_column],
                        on_update,
                        on_delete,
                    }),
                }
            }
            let list = |cols: &[String]| {
                cols.iter()
                    .map(|c| d.quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            for fk in fks {
                sql.push(format!(
                    "ALTER TABLE {new_q} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) \
                     ON UPDATE {} ON DELETE {}",
                    d.quote_ident(&derived_name(&fk.name, old, new)),
                    list(&fk.columns),
                    d.quote_ident(&fk.parent),
                    list(&fk.parent_columns),
                    fk.on_update,
                    fk.on_delete,
                ));
            }
        }
        _ => {
            let Some(create) = db.query_opt_as::<String>(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                param(),
            )?
            else {
                bail!("table `{old}` does not exist; nothing was changed");
            };
            let Some(open) = create.find('(') else {
                bail!("cannot read the definition of `{old}`: {create}");
            };
            sql.push(format!("CREATE TABLE {new_q} {}", &create[open..]));
            let indexes: Vec<(String, String, i64)> = db.query_as(
                "SELECT m.name, m.sql, il.\"unique\" FROM sqlite_master m \
                 JOIN pragma_index_list(?1) il ON il.name = m.name \
                 WHERE m.type = 'index' AND m.tbl_name = ?1 AND m.sql IS NOT NULL ORDER BY m.name",
                param(),
            )?;
            for (name, create, unique) in indexes {
                let Some(open) = create.find('(') else {
                    bail!("cannot read the definition of index `{name}`: {create}");
                };
                sql.push(format!(
                    "CREATE {}INDEX {} ON {new_q} {}",
                    if unique != 0 { "UNIQUE " } else { "" },
                    d.quote_ident(&derived_name(&name, old, new)),
                    &create[open..]
                ));
            }
        }
    }
    Ok(sql)
}

/// The name of the new table's copy of an index or constraint called `name` on the old
/// table: the old table's name in it replaced by the new one (`orders_email_idx` →
/// `purchases_email_idx`), otherwise `<new>_<name>`; at most 63 characters.
pub fn derived_name(name: &str, old: &str, new: &str) -> String {
    let derived = if name.contains(old) {
        name.replacen(old, new, 1)
    } else {
        format!("{new}_{name}")
    };
    derived.chars().take(63).collect()
}

/// Foreign keys of other tables that reference `table`: `(constraint, table)`.
pub fn referencing_foreign_keys(db: &Connection, table: &str) -> Result<Vec<(String, String)>> {
    let param = vec![Value::Text(table.to_owned())];
    match db.dialect() {
        Dialect::Postgres => db.query_as(
            "SELECT conname::text, conrelid::regclass::text FROM pg_constraint \
             WHERE contype = 'f' AND confrelid = to_regclass($1::text) AND conrelid <> confrelid \
             ORDER BY 2, 1",
            param,
        ),
        Dialect::MySql => db.query_as(
            "SELECT CONSTRAINT_NAME, TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = ? AND TABLE_NAME <> ? \
             ORDER BY 2, 1",
            vec![Value::Text(table.to_owned()), Value::Text(table.to_owned())],
        ),
        _ => db.query_as(
            "SELECT 'fk' || f.id, m.name FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE AND m.name <> ?1 \
             GROUP BY m.name, f.id ORDER BY 2, 1",
            param,
        ),
    }
}

/// PostgreSQL: the sequences owned by a column of `table` (`serial`), `(sequence, column)`:
/// dropping the table would drop them, and the new table's copied defaults draw from them.
pub fn owned_sequences(db: &Connection, table: &str) -> Result<Vec<(String, String)>> {
    if db.dialect() != Dialect::Postgres {
        return Ok(Vec::new());
    }
    db.query_as(
        "SELECT s.oid::regclass::text, a.attname::text FROM pg_depend d \
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
         WHERE d.refobjid = to_regclass($1::text) AND d.deptype = 'a' ORDER BY 1",
        vec![Value::Text(table.to_owned())],
    )
}

/// PostgreSQL: the identity columns of `table`, whose own sequences must continue after the
/// ids the copy brought over.
pub fn identity_columns(db: &Connection, table: &str) -> Result<Vec<String>> {
    if db.dialect() != Dialect::Postgres {
        return Ok(Vec::new());
    }
    db.query_as(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1::text) \
         AND attnum > 0 AND NOT attisdropped AND attidentity <> '' ORDER BY attnum",
        vec![Value::Text(table.to_owned())],
    )
}
