//! The `checkpoint` interface (contract 0.1.1): commits inside a long unit so
//! a batched backfill keeps its finished batches and resumes after the last.
//!
//! Checkpoints are a database matter: `save` commits the unit's open
//! transactions, so the interface is implemented on [`DatabaseCtx`], which
//! owns them.

use wasmtime::component::{HasData, Linker};

use crate::capability::database::DatabaseCtx;
use crate::contract::v0_1_1::{checkpoint, types};
use crate::journal::{CallResult, HostCall};

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
        match self.checkpoint(HostCall::CheckpointSave { state }).await? {
            CallResult::Unit => Ok(Ok(())),
            other => Ok(Err(crate::capability::database::error_from_result(other)?)),
        }
    }

    async fn last(&mut self) -> wasmtime::Result<Option<String>> {
        match self.checkpoint(HostCall::CheckpointLast).await? {
            CallResult::Checkpoint { state } => Ok(state),
            other => Err(crate::capability::database::unexpected(other)),
        }
    }
}
