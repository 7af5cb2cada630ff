//! Unit `copy-users`: re-syncs `auth_users` with `users` and records the migration.
//!
//! A row is judged column by column (`values::same`, which looks through each dialect's
//! spelling of one datum), so any change since an earlier copy is seen, whether or not
//! the application moved `updated_at`. A copy whose `updated_at` is later than its
//! source's is newer than it (the application writes `auth_users` after the switch) and
//! is never overwritten.

use std::collections::HashMap;

use migrun_sdk::{
    Connection, Context, Dialect, Result, Row, Value, bail, info, params, progress, warn,
};
use serde::Deserialize;

use crate::AuthConsolidation;
use crate::schema::{
    COLUMNS, Kind, SCHEMA_MIGRATIONS, SOURCE_TABLE, TARGET_TABLE, column_names, table_exists,
};
use crate::values::{coerce, same, timestamp};

/// Position of `updated_at` in [`COLUMNS`].
const UPDATED_AT: usize = 17;

/// What one pass did, for the closing log line.
#[derive(Debug, Default)]
struct Tally {
    inserted: u64,
    updated: u64,
    unchanged: u64,
    kept_newer: u64,
    only_in_target: u64,
}

pub fn run(plugin: &AuthConsolidation) -> Result<()> {
    let source = Connection::open("source")?;
    let target = Connection::open("target")?;
    let total: u64 =
        source.query_scalar(&format!("SELECT COUNT(*) FROM {SOURCE_TABLE}"), params![])?;

    for table in [TARGET_TABLE, SCHEMA_MIGRATIONS] {
        if !table_exists(&target, table)? {
            bail!("{table} does not exist on target; run unit create-auth-users first");
        }
    }

    let columns = column_names();
    let select = format!(
        "SELECT {} FROM {SOURCE_TABLE} ORDER BY id",
        columns.join(", ")
    );
    // The copies of a batch, looked up by range: from just after the previous batch's
    // last id to this batch's last id, so every id up to the source's largest is seen
    // once, including ids only the target holds. Two parameters whatever the batch size.
    let copies_sql = format!(
        "SELECT {} FROM {TARGET_TABLE} WHERE id > {} AND id <= {}",
        columns.join(", "),
        target.placeholder(1),
        target.placeholder(2)
    );
    let update_sql = update_sql(&target);

    let dialect = target.dialect();
    let mut writer = target.bulk_writer(TARGET_TABLE, &columns, plugin.batch_size as usize);
    let mut tally = Tally::default();
    let mut after = i64::MIN;
    let mut done = 0u64;
    progress("copy-users", 0, total);
    for batch in source.cursor(&select, params![], plugin.batch_size)? {
        let batch = batch.context("reading users")?;
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            continue;
        };
        let (first, last) = (id_of(first)?, id_of(last)?);
        let mut copies: HashMap<i64, Row> = HashMap::new();
        for copy in target.query(&copies_sql, params![after, last])? {
            copies.insert(id_of(&copy)?, copy);
        }
        done += batch.len() as u64;
        for row in batch {
            let id = id_of(&row)?;
            let mut values: Vec<Value> = row
                .into_values()
                .into_iter()
                .zip(COLUMNS)
                .map(|(value, (_, kind))| coerce(dialect, kind, value))
                .collect();
            let Some(copy) = copies.remove(&id) else {
                // The next version's policy applies to the accounts it carries over, not
                // to copies an earlier version made.
                if cfg!(auth_consolidation_v2) && !next_version_policy(&mut values) {
                    continue;
                }
                writer.push(values)?;
                tally.inserted += 1;
                continue;
            };
            if !differs(&values, &copy) {
                tally.unchanged += 1;
            } else if copy_is_newer(&values, &copy) {
                if tally.kept_newer == 0 {
                    warn!(id = id;
                        "{TARGET_TABLE} id {id} differs from {SOURCE_TABLE} but was updated after it \
                         (updated_at {} > {}): kept as it is", shown(copy.values().get(UPDATED_AT)), shown(values.get(UPDATED_AT)));
                }
                tally.kept_newer += 1;
            } else {
                let mut params: Vec<Value> = values.into_iter().skip(1).collect();
                params.push(Value::from(id));
                target
                    .execute(&update_sql, params)
                    .with_context(|| format!("updating {TARGET_TABLE} id {id}"))?;
                tally.updated += 1;
            }
        }
        tally.only_in_target += copies.len() as u64;
        writer
            .flush()
            .with_context(|| format!("inserting users with ids {first} to {last}"))?;
        after = last;
        progress("copy-users", done, total);
    }
    writer.finish()?;
    let beyond: u64 = target.query_scalar(
        &format!(
            "SELECT COUNT(*) FROM {TARGET_TABLE} WHERE id > {}",
            target.placeholder(1)
        ),
        params![after],
    )?;
    tally.only_in_target += beyond;

    if tally.inserted > 0 && dialect == Dialect::Postgres {
        restart_postgres_identity(&target)?;
    }
    if tally.kept_newer > 0 {
        warn!(rows = tally.kept_newer;
            "{} {TARGET_TABLE} rows were updated after their {SOURCE_TABLE} row and were not overwritten; \
             the sample check reports them if sampled", tally.kept_newer);
    }
    if tally.only_in_target > 0 {
        warn!(rows = tally.only_in_target;
            "{} {TARGET_TABLE} rows have ids {SOURCE_TABLE} does not hold (registered after the switch, \
             or deleted from {SOURCE_TABLE} since an earlier copy): left as they are; the row count check \
             reports the difference", tally.only_in_target);
    }
    info!(inserted = tally.inserted, updated = tally.updated, unchanged = tally.unchanged, total = total;
        "re-synced {TARGET_TABLE} with {total} users: {} inserted, {} updated, {} unchanged",
        tally.inserted, tally.updated, tally.unchanged);
    record_migration(&target, &plugin.migration_version)
}

/// `UPDATE auth_users SET name = ?, … WHERE id = ?`: every column but the id, then the id.
fn update_sql(target: &Connection) -> String {
    let assignments: Vec<String> = COLUMNS
        .iter()
        .skip(1)
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = {}", target.placeholder(i + 1)))
        .collect();
    format!(
        "UPDATE {TARGET_TABLE} SET {} WHERE id = {}",
        assignments.join(", "),
        target.placeholder(COLUMNS.len())
    )
}

/// Whether the values about to be written differ from the copy in any column.
fn differs(values: &[Value], copy: &Row) -> bool {
    COLUMNS
        .iter()
        .zip(values)
        .zip(copy.values())
        .any(|(((_, kind), a), b)| !same(*kind, a, b))
}

/// Whether the copy's `updated_at` is later than the source's (a missing one is oldest).
fn copy_is_newer(values: &[Value], copy: &Row) -> bool {
    debug_assert_eq!(COLUMNS[UPDATED_AT], ("updated_at", Kind::Timestamp));
    let at = |v: Option<&Value>| v.and_then(timestamp);
    at(copy.values().get(UPDATED_AT)) > at(values.get(UPDATED_AT))
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// Records the migration in Rails' `schema_migrations`, once: a rerun finds the row.
fn record_migration(target: &Connection, version: &str) -> Result<()> {
    let present: i64 = target.query_scalar(
        &format!(
            "SELECT COUNT(*) FROM {SCHEMA_MIGRATIONS} WHERE version = {}",
            target.placeholder(1)
        ),
        params![version],
    )?;
    if present > 0 {
        info!(version = version; "{SCHEMA_MIGRATIONS} already records version {version}");
        return Ok(());
    }
    target
        .execute(
            &format!(
                "INSERT INTO {SCHEMA_MIGRATIONS} (version) VALUES ({})",
                target.placeholder(1)
            ),
            params![version],
        )
        .with_context(|| format!("recording version {version} in {SCHEMA_MIGRATIONS}"))?;
    info!(version = version; "recorded version {version} in {SCHEMA_MIGRATIONS}");
    Ok(())
}

/// The behaviour change of the `auth_consolidation_v2` build, a policy a team
/// might adopt in a later release: locked accounts are not carried over, and
/// failed-login counters start from zero. Returns whether to copy the row.
fn next_version_policy(values: &mut [migrun_sdk::Value]) -> bool {
    let position = |name: &str| COLUMNS.iter().position(|(n, _)| *n == name);
    if let Some(locked) = position("locked_at")
        && !matches!(values[locked], migrun_sdk::Value::Null)
    {
        return false;
    }
    if let Some(failed) = position("failed_attempts") {
        values[failed] = migrun_sdk::Value::from(0i64);
    }
    true
}

fn id_of(row: &Row) -> Result<i64> {
    row.get_at(0).context("reading a user's id")
}

#[derive(Deserialize)]
struct IdColumn {
    identity: Option<String>,
    sequence: Option<String>,
}

/// Moves the id generator past the largest id, so the next registration does
/// not collide with a copied user. `ALTER … RESTART` rather than `setval`:
/// it is transactional, so a dry-run that rolls back leaves the sequence alone.
fn restart_postgres_identity(target: &Connection) -> Result<()> {
    let next: i64 = target.query_scalar(
        &format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {TARGET_TABLE}"),
        params![],
    )?;
    let column: Option<IdColumn> = target.query_opt_as(
        &format!(
            "SELECT a.attidentity::text AS identity, \
                    pg_get_serial_sequence('{TARGET_TABLE}', 'id') AS sequence \
             FROM pg_attribute a \
             WHERE a.attrelid = '{TARGET_TABLE}'::regclass AND a.attname = 'id'"
        ),
        params![],
    )?;
    let Some(column) = column else {
        return Ok(());
    };
    // `next` is an integer we computed, never text from the data.
    let sql = match (column.identity.as_deref(), column.sequence) {
        (Some("a" | "d"), _) => {
            format!("ALTER TABLE {TARGET_TABLE} ALTER COLUMN id RESTART WITH {next}")
        }
        (_, Some(sequence)) => format!("ALTER SEQUENCE {sequence} RESTART WITH {next}"),
        _ => return Ok(()),
    };
    target
        .execute(&sql, params![])
        .context("restarting the id sequence")?;
    info!(next_id = next; "new {TARGET_TABLE} ids continue at {next}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use migrun_sdk::Column;

    use super::*;

    fn user(name: &str, updated_at: Value) -> Vec<Value> {
        let mut v = vec![Value::Null; COLUMNS.len()];
        v[0] = Value::Int(7);
        v[1] = Value::Text(name.into());
        v[UPDATED_AT] = updated_at;
        v
    }

    fn copy(values: Vec<Value>) -> Row {
        let columns: Vec<Column> = column_names()
            .into_iter()
            .map(|c| Column::new(c, "t"))
            .collect();
        Row::new(columns, values)
    }

    #[test]
    fn rows_are_judged_column_by_column_and_by_updated_at() {
        let at = |s: &str| Value::Timestamp(s.into());
        let source = user("Zoë", Value::Text("2024-01-02 03:04:05".into()));
        // The same datum in another spelling is no change.
        let same = copy(user("Zoë", at("2024-01-02T03:04:05.000000")));
        assert!(!differs(&source, &same));
        // A changed name with the same updated_at is stale: re-synced.
        let stale = copy(user("Zoe", at("2024-01-02T03:04:05")));
        assert!(differs(&source, &stale));
        assert!(!copy_is_newer(&source, &stale));
        // A copy updated after its source is kept.
        let newer = copy(user("Zoe", at("2024-01-02T03:04:05.5")));
        assert!(copy_is_newer(&source, &newer));
        // A copy without updated_at is never newer.
        assert!(!copy_is_newer(&source, &copy(user("Zoe", Value::Null))));
    }
}
