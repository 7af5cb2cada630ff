//! The run's journal: its header (versions, sha256, seeds, redacted connections,
//! limits), created with a copy of the plugin before any transaction; the run's
//! identity as backups and ledger rows name it; and the footer that seals it.
//! Every call in between reaches it through the `Tape`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::RunConfig;
use crate::journal::{self, Entry, Footer, Header, JournalConnection, JournalError, JournalWriter};
use crate::runtime::LoadedPlugin;
use crate::tape::{Recorder, TapeError, lock};

use super::inputs::Inputs;
use super::{
    ConnectionReport, FailureCause, JournalSummary, RunError, RunFailure, RunOptions, RunReport,
};

/// The journal's first entry: what a replay needs to run the same plugin the same way.
pub(super) fn header(
    plugin: &LoadedPlugin,
    inputs: &Inputs,
    options: &RunOptions,
    connections: &[ConnectionReport],
    config: &RunConfig,
) -> Header {
    Header {
        format: journal::FORMAT.to_owned(),
        migrun_version: crate::VERSION.to_owned(),
        contract_version: plugin.contract.0.clone(),
        plugin_sha256: plugin.sha256.clone(),
        plugin_name: inputs.info.name.clone(),
        plugin_version: inputs.info.version.clone(),
        run_id: inputs.run_id.clone(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        dry_run: options.dry_run,
        only: options.only.clone(),
        shard: options.shard,
        jobs: (options.jobs > 1 && !options.dry_run).then_some(options.jobs),
        keep_going: options.keep_going,
        seeds: inputs.seeds,
        connections: connections
            .iter()
            .map(|c| JournalConnection {
                name: c.name.clone(),
                dialect: c.dialect,
                access: c.access,
                url: c.url.clone(),
            })
            .collect(),
        limits: config.limits,
        files_dir: config.files_dir.as_ref().map(|d| d.display().to_string()),
    }
}

/// The run as its backups' manifests and its ledger rows name it.
pub(super) fn identity(
    plugin: &LoadedPlugin,
    inputs: &Inputs,
    recorder: &Mutex<Recorder>,
) -> crate::backup::RunIdentity {
    crate::backup::RunIdentity {
        run_id: inputs.run_id.clone(),
        journal: lock(recorder).writer_mut().path().display().to_string(),
        plugin_name: inputs.info.name.clone(),
        plugin_sha256: plugin.sha256.clone(),
    }
}

/// Appends the footer and finishes the journal; its path and final hash go into the
/// report. A journal that cannot be sealed fails a run that had not failed otherwise.
pub(super) fn seal(recorder: &Mutex<Recorder>, report: &mut RunReport) {
    let mut recorder = lock(recorder);
    let footer = footer(report, recorder.calls());
    let sealed = recorder
        .append(&Entry::Footer(footer))
        .and_then(|()| recorder.writer_mut().finish());
    match sealed {
        Ok(final_hash) => {
            report.journal = Some(JournalSummary {
                path: recorder.writer_mut().path().to_owned(),
                final_hash,
                entries: recorder.writer_mut().entries(),
                calls: recorder.calls(),
            })
        }
        Err(e) if report.failure.is_none() => {
            report.failure = Some(RunFailure {
                phase: "journal".into(),
                message: e.to_string(),
                consequence: "the units stay committed but their journal is incomplete".into(),
                cause: FailureCause::Tape(TapeError::Journal(e)),
            })
        }
        Err(e) => tracing::error!("the journal could not be completed: {e}"),
    }
}

/// `<UTC time>-<plugin>-<random>`: sortable, readable, unique.
pub(super) fn run_id(plugin: &str) -> String {
    let name: String = plugin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}-{name}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

/// Creates the journal with its header and stores a copy of the plugin next to it.
pub(super) fn start_journal(
    dir: &Path,
    shared_plugins: Option<&Path>,
    header: &Header,
    plugin: &LoadedPlugin,
) -> Result<Arc<std::sync::Mutex<Recorder>>, RunError> {
    let stored = match shared_plugins {
        Some(shared) => {
            link_shared_plugin_copy(shared, dir, &plugin.sha256, &plugin.bytes, &header.run_id)
        }
        None => store_plugin_copy(dir, &plugin.sha256, &plugin.bytes, &header.run_id),
    };
    stored.map_err(|(path, source)| {
        RunError::Tape(TapeError::Journal(JournalError::Io {
            path: path.display().to_string(),
            source,
        }))
    })?;
    let path = dir.join(format!("{}.journal", header.run_id));
    let mut writer = JournalWriter::create(&path).map_err(TapeError::Journal)?;
    writer
        .append(&Entry::Header(header.clone()))
        .map_err(TapeError::Journal)?;
    // In the file before anything can be written: a run killed at any moment leaves a
    // journal whose header verifies. Durable (fsynced, with the folder's entry) at the
    // first commit's sync — before it nothing was committed that the journal must prove —
    // which spares a short run (a tenant that is up to date) two fsyncs.
    writer.flush().map_err(TapeError::Journal)?;
    Ok(Arc::new(std::sync::Mutex::new(Recorder::new(writer))))
}

/// Stores the plugin as `plugins/<sha256>.wasm` in the journal directory,
/// where replay looks for it.
///
/// Workers sharing one journal directory may store the same plugin at the
/// same moment: each writes its own partial file (named by its run id) and
/// renames it into place, so no worker renames another's file away; the
/// name is the content's sha256, so whichever rename lands last leaves the
/// same bytes.
/// Stores the plugin once as `<shared>/<sha256>.wasm` and hard-links it as
/// `<dir>/plugins/<sha256>.wasm`, where replay finds it; where a link cannot be made (another
/// file system), the journal folder gets a copy of its own.
fn link_shared_plugin_copy(
    shared: &Path,
    dir: &Path,
    sha256: &str,
    bytes: &[u8],
    run_id: &str,
) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let original = shared.join(format!("{sha256}.wasm"));
    if !original.exists() {
        // Published with a link, not a rename: when tenants running at once both write it,
        // the first link wins and every tenant links to that one file.
        let partial = shared.join(format!("{sha256}.wasm.{run_id}.partial"));
        let published = std::fs::create_dir_all(shared)
            .and_then(|()| std::fs::write(&partial, bytes))
            .and_then(|()| match std::fs::hard_link(&partial, &original) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            });
        let _ = std::fs::remove_file(&partial);
        if published.is_err() {
            // No shared copy (a file system without links, say): a copy of its own.
            return store_plugin_copy(dir, sha256, bytes, run_id);
        }
    }
    let plugins = dir.join("plugins");
    let copy = plugins.join(format!("{sha256}.wasm"));
    if copy.exists() {
        return Ok(copy);
    }
    std::fs::create_dir_all(&plugins).map_err(|e| (copy.clone(), e))?;
    match std::fs::hard_link(&original, &copy) {
        Ok(()) => Ok(copy),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(copy),
        Err(_) => store_plugin_copy(dir, sha256, bytes, run_id),
    }
}

fn store_plugin_copy(
    dir: &Path,
    sha256: &str,
    bytes: &[u8],
    run_id: &str,
) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let plugins = dir.join("plugins");
    let copy = plugins.join(format!("{sha256}.wasm"));
    if copy.exists() {
        return Ok(copy);
    }
    let partial = plugins.join(format!("{sha256}.wasm.{run_id}.partial"));
    std::fs::create_dir_all(&plugins)
        .and_then(|()| std::fs::write(&partial, bytes))
        .and_then(|()| std::fs::rename(&partial, &copy))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            (copy.clone(), e)
        })?;
    Ok(copy)
}

fn footer(report: &RunReport, calls: u64) -> Footer {
    let mut rows_written: BTreeMap<String, u64> = BTreeMap::new();
    for unit in &report.units {
        for (conn, w) in &unit.writes {
            *rows_written.entry(conn.clone()).or_default() += w.rows;
        }
    }
    Footer {
        outcome: match report.exit_code() {
            0 => "succeeded",
            3 => "checks-failed",
            _ => "failed",
        }
        .to_owned(),
        failure: report
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.phase, f.message)),
        calls,
        rows_written,
        checks: report.checks.len() as u64,
        checks_failed: report.checks.iter().filter(|c| !c.ok).count() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::{link_shared_plugin_copy, store_plugin_copy};

    /// Regression: three sharded workers started at once on a fresh journal
    /// directory; one renamed the shared partial file away under another,
    /// which then failed to start ("plugins/<sha>.wasm: No such file").
    #[test]
    fn workers_storing_the_same_plugin_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for worker in 0..8 {
                let (dir, bytes, start) = (dir.path(), &bytes, &start);
                scope.spawn(move || {
                    start.wait();
                    store_plugin_copy(dir, "abc", bytes, &format!("run-{worker}"))
                        .unwrap_or_else(|(path, e)| panic!("worker {worker}: {path:?}: {e}"));
                });
            }
        });
        let copy = dir.path().join("plugins").join("abc.wasm");
        assert_eq!(std::fs::read(copy).unwrap(), bytes);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("plugins"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["abc.wasm"], "no partial file is left behind");
    }

    /// Tenants started at once each link the one shared copy into their own folder: one
    /// file on disk (one inode), whichever tenant wrote it, and no partial file left.
    #[cfg(unix)]
    #[test]
    fn tenants_at_once_share_one_copy_of_the_plugin() {
        use std::os::unix::fs::MetadataExt as _;
        let base = tempfile::tempdir().unwrap();
        let shared = base.path().join(".plugins");
        let bytes: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for tenant in 0..8 {
                let (base, shared, bytes, start) = (base.path(), &shared, &bytes, &start);
                scope.spawn(move || {
                    start.wait();
                    let dir = base.join(format!("t{tenant}"));
                    link_shared_plugin_copy(shared, &dir, "abc", bytes, &format!("run-{tenant}"))
                        .unwrap_or_else(|(path, e)| panic!("tenant {tenant}: {path:?}: {e}"));
                });
            }
        });
        let inode = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
        let original = shared.join("abc.wasm");
        assert_eq!(std::fs::read(&original).unwrap(), bytes);
        for tenant in 0..8 {
            let copy = base.path().join(format!("t{tenant}/plugins/abc.wasm"));
            assert_eq!(inode(&copy), inode(&original), "tenant {tenant}");
        }
        let names: Vec<_> = std::fs::read_dir(&shared)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["abc.wasm"], "no partial file is left behind");
    }
}
