//! [`JournalReader`]: streams entries back, verifying the hash chain as it goes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::writer::chain;
use super::{Entry, FORMAT, Header, JournalError};

/// Reads one journal file, entry by entry.
pub struct JournalReader {
    path: PathBuf,
    input: Box<dyn BufRead + Send>,
    prev: [u8; 32],
    index: u64,
    line: String,
}

impl JournalReader {
    /// Opens `path` and reads its header (entry 0).
    pub fn open(path: &Path) -> Result<(JournalReader, Header), JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        JournalReader::from_reader(path, file)
    }

    /// Reads a journal from any byte stream (zstd-compressed, as written);
    /// `path` only names it in errors. Whatever the bytes, the result is an
    /// entry or a [`JournalError`], never a panic (the `journal_reader` fuzz
    /// target holds it to that).
    pub fn from_reader(
        path: &Path,
        input: impl std::io::Read + Send + 'static,
    ) -> Result<(JournalReader, Header), JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let decoder = zstd::Decoder::new(input).map_err(io)?;
        let mut reader = JournalReader {
            path: path.to_owned(),
            input: Box::new(BufReader::with_capacity(1 << 16, decoder)),
            prev: [0; 32],
            index: 0,
            line: String::new(),
        };
        let header = match reader.next_entry()? {
            Some((_, Entry::Header(header))) => header,
            _ => return Err(reader.malformed(0, "the first entry is not a header".into())),
        };
        if header.format != FORMAT {
            return Err(JournalError::UnsupportedFormat {
                path: path.display().to_string(),
                found: header.format,
            });
        }
        Ok((reader, header))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hash of the last entry read.
    pub fn head(&self) -> String {
        hex::encode(self.prev)
    }

    /// The next entry and its index, or `None` at the end of the journal.
    pub fn next_entry(&mut self) -> Result<Option<(u64, Entry)>, JournalError> {
        self.line.clear();
        let read = self
            .input
            .read_line(&mut self.line)
            .map_err(|source| JournalError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        let index = self.index;
        let line = self
            .line
            .strip_suffix('\n')
            .ok_or_else(|| self.malformed(index, "truncated line".into()))?;
        let (hash, json) = line
            .split_once('\t')
            .ok_or_else(|| self.malformed(index, "expected <hash>\\t<json>".into()))?;
        let expected = hex::encode(chain(&self.prev, json.as_bytes()));
        if hash != expected {
            return Err(JournalError::ChainBroken {
                path: self.path.display().to_string(),
                index,
                expected,
                found: hash.to_owned(),
            });
        }
        let entry: Entry =
            serde_json::from_str(json).map_err(|e| self.malformed(index, e.to_string()))?;
        self.prev = hex::decode(hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .expect("a hash that matched is 32 bytes of hex");
        self.index += 1;
        Ok(Some((index, entry)))
    }

    fn malformed(&self, index: u64, detail: String) -> JournalError {
        JournalError::Malformed {
            path: self.path.display().to_string(),
            index,
            detail,
        }
    }
}
