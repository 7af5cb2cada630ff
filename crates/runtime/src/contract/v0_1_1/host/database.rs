//! The contract 0.1.1 `database` interface over the version-free [`DatabaseCtx`]
//! (`crate::capability::database`): the generated `Host` trait implemented as a thin
//! conversion, and the `add_to_linker` of the 0.1.x linker.

use crate::capability::database::{
    ConnectionResource, CursorResource, DatabaseCtx, taped, unexpected,
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
        let conn = self.name_of(&conn)?;
        match taped(self.session.query(conn, sql, params).await)? {
            CallResult::Rows { columns, rows } => Ok(Ok(types::Rows {
                columns: wit_columns(columns),
                rows: wit::rows_to_wit(rows),
            })),
            other => failure(other),
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
        let conn = self.name_of(&conn)?;
        count_result(taped(self.session.execute(conn, sql, params).await)?)
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
        let conn = self.name_of(&conn)?;
        let opened = self
            .session
            .open_cursor(conn, sql, params, batch_size)
            .await;
        match taped(opened)? {
            CallResult::Cursor { cursor, columns } => Ok(Ok(self.table.push(CursorResource {
                id: cursor,
                columns,
                exhausted: false,
            })?)),
            other => failure(other),
        }
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
        let conn = self.name_of(&conn)?;
        let inserted = self
            .session
            .bulk_insert(conn, table, columns, converted)
            .await;
        count_result(taped(inserted)?)
    }

    async fn drop(&mut self, conn: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        // The physical connection belongs to the run, not to the handle.
        self.table.delete(conn)?;
        Ok(())
    }
}

fn count_result(result: CallResult) -> DbResult<u64> {
    match result {
        CallResult::Count { n } => Ok(Ok(n)),
        other => failure(other),
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
        let res = self.table.get(&cursor)?;
        if res.exhausted {
            return Ok(Ok(None));
        }
        let id = res.id;
        let result = taped(self.session.next_batch(id).await)?;
        let res = self.table.get_mut(&cursor)?;
        match result {
            CallResult::Batch { rows: Some(rows) } => Ok(Ok(Some(wit::rows_to_wit(rows)))),
            CallResult::Batch { rows: None } => {
                res.exhausted = true;
                Ok(Ok(None))
            }
            CallResult::Error {
                error_kind,
                code,
                message,
            } => {
                res.exhausted = true;
                Ok(Err(wit_error(&error_kind, code, message)))
            }
            other => Err(unexpected(other)),
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
