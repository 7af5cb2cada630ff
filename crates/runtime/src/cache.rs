//! The compiled-component cache: machine code produced by wasmtime for a
//! plugin, kept on disk so that the next run of the same plugin skips
//! compilation (milliseconds instead of 0.1 s for a Rust plugin and 10–15 s
//! for a Python or JavaScript one).
//!
//! # Key
//!
//! One file per (plugin, engine): `<plugin sha256>-<engine key>.cwasm`. The
//! engine key is a sha256 over wasmtime's own compatibility hash
//! ([`Engine::precompile_compatibility_hash`]: target, compiler flags,
//! tunables, wasm features and wasmtime's version) and migrun's version, so a
//! change of engine configuration or of either version is a different file;
//! a stale file is never read, it is simply never asked for again.
//!
//! # Safety argument
//!
//! [`Component::deserialize`] is `unsafe` because it maps the bytes as
//! executable code without validating them. A cache entry is only
//! deserialized when:
//!
//! 1. its name carries the sha256 of the plugin bytes being loaded and the
//!    key of this engine (so it was compiled from these bytes by a compatible
//!    engine);
//! 2. it was written by this module: whole files only, via a temporary file in
//!    the same folder and an atomic rename, so a reader never sees a partial
//!    entry written by a concurrent run;
//! 3. its content checks out: each file is the artifact followed by its
//!    BLAKE3 hash (32 bytes), verified by reading the file through before it
//!    is deserialized (BLAKE3 rather than sha256: a Python plugin's artifact
//!    is ~40 MB and this check is on every start; sha256 took a third of a
//!    cached start), so a truncated or
//!    corrupted entry (disk error, a stray edit) is detected, logged, and
//!    replaced by a fresh compilation — never executed, never a crash.
//!
//! The cache folder must be writable only by the user running migrun (the
//! default is under the user's own cache folder); someone able to write there
//! could plant code, as they could by replacing the migrun binary itself.
//!
//! A verified entry is loaded with [`Component::deserialize_file`], which maps
//! the file instead of copying it, and maps a plugin's initial memory image
//! copy-on-write from it: a Python or JavaScript plugin (tens of MB of
//! snapshot) starts without copying its memory. The hash is checked on the
//! path just before; entries are only ever replaced whole by rename with the
//! same bytes (the compile is deterministic), never edited in place.
//!
//! Failures to read or write the cache are never errors of the run: the
//! plugin is compiled as if there were no cache, with a warning.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The layout of an entry: the artifact, then its 32-byte BLAKE3 hash.
const ENTRY_FORMAT: &[u8] = b"\0entry: artifact + blake3";

/// The environment variable naming the cache folder; `off` (or empty) disables the cache.
pub const CACHE_DIR_ENV: &str = "MIGRUN_CACHE_DIR";

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Read from the cache.
    Cached,
    /// Compiled (no entry yet); the cache now holds it.
    Compiled,
    /// The entry was unreadable, truncated or corrupt: compiled again and replaced.
    Replaced,
    /// Compiled, with no cache configured (or the cache could not be written).
    Uncached,
}

/// A folder of compiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into sha256 (wasmtime exposes its compatibility key as a `Hash`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Not used: the key is the full digest, read with `finalize`.
        0
    }
}

impl ComponentCache {
    /// The cache in `dir` for `engine`.
    pub fn new(dir: impl Into<PathBuf>, engine: &Engine) -> ComponentCache {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        hasher.0.update(b"\0migrun ");
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        // The entry's layout: a change is a different key, so an entry of the old
        // layout is never read (not reported as corrupt either).
        hasher.0.update(ENTRY_FORMAT);
        let digest = hasher.0.finalize();
        ComponentCache {
            dir: dir.into(),
            engine_key: hex::encode(&digest[..8]),
        }
    }

    /// The cache the environment asks for: `MIGRUN_CACHE_DIR` if set (`off`
    /// or empty disables it), else `$XDG_CACHE_HOME/migrun/components`, else
    /// `~/.cache/migrun/components`; `None` when none of these is known.
    pub fn from_env(engine: &Engine) -> Option<ComponentCache> {
        let dir = match std::env::var_os(CACHE_DIR_ENV) {
            Some(v) if v.is_empty() || v == "off" => return None,
            Some(v) => PathBuf::from(v),
            None => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .filter(|v| !v.is_empty())
                            .map(|h| PathBuf::from(h).join(".cache"))
                    })?;
                base.join("migrun").join("components")
            }
        };
        Some(ComponentCache::new(dir, engine))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry for a plugin whose bytes hash to `sha256` (lowercase hex).
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled form of `bytes` (whose sha256 is `sha256`): from the cache
    /// when a sound entry exists, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CompileSource)> {
        let path = self.entry_path(sha256);
        let mut source = CompileSource::Compiled;
        match std::fs::File::open(&path) {
            Ok(file) => match self.deserialize_entry(engine, file, &path) {
                Ok(component) => return Ok((component, CompileSource::Cached)),
                Err(why) => {
                    tracing::warn!(entry = %path.display(), "ignoring a bad compiled-component cache entry ({why}); compiling again");
                    source = CompileSource::Replaced;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(entry = %path.display(), "cannot read the compiled-component cache ({e}); compiling");
                source = CompileSource::Replaced;
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        // SAFETY: `artifact` was produced just now by `precompile_component` of this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(entry = %path.display(), "cannot write the compiled-component cache ({e}); continuing without it");
            source = CompileSource::Uncached;
        }
        Ok((component, source))
    }

    /// Checks an entry's trailing hash (reading it through once, in blocks), then
    /// deserializes it from its path.
    fn deserialize_entry(
        &self,
        engine: &Engine,
        mut file: std::fs::File,
        path: &Path,
    ) -> Result<Component, String> {
        use std::io::Read;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len < 32 {
            return Err(format!("{len} bytes, too short"));
        }
        let mut artifact = (&mut file).take(len - 32);
        let mut hasher = blake3::Hasher::new();
        let mut block = vec![0u8; 1 << 20];
        loop {
            let n = artifact.read(&mut block).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&block[..n]);
        }
        let mut trailer = [0u8; 32];
        file.read_exact(&mut trailer).map_err(|e| e.to_string())?;
        if hasher.finalize().as_bytes() != &trailer {
            return Err("checksum mismatch (truncated or corrupted)".into());
        }
        // SAFETY: see the module docs: the entry is keyed by the plugin's content
        // hash and this engine's compatibility key, was written whole by `store`
        // (temporary file + rename, never edited in place), and its hash was just
        // verified, so these are the bytes `precompile_component` produced for this
        // plugin (followed by the 32-byte hash, which the ELF reader ignores).
        unsafe { Component::deserialize_file(engine, path) }.map_err(|e| format!("{e:#}"))
    }

    /// Writes `artifact` (followed by its BLAKE3 hash) to `path` atomically.
    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            std::process::id(),
            rand::random::<u64>()
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(artifact)?;
            file.write_all(blake3::hash(artifact).as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_engine_configuration() {
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let fuel = Engine::new(&config).unwrap();
        let a = ComponentCache::new("/x", &plain);
        let b = ComponentCache::new("/x", &fuel);
        assert_ne!(a.entry_path("ab"), b.entry_path("ab"));
        assert_eq!(
            a.entry_path("ab"),
            ComponentCache::new("/x", &Engine::default()).entry_path("ab")
        );
    }
}
