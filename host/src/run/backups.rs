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

/// What the selection means for the backup: whether any unit will run at all, and which
/// of those resume a checkpoint an earlier run saved (unit, the run that saved it).
pub(super) struct WillRun {
    /// At least one selected unit runs (is not skipped as finished).
    pub any: bool,
    /// Units that resume from a checkpoint, with the run that saved it.
    pub resumed: Vec<(String, String)>,
}

impl WillRun {
    /// From the unit selection and the checkpoints the targets' ledgers hold.
    pub(super) fn of(
        selected: &[(crate::contract::UnitInfo, super::units::UnitPlan)],
        checkpoints: &std::collections::BTreeMap<
            crate::ledger::UnitKey,
            crate::ledger::CheckpointRow,
        >,
    ) -> WillRun {
        let running: Vec<crate::ledger::UnitKey> = selected
            .iter()
            .filter(|(_, plan)| matches!(plan, super::units::UnitPlan::Run { .. }))
            .map(|(unit, _)| unit.key())
            .collect();
        WillRun {
            any: !running.is_empty(),
            resumed: running
                .iter()
                .filter_map(|u| {
                    checkpoints
                        .get(u)
                        .map(|c| (u.to_string(), c.run_id.clone()))
                })
                .collect(),
        }
    }
}

/// What the backup before the run amounted to.
#[derive(Debug, Default)]
pub(super) struct BackupOutcome {
    /// Snapshots taken now.
    pub taken: Vec<SnapshotInfo>,
    /// Earlier snapshots that still cover a connection this run resumes on.
    pub reused: Vec<ReusedBackup>,
    /// Why no backup was taken although one was due, when that is the case.
    pub skipped: Option<String>,
}

/// An earlier run's backup standing for this run's on one connection: this run resumes a
/// unit whose checkpoint that lineage saved, so a snapshot now would hold half-done work,
/// and restoring the earlier one undoes the whole lineage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReusedBackup {
    /// The snapshot, as the report lists backups.
    pub snapshot: SnapshotInfo,
    /// The run that took it.
    pub taken_by_run: String,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// The units this run resumes (whose checkpoints tie it to that run).
    pub resumed_units: Vec<String>,
}

/// Every refusal is behind the run: before anything is written (the ledger included), the
/// tables the plugin declares it writes are backed up, or, in a dry-run, planned. A failed
/// snapshot stops the run with nothing written.
///
/// No snapshot is taken when no unit will run (a rerun of finished work writes nothing),
/// and none on a connection where this run resumes a checkpointed unit and the backup the
/// lineage took before its first write is still in the store and covers every table declared
/// now: that one is reported instead (and recorded as `<id>.reuses`, so the next resume
/// finds it too).
pub(super) async fn back_up(
    runner: &mut Runner,
    before: &BeforeRun,
    plan: Option<&SharedPlan>,
    config: &RunConfig,
    options: &RunOptions,
    will_run: &WillRun,
) -> Result<BackupOutcome, RunError> {
    let mut outcome = BackupOutcome::default();
    if let Some(plan) = plan {
        if will_run.any {
            plan_backups(runner, plan, &before.targets, config).await;
        } else {
            for (connection, _, _) in &before.targets {
                lock(plan).add_note(
                    connection,
                    "no backup before the run: no unit will run (every selected unit finished already)",
                );
            }
        }
        return Ok(outcome);
    }
    let Ok(store) = &before.store else {
        return Ok(outcome);
    };
    if !before.take {
        return Ok(outcome);
    }
    if !will_run.any {
        outcome.skipped =
            Some("no backup: no unit will run (every selected unit finished already)".to_owned());
        return Ok(outcome);
    }
    for (connection, url, tables) in &before.targets {
        let id = format!("{}.{connection}.before-run", before.identity.run_id);
        if let Some(reused) = lineage_backup(store, will_run, connection, tables, &before.identity)
        {
            if let Err(error) = store.record_reuse(&id, &reused.snapshot.id) {
                tracing::warn!(connection = %connection, "{error}; the next resume takes a backup of its own");
            }
            let _ = runner.tape.transaction(
                connection,
                &format!("backup {} reused", reused.snapshot.id),
                None,
            );
            runner
                .instance
                .state()
                .backup
                .note_taken(reused.snapshot.clone());
            outcome.reused.push(reused);
            continue;
        }
        let request = crate::backup::SnapshotRequest {
            connection: connection.clone(),
            url: url.clone(),
            tables: tables.clone(),
            label: "before-run".to_owned(),
            method: config.backup.method,
        };
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
                outcome.taken.push(manifest.info());
            }
            Err(error) => {
                return Err(RunError::Backup {
                    connection: connection.clone(),
                    error,
                });
            }
        }
    }
    Ok(outcome)
}

/// The before-run backup of the run lineage this run continues on `connection`, if it is
/// still in the store and declares every name in `tables`: found through the run that
/// saved a resumed unit's checkpoint (its own snapshot, or the one it reused in turn).
fn lineage_backup(
    store: &BackupStore,
    will_run: &WillRun,
    connection: &str,
    tables: &[String],
    identity: &RunIdentity,
) -> Option<ReusedBackup> {
    for (_, run_id) in &will_run.resumed {
        let Some(manifest) = store.covering(&format!("{run_id}.{connection}.before-run")) else {
            continue;
        };
        let declared: Vec<&str> = manifest
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .chain(manifest.patterns.iter().map(|p| p.pattern.as_str()))
            .collect();
        let covers = manifest.plugin_name == identity.plugin_name
            && manifest.connection == connection
            && tables.iter().all(|t| declared.contains(&t.as_str()));
        if covers {
            return Some(ReusedBackup {
                snapshot: manifest.info(),
                taken_by_run: manifest.run_id.clone(),
                taken_at: manifest.created_at.clone(),
                resumed_units: will_run
                    .resumed
                    .iter()
                    .filter(|(_, r)| r == run_id)
                    .map(|(u, _)| u.clone())
                    .collect(),
            });
        }
    }
    None
}

/// The connections a run backs up before its first write, with their URLs and the names
/// the plugin declares it writes through them, then the read-only connections with the
/// tables the plugin declares backed up there (`Need::backs_up`: seed 000's rollback
/// restores the database it only read). Connections with nothing declared are not backed
/// up. The written ones come first so that a backup that cannot be taken stops the run
/// before the read-only captures are made.
///
/// A declared name may be a pattern (seed 001's `me_<slug>.memory`, one schema per
/// engine): it is kept as declared, and the snapshot expands it to the tables that match
/// it when the snapshot is taken, recording the pattern with them, so that a full restore
/// can drop the tables (and empty schemas) the run created under it. A name that is
/// neither a table nor a valid pattern is skipped with a warning.
fn backup_targets(inputs: &Inputs) -> Vec<(String, String, Vec<String>)> {
    let written = inputs
        .connections
        .iter()
        .filter(|c| c.access == Access::ReadWrite);
    let read_only = inputs
        .connections
        .iter()
        .filter(|c| c.access == Access::ReadOnly);
    written
        .chain(read_only)
        .filter(|c| !c.writes.is_empty())
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
