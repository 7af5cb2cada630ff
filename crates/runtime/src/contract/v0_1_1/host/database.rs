//! The contract 0.1.1 `database` interface over the version-free [`DatabaseCtx`]
//! (`crate::capability::database`): the generated `Host` trait implemented as a thin
//! conversion, and the `add_to_linker` of the 0.1.x linker.

use crate::capability::database::{
    ConnectionResource, CursorResource, DatabaseCtx, HostRows, taped, unexpected,
};
use crate::contract::v0_1_1::{self as wit, database, types};
use migrun_journal::CallResult;
use migrun_types::value::Value;
use wasmtime::component::{HasData, Linker, Resource};

/// Converts a recorded error back into the contract's `db-error` (a kind this
/// migrun does not know reads as `other`).
fn wit_error(error_kind: &str, code: Option<String>, message: String) -> types::DbError {
    let kind = migrun_types::DbErrorKind::from_name(error_kind)
        .unwrap_or(migrun_types::DbErrorKind::Other);
    migrun_db::DbError {
        kind,
        code,
        message,
    }
    .into()
}

fn wit_columns(columns: Vec<(String, String)>) -> Vec<types::Column> {
    columns
        .into_iter()
        .map(|(name, type_name)| types::Column { name, type_name })
        .collect()
}

/// The answer to a call whose result is not its success shape: the recorded `db-error`,
/// or a host error when the result does not belong to the call at all.
fn failure<T>(result: CallResult) -> DbResult<T> {
    Ok(Err(error_from_result(result)?))
}

/// The `db-error` of a failed call (for interfaces that share `db-error`), or a host
/// error when the result is no error at all.
pub(crate) fn error_from_result(result: CallResult) -> wasmtime::Result<types::DbError> {
    match result {
        CallResult::Error {
            error_kind,
            code,
            message,
        } => Ok(wit_error(&error_kind, code, message)),
        other => Err(unexpected(other)),
    }
}

/// Marker tying the generated `add_to_linker` to [`DatabaseCtx`].
struct Database;

impl HasData for Database {
    type Data<'a> = &'a mut DatabaseCtx;
}

/// Adds the `database` interface to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut DatabaseCtx,
) -> wasmtime::Result<()> {
    database::add_to_linker::<T, Database>(linker, get)?;
    types::add_to_linker::<T, Database>(linker, get)
}

impl types::Host for DatabaseCtx {}

type DbResult<T> = wasmtime::Result<Result<T, types::DbError>>;

fn params_from_wit(params: Vec<types::Value>) -> Result<Vec<Value>, types::DbError> {
    wit::values_from_wit(params).map_err(Into::into)
}

impl database::Host for DatabaseCtx {
    async fn open(&mut self, name: String) -> DbResult<Resource<ConnectionResource>> {
        match taped(self.session.open(name.clone()).await)? {
            CallResult::Opened if self.session.info(&name).is_some() => {
                Ok(Ok(self.table.push(ConnectionResource { name })?))
            }
            other => failure(other),
        }
    }
}

impl database::HostConnection for DatabaseCtx {
    async fn dialect(
        &mut self,
        conn: Resource<ConnectionResource>,
    ) -> wasmtime::Result<database::Dialect> {
        Ok(self.info(&conn)?.dialect.into())
    }

    async fn access(
        &mut self,
        conn: Resource<ConnectionResource>,
    ) -> wasmtime::Result<database::Access> {
        Ok(self.info(&conn)?.access.into())
    }

    async fn query(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<types::Rows> {
        let params = match params_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        match self.plugin_query(&conn, sql, params).await? {
            Ok(HostRows { columns, rows }) => Ok(wit::rows_to_wit(rows, &columns)
                .map(|rows| types::Rows {
                    columns: wit_columns(columns),
                    rows,
                })
                .map_err(Into::into)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn execute(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<u64> {
        let params = match params_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .plugin_execute(&conn, sql, params)
            .await?
            .map_err(Into::into))
    }

    async fn open_cursor(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
        batch_size: u32,
    ) -> DbResult<Resource<CursorResource>> {
        let params = match params_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .plugin_open_cursor(&conn, sql, params, batch_size)
            .await?
            .map_err(Into::into))
    }

    async fn bulk_insert(
        &mut self,
        conn: Resource<ConnectionResource>,
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<types::Value>>,
    ) -> DbResult<u64> {
        let mut converted = Vec::with_capacity(rows.len());
        for row in rows {
            match params_from_wit(row) {
                Ok(r) => converted.push(r),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(self
            .plugin_bulk_insert(&conn, table, columns, converted)
            .await?
            .map_err(Into::into))
    }

    async fn drop(&mut self, conn: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        // The physical connection belongs to the run, not to the handle.
        self.table.delete(conn)?;
        Ok(())
    }
}

impl database::HostCursor for DatabaseCtx {
    async fn columns(
        &mut self,
        cursor: Resource<CursorResource>,
    ) -> wasmtime::Result<Vec<types::Column>> {
        // The columns came with the (live or recorded) open-cursor answer.
        Ok(wit_columns(self.table.get(&cursor)?.columns.clone()))
    }

    async fn next_batch(
        &mut self,
        cursor: Resource<CursorResource>,
    ) -> DbResult<Option<Vec<Vec<types::Value>>>> {
        match self.plugin_next_batch(&cursor).await? {
            Ok(Some(rows)) => {
                let columns = self.cursor_columns(&cursor)?;
                Ok(wit::rows_to_wit(rows, columns)
                    .map(Some)
                    .map_err(Into::into))
            }
            Ok(None) => Ok(Ok(None)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn drop(&mut self, cursor: Resource<CursorResource>) -> wasmtime::Result<()> {
        let res = self.table.delete(cursor)?;
        if !res.exhausted {
            taped(self.session.close_cursor(res.id).await)?;
        }
        Ok(())
    }
}
