//! Statements bounded on the server and cancelled from outside: a plugin's
//! statement that outlives its wall-clock limit must not keep its locks after
//! migrun gave up on it.

use std::time::Duration;

use super::backend::Backend;
use super::{Access, CONNECT_TIMEOUT, Connection, DbError, Dialect};
use crate::driver_for;

/// Cancels the statement a session runs on the server, from a connection of its own.
pub struct StatementCanceller {
    name: String,
    dialect: Dialect,
    url: String,
    server_id: Option<i64>,
}

impl StatementCanceller {
    /// Asks the server to cancel the session's statement (`pg_cancel_backend`, `KILL
    /// QUERY`); best effort, the outcome is logged. Nothing on SQLite.
    pub async fn cancel(&self) {
        let Some(id) = self.server_id else {
            return;
        };
        let Some(sql) = driver_for(self.dialect).cancel_sql(id) else {
            return;
        };
        let cancelled = async {
            let mut backend = Backend::connect(self.dialect, &self.url, Access::ReadWrite).await?;
            let result = backend.simple(&sql).await;
            backend.close().await;
            result
        };
        let name = &self.name;
        match tokio::time::timeout(CONNECT_TIMEOUT, cancelled).await {
            Ok(Ok(())) => {
                tracing::warn!(connection = %name, "cancelled the statement still running on the server")
            }
            Ok(Err(e)) => {
                tracing::warn!(connection = %name, "cannot cancel the statement running on the server: {e}")
            }
            Err(_) => {
                tracing::warn!(connection = %name, "cannot cancel the statement running on the server: no answer")
            }
        }
    }
}

impl Connection {
    /// Bounds every statement on the server to `limit` (PostgreSQL
    /// `statement_timeout` and `lock_timeout`, MariaDB `max_statement_time`), so
    /// that a statement outliving the plugin's wall-clock limit is ended by the
    /// server itself and cannot keep its locks after migrun has given up on it.
    /// A plugin cannot lift it on MariaDB (the guard refuses that `SET`); on
    /// PostgreSQL [`Connection::cancel_server_statement`] is the second line.
    /// Nothing on SQLite, which runs in migrun's process and dies with it.
    pub async fn limit_statement_time(&mut self, limit: Duration) -> Result<(), DbError> {
        let ms = limit.as_millis().max(1);
        let Some(sql) = driver_for(self.dialect).statement_limit_sql(ms) else {
            return Ok(());
        };
        self.host_simple(&sql).await?;
        self.statement_limit_ms = Some(ms);
        Ok(())
    }

    /// Asks the server to cancel whatever statement this session is running,
    /// through a short-lived connection of its own (`pg_cancel_backend`,
    /// `KILL QUERY`): after a timeout the session itself is stuck waiting for
    /// that statement, and the server would otherwise finish it — holding its
    /// locks — long after migrun stopped. Best effort: the outcome is logged.
    pub async fn cancel_server_statement(&self) {
        self.canceller().cancel().await;
    }

    /// What [`Connection::cancel_server_statement`] needs, apart from the connection
    /// (which may be gone by the time the cancel is sent).
    pub fn canceller(&self) -> StatementCanceller {
        StatementCanceller {
            name: self.name.clone(),
            dialect: self.dialect,
            url: self.url.clone(),
            server_id: self.server_id,
        }
    }
}
