//! SQLite dry-runs need nothing beyond the rollback: DDL is transactional and
//! nothing else (no sequence, no counter outside the transaction) escapes it.

use futures::future::BoxFuture;

use super::SqliteDriver;
use crate::driver::DryRunMechanics;
use crate::{Connection, DbError, DryRunMode};

impl DryRunMechanics for SqliteDriver {
    fn enter_dry_run<'a>(
        &'a self,
        _conn: &'a mut Connection,
        _run_id: &'a str,
        _writes: &'a [String],
    ) -> BoxFuture<'a, Result<DryRunMode, DbError>> {
        Box::pin(async { Ok(DryRunMode::Transaction) })
    }
}
