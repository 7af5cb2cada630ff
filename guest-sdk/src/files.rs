//! Files the operator grants (contract 0.2.0): read-only access to the files of the one
//! directory `migrun.toml` names under `[files] dir` (or `--files DIR`), by relative name.
//!
//! This is how a plugin takes reviewed operator data — a mapping table, a list of ids to
//! skip — without it being compiled in. Every read is journaled (the file's sha256 and the
//! bytes read), so a replay needs no files, and a dry-run's plan lists each file read with
//! its size and sha256. Names are relative to the granted directory: an absolute name, `..`
//! or a symlink leading out of it is refused (`escape`), and without a grant every open
//! fails with `not-granted`.
//!
//! ```no_run
//! use std::io::{BufRead, BufReader};
//! use migrun_sdk::files;
//!
//! # fn main() -> migrun_sdk::Result<()> {
//! // Small files at once…
//! let mapping = files::read_to_string("grants.toml")?;
//! // …large ones streamed, through `std::io::Read`.
//! let file = files::File::open("skip-ids.txt")?;
//! for line in BufReader::new(file).lines() {
//!     let id: i64 = line.map_err(|e| migrun_sdk::Error::failed(e.to_string()))?.trim().parse()
//!         .map_err(|_| migrun_sdk::Error::failed("not an id"))?;
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;

use crate::bindings::migrun::plugin::files as wit;

/// The largest chunk one read asks the host for (the host serves at most 1 MiB).
const CHUNK: u32 = 1 << 20;

/// Why a file could not be opened, listed or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileErrorKind {
    /// The operator granted no directory (`[files] dir` in `migrun.toml`, or `--files`).
    NotGranted,
    /// No such file in the granted directory.
    NotFound,
    /// The name leads out of the granted directory (absolute, `..`, a symlink outside).
    Escape,
    /// The name is empty or holds NUL or control characters.
    InvalidName,
    /// Reading failed (or the file changed while it was read).
    Io,
}

impl fmt::Display for FileErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileErrorKind::NotGranted => "not-granted",
            FileErrorKind::NotFound => "not-found",
            FileErrorKind::Escape => "escape",
            FileErrorKind::InvalidName => "invalid-name",
            FileErrorKind::Io => "io",
        })
    }
}

/// A file call's failure, with the host's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The broad kind.
    pub kind: FileErrorKind,
    /// The file (or directory) it concerns, as the plugin named it.
    pub name: String,
    /// The host's message.
    pub message: String,
}

impl FileError {
    fn from_wit(name: &str, e: wit::FileError) -> Self {
        let (kind, message) = match e {
            wit::FileError::NotGranted(m) => (FileErrorKind::NotGranted, m),
            wit::FileError::NotFound(m) => (FileErrorKind::NotFound, m),
            wit::FileError::Escape(m) => (FileErrorKind::Escape, m),
            wit::FileError::InvalidName(m) => (FileErrorKind::InvalidName, m),
            wit::FileError::Io(m) => (FileErrorKind::Io, m),
        };
        FileError {
            kind,
            name: name.to_owned(),
            message,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file `{}`: {} [{}]", self.name, self.message, self.kind)
    }
}

impl std::error::Error for FileError {}

impl From<FileError> for crate::Error {
    fn from(e: FileError) -> Self {
        crate::Error::Failed(e.to_string())
    }
}

/// A granted file open for reading; [`std::io::Read`] streams it chunk by chunk.
pub struct File {
    handle: wit::File,
    name: String,
    size: u64,
    sha256: String,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl File {
    /// Opens `name`, relative to the granted directory.
    pub fn open(name: &str) -> Result<File, FileError> {
        let handle = wit::open(name).map_err(|e| FileError::from_wit(name, e))?;
        Ok(File {
            name: handle.name(),
            size: handle.size(),
            sha256: handle.sha256(),
            handle,
        })
    }

    /// The name as opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's size in bytes when it was opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The sha256 of the whole file (lowercase hex), as the journal and the plan record it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The next chunk of at most `max_bytes` (and at most 1 MiB); empty at the end.
    pub fn read_chunk(&mut self, max_bytes: u32) -> Result<Vec<u8>, FileError> {
        self.handle
            .read(max_bytes.min(CHUNK))
            .map_err(|e| FileError::from_wit(&self.name, e))
    }
}

impl std::io::Read for File {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let want = u32::try_from(buf.len()).unwrap_or(CHUNK).min(CHUNK);
        let chunk = self
            .read_chunk(want)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // The host never answers more than asked.
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        Ok(n)
    }
}

/// The whole of `name`'s bytes.
pub fn read(name: &str) -> Result<Vec<u8>, FileError> {
    let mut file = File::open(name)?;
    let mut bytes = Vec::with_capacity(usize::try_from(file.size).unwrap_or(0));
    loop {
        let chunk = file.read_chunk(CHUNK)?;
        if chunk.is_empty() {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk);
    }
}

/// The whole of `name` as UTF-8 text.
pub fn read_to_string(name: &str) -> Result<String, FileError> {
    String::from_utf8(read(name)?).map_err(|e| FileError {
        kind: FileErrorKind::Io,
        name: name.to_owned(),
        message: format!("not UTF-8 text: {e}"),
    })
}

/// The names in `dir` of the granted directory (`""` for its top), sorted; folders end in `/`.
pub fn list(dir: &str) -> Result<Vec<String>, FileError> {
    wit::list(dir).map_err(|e| FileError::from_wit(dir, e))
}
