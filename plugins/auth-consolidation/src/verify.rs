//! The verification checks: row counts, sampled rows, indexes, and the migration's
//! `schema_migrations` row.

use std::collections::HashMap;

use migrun_sdk::{Connection, Result, Row, Value, check, params};

use crate::AuthConsolidation;
use crate::schema::{
    COLUMNS, INDEXES, IndexState, SCHEMA_MIGRATIONS, SOURCE_TABLE, TARGET_TABLE, column_names,
    index_state, table_exists, table_indexes,
};

/// The check that the migration's version is recorded.
pub const MIGRATION_CHECK: &str = "schema_migrations records the migration";
use crate::values::same;

/// Ids per `IN (…)` lookup, well under every dialect's parameter limit.
const LOOKUP_CHUNK: usize = 500;
/// Ids per batch while choosing the sample.
const ID_BATCH: u32 = 10_000;

pub fn run(plugin: &AuthConsolidation) -> Result<()> {
    let source = Connection::open("source")?;
    let target = Connection::open("target")?;

    if !table_exists(&target, TARGET_TABLE)? {
        let detail = format!("{TARGET_TABLE} does not exist on target");
        check("row counts match", false, &detail);
        check("sample rows match", false, &detail);
        for spec in INDEXES {
            check(spec.check, false, &detail);
        }
        return check_migration(&target, &plugin.migration_version);
    }

    check_counts(&source, &target)?;
    check_sample(&source, &target, plugin.sample_size)?;
    check_indexes(&target)?;
    check_migration(&target, &plugin.migration_version)
}

/// Rails' `schema_migrations` holds the configured version, so `rails db:migrate` does
/// not run the migration again and `db:migrate:down VERSION=…` has it to undo.
fn check_migration(target: &Connection, version: &str) -> Result<()> {
    if !table_exists(target, SCHEMA_MIGRATIONS)? {
        check(
            MIGRATION_CHECK,
            false,
            &format!("{SCHEMA_MIGRATIONS} does not exist on target (version {version})"),
        );
        return Ok(());
    }
    let rows: i64 = target.query_scalar(
        &format!(
            "SELECT COUNT(*) FROM {SCHEMA_MIGRATIONS} WHERE version = {}",
            target.placeholder(1)
        ),
        params![version],
    )?;
    let detail = if rows > 0 {
        format!("version {version} present")
    } else {
        format!("no row with version {version} in {SCHEMA_MIGRATIONS}")
    };
    check(MIGRATION_CHECK, rows > 0, &detail);
    Ok(())
}

fn check_counts(source: &Connection, target: &Connection) -> Result<()> {
    let users: i64 =
        source.query_scalar(&format!("SELECT COUNT(*) FROM {SOURCE_TABLE}"), params![])?;
    let auth_users: i64 =
        target.query_scalar(&format!("SELECT COUNT(*) FROM {TARGET_TABLE}"), params![])?;
    check(
        "row counts match",
        users == auth_users,
        &format!("{SOURCE_TABLE}: {users}, {TARGET_TABLE}: {auth_users}"),
    );
    Ok(())
}

/// Positions (0-based, ascending, distinct) of a sample of `k` among `n`
/// ordered rows: the first, the last, and evenly spaced ones in between.
pub fn sample_positions(n: u64, k: u64) -> Vec<u64> {
    if n == 0 || k == 0 {
        return Vec::new();
    }
    if k >= n {
        return (0..n).collect();
    }
    if k == 1 {
        return vec![0];
    }
    let mut positions: Vec<u64> = (0..k)
        .map(|i| ((i as u128 * (n - 1) as u128 + (k - 1) as u128 / 2) / (k - 1) as u128) as u64)
        .collect();
    positions.dedup();
    positions
}

/// The ids at the sample positions, read by streaming the ordered ids once.
fn sample_ids(source: &Connection, sample_size: u32) -> Result<Vec<i64>> {
    let n: u64 = source.query_scalar(&format!("SELECT COUNT(*) FROM {SOURCE_TABLE}"), params![])?;
    let positions = sample_positions(n, u64::from(sample_size));
    let mut wanted = positions.iter().copied().peekable();
    let mut ids = Vec::with_capacity(positions.len());
    let mut position = 0u64;
    let sql = format!("SELECT id FROM {SOURCE_TABLE} ORDER BY id");
    for batch in source.cursor_as::<i64>(&sql, params![], ID_BATCH)? {
        for id in batch? {
            if wanted.next_if_eq(&position).is_some() {
                ids.push(id);
            }
            position += 1;
        }
        if wanted.peek().is_none() {
            break; // dropping the cursor frees the connection
        }
    }
    Ok(ids)
}

/// The rows with `ids` from `table`, by id.
fn rows_by_id(conn: &Connection, table: &str, ids: &[i64]) -> Result<HashMap<i64, Row>> {
    let columns = column_names().join(", ");
    let mut rows = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE id IN ({})",
            conn.dialect().placeholders(1, chunk.len())
        );
        let params: Vec<Value> = chunk.iter().map(|&id| Value::from(id)).collect();
        for row in conn.query(&sql, params)? {
            rows.insert(row.get_at::<i64>(0)?, row);
        }
    }
    Ok(rows)
}

/// The first difference between a source row and its copy, if any.
pub fn first_difference(id: i64, source: &Row, copy: Option<&Row>) -> Option<String> {
    let Some(copy) = copy else {
        return Some(format!("id {id} is missing from {TARGET_TABLE}"));
    };
    COLUMNS.iter().enumerate().find_map(|(i, (name, kind))| {
        let (a, b) = (source.values().get(i)?, copy.values().get(i)?);
        (!same(*kind, a, b)).then(|| {
            format!("id {id}, column {name}: {SOURCE_TABLE} has {a}, {TARGET_TABLE} has {b}")
        })
    })
}

fn check_sample(source: &Connection, target: &Connection, sample_size: u32) -> Result<()> {
    let ids = sample_ids(source, sample_size)?;
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
        check(
            "sample rows match",
            true,
            &format!("{SOURCE_TABLE} is empty: nothing to compare"),
        );
        return Ok(());
    };
    let originals = rows_by_id(source, SOURCE_TABLE, &ids)?;
    let copies = rows_by_id(target, TARGET_TABLE, &ids)?;

    let differences: Vec<String> = ids
        .iter()
        .filter_map(|id| {
            let original = originals.get(id)?;
            first_difference(*id, original, copies.get(id))
        })
        .collect();
    let detail = match differences.first() {
        None => format!(
            "{} sampled rows (ids {first} to {last}) equal in all {} columns",
            ids.len(),
            COLUMNS.len()
        ),
        Some(first_difference) => format!(
            "{} of {} sampled rows differ; first: {first_difference}",
            differences.len(),
            ids.len()
        ),
    };
    check("sample rows match", differences.is_empty(), &detail);
    Ok(())
}

fn check_indexes(target: &Connection) -> Result<()> {
    let indexes = table_indexes(target, TARGET_TABLE)?;
    let present = || {
        let all: Vec<String> = indexes.iter().map(|i| i.describe()).collect();
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join("; ")
        }
    };
    for spec in INDEXES {
        let wanted = spec.columns.join(", ");
        let (ok, detail) = match index_state(&spec, &indexes) {
            IndexState::Present(found) => (true, found.describe()),
            IndexState::NotUnique(found) => (
                false,
                format!("{} exists but is not unique", found.describe()),
            ),
            IndexState::NameTaken(_) | IndexState::Missing => (
                false,
                format!(
                    "no UNIQUE index on ({wanted}); indexes on {TARGET_TABLE}: {}",
                    present()
                ),
            ),
        };
        check(spec.check, ok, &detail);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use migrun_sdk::Column;

    use super::*;

    #[test]
    fn samples_include_first_and_last_evenly_spaced() {
        assert_eq!(sample_positions(0, 100), Vec::<u64>::new());
        assert_eq!(sample_positions(3, 100), [0, 1, 2]);
        assert_eq!(sample_positions(10, 1), [0]);
        assert_eq!(sample_positions(10, 2), [0, 9]);
        assert_eq!(sample_positions(101, 5), [0, 25, 50, 75, 100]);
        let p = sample_positions(1_000_003, 100);
        assert_eq!(p.len(), 100);
        assert_eq!((p[0], p[99]), (0, 1_000_002));
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            sample_positions(u64::MAX, 3),
            [0, u64::MAX / 2, u64::MAX - 1]
        );
    }

    fn row(values: Vec<Value>) -> Row {
        let columns: Vec<Column> = column_names()
            .into_iter()
            .map(|c| Column::new(c, "t"))
            .collect();
        Row::new(columns, values)
    }

    fn user(email: &str, created_at: Value) -> Vec<Value> {
        let mut v = vec![Value::Null; COLUMNS.len()];
        v[0] = Value::Int(42);
        v[1] = Value::Text("Zoë".into());
        v[3] = Value::Text(email.into());
        v[16] = created_at;
        v
    }

    #[test]
    fn differences_name_the_id_and_column() {
        let original = row(user(
            "o'brien@example.com",
            Value::Text("2024-01-02 03:04:05.5".into()),
        ));
        let same_copy = row(user(
            "o'brien@example.com",
            Value::Timestamp("2024-01-02T03:04:05.500000".into()),
        ));
        assert_eq!(first_difference(42, &original, Some(&same_copy)), None);

        let other = row(user(
            "obrien@example.com",
            Value::Timestamp("2024-01-02T03:04:05.5".into()),
        ));
        assert_eq!(
            first_difference(42, &original, Some(&other)).unwrap(),
            "id 42, column email: users has \"o'brien@example.com\", auth_users has \"obrien@example.com\""
        );
        assert_eq!(
            first_difference(42, &original, None).unwrap(),
            "id 42 is missing from auth_users"
        );
    }
}
