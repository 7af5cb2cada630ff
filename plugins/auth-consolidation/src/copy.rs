//! Unit `copy-users`.

use std::collections::HashSet;

use migrun_sdk::{Connection, Context, Dialect, Result, Row, bail, info, params, progress};
use serde::Deserialize;

use crate::AuthConsolidation;
use crate::schema::{COLUMNS, SOURCE_TABLE, TARGET_TABLE, column_names, table_exists};
use crate::values::coerce;

pub fn run(plugin: &AuthConsolidation) -> Result<()> {
    let source = Connection::open("source")?;
    let target = Connection::open("target")?;
    let total: u64 =
        source.query_scalar(&format!("SELECT COUNT(*) FROM {SOURCE_TABLE}"), params![])?;

    if !table_exists(&target, TARGET_TABLE)? {
        bail!("{TARGET_TABLE} does not exist on target; run unit create-auth-users first");
    }

    let columns = column_names();
    let select = format!(
        "SELECT {} FROM {SOURCE_TABLE} ORDER BY id",
        columns.join(", ")
    );
    // Ids already copied, looked up per batch by range: two parameters whatever
    // the batch size, and the range holds at most the batch's ids plus any
    // rows the target gained on its own.
    let present_sql = format!(
        "SELECT id FROM {TARGET_TABLE} WHERE id BETWEEN {} AND {}",
        target.placeholder(1),
        target.placeholder(2)
    );

    let dialect = target.dialect();
    let mut writer = target.bulk_writer(TARGET_TABLE, &columns, plugin.batch_size as usize);
    let (mut done, mut skipped) = (0u64, 0u64);
    progress("copy-users", 0, total);
    for batch in source.cursor(&select, params![], plugin.batch_size)? {
        let batch = batch.context("reading users")?;
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            continue;
        };
        let (first, last) = (id_of(first)?, id_of(last)?);
        let present: HashSet<i64> = target
            .query_as::<i64>(&present_sql, params![first, last])?
            .into_iter()
            .collect();
        done += batch.len() as u64;
        for row in batch {
            if present.contains(&id_of(&row)?) {
                skipped += 1;
                continue;
            }
            let mut values: Vec<_> = row
                .into_values()
                .into_iter()
                .zip(COLUMNS)
                .map(|(value, (_, kind))| coerce(dialect, kind, value))
                .collect();
            if cfg!(auth_consolidation_v2) && !next_version_policy(&mut values) {
                continue;
            }
            writer.push(values)?;
        }
        writer
            .flush()
            .with_context(|| format!("inserting users with ids {first} to {last}"))?;
        progress("copy-users", done, total);
    }
    let copied = writer.finish()?;

    if copied > 0 && dialect == Dialect::Postgres {
        restart_postgres_identity(&target)?;
    }
    info!(copied = copied, skipped = skipped, total = total;
        "copied {copied} users into {TARGET_TABLE}; {skipped} were already present");
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
