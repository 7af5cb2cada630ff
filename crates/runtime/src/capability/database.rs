//! The `database` interface: named connections, queries, cursors and bulk inserts,
//! as a thin adapter over the run's [`Session`].
//!
//! This module owns what only the WIT side knows: the resource handles the guest
//! holds (a connection by the name it was opened by, a cursor by the run's number
//! for it) and the conversions between the contract's types and the host's. Every
//! call is handed to the session, which asks the run's tape for the answer or runs
//! it live and records it; the transactions, ledger rows, checkpoints and write
//! counts are the session's too (see [`crate::session`]).
//!
//! Database failures reach the plugin as `db-error` values; only host-side failures
//! (a replay divergence, an unwritable journal, a stale handle) trap.

use wasmtime::component::{Resource, ResourceTable};

use migrun_journal::CallResult;
use migrun_session::tape::TapeError;
use migrun_session::{ConnectionInfo, Session};

/// A connection handle as the guest holds it: the name it was opened by.
pub struct ConnectionResource {
    pub(crate) name: String,
}

/// A cursor handle as the guest holds it: the run's number for it.
pub struct CursorResource {
    pub(crate) id: u64,
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) exhausted: bool,
}

/// The guest's handles to the connections of one run, over the run's [`Session`].
pub struct DatabaseCtx {
    pub(crate) table: ResourceTable,
    pub(crate) session: Session,
}

impl DatabaseCtx {
    /// The guest's view of `session`: no handle open yet.
    pub fn new(session: Session) -> Self {
        DatabaseCtx {
            table: ResourceTable::new(),
            session,
        }
    }

    /// The session the calls go to (the runner drives its transactions).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The session, once the plugin is done (to close its connections).
    pub fn into_session(self) -> Session {
        self.session
    }

    pub(crate) fn name_of(
        &self,
        handle: &Resource<ConnectionResource>,
    ) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.name.clone())
    }

    pub(crate) fn info(
        &self,
        handle: &Resource<ConnectionResource>,
    ) -> wasmtime::Result<ConnectionInfo> {
        let name = &self.table.get(handle)?.name;
        self.session.info(name).ok_or_else(|| {
            wasmtime::Error::msg(format!(
                "host error: a handle to the undeclared connection `{name}`"
            ))
        })
    }
}

/// A tape that could not answer or record stops the plugin: the run must stop.
pub(crate) fn taped(result: Result<CallResult, TapeError>) -> wasmtime::Result<CallResult> {
    result.map_err(wasmtime::Error::new)
}

/// A recorded result of the wrong shape for its call: the journal does not belong to this call.
pub(crate) fn unexpected(result: CallResult) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "host error: a recorded result of the wrong kind: {result:?}"
    ))
}
