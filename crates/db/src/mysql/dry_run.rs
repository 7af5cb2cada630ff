//! MySQL/MariaDB: DDL commits implicitly, so a dry-run works in a scratch copy
//! of the database, or refuses DDL and restores `AUTO_INCREMENT` counters when
//! no copy can be made (see the module docs of `dry_run`).

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;

use super::MySqlDriver;
use crate::driver::DryRunMechanics;
use crate::dry_run::{
    Active, DryRunMode, DryRunRestore, LOCK_WAIT_SECONDS, SCRATCH_PREFIX, Scratch, int, text,
};
use crate::{Connection, DbError, DbErrorKind, Dialect, sql};
use migrun_types::value::Value;

impl DryRunMechanics for MySqlDriver {
    fn enter_dry_run<'a>(
        &'a self,
        conn: &'a mut Connection,
        run_id: &'a str,
        writes: &'a [String],
    ) -> BoxFuture<'a, Result<DryRunMode, DbError>> {
        Box::pin(async move {
            if let Err(e) = conn.cleanup_stale_dry_runs().await {
                tracing::warn!(connection = %conn.name, "cannot drop stale dry-run scratch databases: {e}");
            }
            Ok(match conn.make_scratch(run_id, writes).await {
                Ok((scratch, mode)) => {
                    conn.refuse_ddl = None;
                    conn.dry_run = Some(Active::Scratch(scratch));
                    mode
                }
                Err(why) => {
                    let reason = format!(
                        "DDL is refused during this dry-run on MySQL/MariaDB: it commits implicitly, \
                         and no scratch database could be made to run it in ({why})"
                    );
                    conn.refuse_ddl = Some(reason.clone());
                    let counters = match conn.auto_increments().await {
                        Ok(counters) => counters,
                        Err(e) => {
                            tracing::warn!(connection = %conn.name, "cannot read AUTO_INCREMENT counters: {e}");
                            BTreeMap::new()
                        }
                    };
                    conn.dry_run = Some(Active::AutoIncrements(counters));
                    DryRunMode::DdlRefused { reason }
                }
            })
        })
    }

    /// Drops the scratch databases of dry-runs whose session is gone (their
    /// lock is free) and returns their names.
    fn cleanup_stale_dry_runs<'a>(
        &'a self,
        conn: &'a mut Connection,
    ) -> BoxFuture<'a, Result<Vec<String>, DbError>> {
        Box::pin(async move {
            if conn.in_transaction {
                return Err(DbError::usage(format!(
                    "connection `{}`: dropping stale scratch databases would commit the open transaction",
                    conn.name
                )));
            }
            let rows = conn
                .host_query(
                    "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
                    &[Value::Text(format!("{}%", SCRATCH_PREFIX.replace('_', "\\_")))],
                )
                .await?;
            let mut dropped = Vec::new();
            for row in rows {
                let Some(name) = row.first().and_then(text) else {
                    continue;
                };
                let free = conn
                    .host_query("SELECT IS_FREE_LOCK(?)", &[Value::Text(name.clone())])
                    .await?;
                if free.first().and_then(|r| r.first()).and_then(int) != Some(1) {
                    continue; // a live dry-run holds it
                }
                let quoted = Dialect::MySql.quote_identifier(&name)?;
                conn.host_simple(&format!("DROP DATABASE IF EXISTS {quoted}"))
                    .await?;
                tracing::info!(connection = %conn.name, "dropped stale dry-run scratch database `{name}`");
                dropped.push(name);
            }
            Ok(dropped)
        })
    }
}

impl Connection {
    /// Creates, fills and enters the scratch database; on failure cleans up
    /// and returns why, for the refusal message.
    pub(crate) async fn make_scratch(
        &mut self,
        run_id: &str,
        writes: &[String],
    ) -> Result<(Scratch, DryRunMode), String> {
        let row = self
            .host_query("SELECT CAST(DATABASE() AS CHAR), CONNECTION_ID()", &[])
            .await
            .map_err(|e| e.to_string())?;
        let row = row.into_iter().next().unwrap_or_default();
        let Some(source) = row.first().and_then(text) else {
            return Err("the connection's URL names no database".into());
        };
        let connection_id = row.get(1).and_then(int).unwrap_or(0);
        let database = scratch_name(run_id, connection_id);
        let other_databases: BTreeSet<String> = self
            .host_query(
                "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|r| r.first().and_then(text))
            .map(|n| n.to_lowercase())
            .filter(|n| n != "information_schema")
            .collect();
        // The lock first: a scratch database never exists without its owner's lock held.
        let locked = self
            .host_query("SELECT GET_LOCK(?, 0)", &[Value::Text(database.clone())])
            .await
            .map_err(|e| e.to_string())?;
        if locked.first().and_then(|r| r.first()).and_then(int) != Some(1) {
            return Err(format!("the lock `{database}` is taken"));
        }
        let saved = match self
            .host_query(
                "SELECT @@SESSION.sql_mode, @@SESSION.foreign_key_checks",
                &[],
            )
            .await
        {
            Ok(rows) => rows.into_iter().next().unwrap_or_default(),
            Err(e) => {
                self.abandon_scratch(&source, &database).await;
                return Err(e.to_string());
            }
        };
        let cloned = self.clone_database(&source, &database, writes).await;
        // Session settings back as they were, whatever happened.
        let mut restored = Ok(());
        if let Some(mode) = saved.first().and_then(text) {
            restored = self
                .host_query("SET SESSION sql_mode = ?", &[Value::Text(mode)])
                .await
                .map(|_| ());
        }
        if let Some(checks) = saved.get(1).and_then(int) {
            restored = restored.and(
                self.host_simple(&format!("SET SESSION foreign_key_checks = {checks}"))
                    .await,
            );
        }
        if let Ok(backend) = self.idle() {
            let _ = backend.clear_statement_cache().await;
        }
        match cloned.and_then(|ok| restored.map(|()| ok)) {
            Ok(mode) => {
                let read_through = match &mode {
                    DryRunMode::Scratch { read_through, .. } => read_through.clone(),
                    _ => Vec::new(),
                };
                Ok((
                    Scratch {
                        database,
                        source,
                        other_databases,
                        read_through: read_through.iter().map(|t| t.to_lowercase()).collect(),
                    },
                    mode,
                ))
            }
            Err(e) => {
                self.abandon_scratch(&source, &database).await;
                Err(e.message)
            }
        }
    }

    /// Drops a scratch that could not be completed, and releases its lock.
    pub(crate) async fn abandon_scratch(&mut self, source: &str, database: &str) {
        if let Ok(q) = Dialect::MySql.quote_identifier(source) {
            let _ = self.host_simple(&format!("USE {q}")).await;
        }
        self.marks.mariadb_database = Some(source.to_owned());
        if let Ok(q) = Dialect::MySql.quote_identifier(database) {
            let _ = self
                .host_simple(&format!("DROP DATABASE IF EXISTS {q}"))
                .await;
        }
        let _ = self
            .host_query(
                "SELECT RELEASE_LOCK(?)",
                &[Value::Text(database.to_owned())],
            )
            .await;
        if let Ok(backend) = self.idle() {
            let _ = backend.clear_statement_cache().await;
        }
    }

    /// Clones `source` into the new database `database` and enters it (see the module docs).
    pub(crate) async fn clone_database(
        &mut self,
        source: &str,
        database: &str,
        writes: &[String],
    ) -> Result<DryRunMode, DbError> {
        let q = |n: &str| Dialect::MySql.quote_identifier(n);
        let (qs, qd) = (q(source)?, q(database)?);
        let charset = self
            .host_query(
                "SELECT CAST(DEFAULT_CHARACTER_SET_NAME AS CHAR), CAST(DEFAULT_COLLATION_NAME AS CHAR) \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                &[Value::Text(source.to_owned())],
            )
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut create = format!("CREATE DATABASE {qd}");
        if let (Some(cs), Some(coll)) = (
            charset.first().and_then(text),
            charset.get(1).and_then(text),
        ) && [&cs, &coll]
            .iter()
            .all(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            create.push_str(&format!(" CHARACTER SET {cs} COLLATE {coll}"));
        }
        self.host_simple(&create).await?;

        let objects = self
            .host_query(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
                &[Value::Text(source.to_owned())],
            )
            .await?;
        let (mut tables, mut views, mut sequences) = (Vec::new(), Vec::new(), Vec::new());
        for row in &objects {
            let (Some(name), Some(kind)) = (row.first().and_then(text), row.get(1).and_then(text))
            else {
                continue;
            };
            match kind.as_str() {
                "VIEW" => views.push(name),
                "SEQUENCE" => sequences.push(name),
                _ => tables.push(name),
            }
        }
        let copied = self.tables_to_copy(source, &tables, writes).await?;
        let read_through: Vec<String> = tables
            .iter()
            .filter(|t| !copied.contains(*t))
            .cloned()
            .collect();

        self.host_simple("SET SESSION foreign_key_checks = 0")
            .await?;
        self.host_simple("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'")
            .await?;
        self.host_simple(&format!("USE {qd}")).await?;
        // The session check now holds the session to the scratch.
        self.marks.mariadb_database = Some(database.to_owned());

        for table in &copied {
            let shown = self
                .host_text_query(&format!("SHOW CREATE TABLE {qs}.{}", q(table)?))
                .await?;
            let ddl = shown
                .first()
                .and_then(|r| r.get(1))
                .and_then(text)
                .ok_or_else(|| {
                    DbError::new(
                        DbErrorKind::Other,
                        format!("SHOW CREATE TABLE {table} returned nothing"),
                    )
                })?;
            self.host_simple(&ddl).await?;
        }
        for sequence in &sequences {
            let shown = self
                .host_text_query(&format!("SHOW CREATE SEQUENCE {qs}.{}", q(sequence)?))
                .await?;
            if let Some(ddl) = shown.first().and_then(|r| r.get(1)).and_then(text) {
                self.host_simple(&ddl).await?;
                let next = self
                    .host_text_query(&format!(
                        "SELECT next_not_cached_value FROM {qs}.{}",
                        q(sequence)?
                    ))
                    .await?;
                if let Some(next) = next.first().and_then(|r| r.first()).and_then(int) {
                    self.host_simple(&format!("SELECT SETVAL({}, {next}, 0)", q(sequence)?))
                        .await?;
                }
            }
        }
        for table in &read_through {
            let qt = q(table)?;
            self.host_simple(&format!(
                "CREATE ALGORITHM=TEMPTABLE SQL SECURITY INVOKER VIEW {qt} AS SELECT * FROM {qs}.{qt}"
            ))
            .await?;
        }
        for table in &copied {
            self.copy_rows(&qs, &qd, source, table).await?;
        }

        let mut not_cloned = Vec::new();
        let triggers = self
            .host_query(
                "SELECT CAST(TRIGGER_NAME AS CHAR), CAST(EVENT_OBJECT_TABLE AS CHAR) FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = ? ORDER BY ACTION_ORDER",
                &[Value::Text(source.to_owned())],
            )
            .await?;
        for row in triggers {
            let (Some(trigger), Some(table)) =
                (row.first().and_then(text), row.get(1).and_then(text))
            else {
                continue;
            };
            if !copied.contains(&table) {
                continue;
            }
            let shown = self
                .host_text_query(&format!("SHOW CREATE TRIGGER {qs}.{}", q(&trigger)?))
                .await?;
            let Some(ddl) = shown.first().and_then(|r| r.get(2)).and_then(text) else {
                not_cloned.push(format!(
                    "trigger `{trigger}`: SHOW CREATE TRIGGER returned nothing"
                ));
                continue;
            };
            if let Err(e) = self.host_simple(&without_definer(&ddl)).await {
                not_cloned.push(format!("trigger `{trigger}`: {e}"));
            }
        }
        // Views may depend on views: retry until no progress.
        let mut pending: Vec<(String, String)> = Vec::new();
        for view in &views {
            let shown = self
                .host_text_query(&format!("SHOW CREATE VIEW {qs}.{}", q(view)?))
                .await?;
            if let Some(ddl) = shown.first().and_then(|r| r.get(1)).and_then(text) {
                let ddl = without_definer(&ddl).replace(&format!("{qs}."), &format!("{qd}."));
                pending.push((view.clone(), ddl));
            }
        }
        while !pending.is_empty() {
            let attempted = pending.len();
            let mut failed = Vec::new();
            for (view, ddl) in std::mem::take(&mut pending) {
                if let Err(e) = self.host_simple(&ddl).await {
                    failed.push((view, ddl, e));
                }
            }
            if failed.len() == attempted {
                not_cloned.extend(
                    failed
                        .into_iter()
                        .map(|(v, _, e)| format!("view `{v}`: {e}")),
                );
                break;
            }
            pending = failed.into_iter().map(|(v, d, _)| (v, d)).collect();
        }
        Ok(DryRunMode::Scratch {
            database: database.to_owned(),
            source: source.to_owned(),
            copied,
            read_through,
            not_cloned,
        })
    }

    /// The tables whose data the scratch copies: all of them without a
    /// declaration, else the declared ones and their foreign-key relatives.
    pub(crate) async fn tables_to_copy(
        &mut self,
        source: &str,
        tables: &[String],
        writes: &[String],
    ) -> Result<Vec<String>, DbError> {
        if writes.is_empty() {
            return Ok(tables.to_vec());
        }
        let by_lower: BTreeMap<String, &String> =
            tables.iter().map(|t| (t.to_lowercase(), t)).collect();
        let mut set: BTreeSet<String> = writes
            .iter()
            .filter_map(|w| {
                let unqualified = match w.split_once('.') {
                    Some((db, t)) if db.eq_ignore_ascii_case(source) => t,
                    Some(_) => return None,
                    None => w.as_str(),
                };
                by_lower
                    .get(&unqualified.to_lowercase())
                    .map(|t| (*t).clone())
            })
            .collect();
        let edges: Vec<(String, String)> = self
            .host_query(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(REFERENCED_TABLE_NAME AS CHAR) \
                 FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL",
                &[Value::Text(source.to_owned()), Value::Text(source.to_owned())],
            )
            .await?
            .iter()
            .filter_map(|r| Some((r.first().and_then(text)?, r.get(1).and_then(text)?)))
            .collect();
        loop {
            let size = set.len();
            for (child, parent) in &edges {
                if set.contains(child) || set.contains(parent) {
                    set.insert(child.clone());
                    set.insert(parent.clone());
                }
            }
            if set.len() == size {
                break;
            }
        }
        Ok(tables
            .iter()
            .filter(|t| set.contains(*t))
            .cloned()
            .collect())
    }

    /// Copies the rows of `source.table` into the scratch, reading a
    /// `READ COMMITTED` snapshot so that no source row is locked.
    pub(crate) async fn copy_rows(
        &mut self,
        qs: &str,
        qd: &str,
        source: &str,
        table: &str,
    ) -> Result<(), DbError> {
        let columns: Vec<String> = self
            .host_query(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND EXTRA NOT LIKE '%GENERATED%' \
                 ORDER BY ORDINAL_POSITION",
                &[
                    Value::Text(source.to_owned()),
                    Value::Text(table.to_owned()),
                ],
            )
            .await?
            .iter()
            .filter_map(|r| r.first().and_then(text))
            .map(|c| Dialect::MySql.quote_identifier(&c))
            .collect::<Result<_, _>>()?;
        if columns.is_empty() {
            return Ok(());
        }
        let qt = Dialect::MySql.quote_identifier(table)?;
        let list = columns.join(", ");
        let insert = format!("INSERT INTO {qd}.{qt} ({list}) SELECT {list} FROM {qs}.{qt}");
        self.host_simple("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await?;
        self.host_simple("START TRANSACTION").await?;
        match self.host_simple(&insert).await {
            Ok(()) => self.host_simple("COMMIT").await,
            Err(e) => {
                let _ = self.host_simple("ROLLBACK").await;
                // Statement-based binary logging refuses READ COMMITTED inserts (1665):
                // copy at the session's own isolation level instead.
                if e.code.as_deref() == Some("1665") {
                    self.host_simple(&insert).await
                } else {
                    Err(e)
                }
            }
        }
    }

    pub(crate) async fn drop_scratch(&mut self, scratch: Scratch, restore: &mut DryRunRestore) {
        let database = scratch.database.clone();
        // Dropped first, so that nothing else failing can keep it; the lock
        // goes last, so that no clean-up can race the drop.
        let dropped = match Dialect::MySql.quote_identifier(&database) {
            Ok(qd) => {
                self.host_simple(&format!("DROP DATABASE IF EXISTS {qd}"))
                    .await
            }
            Err(e) => Err(e.into()),
        };
        let switched = match Dialect::MySql.quote_identifier(&scratch.source) {
            Ok(qs) => self.host_simple(&format!("USE {qs}")).await,
            Err(e) => Err(e.into()),
        };
        self.marks.mariadb_database = Some(scratch.source.clone());
        let _ = self
            .host_query("SELECT RELEASE_LOCK(?)", &[Value::Text(database.clone())])
            .await;
        if let Ok(backend) = self.idle() {
            let _ = backend.clear_statement_cache().await;
        }
        match dropped {
            Ok(()) => restore.dropped = Some(database),
            Err(e) => restore.problems.push(format!(
                "scratch database `{database}` could not be dropped ({e}); the next run against this server drops it \
                 once this session has ended"
            )),
        }
        if let Err(e) = switched {
            restore.problems.push(format!(
                "connection `{}` could not switch back to `{}`: {e}",
                self.name, scratch.source
            ));
        }
    }

    /// AUTO_INCREMENT counters of the connection's database, by table.
    pub(crate) async fn auto_increments(&mut self) -> Result<BTreeMap<String, i64>, DbError> {
        // MySQL 8 caches these statistics for a day unless told otherwise; MariaDB has no such setting.
        let _ = self
            .host_simple("SET SESSION information_schema_stats_expiry = 0")
            .await;
        Ok(self
            .host_query(
                "SELECT CAST(TABLE_NAME AS CHAR), AUTO_INCREMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL",
                &[],
            )
            .await?
            .iter()
            .filter_map(|r| Some((r.first().and_then(text)?, r.get(1).and_then(int)?)))
            .collect())
    }

    pub(crate) async fn restore_auto_increments(
        &mut self,
        before: BTreeMap<String, i64>,
        restore: &mut DryRunRestore,
    ) {
        let now = match self.auto_increments().await {
            Ok(now) => now,
            Err(e) => {
                restore.problems.push(format!(
                    "cannot read AUTO_INCREMENT counters after the dry-run, none restored: {e}"
                ));
                return;
            }
        };
        let changed: Vec<(&String, i64, i64)> = before
            .iter()
            .filter_map(|(t, &b)| now.get(t).filter(|&&n| n != b).map(|&n| (t, b, n)))
            .collect();
        if changed.is_empty() {
            return;
        }
        let saved = self
            .host_query("SELECT @@SESSION.lock_wait_timeout", &[])
            .await
            .ok()
            .and_then(|r| r.first().and_then(|r| r.first()).and_then(int));
        let _ = self
            .host_simple(&format!(
                "SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}"
            ))
            .await;
        for (table, before, now) in changed {
            let result = match Dialect::MySql.quote_identifier(table) {
                Ok(qt) => {
                    self.host_simple(&format!("ALTER TABLE {qt} AUTO_INCREMENT = {before}"))
                        .await
                }
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) => restore
                    .restored
                    .push(format!("AUTO_INCREMENT of {table}: {now} → {before}")),
                Err(e) => restore.problems.push(format!(
                    "AUTO_INCREMENT of {table} moved ({before} → {now}) and cannot be reset: {e}"
                )),
            }
        }
        if let Some(saved) = saved {
            let _ = self
                .host_simple(&format!("SET SESSION lock_wait_timeout = {saved}"))
                .await;
        }
    }
}

/// `migrun_dryrun_<UTC yyyymmddhhmmss>_c<connection id>_p<pid>_<run id prefix>`, at most 64 characters.
pub(crate) fn scratch_name(run_id: &str, connection_id: i64) -> String {
    let run: String = run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut name = format!(
        "{SCRATCH_PREFIX}{}_c{connection_id}_p{}_{run}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );
    name.truncate(64);
    name
}

/// `CREATE DEFINER=`u`@`h` TRIGGER …` without its `DEFINER=…` clause, so the
/// object is created for the current user (another definer needs `SUPER`).
pub(crate) fn without_definer(ddl: &str) -> String {
    let tokens = sql::tokens(ddl, Dialect::MySql);
    let Some(at) = tokens.iter().position(|t| t.is("DEFINER")) else {
        return ddl.to_owned();
    };
    let mut end = tokens[at].end;
    let mut i = at + 1;
    if tokens.get(i).is_some_and(|t| t.is_punct('=')) {
        end = tokens[i].end;
        i += 1;
        // `user`@`host` (or CURRENT_USER): adjacent tokens, no space between them.
        let mut previous = None::<usize>;
        while let Some(t) = tokens.get(i) {
            if previous.is_some_and(|p| t.start != p) {
                break;
            }
            end = t.end;
            previous = Some(t.end);
            i += 1;
        }
    }
    format!("{}{}", &ddl[..tokens[at].start], ddl[end..].trim_start())
}
