//! Statements the host writes itself on a plugin's connection: catalog
//! reads, dry-run set-up, session statements.
//!
//! Invariants: no guard or session check applies (the text is the host's),
//! a deferred `BEGIN` is sent first, and a failure never aborts the plugin's
//! transaction (a savepoint where an error would).

use super::{Connection, DbError, run_to_end};
use crate::driver_for;
use migrun_types::value::Value;

impl Connection {
    /// Runs host-written SQL (catalog reads, dry-run set-up) with `params` and
    /// returns its rows. No guard applies. Where an error aborts the
    /// transaction (PostgreSQL) it runs in a savepoint, so that its failure
    /// cannot abort the plugin's transaction (MySQL and SQLite keep a
    /// transaction usable after an error).
    pub(crate) async fn host_query(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, DbError> {
        self.settle_stream().await?;
        self.send_pending_begin().await?;
        let savepoint = driver_for(self.dialect).errors_abort_transaction() && self.in_transaction;
        let backend = self.idle()?;
        backend.check_schema().await?;
        if savepoint {
            backend.simple("SAVEPOINT migrun_host").await?;
        }
        let result = async {
            let bound = backend.bind(sql, params).await?;
            Ok::<_, DbError>(run_to_end(backend, bound, Some(usize::MAX)).await?.rows)
        }
        .await;
        if savepoint {
            if result.is_err() {
                let _ = backend.simple("ROLLBACK TO SAVEPOINT migrun_host").await;
            }
            backend.simple("RELEASE SAVEPOINT migrun_host").await?;
        }
        result.map_err(|e| e.on_connection(&self.name))
    }

    /// Runs host-written SQL through the simple (text) protocol, discarding
    /// any result: DDL and session statements that cannot be prepared.
    pub async fn host_simple(&mut self, sql: &str) -> Result<(), DbError> {
        self.settle_stream().await?;
        self.send_pending_begin().await?;
        let name = self.name.clone();
        self.idle()?
            .simple(sql)
            .await
            .map_err(|e| e.on_connection(&name))
    }

    /// Runs host-written SQL through the text protocol and returns its rows
    /// (MySQL's `SHOW CREATE …`, which not every server version prepares).
    pub(crate) async fn host_text_query(&mut self, sql: &str) -> Result<Vec<Vec<Value>>, DbError> {
        self.settle_stream().await?;
        self.send_pending_begin().await?;
        let name = self.name.clone();
        self.idle()?
            .simple_rows(sql)
            .await
            .map_err(|e| e.on_connection(&name))
    }
}
