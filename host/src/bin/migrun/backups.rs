//! `migrun backup list|verify|prune` and `migrun restore`: the operator's side of the
//! snapshots a run takes (the library side is `migrun::backup`).

use anyhow::Context as _;
use migrun::config::RunConfig;
use migrun::printable::{printable, printable_text};

use super::{BackupCommand, BackupPlace, print_json, print_text, render};

/// The configuration for the backup commands: the file if given or present, else the defaults.
fn backup_config(place: &BackupPlace) -> anyhow::Result<RunConfig> {
    let mut config = match &place.config {
        Some(file) => RunConfig::load(file)?,
        None if std::path::Path::new("migrun.toml").exists() => {
            RunConfig::load("migrun.toml".as_ref())?
        }
        None => RunConfig::default_embedded(),
    };
    if let Some(dir) = &place.backup_dir {
        config.backup.dir = dir.clone();
    }
    Ok(config)
}

pub(super) async fn backup(cmd: BackupCommand) -> anyhow::Result<u8> {
    use migrun::backup::BackupStore;
    match cmd {
        BackupCommand::List { place, json } => {
            let config = backup_config(&place)?;
            let store = BackupStore::open(&config.backup.dir, false)?;
            let manifests = store.list()?;
            if json {
                print_json(&render::backup_list_json(&manifests));
            } else {
                print_text(&render::backup_list_text(store.path(), &manifests));
            }
            Ok(0)
        }
        BackupCommand::Verify { id, place, json } => {
            let config = backup_config(&place)?;
            let store = BackupStore::open(&config.backup.dir, false)?;
            let report = store
                .verify(&id)
                .await
                .with_context(|| format!("verifying backup {id}"))?;
            if json {
                print_json(&render::backup_verify_json(&report));
            } else {
                print_text(&render::backup_verify_text(&report));
            }
            Ok(if report.ok() { 0 } else { 1 })
        }
        BackupCommand::Prune {
            keep,
            older_than,
            force,
            dry_run,
            place,
            json,
        } => prune(keep, older_than, force, dry_run, &place, json),
    }
}

/// `migrun backup prune`: decides from the manifests (`migrun::backup::plan_prune`), then
/// deletes run by run. Exit 0 when everything the rule named was deleted (or, with
/// `--dry-run`, would be), 1 when a deletion failed (the rest were still attempted).
fn prune(
    keep: Option<usize>,
    older_than: Option<std::time::Duration>,
    force: bool,
    dry_run: bool,
    place: &BackupPlace,
    json: bool,
) -> anyhow::Result<u8> {
    use migrun::backup::{BackupStore, PruneRule, plan_prune};
    let config = backup_config(place)?;
    let store = BackupStore::open(&config.backup.dir, false)?;
    let rule = match (keep, older_than) {
        (Some(n), _) => PruneRule::KeepNewest(n),
        (None, Some(age)) => PruneRule::OlderThan(age),
        (None, None) => anyhow::bail!("say what to keep: --keep N or --older-than AGE"),
    };
    let manifests = store.list()?;
    let plan = plan_prune(&manifests, rule, chrono::Utc::now(), force);
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    let mut bytes = 0u64;
    for run in &plan.remove {
        for id in &run.ids {
            if dry_run {
                bytes += manifests
                    .iter()
                    .find(|m| &m.id == id)
                    .map(|m| m.files.iter().map(|f| f.bytes).sum::<u64>())
                    .unwrap_or(0);
                removed.push(id.clone());
                continue;
            }
            match store.remove(id) {
                Ok(freed) => {
                    tracing::info!(backup = %id, bytes = freed, "backup deleted");
                    bytes += freed;
                    removed.push(id.clone());
                }
                Err(e) => failed.push((id.clone(), e.to_string())),
            }
        }
    }
    let outcome = render::PruneOutcome {
        dir: store.path(),
        plan: &plan,
        removed: &removed,
        failed: &failed,
        bytes,
        dry_run,
    };
    if json {
        print_json(&render::backup_prune_json(&outcome));
    } else {
        print_text(&render::backup_prune_text(&outcome));
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// What a restore means for writes made after the backup, said before every restore acts
/// (in the prompt, in the refusal that lists the plan, and on stderr with `--yes`): the
/// backup is a point in time, so restoring it discards every later write to its tables —
/// the applications' as well as the runs' — as any point-in-time restore does.
fn writes_since_note(created_at: &str, plan: &migrun::backup::RestorePlan) -> String {
    let tables: Vec<&String> = plan.overwrite.iter().chain(&plan.drop_declared).collect();
    format!(
        "note: the backup is the state of {} at {created_at}; restoring it discards every write made to {} since then — by later runs and by the applications alike (a rename's dual-write included), as any point-in-time restore does. Export the rows written since that must be kept before restoring.",
        if tables.is_empty() {
            "its tables".to_owned()
        } else {
            tables
                .iter()
                .map(|n| printable(n).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        },
        if tables.len() == 1 { "it" } else { "them" }
    )
}

/// `plan` as the lines of the restore prompt: every table by name, with what happens to it.
fn restore_prompt(plan: &migrun::backup::RestorePlan) -> String {
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| printable(n).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    if !plan.overwrite.is_empty() {
        lines.push(format!(
            "  overwrite with the backup's rows: {}",
            list(&plan.overwrite)
        ));
    }
    if !plan.drop_declared.is_empty() {
        lines.push(format!(
            "  drop if present (declared, absent when the backup was taken): {}",
            list(&plan.drop_declared)
        ));
    }
    if !plan.drop_created.is_empty() {
        lines.push(format!(
            "  DROP, not in the backup (created since, by the run or by anyone else; matching {}): {}",
            list(&plan.patterns),
            list(&plan.drop_created)
        ));
    }
    if !plan.schemas.is_empty() {
        lines.push(format!(
            "  drop if empty (created since): schema {}",
            list(&plan.schemas)
        ));
    }
    if plan.forgets_ledger_rows {
        lines.push(
            "  ledger: forget the rows of the run that took the backup and of the plugin's later runs"
                .to_owned(),
        );
    }
    if lines.is_empty() {
        lines.push("  nothing: the backup holds no table".to_owned());
    }
    lines.join("\n")
}

#[allow(
    clippy::too_many_arguments,
    reason = "one per option of the subcommand"
)]
pub(super) async fn restore(
    id: &str,
    tables: Option<Vec<String>>,
    yes: bool,
    drop: &[String],
    place: &BackupPlace,
    overrides: &[String],
    json: bool,
    lock_timeout: std::time::Duration,
) -> anyhow::Result<u8> {
    use std::io::IsTerminal as _;
    let mut config = backup_config(place)?;
    for spec in overrides {
        config.apply_override(spec)?;
    }
    let store = migrun::backup::BackupStore::open(&config.backup.dir, false)?;
    let manifest = store.manifest(id)?;
    let target = config.connection(&manifest.connection);
    let ledger = migrun::ledger::Ledger::new(&config.ledger_table);
    let plan = store
        .restore_plan(id, &target.url, tables.as_deref(), &ledger)
        .await
        .with_context(|| format!("reading what restoring backup {id} would change"))?;
    let place_text = format!(
        "`{}` ({})",
        manifest.connection,
        migrun::config::redact_url(&target.url)
    );
    if let Some(unknown) = drop.iter().find(|d| !plan.drop_created.contains(d)) {
        anyhow::bail!(
            "--drop {unknown}: not a table this restore would drop (created since the backup: {}); nothing was changed",
            if plan.drop_created.is_empty() {
                "none".to_owned()
            } else {
                plan.drop_created.join(", ")
            }
        );
    }
    // Tables created since the backup are dropped only when named: listed in the prompt
    // the operator confirms, or with --yes named one by one with --drop.
    let named_drops: Vec<String> = if yes {
        let unnamed: Vec<&String> = plan
            .drop_created
            .iter()
            .filter(|t| !drop.contains(t))
            .collect();
        if !unnamed.is_empty() {
            anyhow::bail!(
                "restoring backup {id} into {place_text} would drop table(s) that are not in the backup \
                 (created since it was taken, by the run or by anyone else): {}. With --yes, name each one \
                 to drop it: --drop {}; or restore only the backup's tables with --tables. Nothing was changed.\n{}\n{}",
                unnamed
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                unnamed
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                restore_prompt(&plan),
                writes_since_note(&manifest.created_at, &plan)
            );
        }
        // On stderr with --json too: the JSON on stdout stays one document.
        eprintln!(
            "{}",
            printable_text(&writes_since_note(&manifest.created_at, &plan))
        );
        drop.to_vec()
    } else {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "restoring backup {id} into {place_text} would:\n{}\n{}\npass --yes to confirm{} (nothing was changed)",
                restore_prompt(&plan),
                writes_since_note(&manifest.created_at, &plan),
                if plan.drop_created.is_empty() {
                    String::new()
                } else {
                    format!(
                        " and --drop {} to drop the tables not in the backup",
                        plan.drop_created.join(",")
                    )
                }
            );
        }
        eprint!(
            "Restore backup {id} into {place_text}? This will:\n{}\n{}\nProceed? [y/N] ",
            printable_text(&restore_prompt(&plan)),
            printable_text(&writes_since_note(&manifest.created_at, &plan))
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("not restored; nothing was changed");
            return Ok(1);
        }
        plan.drop_created.clone()
    };
    // The run lock: a restore never runs in the middle of a run on the same target.
    let sqlite_file = migrun::config::sqlite_file(&target.url).filter(|p| p.exists());
    let lock = migrun::lock::acquire(
        &manifest.connection,
        &target.url,
        &migrun::lock::run_lock_name(&config.ledger_table),
        None,
        "restore",
        sqlite_file.as_deref(),
        lock_timeout,
    )
    .await
    .with_context(|| format!("restoring backup {id}: nothing was changed"))?;
    let report = store
        .restore(id, &target.url, tables.as_deref(), &ledger, &named_drops)
        .await
        .with_context(|| format!("restoring backup {id}"));
    lock.release().await;
    let report = report?;
    if json {
        print_json(&render::restore_json(&report));
    } else {
        print_text(&render::restore_text(&report));
    }
    Ok(if report.verified() { 0 } else { 1 })
}
