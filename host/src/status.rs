//! `migrun status`: the ledger of every configured connection.

use serde::Serialize;

use crate::config::{RunConfig, redact_url};
use crate::db::{Access, Connection};
use crate::ledger::{Ledger, LedgerRow};

/// The ledger of one connection.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// The connection.
    pub connection: String,
    /// Its URL, password redacted.
    pub url: String,
    /// The ledger table.
    pub table: String,
    /// Its rows; `None` when the table does not exist (nothing ever ran there).
    pub rows: Option<Vec<LedgerRow>>,
    /// Why it could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads the ledger of every configured connection, read-only.
pub async fn collect(config: &RunConfig) -> Vec<TargetStatus> {
    let ledger = Ledger::new(&config.ledger_table);
    let mut out = Vec::new();
    for (name, conn) in &config.connections {
        let mut status = TargetStatus {
            connection: name.clone(),
            url: redact_url(&conn.url),
            table: ledger.table().to_owned(),
            rows: None,
            error: None,
        };
        match Connection::connect(name, &conn.url, Access::ReadOnly).await {
            Ok(mut c) => {
                match ledger.all(&mut c).await {
                    Ok(rows) => status.rows = rows,
                    Err(e) => status.error = Some(e.to_string()),
                }
                c.close().await;
            }
            Err(e) => status.error = Some(e.to_string()),
        }
        out.push(status);
    }
    out
}
