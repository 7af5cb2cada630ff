//! Runs the SQL statements it is configured with on `target`, in one unit:
//! the dry-run and plan tests use it to put exactly the statements of seed
//! 003's safe patterns and anti-patterns through a real run.
//!
//! Config `sql`: statements separated by lines holding only `;;`. A
//! statement `-- migrun:backup <label> [table …]` asks the host for a
//! snapshot of `target` instead (the backup tests use it); `-- migrun:query
//! <select>` runs the select as a query and logs each value of its rows
//! (`value` field, the SDK's debug form), failing the unit on a database error
//! (the pgvector tests read columns through contract 0.1.1 with it).
//!
//! Two more directives drive the streaming bulk insert tests:
//! `-- migrun:bulk <table> <first id> <count>` bulk-inserts `count` rows
//! `(id, note)` = `(first id + i, "<table>-<id>")` in one call, and
//! `-- migrun:expect <n> <sql>` runs a query whose first value must be `n`
//! (the unit fails otherwise).

use migrun_sdk::{
    Config, ConfigKey, Connection, Error, Need, Plugin, PluginInfo, Result, Value, params,
};

struct SqlScript {
    statements: Vec<String>,
}

impl Plugin for SqlScript {
    fn describe() -> PluginInfo {
        PluginInfo::new("sql-script", env!("CARGO_PKG_VERSION"))
            .description("runs configured SQL statements in one unit")
            .connection(Need::read_write("target", "where the statements run"))
            .unit("apply", "runs every statement, in order")
            .config_key(ConfigKey::new("sql", "statements separated by lines of `;;`").required())
    }

    fn configure(config: &Config) -> Result<Self> {
        let sql = config.require("sql")?;
        let statements = sql
            .split("\n;;\n")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(SqlScript { statements })
    }

    fn run_unit(&mut self, _unit: &str) -> Result<()> {
        let target = Connection::open("target")?;
        for statement in &self.statements {
            if let Some(args) = statement.strip_prefix("-- migrun:backup ") {
                let mut words = args.split_whitespace();
                let label = words.next().unwrap_or_default();
                let tables: Vec<&str> = words.collect();
                let snapshot = migrun_sdk::backup::snapshot("target", &tables, label)?;
                migrun_sdk::info!("snapshot {} taken by {}", snapshot.id, snapshot.method);
                continue;
            }
            if let Some(select) = statement.strip_prefix("-- migrun:query ") {
                for row in target.query(select, params![])? {
                    for value in row.into_values() {
                        migrun_sdk::info!(value = format!("{value:?}"); "read");
                    }
                }
                continue;
            }
            if let Some(args) = statement.strip_prefix("-- migrun:bulk ") {
                let words: Vec<&str> = args.split_whitespace().collect();
                let [table, first, count] = words[..] else {
                    return Err(Error::Failed(format!("bad bulk directive: {args}")));
                };
                let number = |w: &str| {
                    w.parse::<i64>()
                        .map_err(|e| Error::Failed(format!("bad number {w:?}: {e}")))
                };
                let (first, count) = (number(first)?, number(count)?);
                let rows = (first..first + count)
                    .map(|id| vec![Value::Int(id), Value::Text(format!("{table}-{id}"))])
                    .collect();
                let accepted = target.bulk_insert(table, &["id", "note"], rows)?;
                migrun_sdk::info!("bulk insert into {table}: {accepted} rows accepted");
                continue;
            }
            if let Some(args) = statement.strip_prefix("-- migrun:expect ") {
                let (expected, sql) = args
                    .split_once(' ')
                    .ok_or_else(|| Error::Failed(format!("bad expect directive: {args}")))?;
                let rows = target.query(sql, params![])?;
                let found = rows
                    .rows()
                    .first()
                    .and_then(|r| r.values().first())
                    .cloned();
                if found.as_ref().map(|v| format!("{v:?}")) != Some(format!("Int({expected})")) {
                    return Err(Error::Failed(format!(
                        "expected {expected} from `{sql}`, found {found:?}"
                    )));
                }
                continue;
            }
            target.execute(statement, params![])?;
        }
        Ok(())
    }
}

migrun_sdk::export_plugin!(SqlScript);
