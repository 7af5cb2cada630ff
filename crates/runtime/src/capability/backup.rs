//! The `backup` interface (since contract 0.1.1): snapshots a plugin asks for.
//!
//! The snapshots themselves (per-dialect methods, manifests, verification,
//! restore) belong to [`migrun_backup`]; this module only answers the
//! plugin's calls through the run's tape, so a replay gets the recorded
//! answers and touches no file.

use std::collections::BTreeMap;
use std::sync::Arc;

use migrun_backup::{
    BackupError, BackupStore, MethodChoice, RunIdentity, SnapshotInfo, SnapshotRequest,
    check_plain_name,
};
use migrun_journal::{CallResult, HostCall};
use migrun_session::tape::{Answer, Tape};

/// What a live run lets a plugin snapshot.
pub struct BackupGrant {
    /// The opened backup directory.
    pub store: Arc<BackupStore>,
    /// The plugin's connections by name, with their URLs.
    pub connections: BTreeMap<String, String>,
    /// Recorded in every manifest.
    pub run: RunIdentity,
    /// The allowed method.
    pub method: MethodChoice,
}

/// The backup capability of one run.
pub struct BackupCtx {
    tape: Tape,
    grant: Result<BackupGrant, String>,
    taken: Vec<SnapshotInfo>,
}

impl BackupCtx {
    /// A context answering through `tape`, taking no backups until the runner grants a store.
    pub fn new(tape: Tape) -> Self {
        BackupCtx {
            tape,
            grant: Err("this run takes no backups".to_owned()),
            taken: Vec::new(),
        }
    }

    /// Sets the tape calls go through.
    pub fn set_tape(&mut self, tape: Tape) {
        self.tape = tape;
    }

    /// Lets the plugin take snapshots (a live run), or says why it cannot (`Err`: a dry-run,
    /// an unusable backup directory).
    pub fn grant(&mut self, grant: Result<BackupGrant, String>) {
        self.grant = grant;
    }

    /// Records a snapshot the host took itself, so that `snapshots()` lists it.
    pub fn note_taken(&mut self, info: SnapshotInfo) {
        self.taken.push(info);
    }

    async fn perform(&mut self, call: HostCall) -> wasmtime::Result<CallResult> {
        match self.tape.answer(&call).map_err(wasmtime::Error::new)? {
            Answer::Recorded(result) => Ok(result),
            Answer::Live => {
                let result = match self.run_live(&call).await {
                    Ok(snapshots) => CallResult::Snapshots { snapshots },
                    Err((error_kind, message)) => CallResult::BackupError {
                        error_kind: error_kind.to_owned(),
                        message,
                    },
                };
                self.tape
                    .record(&call, &result)
                    .map_err(wasmtime::Error::new)?;
                Ok(result)
            }
        }
    }

    async fn run_live(
        &mut self,
        call: &HostCall,
    ) -> Result<Vec<SnapshotInfo>, (&'static str, String)> {
        let failed = |e: BackupError| (e.wit_kind(), e.to_string());
        if matches!(call, HostCall::BackupList) {
            return Ok(self.taken.clone());
        }
        let grant = self
            .grant
            .as_ref()
            .map_err(|why| ("disabled", why.clone()))?;
        match call {
            HostCall::BackupSnapshot {
                conn,
                tables,
                label,
            } => {
                check_plain_name("label", label).map_err(failed)?;
                let url = grant
                    .connections
                    .get(conn)
                    .ok_or_else(|| failed(BackupError::UnknownConnection(conn.clone())))?;
                let base = format!("{}.{conn}.{label}", grant.run.run_id);
                let taken: Vec<&str> = self.taken.iter().map(|s| s.id.as_str()).collect();
                let id = (1..)
                    .map(|n| match n {
                        1 => base.clone(),
                        n => format!("{base}-{n}"),
                    })
                    .find(|id| !taken.contains(&id.as_str()))
                    .expect("an unused id");
                let request = SnapshotRequest {
                    connection: conn.clone(),
                    url: url.clone(),
                    tables: tables.clone(),
                    label: label.clone(),
                    method: grant.method,
                };
                let manifest = grant
                    .store
                    .snapshot(&request, &grant.run, &id)
                    .await
                    .map_err(failed)?;
                let info = manifest.info();
                self.taken.push(info.clone());
                Ok(vec![info])
            }
            HostCall::BackupVerify { id } => {
                let report = grant.store.verify(id).await.map_err(failed)?;
                if !report.ok() {
                    return Err((
                        "corrupt",
                        format!(
                            "backup `{id}` is corrupt: {}",
                            report
                                .bad_files
                                .iter()
                                .chain(&report.bad_tables)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ));
                }
                let manifest = grant.store.manifest(id).map_err(failed)?;
                Ok(vec![manifest.info()])
            }
            _ => unreachable!("only backup calls reach the backup capability"),
        }
    }
}

/// Why a plugin's backup call failed, whatever the contract version: the cases of
/// WIT `backup-error`, each with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginBackupError {
    /// The connection is not declared or not configured.
    UnknownConnection(String),
    /// A table does not exist or cannot be read.
    UnknownTable(String),
    /// A label or table name is not a plain name.
    InvalidName(String),
    /// The backup directory is missing, unwritable or full.
    Storage(String),
    /// The database failed while the snapshot was read.
    Database(String),
    /// No snapshot has that id.
    NotFound(String),
    /// A snapshot file no longer matches its manifest.
    Corrupt(String),
    /// This run takes no backups (a dry-run, no backup directory).
    Disabled(String),
}

impl PluginBackupError {
    /// The error a journal records as `error_kind` and message.
    fn recorded(kind: &str, message: String) -> PluginBackupError {
        use PluginBackupError as E;
        match kind {
            "unknown-connection" => E::UnknownConnection(message),
            "unknown-table" => E::UnknownTable(message),
            "invalid-name" => E::InvalidName(message),
            "storage" => E::Storage(message),
            "database" => E::Database(message),
            "not-found" => E::NotFound(message),
            "corrupt" => E::Corrupt(message),
            _ => E::Disabled(message),
        }
    }
}

fn one(result: CallResult) -> wasmtime::Result<Result<SnapshotInfo, PluginBackupError>> {
    match result {
        CallResult::Snapshots { mut snapshots } if snapshots.len() == 1 => {
            Ok(Ok(snapshots.remove(0)))
        }
        CallResult::BackupError {
            error_kind,
            message,
        } => Ok(Err(PluginBackupError::recorded(&error_kind, message))),
        other => Err(crate::capability::database::unexpected(other)),
    }
}

impl BackupCtx {
    /// `backup.snapshot`, in any contract version.
    pub async fn plugin_snapshot(
        &mut self,
        connection: String,
        tables: Vec<String>,
        label: String,
    ) -> wasmtime::Result<Result<SnapshotInfo, PluginBackupError>> {
        one(self
            .perform(HostCall::BackupSnapshot {
                conn: connection,
                tables,
                label,
            })
            .await?)
    }

    /// `backup.snapshots`, in any contract version.
    pub async fn plugin_snapshots(&mut self) -> wasmtime::Result<Vec<SnapshotInfo>> {
        match self.perform(HostCall::BackupList).await? {
            CallResult::Snapshots { snapshots } => Ok(snapshots),
            other => Err(crate::capability::database::unexpected(other)),
        }
    }

    /// `backup.verify`, in any contract version.
    pub async fn plugin_verify(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<SnapshotInfo, PluginBackupError>> {
        one(self.perform(HostCall::BackupVerify { id }).await?)
    }
}
