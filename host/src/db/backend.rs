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

use super::{Access, Column, DbError, Dialect, mysql, postgres, sqlite};
use crate::value::Value;

/// One physical connection.
pub(crate) enum Backend {
    Postgres(PgConnection),
    MySql(MySqlConnection),
    Sqlite(SqliteConnection),
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
            Dialect::Postgres => {
                Backend::Postgres(postgres::connect_options(url, access)?.connect().await?)
            }
            Dialect::MySql => {
                let mut conn = mysql::connect_options(url)?.connect().await?;
                if access == Access::ReadOnly {
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                }
                Backend::MySql(conn)
            }
            Dialect::Sqlite => {
                Backend::Sqlite(sqlite::connect_options(url, access)?.connect().await?)
            }
        })
    }

    /// Encodes `params` for `sql` in this dialect.
    pub(crate) fn bind(&self, sql: &str, params: &[Value]) -> Result<Bound, DbError> {
        Ok(match self {
            Backend::Postgres(_) => {
                let (sql, args, types) = postgres::bind(sql, params)?;
                Bound {
                    sql,
                    args: Args::Postgres(args, types),
                }
            }
            Backend::MySql(_) => Bound {
                sql: sql.to_owned(),
                args: Args::MySql(mysql::bind(params)?),
            },
            Backend::Sqlite(_) => Bound {
                sql: sql.to_owned(),
                args: Args::Sqlite(sqlite::bind(params)?),
            },
        })
    }

    /// The result columns of `bound`, from the prepared statement (which sqlx
    /// caches, so running it afterwards does not prepare it again).
    pub(crate) async fn columns(&mut self, bound: &Bound) -> Result<Vec<Column>, DbError> {
        fn to_columns<C: sqlx::Column>(columns: &[C]) -> Vec<Column> {
            columns
                .iter()
                .map(|c| Column {
                    name: c.name().to_owned(),
                    type_name: c.type_info().name().to_owned(),
                })
                .collect()
        }
        Ok(match (self, &bound.args) {
            (Backend::Postgres(conn), Args::Postgres(_, types)) => {
                to_columns(conn.prepare_with(&bound.sql, types).await?.columns())
            }
            (Backend::MySql(conn), Args::MySql(_)) => {
                to_columns(conn.prepare_with(&bound.sql, &[]).await?.columns())
            }
            (Backend::Sqlite(conn), Args::Sqlite(_)) => {
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
            (Backend::Postgres(conn), Args::Postgres(args, _)) => conn
                .fetch_many(sqlx::query_with(sql, args))
                .map(|step| match step? {
                    Either::Left(done) => Ok(Step::Done(done.rows_affected())),
                    Either::Right(row) => postgres::decode_row(&row).map(Step::Row),
                })
                .boxed(),
            (Backend::MySql(conn), Args::MySql(args)) => conn
                .fetch_many(sqlx::query_with(sql, args))
                .map(|step| match step? {
                    Either::Left(done) => Ok(Step::Done(done.rows_affected())),
                    Either::Right(row) => mysql::decode_row(&row).map(Step::Row),
                })
                .boxed(),
            (Backend::Sqlite(conn), Args::Sqlite(args)) => conn
                .fetch_many(sqlx::query_with(sql, args))
                .map(|step| match step? {
                    Either::Left(done) => Ok(Step::Done(done.rows_affected())),
                    Either::Right(row) => sqlite::decode_row(&row).map(Step::Row),
                })
                .boxed(),
            _ => futures::stream::once(async { Err(mismatch()) }).boxed(),
        }
    }

    /// Runs host-written SQL (transaction control) through the simple/text protocol.
    pub(crate) async fn simple(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Backend::Postgres(conn) => conn.execute(sql).await.map(|_| ())?,
            Backend::MySql(conn) => conn.execute(sql).await.map(|_| ())?,
            Backend::Sqlite(conn) => conn.execute(sql).await.map(|_| ())?,
        }
        Ok(())
    }

    /// Forgets (and closes on the server) every cached prepared statement.
    pub(crate) async fn clear_statement_cache(&mut self) -> Result<(), DbError> {
        match self {
            Backend::Postgres(conn) => conn.clear_cached_statements().await?,
            Backend::MySql(conn) => conn.clear_cached_statements().await?,
            Backend::Sqlite(conn) => conn.clear_cached_statements().await?,
        }
        Ok(())
    }

    /// Runs `COPY … FROM STDIN` (text format) with `rows`, encoded and sent in
    /// pieces of about 1 MiB; PostgreSQL only.
    pub(crate) async fn copy_in(
        &mut self,
        statement: &str,
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        const PIECE: usize = 1 << 20;
        let Backend::Postgres(conn) = self else {
            return Err(mismatch());
        };
        let mut copy = conn.copy_in_raw(statement).await?;
        let mut buf = Vec::with_capacity(PIECE + 4096);
        for (i, row) in rows.iter().enumerate() {
            postgres::copy_text_row(row, &mut buf);
            if (buf.len() >= PIECE || i + 1 == rows.len())
                && let Err(e) = copy.send(std::mem::take(&mut buf)).await
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
            Backend::Postgres(conn) => conn.close().await,
            Backend::MySql(conn) => conn.close().await,
            Backend::Sqlite(conn) => conn.close().await,
        };
    }
}

fn mismatch() -> DbError {
    DbError::new(
        super::DbErrorKind::Other,
        "internal error: arguments of another dialect",
    )
}
