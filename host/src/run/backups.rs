//! The backup before the run: which tables it covers (`backup_targets`), the backup
//! directory opened and granted to the plugin (`open_store`), and, once every refusal
//! is behind the run, the snapshots taken before the first write (`back_up`) or, in a
//! dry-run, what a run would back up put into the plan (`plan_backups`).

use std::sync::Arc;

use crate::backup::{BackupStore, RunIdentity, SnapshotInfo};
use crate::capability::backup::BackupGrant;
use crate::config::RunConfig;
use crate::db::Access;
use crate::tape::lock;

use super::inputs::Inputs;
use super::report::SharedPlan;
use super::units::Runner;
use super::{RunError, RunOptions};

/// The backup a run takes before its first write, once the directory is open.
pub(super) struct BeforeRun {
    /// Per connection: its URL and the declared tables and patterns it writes.
    targets: Vec<(String, String, Vec<String>)>,
    /// Whether the snapshots are taken (a live run, `[backup] before_run`, no `--no-backup`,
    /// something declared).
    take: bool,
    /// The backup directory, or why there is none.
    store: Result<Arc<BackupStore>, String>,
    /// The run as the manifests name it.
    identity: RunIdentity,
}

/// Opens the backup directory and grants it to the plugin (`capability::backup`). A
/// directory that cannot be opened stops the run when a backup is due (nothing written);
/// otherwise the plugin's backup calls hear why. A dry-run grants none.
pub(super) fn open_store(
    runner: &mut Runner,
    inputs: &Inputs,
    config: &RunConfig,
    options: &RunOptions,
    identity: RunIdentity,
) -> Result<BeforeRun, RunError> {
    let targets = backup_targets(inputs);
    let take =
        !options.dry_run && config.backup.before_run && !options.no_backup && !targets.is_empty();
    let store = if options.dry_run {
        Err("a dry-run takes no backups (the plan lists what a run would back up)".to_owned())
    } else {
        match BackupStore::open(&config.backup.dir, true) {
            Ok(store) => Ok(Arc::new(store)),
            Err(error) if take => {
                return Err(RunError::Backup {
                    connection: String::new(),
                    error,
                });
            }
            Err(error) => Err(error.to_string()),
        }
    };
    runner
        .instance
        .state()
        .backup
        .grant(store.clone().map(|store| {
            BackupGrant {
                store,
                connections: inputs
                    .connections
                    .iter()
                    .map(|c| (c.name.clone(), c.url.clone()))
                    .collect(),
                run: identity.clone(),
                method: config.backup.method,
            }
        }));
    Ok(BeforeRun {
        targets,
        take,
        store,
        identity,
    })
}

/// Every refusal is behind the run: before anything is written (the ledger included), the
/// tables the plugin declares it writes are backed up, or, in a dry-run, planned. A failed
/// snapshot stops the run with nothing written.
pub(super) async fn back_up(
    runner: &mut Runner,
    before: &BeforeRun,
    plan: Option<&SharedPlan>,
    config: &RunConfig,
    options: &RunOptions,
) -> Result<Vec<SnapshotInfo>, RunError> {
    let mut backups = Vec::new();
    if let Some(plan) = plan {
        plan_backups(runner, plan, &before.targets, config).await;
    } else if before.take
        && let Ok(store) = &before.store
    {
        for (connection, url, tables) in &before.targets {
            let request = crate::backup::SnapshotRequest {
                connection: connection.clone(),
                url: url.clone(),
                tables: tables.clone(),
                label: "before-run".to_owned(),
                method: config.backup.method,
            };
            let id = format!("{}.{connection}.before-run", before.identity.run_id);
            options
                .observer
                .phase_started(&format!("backup {connection}"));
            let taken = store.snapshot(&request, &before.identity, &id).await;
            options
                .observer
                .phase_finished(&format!("backup {connection}"), taken.is_ok());
            match taken {
                Ok(manifest) => {
                    let _ = runner
                        .tape
                        .transaction(connection, &format!("backup {id}"), None);
                    runner.instance.state().backup.note_taken(manifest.info());
                    backups.push(manifest.info());
                }
                Err(error) => {
                    return Err(RunError::Backup {
                        connection: connection.clone(),
                        error,
                    });
                }
            }
        }
    }
    Ok(backups)
}
/// The connections a run backs up before its first write, with their URLs and the names
/// the plugin declares it writes through them (read-only and undeclared ones are not
/// backed up).
///
/// A declared name may be a pattern (seed 001's `me_<slug>.memory`, one schema per
/// engine): it is kept as declared, and the snapshot expands it to the tables that match
/// it when the snapshot is taken, recording the pattern with them, so that a full restore
/// can drop the tables (and empty schemas) the run created under it. A name that is
/// neither a table nor a valid pattern is skipped with a warning.
fn backup_targets(inputs: &Inputs) -> Vec<(String, String, Vec<String>)> {
    inputs
        .connections
        .iter()
        .filter(|c| c.access == Access::ReadWrite && !c.writes.is_empty())
        .map(|c| {
            let tables = c
                .writes
                .iter()
                .filter(|t| match crate::backup::check_table_or_pattern(t) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(connection = %c.name, "not backed up before the run: {e}");
                        false
                    }
                })
                .cloned()
                .collect();
            (c.name.clone(), c.url.clone(), tables)
        })
        .filter(|(_, _, tables): &(String, String, Vec<String>)| !tables.is_empty())
        .collect()
}

/// Puts into a dry-run's plan what a real run would back up: each declared table with its
/// current row count, and each pattern with the tables it matches now (they would be
/// snapshotted too).
async fn plan_backups(
    runner: &mut Runner,
    plan: &SharedPlan,
    targets: &[(String, String, Vec<String>)],
    config: &RunConfig,
) {
    for (connection, url, names) in targets {
        let (patterns, mut tables): (Vec<String>, Vec<String>) = names
            .iter()
            .cloned()
            .partition(|n| crate::backup::is_pattern(n));
        let matched = if patterns.is_empty() {
            Vec::new()
        } else {
            match crate::backup::pattern_matches(url, &patterns).await {
                Ok(matched) => matched,
                Err(e) => {
                    lock(plan).add_note(
                        connection,
                        format!(
                            "the tables matching {} could not be listed: {e}",
                            patterns.join(", ")
                        ),
                    );
                    patterns.iter().map(|p| (p.clone(), Vec::new())).collect()
                }
            }
        };
        for (_, found) in &matched {
            for t in found {
                if !tables.contains(t) {
                    tables.push(t.clone());
                }
            }
        }
        let mut counted = Vec::new();
        if let Some(conn) = runner
            .instance
            .state()
            .database
            .session()
            .connections_mut()
            .find(|c| c.name() == connection)
        {
            for table in &tables {
                counted.push((
                    table.clone(),
                    conn.table_row_count(table).await.ok().flatten(),
                ));
            }
        }
        let mut plan = lock(plan);
        if config.backup.before_run {
            plan.set_backup(
                connection,
                crate::plan::PlannedBackup {
                    dir: config.backup.dir.display().to_string(),
                    tables: counted,
                    patterns: matched,
                },
            );
        } else {
            plan.add_note(
                connection,
                "no backup before the run: `[backup] before_run = false`",
            );
        }
    }
}
