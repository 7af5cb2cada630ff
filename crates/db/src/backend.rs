//! [`Backend`]: one physical sqlx connection of any dialect, behind one small
//! set of operations (bind, describe, run, simple statements, COPY).
//!
//! Everything dialect-specific about encoding and decoding lives in the
//! dialect modules; this file only dispatches, so that [`super::Connection`]
//! and the cursor task are written once for all three databases.

use futures::stream::{BoxStream, StreamExt};
use sqlx::mysql::{MySqlArguments, MySqlConnection};
use sqlx::postgres::{PgArguments, PgConnection, PgTypeInfo};
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{ConnectOptions, Connection as _, Either, Executor, Statement as _, TypeInfo};

use super::sqlite_authorizer::{self, Authorizer};
use super::{Access, Column, DbError, Dialect, mysql, postgres, sqlite};
use migrun_types::value::Value;

/// One physical connection.
pub(crate) enum Backend {
    /// With the types resolved by name on it (typed values, see `postgres::types`).
    Postgres(PgConnection, postgres::TypeCache),
    /// With the server's `max_allowed_packet`, in bytes.
    MySql(MySqlConnection, usize),
    /// With the schema version its cached statements were prepared under, and
    /// the gate of its authorizer (`sqlite_authorizer`).
    Sqlite(SqliteConnection, Option<i64>, Authorizer),
}

/// See [`Backend::session_facts`].
#[derive(Debug, Default, Clone)]
pub(crate) struct SessionFacts {
    pub(crate) server_id: Option<i64>,
    pub(crate) database: Option<String>,
    pub(crate) search_path: Option<String>,
}

/// A statement ready to run: the SQL as sent and its encoded arguments.
///
/// On PostgreSQL the SQL carries its parameter types as a trailing comment
/// (see [`postgres::bind`]); `'static` so that it can move into a cursor task.
pub(crate) struct Bound {
    pub(crate) sql: String,
    pub(crate) args: Args,
}

/// Encoded arguments of one dialect.
pub(crate) enum Args {
    Postgres(PgArguments, Vec<PgTypeInfo>),
    MySql(MySqlArguments),
    Sqlite(SqliteArguments<'static>),
}

/// One item of a statement's output.
pub(crate) enum Step {
    /// The columns of the rows that follow, sent once before the first row
    /// (fresher than a cached statement's when the schema just changed).
    Columns(Vec<Column>),
    /// A result row, decoded.
    Row(Vec<Value>),
    /// The statement finished, affecting this many rows.
    Done(u64),
}

impl Backend {
    /// Opens a connection and applies the session settings of its access mode.
    pub(crate) async fn connect(
        dialect: Dialect,
        url: &str,
        access: Access,
    ) -> Result<Backend, DbError> {
        Ok(match dialect {
            Dialect::Postgres => Backend::Postgres(
                postgres::connect_options(url, access)?.connect().await?,
                postgres::TypeCache::default(),
            ),
            Dialect::MySql => {
                let mut conn = mysql::connect_options(url)?.connect().await?;
                if access == Access::ReadOnly {
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                }
                let max_packet: u64 = sqlx::query_scalar("SELECT @@max_allowed_packet")
                    .fetch_one(&mut conn)
                    .await?;
                Backend::MySql(conn, usize::try_from(max_packet).unwrap_or(usize::MAX))
            }
            Dialect::Sqlite => {
                let mut conn = sqlite::connect_options(url, access)?.connect().await?;
                let authorizer = sqlite_authorizer::install(&mut conn).await?;
                Backend::Sqlite(conn, None, authorizer)
            }
        })
    }

    /// Encodes `params` for `sql` in this dialect; on PostgreSQL the types of
    /// typed values are resolved by name first (once per connection).
    pub(crate) async fn bind(&mut self, sql: &str, params: &[Value]) -> Result<Bound, DbError> {
        Ok(match self {
            Backend::Postgres(conn, types) => {
                types.resolve_all(conn, params).await?;
                let (sql, args, types) = postgres::bind(sql, params, types)?;
                Bound {
                    sql,
                    args: Args::Postgres(args, types),
                }
            }
            Backend::MySql(_, max_packet) => {
                // The server drops the connection on a packet over its limit
                // ("connection reset"); refusing here says why and sends nothing.
                let size = sql.len() + params.iter().map(value_size).sum::<usize>();
                if size > *max_packet {
                    return Err(DbError::value(format!(
                        "the statement and its parameters take {} MiB, more than the server accepts \
                         in one packet (max_allowed_packet = {} MiB); nothing was sent",
                        size >> 20,
                        *max_packet >> 20
                    )));
                }
                Bound {
                    sql: sql.to_owned(),
                    args: Args::MySql(mysql::bind(params)?),
                }
            }
            Backend::Sqlite(..) => Bound {
                sql: sql.to_owned(),
                args: Args::Sqlite(sqlite::bind(params)?),
            },
        })
    }

    /// The result columns of `bound`, from the prepared statement (which sqlx
    /// caches, so running it afterwards does not prepare it again).
    pub(crate) async fn columns(&mut self, bound: &Bound) -> Result<Vec<Column>, DbError> {
        Ok(match (self, &bound.args) {
            (Backend::Postgres(conn, _), Args::Postgres(_, types)) => postgres::lowercase_types(
                to_columns(conn.prepare_with(&bound.sql, types).await?.columns()),
            ),
            (Backend::MySql(conn, _), Args::MySql(_)) => {
                to_columns(conn.prepare_with(&bound.sql, &[]).await?.columns())
            }
            (Backend::Sqlite(conn, ..), Args::Sqlite(_)) => {
                to_columns(conn.prepare_with(&bound.sql, &[]).await?.columns())
            }
            _ => return Err(mismatch()),
        })
    }

    /// Runs one bound statement; rows are pulled from the server only as the
    /// stream is polled, so a consumer that stops polling bounds the memory.
    pub(crate) fn run<'a>(
        &'a mut self,
        sql: &'a str,
        args: Args,
    ) -> BoxStream<'a, Result<Step, DbError>> {
        match (self, args) {
            (Backend::Postgres(conn, _), Args::Postgres(args, _)) => steps(
                conn.fetch_many(sqlx::query_with(sql, args)),
                postgres::decode_row,
            )
            .map(|step| match step {
                Ok(Step::Columns(columns)) => Ok(Step::Columns(postgres::lowercase_types(columns))),
                other => other,
            })
            .boxed(),
            (Backend::MySql(conn, _), Args::MySql(args)) => steps(
                conn.fetch_many(sqlx::query_with(sql, args)),
                mysql::decode_row,
            ),
            (Backend::Sqlite(conn, ..), Args::Sqlite(args)) => steps(
                conn.fetch_many(sqlx::query_with(sql, args)),
                sqlite::decode_row,
            ),
            _ => futures::stream::once(async { Err(mismatch()) }).boxed(),
        }
    }

    /// Runs host-written SQL (transaction control) through the simple/text protocol.
    ///
    /// On SQLite the statement is compiled afresh and never cached: the
    /// authorizer judges a statement when it is compiled, so a cached host
    /// `COMMIT` would let a plugin's identical text skip its judgement.
    pub(crate) async fn simple(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Backend::Postgres(conn, _) => conn.execute(sql).await.map(|_| ())?,
            Backend::MySql(conn, _) => conn.execute(sql).await.map(|_| ())?,
            Backend::Sqlite(conn, ..) => conn.execute(sqlx::raw_sql(sql)).await.map(|_| ())?,
        }
        Ok(())
    }

    /// Runs host-written SQL through the simple/text protocol and returns the rows it
    /// affected (PostgreSQL's structured writes, whose statements name a temporary
    /// table that is dropped again: nothing worth a cached prepared statement).
    pub(crate) async fn simple_count(&mut self, sql: &str) -> Result<u64, DbError> {
        Ok(match self {
            Backend::Postgres(conn, _) => conn.execute(sql).await?.rows_affected(),
            Backend::MySql(conn, _) => conn.execute(sql).await?.rows_affected(),
            Backend::Sqlite(conn, ..) => conn.execute(sqlx::raw_sql(sql)).await?.rows_affected(),
        })
    }

    /// Marks the statements compiled from now on as the plugin's (SQLite's
    /// authorizer judges them) or the host's; nothing on the servers, whose
    /// sessions enforce what they enforce for everyone.
    pub(crate) fn plugin_statement(&self, on: bool) {
        if let Backend::Sqlite(.., authorizer) = self {
            authorizer.plugin_statement(on);
        }
    }

    /// What the host remembers of a new session: its server-side id (PostgreSQL
    /// backend pid, MariaDB connection id) to cancel a runaway statement from
    /// another connection; MariaDB's database (`DATABASE()`), which the session
    /// check holds it to; PostgreSQL's `search_path`, which the ledger's
    /// statements pin so that a plugin's `SET search_path` cannot redirect them.
    pub(crate) async fn session_facts(&mut self) -> Result<SessionFacts, DbError> {
        Ok(match self {
            Backend::MySql(conn, _) => {
                let (id, database): (u64, Option<String>) =
                    sqlx::query_as("SELECT CONNECTION_ID(), DATABASE()")
                        .fetch_one(&mut *conn)
                        .await?;
                SessionFacts {
                    server_id: i64::try_from(id).ok(),
                    database,
                    search_path: None,
                }
            }
            Backend::Postgres(conn, _) => {
                let (pid, search_path): (i32, String) =
                    sqlx::query_as("SELECT pg_backend_pid(), current_setting('search_path')")
                        .fetch_one(&mut *conn)
                        .await?;
                SessionFacts {
                    server_id: Some(i64::from(pid)),
                    database: None,
                    search_path: Some(search_path),
                }
            }
            Backend::Sqlite(..) => SessionFacts::default(),
        })
    }

    /// Runs host-written SQL through the text protocol and returns its rows,
    /// decoded; MySQL and SQLite only (PostgreSQL's text results are not decoded).
    pub(crate) async fn simple_rows(&mut self, sql: &str) -> Result<Vec<Vec<Value>>, DbError> {
        match self {
            Backend::MySql(conn, _) => conn
                .fetch_all(sql)
                .await?
                .iter()
                .map(mysql::decode_row)
                .collect(),
            Backend::Sqlite(conn, ..) => conn
                .fetch_all(sql)
                .await?
                .iter()
                .map(sqlite::decode_row)
                .collect(),
            Backend::Postgres(..) => Err(mismatch()),
        }
    }

    /// Before a statement on SQLite: drops cached statements if the schema
    /// changed since they were prepared (by this or another connection).
    ///
    /// sqlx 0.8 keeps the column list a statement had when it was prepared,
    /// while SQLite silently re-prepares it after a schema change; a `SELECT *`
    /// whose column count changed then panics sqlx's worker thread. This
    /// happens to a cached statement, and also to a fresh one when another
    /// connection changed the schema (SQLite reloads its copy of the schema
    /// only when a statement runs). Reading `PRAGMA schema_version` costs
    /// microseconds; on a change the cache is dropped and the schema reloaded.
    pub(crate) async fn check_schema(&mut self) -> Result<(), DbError> {
        let Backend::Sqlite(conn, known, _) = self else {
            return Ok(());
        };
        let row = conn.fetch_one("PRAGMA schema_version").await?;
        let version: i64 = sqlx::Row::try_get(&row, 0)?;
        if known.is_some_and(|k| k != version) {
            conn.clear_cached_statements().await?;
            // Reading a table makes SQLite notice the new schema cookie and
            // reload its schema now, so the next statement prepares against it.
            conn.execute("SELECT count(*) FROM sqlite_master").await?;
        }
        *known = Some(version);
        Ok(())
    }

    /// Forgets (and closes on the server) every cached prepared statement.
    pub(crate) async fn clear_statement_cache(&mut self) -> Result<(), DbError> {
        match self {
            Backend::Postgres(conn, types) => {
                types.clear();
                conn.clear_cached_statements().await?
            }
            Backend::MySql(conn, _) => conn.clear_cached_statements().await?,
            Backend::Sqlite(conn, ..) => conn.clear_cached_statements().await?,
        }
        Ok(())
    }

    /// Runs `COPY table (columns) FROM STDIN` with `rows`, encoded and sent in
    /// pieces of about 1 MiB; PostgreSQL only.
    ///
    /// The binary format is used when every value has a binary form that
    /// stores exactly what its text would ([`postgres::copy_binary_supported`],
    /// by the target columns' types read from the catalog): the server then
    /// parses nothing (a 1536-float embedding is 6 KiB copied, not 1536 floats
    /// printed and parsed back). Otherwise the text format, as before.
    pub(crate) async fn copy_in(
        &mut self,
        table_sql: &str,
        column_sql: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        const PIECE: usize = 1 << 20;
        let Backend::Postgres(conn, types) = self else {
            return Err(mismatch());
        };
        let plan = copy_plan(conn, types, table_sql, columns, rows).await?;
        let binary = plan.binary.then_some(&plan.kinds);
        let statement = match binary {
            Some(_) => format!("COPY {table_sql} ({column_sql}) FROM STDIN (FORMAT binary)"),
            None => format!("COPY {table_sql} ({column_sql}) FROM STDIN"),
        };
        let mut copy = conn.copy_in_raw(&statement).await?;
        let mut buf = Vec::with_capacity(PIECE + (PIECE >> 2));
        if binary.is_some() {
            buf.extend_from_slice(postgres::COPY_BINARY_HEADER);
        }
        for (i, row) in rows.iter().enumerate() {
            match &binary {
                Some(kinds) => postgres::copy_binary_row(kinds, row, types, &mut buf),
                None => postgres::copy_text_row(&plan.kinds, row, &mut buf),
            }
            let last = i + 1 == rows.len();
            if last && binary.is_some() {
                buf.extend_from_slice(postgres::COPY_BINARY_TRAILER);
            }
            if (buf.len() >= PIECE || last)
                && let Err(e) = copy
                    .send(std::mem::replace(
                        &mut buf,
                        Vec::with_capacity(PIECE + (PIECE >> 2)),
                    ))
                    .await
            {
                // Abort so the server ends the COPY and the connection stays usable.
                let _ = copy.abort("migrun: sending COPY data failed").await;
                return Err(e.into());
            }
        }
        Ok(copy.finish().await?)
    }

    /// Closes the connection gracefully (the server rolls back an open transaction).
    pub(crate) async fn close(self) {
        let _ = match self {
            Backend::Postgres(conn, _) => conn.close().await,
            Backend::MySql(conn, _) => conn.close().await,
            Backend::Sqlite(conn, ..) => conn.close().await,
        };
    }
}

/// How a bulk insert's `COPY` writes its columns: their encodings, and
/// whether the binary format is used.
pub(crate) struct CopyPlan {
    /// One per inserted column (`Other` for a column not found: the `COPY` then reports it).
    pub(crate) kinds: Vec<postgres::CopyColumn>,
    /// Every value has a binary form that stores exactly what its text would.
    pub(crate) binary: bool,
    /// The (column index, type name) of every typed value checked against its column.
    pub(crate) typed_checked: std::collections::HashSet<(usize, String)>,
}

/// Reads `columns` of `table_sql` from the catalog and checks every value
/// that only this host can check: a float32 array against a pgvector
/// column's dimensions (and binary16's range for `halfvec`), a typed value
/// against its column's type (resolved by name on this connection). Such a
/// value that does not fit is an error naming the table, row and column.
/// The binary format is chosen when every value has an exact binary form
/// ([`postgres::copy_binary_supported`]); typed values have no other.
pub(crate) async fn copy_plan(
    conn: &mut PgConnection,
    types: &mut postgres::TypeCache,
    table_sql: &str,
    columns: &[String],
    rows: &[Vec<Value>],
) -> Result<CopyPlan, DbError> {
    // `to_regclass` gives NULL (no rows) for a missing table instead of an
    // error that would abort the transaction; the COPY then says what is wrong.
    type CatalogRow = (String, i64, String, String, i64, i64, String);
    let catalog: Vec<CatalogRow> = sqlx::query_as(postgres::COPY_COLUMNS_SQL)
        .bind(table_sql)
        .fetch_all(&mut *conn)
        .await?;
    let mut kinds = Vec::with_capacity(columns.len());
    let mut found = Vec::with_capacity(columns.len());
    for column in columns {
        let entry = catalog.iter().find(|(name, ..)| name == column);
        let kind = match entry {
            Some((_, type_oid, typtype, receive, typmod, ..)) => {
                match (u32::try_from(*type_oid), typtype.as_str()) {
                    (Ok(type_oid), "b" | "r") => postgres::copy_column(type_oid, receive, *typmod),
                    _ => postgres::CopyColumn::Other,
                }
            }
            None => postgres::CopyColumn::Other,
        };
        kinds.push(kind);
        found.push(entry);
    }
    let mut binary = true;
    let mut has_typed = false;
    let mut typed_checked = std::collections::HashSet::new();
    for (r, row) in rows.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            let refuse = |why: String| {
                DbError::value(format!(
                    "row {r}, column `{}` of {table_sql}: {why}",
                    columns[c]
                ))
            };
            if let Some(why) = postgres::vector_value_error(kinds[c], value) {
                let sql_type = found[c].map_or("", |entry| entry.6.as_str());
                return Err(refuse(format!("{sql_type}: {why}")));
            }
            if let Value::Typed { type_name, .. } = value {
                has_typed = true;
                let Some((_, base_oid, _, _, _, own_oid, sql_type)) = found[c] else {
                    return Err(refuse(format!(
                        "no such column for a typed `{type_name}` value"
                    )));
                };
                let ty = types.resolve(conn, type_name).await?;
                if i64::from(ty.oid) != *own_oid && i64::from(ty.oid) != *base_oid {
                    return Err(refuse(format!(
                        "a typed `{type_name}` value cannot be written into a column of type \
                         {sql_type}; a typed value goes only into a column of its own type"
                    )));
                }
                typed_checked.insert((c, type_name.clone()));
            }
            binary = binary && postgres::copy_binary_supported(kinds[c], value);
        }
    }
    if has_typed && !binary {
        return Err(DbError::value(format!(
            "COPY into {table_sql}: typed values travel only in COPY's binary format, and another \
             value of this call has no exact binary form for its column (bind it as its column's \
             own kind, or insert the typed values in a call of their own)"
        )));
    }
    Ok(CopyPlan {
        kinds,
        binary,
        typed_checked,
    })
}

/// sqlx's `fetch_many` stream as [`Step`]s: rows decoded by `decode`, the
/// columns announced before the first row.
fn steps<'a, R, Q>(
    rows: BoxStream<'a, Result<Either<Q, R>, sqlx::Error>>,
    decode: fn(&R) -> Result<Vec<Value>, DbError>,
) -> BoxStream<'a, Result<Step, DbError>>
where
    R: sqlx::Row + 'a,
    Q: RowsAffected + 'a,
{
    let mut announced = false;
    rows.flat_map(move |step| {
        let out: Vec<Result<Step, DbError>> = match step {
            Err(e) => vec![Err(e.into())],
            Ok(Either::Left(done)) => vec![Ok(Step::Done(done.rows_affected()))],
            Ok(Either::Right(row)) => {
                let mut out = Vec::with_capacity(2);
                if !announced {
                    announced = true;
                    out.push(Ok(Step::Columns(to_columns(row.columns()))));
                }
                out.push(decode(&row).map(Step::Row));
                out
            }
        };
        futures::stream::iter(out)
    })
    .boxed()
}

/// The query results of every dialect, by what [`steps`] needs of them.
trait RowsAffected: Send {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

fn to_columns<C: sqlx::Column>(columns: &[C]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.type_info().name().to_owned(),
        })
        .collect()
}

fn mismatch() -> DbError {
    DbError::new(
        super::DbErrorKind::Other,
        "internal error: arguments of another dialect",
    )
}

/// Rough encoded size of a value, for chunking.
pub(crate) fn value_size(v: &Value) -> usize {
    match v {
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.len() + 9,
        Value::Bytes(b) => b.len() + 9,
        Value::Float32Array(a) => a.len() * 12 + 2,
        Value::TextArray(a) => a.iter().map(|s| s.len() + 3).sum::<usize>() + 2,
        Value::Typed { type_name, bytes } => type_name.len() + bytes.len() + 9,
        _ => 16,
    }
}
