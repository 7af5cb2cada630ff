//! The `files` interface (contract 0.2.0): files of the one directory the operator
//! granted, read-only, by relative name.
//!
//! The directory is opened once per run with cap-std ([`FilesGrant::open`]), and every
//! name a plugin sends is resolved beneath it: a name is first checked on its own
//! (empty, NUL or control characters: `invalid-name`; absolute or with a `..`
//! component: `escape`), then opened through the [`cap_std::fs::Dir`], which refuses
//! any symbolic link leading outside the directory (`escape`). Only regular files are
//! opened (a device or a pipe inside the directory is `invalid-name`). Nothing is
//! written, created or deleted: the capability has no such operation.
//!
//! At `open` the host reads the file once to hash it (sha256, streaming) and then
//! serves `read`s of at most [`FILE_READ_MAX_BYTES`] from the same open descriptor,
//! hashing again as it goes: at the end of the file the bytes served must hash to the
//! sha256 given at `open`, or the read fails (`io`: the file changed while it was
//! read). So what the journal records — the name and sha256 at `open`, the bytes of
//! every `read` — is what the file held.
//!
//! Every call goes through the run's [`Tape`]: a replay answers it from the journal and
//! touches no file (the granted directory may be gone), and a comparison with another
//! plugin version serves the recorded bytes ([`migrun_session::tape::Comparison`]).
//! The files read (name, size, sha256, bytes read) are kept for the plan and the report
//! ([`FilesCtx::files_read`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::Dir;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Resource, ResourceTable};

use migrun_journal::{CallResult, HostCall};
use migrun_session::tape::{Answer, Tape};

pub use migrun_session::tape::FILE_READ_MAX_BYTES;

/// Files a plugin may hold open at once (each holds a descriptor on the host).
pub const MAX_OPEN_FILES: usize = 64;

/// The directory the operator granted, opened once for the run (shared by the
/// instances of `--jobs` workers).
#[derive(Clone)]
pub struct FilesGrant {
    dir: Arc<Dir>,
    path: PathBuf,
}

impl FilesGrant {
    /// Opens the granted directory `path` (made absolute by the configuration).
    pub fn open(path: &Path) -> std::io::Result<FilesGrant> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(FilesGrant {
            dir: Arc::new(dir),
            path: path.to_owned(),
        })
    }

    /// The directory as the operator named it (resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An open file as the guest holds it: its number in the run and its `open` answer.
pub struct FileResource {
    id: u64,
    name: String,
    size: u64,
    sha256: String,
}

impl FileResource {
    /// The name it was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes at `open`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its sha256 at `open` (lowercase hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// A file the run read, as the plan and the report list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileRead {
    /// The name it was opened by, relative to the granted directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The sha256 of its content (lowercase hex).
    pub sha256: String,
    /// The bytes the plugin read (the size when it read the whole file).
    pub bytes_read: u64,
}

/// Why a plugin's file call failed, whatever the contract version: the cases of WIT
/// `file-error`, each with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFileError {
    /// No directory was granted.
    #[error("{0}")]
    NotGranted(String),
    /// No such file in the granted directory.
    #[error("{0}")]
    NotFound(String),
    /// The name would leave the granted directory.
    #[error("{0}")]
    Escape(String),
    /// The name is not usable (empty, NUL, not a regular file / not a folder).
    #[error("{0}")]
    InvalidName(String),
    /// Reading failed, or the file changed while it was read.
    #[error("{0}")]
    Io(String),
}

impl PluginFileError {
    /// The case as the WIT and the journal spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFileError::NotGranted(_) => "not-granted",
            PluginFileError::NotFound(_) => "not-found",
            PluginFileError::Escape(_) => "escape",
            PluginFileError::InvalidName(_) => "invalid-name",
            PluginFileError::Io(_) => "io",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            PluginFileError::NotGranted(m)
            | PluginFileError::NotFound(m)
            | PluginFileError::Escape(m)
            | PluginFileError::InvalidName(m)
            | PluginFileError::Io(m) => m,
        }
    }

    /// The error a journal records as `error_kind` and message.
    fn recorded(kind: &str, message: String) -> PluginFileError {
        match kind {
            "not-granted" => PluginFileError::NotGranted(message),
            "not-found" => PluginFileError::NotFound(message),
            "escape" => PluginFileError::Escape(message),
            "invalid-name" => PluginFileError::InvalidName(message),
            _ => PluginFileError::Io(message),
        }
    }

    fn to_result(&self) -> CallResult {
        CallResult::FileError {
            error_kind: self.kind().to_owned(),
            message: self.message().to_owned(),
        }
    }
}

/// A file open on the host (live runs only).
struct LiveFile {
    file: std::fs::File,
    name: String,
    size: u64,
    sha256: String,
    /// Bytes served so far, and their running hash.
    served: u64,
    hasher: Sha256,
    /// The end was reached (and checked).
    ended: bool,
}

/// The files capability of one run.
pub struct FilesCtx {
    table: ResourceTable,
    tape: Tape,
    grant: Option<FilesGrant>,
    live: HashMap<u64, LiveFile>,
    next_id: u64,
    read: BTreeMap<String, FileRead>,
}

impl FilesCtx {
    /// A context answering through `tape`, with no directory granted.
    pub fn new(tape: Tape) -> Self {
        FilesCtx {
            table: ResourceTable::new(),
            tape,
            grant: None,
            live: HashMap::new(),
            next_id: 1,
            read: BTreeMap::new(),
        }
    }

    /// Sets the tape calls go through.
    pub fn set_tape(&mut self, tape: Tape) {
        self.tape = tape;
    }

    /// Grants the plugin the files of `grant` (`None`: every `open` is `not-granted`).
    pub fn grant(&mut self, grant: Option<FilesGrant>) {
        self.grant = grant;
    }

    /// The files read so far, by name: what the plan and the report list.
    pub fn files_read(&self) -> Vec<FileRead> {
        self.read.values().cloned().collect()
    }

    async fn perform(&mut self, call: HostCall) -> wasmtime::Result<CallResult> {
        match self.tape.answer(&call).map_err(wasmtime::Error::new)? {
            Answer::Recorded(result) => Ok(result),
            Answer::Live => {
                let result = self.run_live(&call).unwrap_or_else(|e| e.to_result());
                self.tape
                    .record(&call, &result)
                    .map_err(wasmtime::Error::new)?;
                Ok(result)
            }
        }
    }

    fn granted(&self) -> Result<&FilesGrant, PluginFileError> {
        self.grant.as_ref().ok_or_else(|| {
            PluginFileError::NotGranted(
                "the operator granted no files directory: set `[files] dir` in migrun.toml \
                 (or pass --files DIR) to let the plugin read the files in it"
                    .to_owned(),
            )
        })
    }

    fn run_live(&mut self, call: &HostCall) -> Result<CallResult, PluginFileError> {
        match call {
            HostCall::FileOpen { name } => self.open_live(name),
            HostCall::FileRead { file, max_bytes } => self.read_live(*file, *max_bytes),
            HostCall::FileClose { file } => {
                self.live.remove(file);
                Ok(CallResult::Unit)
            }
            HostCall::FileList { dir } => self.list_live(dir),
            _ => unreachable!("only file calls reach the files capability"),
        }
    }

    fn open_live(&mut self, name: &str) -> Result<CallResult, PluginFileError> {
        let grant = self.granted()?;
        let path = checked_name(name, false)?;
        if self.live.len() >= MAX_OPEN_FILES {
            return Err(PluginFileError::Io(format!(
                "`{name}`: {MAX_OPEN_FILES} files are open already; drop one first"
            )));
        }
        // The metadata first (following links, within the directory): a pipe or a device
        // is refused before it is opened, since opening one could block.
        let metadata = grant.dir.metadata(path).map_err(|e| io_refusal(name, &e))?;
        if !metadata.is_file() {
            return Err(PluginFileError::InvalidName(format!(
                "`{name}` is not a regular file{}",
                if metadata.is_dir() {
                    " (it is a folder: list it)"
                } else {
                    ""
                }
            )));
        }
        let mut file = grant
            .dir
            .open(path)
            .map_err(|e| io_refusal(name, &e))?
            .into_std();
        let failed = |e: std::io::Error| PluginFileError::Io(format!("reading `{name}`: {e}"));
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher).map_err(failed)?;
        file.rewind().map_err(failed)?;
        let sha256 = hex::encode(hasher.finalize());
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(
            id,
            LiveFile {
                file,
                name: name.to_owned(),
                size,
                sha256: sha256.clone(),
                served: 0,
                hasher: Sha256::new(),
                ended: false,
            },
        );
        Ok(CallResult::FileOpened {
            file: id,
            size,
            sha256,
        })
    }

    fn read_live(&mut self, id: u64, max_bytes: u32) -> Result<CallResult, PluginFileError> {
        let Some(open) = self.live.get_mut(&id) else {
            return Err(PluginFileError::Io(format!("file #{id} is not open")));
        };
        let want = (max_bytes as usize).min(FILE_READ_MAX_BYTES);
        if open.ended || want == 0 {
            return Ok(CallResult::FileChunk { bytes: Vec::new() });
        }
        let name = open.name.clone();
        let failed = |e: std::io::Error| PluginFileError::Io(format!("reading `{name}`: {e}"));
        let mut bytes = Vec::with_capacity(want);
        (&mut open.file)
            .take(want as u64)
            .read_to_end(&mut bytes)
            .map_err(failed)?;
        let changed = || {
            PluginFileError::Io(format!(
                "`{name}` changed while it was read (its bytes no longer match the sha256 taken \
                 when it was opened); nothing of it should be trusted"
            ))
        };
        open.served += bytes.len() as u64;
        open.hasher.update(&bytes);
        if open.served > open.size {
            return Err(changed());
        }
        if bytes.len() < want {
            // The end: what was served must be what was hashed at `open`.
            open.ended = true;
            let served = hex::encode(std::mem::take(&mut open.hasher).finalize());
            if open.served != open.size || served != open.sha256 {
                return Err(changed());
            }
        }
        Ok(CallResult::FileChunk { bytes })
    }

    fn list_live(&mut self, dir: &str) -> Result<CallResult, PluginFileError> {
        let grant = self.granted()?;
        let path = checked_name(dir, true)?;
        let entries = grant.dir.read_dir(path).map_err(|e| io_refusal(dir, &e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PluginFileError::Io(format!("listing `{dir}`: {e}")))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // a name that is not UTF-8 could never be opened by a plugin
            };
            // Follow a link within the directory; one that leads outside is left out.
            let Ok(metadata) = grant.dir.metadata(path.join(&name)) else {
                continue;
            };
            if metadata.is_dir() {
                names.push(format!("{name}/"));
            } else if metadata.is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(CallResult::FileNames { names })
    }

    fn note_opened(&mut self, name: &str, size: u64, sha256: &str) {
        self.read
            .entry(name.to_owned())
            .or_insert_with(|| FileRead {
                name: name.to_owned(),
                size,
                sha256: sha256.to_owned(),
                bytes_read: 0,
            });
    }
}

/// A name checked on its own, before any file system call: `escape` for absolute names
/// and `..` components, `invalid-name` for empty names (unless `folder`: the directory
/// itself), NUL and control characters.
fn checked_name(name: &str, folder: bool) -> Result<&Path, PluginFileError> {
    let shown = crate::printable::printable(name);
    if name.is_empty() || name == "." {
        return if folder {
            Ok(Path::new("."))
        } else {
            Err(PluginFileError::InvalidName(
                "an empty name names no file".to_owned(),
            ))
        };
    }
    if name.contains('\0') {
        return Err(PluginFileError::InvalidName(format!(
            "`{shown}` holds a NUL character"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(PluginFileError::InvalidName(format!(
            "`{shown}` holds a control character"
        )));
    }
    let path = Path::new(name);
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(PluginFileError::Escape(format!(
                    "`{shown}` is absolute: name a file relative to the granted directory"
                )));
            }
            Component::ParentDir => {
                return Err(PluginFileError::Escape(format!(
                    "`{shown}` has a `..` component: only files inside the granted directory can be read"
                )));
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(path)
}

/// An error of the file system for `name`, as the plugin gets it.
fn io_refusal(name: &str, error: &std::io::Error) -> PluginFileError {
    let shown = crate::printable::printable(name);
    // cap-std refuses a path that leads outside the directory (a symbolic link) with
    // this message; `openat2(RESOLVE_BENEATH)` with EXDEV.
    if error.to_string().contains("outside of the filesystem") || error.raw_os_error() == Some(18) {
        return PluginFileError::Escape(format!(
            "`{shown}` leads outside the granted directory (a symbolic link): refused"
        ));
    }
    match error.kind() {
        std::io::ErrorKind::NotFound => {
            PluginFileError::NotFound(format!("`{shown}`: no such file in the granted directory"))
        }
        std::io::ErrorKind::NotADirectory => {
            PluginFileError::InvalidName(format!("`{shown}`: a part of the name is not a folder"))
        }
        _ => PluginFileError::Io(format!("`{shown}`: {error}")),
    }
}

/// The version-free surface of the `files` interface: each contract version converts
/// its `file-error` from [`PluginFileError`].
impl FilesCtx {
    /// `files.open`.
    pub async fn plugin_open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<FileResource>, PluginFileError>> {
        let result = self
            .perform(HostCall::FileOpen { name: name.clone() })
            .await?;
        match result {
            CallResult::FileOpened { file, size, sha256 } => {
                self.note_opened(&name, size, &sha256);
                Ok(Ok(self.table.push(FileResource {
                    id: file,
                    name,
                    size,
                    sha256,
                })?))
            }
            CallResult::FileError {
                error_kind,
                message,
            } => Ok(Err(PluginFileError::recorded(&error_kind, message))),
            other => Err(crate::capability::database::unexpected(other)),
        }
    }

    /// The `file` resource's fixed answers (name, size, sha256), with no host call.
    pub fn plugin_file<T>(
        &self,
        file: &Resource<FileResource>,
        answer: impl FnOnce(&FileResource) -> T,
    ) -> wasmtime::Result<T> {
        Ok(answer(self.table.get(file)?))
    }

    /// `file.read`.
    pub async fn plugin_read(
        &mut self,
        file: &Resource<FileResource>,
        max_bytes: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, PluginFileError>> {
        let (id, name) = {
            let f = self.table.get(file)?;
            (f.id, f.name.clone())
        };
        match self
            .perform(HostCall::FileRead {
                file: id,
                max_bytes,
            })
            .await?
        {
            CallResult::FileChunk { bytes } => {
                if let Some(read) = self.read.get_mut(&name) {
                    read.bytes_read = read.size.min(read.bytes_read + bytes.len() as u64);
                }
                Ok(Ok(bytes))
            }
            CallResult::FileError {
                error_kind,
                message,
            } => Ok(Err(PluginFileError::recorded(&error_kind, message))),
            other => Err(crate::capability::database::unexpected(other)),
        }
    }

    /// The plugin dropped a file: through the tape, so a replay drops it at the same point.
    pub async fn plugin_close(&mut self, file: Resource<FileResource>) -> wasmtime::Result<()> {
        let closed = self.table.delete(file)?;
        self.perform(HostCall::FileClose { file: closed.id })
            .await?;
        Ok(())
    }

    /// `files.list`.
    pub async fn plugin_list(
        &mut self,
        dir: String,
    ) -> wasmtime::Result<Result<Vec<String>, PluginFileError>> {
        match self.perform(HostCall::FileList { dir }).await? {
            CallResult::FileNames { names } => Ok(Ok(names)),
            CallResult::FileError {
                error_kind,
                message,
            } => Ok(Err(PluginFileError::recorded(&error_kind, message))),
            other => Err(crate::capability::database::unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(dir: &Path) -> FilesCtx {
        let mut ctx = FilesCtx::new(Tape::Off);
        ctx.grant(Some(FilesGrant::open(dir).unwrap()));
        ctx
    }

    fn opened(ctx: &mut FilesCtx, name: &str) -> (u64, u64, String) {
        match ctx.open_live(name) {
            Ok(CallResult::FileOpened { file, size, sha256 }) => (file, size, sha256),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn chunk(ctx: &mut FilesCtx, file: u64, max: u32) -> Result<Vec<u8>, PluginFileError> {
        ctx.read_live(file, max).map(|r| match r {
            CallResult::FileChunk { bytes } => bytes,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn a_file_that_changes_while_it_is_read_fails_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "level = 1\n").unwrap();
        let mut ctx = granted(dir.path());
        let (file, size, sha256) = opened(&mut ctx, "a.toml");
        assert_eq!(size, 10);
        assert_eq!(sha256, hex::encode(Sha256::digest(b"level = 1\n")));
        assert_eq!(chunk(&mut ctx, file, 4).unwrap(), b"leve");
        // Same length, other bytes: only the hash can tell.
        std::fs::write(dir.path().join("a.toml"), "level = 3\n").unwrap();
        assert_eq!(chunk(&mut ctx, file, 100).unwrap_err().kind(), "io");
        // Unchanged, it reads to its end and then answers empty.
        std::fs::write(dir.path().join("b.toml"), "x").unwrap();
        let (file, _, _) = opened(&mut ctx, "b.toml");
        assert_eq!(chunk(&mut ctx, file, 100).unwrap(), b"x");
        assert_eq!(chunk(&mut ctx, file, 100).unwrap(), b"");
        assert_eq!(chunk(&mut ctx, file, 0).unwrap(), b"");
    }

    #[test]
    fn open_files_are_bounded_and_no_grant_means_not_granted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let mut ctx = granted(dir.path());
        for _ in 0..MAX_OPEN_FILES {
            opened(&mut ctx, "a");
        }
        let refused = ctx.open_live("a").unwrap_err();
        assert_eq!(refused.kind(), "io");
        assert!(
            refused.message().contains("files are open already"),
            "{refused}"
        );
        ctx.run_live(&HostCall::FileClose { file: 1 }).unwrap();
        opened(&mut ctx, "a");

        let mut none = FilesCtx::new(Tape::Off);
        assert_eq!(none.open_live("a").unwrap_err().kind(), "not-granted");
        assert_eq!(none.list_live(".").unwrap_err().kind(), "not-granted");
    }

    #[test]
    fn names_are_checked_before_any_file_system_call() {
        fn kind(name: &str) -> Result<&Path, &'static str> {
            checked_name(name, false).map_err(|e| e.kind())
        }
        assert_eq!(kind("grants.toml"), Ok(Path::new("grants.toml")));
        assert_eq!(kind("2024/levels.csv"), Ok(Path::new("2024/levels.csv")));
        assert_eq!(kind("./a"), Ok(Path::new("./a")));
        assert_eq!(kind(""), Err("invalid-name"));
        assert_eq!(kind("a\0b"), Err("invalid-name"));
        assert_eq!(kind("a\nb"), Err("invalid-name"));
        assert_eq!(kind("/etc/passwd"), Err("escape"));
        assert_eq!(kind("../x"), Err("escape"));
        assert_eq!(kind("a/../../x"), Err("escape"));
        assert_eq!(kind("a/.."), Err("escape"));
        assert_eq!(checked_name("", true).ok(), Some(Path::new(".")));
        assert_eq!(checked_name(".", true).ok(), Some(Path::new(".")));
    }
}
