//! The `checkpoint` interface (contract 0.1.1): commits inside a long unit so
//! a batched backfill keeps its finished batches and resumes after the last.
//!
//! A thin adapter: checkpoints are the session's matter (`save` commits the
//! unit's open transactions with a `checkpoint` ledger row, see
//! `migrun_session::Session::save_checkpoint`), so the interface is implemented on
//! [`DatabaseCtx`], which holds the session, and only converts the answers.

use super::database::error_from_result;
use crate::capability::database::{DatabaseCtx, unexpected};
use crate::contract::v0_1_1::{checkpoint, types};
use migrun_journal::CallResult;
use wasmtime::component::{HasData, Linker};

struct Checkpoint;

impl HasData for Checkpoint {
    type Data<'a> = &'a mut DatabaseCtx;
}

/// Adds the `checkpoint` interface to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut DatabaseCtx,
) -> wasmtime::Result<()> {
    checkpoint::add_to_linker::<T, Checkpoint>(linker, get)
}

impl checkpoint::Host for DatabaseCtx {
    async fn save(&mut self, state: String) -> wasmtime::Result<Result<(), types::DbError>> {
        let saved = self.session().save_checkpoint(state).await;
        match saved.map_err(wasmtime::Error::new)? {
            CallResult::Unit => Ok(Ok(())),
            other => Ok(Err(error_from_result(other)?)),
        }
    }

    async fn last(&mut self) -> wasmtime::Result<Option<String>> {
        let last = self.session().last_checkpoint();
        match last.map_err(wasmtime::Error::new)? {
            CallResult::Checkpoint { state } => Ok(state),
            other => Err(unexpected(other)),
        }
    }
}
