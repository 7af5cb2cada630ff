//! Unit `create-auth-users`.

use migrun_sdk::{Connection, Context, Result, bail, info, params, warn};

use crate::schema::{
    CREATE_SCHEMA_MIGRATIONS, INDEXES, IndexState, SCHEMA_MIGRATIONS, TARGET_TABLE, column_names,
    create_table_sql, index_state, table_columns, table_exists, table_indexes,
};

pub fn run() -> Result<()> {
    let target = Connection::open("target")?;
    let dialect = target.dialect();

    if table_exists(&target, TARGET_TABLE)? {
        let present = table_columns(&target, TARGET_TABLE)?;
        let missing: Vec<&str> = column_names()
            .into_iter()
            .filter(|c| !present.iter().any(|p| p == c))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{TARGET_TABLE} already exists but lacks the columns {}; refusing to copy into a different table",
                missing.join(", ")
            );
        }
        info!(table = TARGET_TABLE; "{TARGET_TABLE} already exists with every column; checking its indexes");
    } else {
        // During a MariaDB dry-run the host refuses DDL (it would commit);
        // that `refused` error ends the dry-run here, with nothing changed.
        target
            .execute(create_table_sql(dialect)?, params![])
            .with_context(|| format!("creating {TARGET_TABLE}"))?;
        info!(table = TARGET_TABLE, dialect = dialect; "created {TARGET_TABLE}");
    }

    let indexes = table_indexes(&target, TARGET_TABLE)?;
    for spec in INDEXES {
        match index_state(&spec, &indexes) {
            IndexState::Present(found) => {
                info!(index = found.name; "{} present: {}", spec.check.trim_end_matches(" exists"), found.describe());
            }
            IndexState::NameTaken(found) => bail!(
                "index {} already exists on {TARGET_TABLE} as {}, where UNIQUE ({}) is expected; drop or rename it first",
                spec.name,
                found.describe(),
                spec.columns.join(", ")
            ),
            state @ (IndexState::NotUnique(_) | IndexState::Missing) => {
                if let IndexState::NotUnique(found) = state {
                    warn!(index = found.name;
                        "{} is not unique; adding the unique index {}", found.describe(), spec.name);
                }
                target
                    .execute(&spec.create_sql(), params![])
                    .with_context(|| format!("creating index {}", spec.name))?;
                info!(index = spec.name; "created UNIQUE index {} ({})", spec.name, spec.columns.join(", "));
            }
        }
    }
    create_schema_migrations(&target)
}

/// Rails' `schema_migrations`, created in Rails' shape when the target has none (a target
/// that never ran `rails db:migrate`); an existing one must have its `version` column.
fn create_schema_migrations(target: &Connection) -> Result<()> {
    if table_exists(target, SCHEMA_MIGRATIONS)? {
        let columns = table_columns(target, SCHEMA_MIGRATIONS)?;
        if !columns.iter().any(|c| c == "version") {
            bail!(
                "{SCHEMA_MIGRATIONS} exists on target without a `version` column ({}); it is not Rails' table, \
                 and nothing was written to it",
                columns.join(", ")
            );
        }
        return Ok(());
    }
    target
        .execute(CREATE_SCHEMA_MIGRATIONS, params![])
        .with_context(|| format!("creating {SCHEMA_MIGRATIONS}"))?;
    info!(table = SCHEMA_MIGRATIONS; "created Rails' {SCHEMA_MIGRATIONS} (version varchar(255) primary key)");
    Ok(())
}
