//! A plugin built with `wit-bindgen` directly against `guest-sdk/wit/v0.2.0` that
//! reads the files the operator grants (`files` interface), for `tests/e2e/files.rs`.
//! It is a test fixture, not an example: its `escape` mode behaves as a hostile
//! plugin would.
//!
//! Connection `target` (read-write) holds `file_reads(name, outcome, size,
//! sha256_host, sha256_guest, chunks)`; unit `read-files` writes one row per name.
//!
//! Configuration:
//!
//! - `names`: the names to open, separated by `|` (kept verbatim: no trimming).
//! - `chunk`: the `max-bytes` of each `read` (default 65536).
//! - `mode`:
//!   - `read` (default): open each name, read it to its end in chunks, hash the bytes
//!     here, and write a row: outcome `ok` with the host's and the guest's sha256 and
//!     the number of chunks, or `<error kind>: <message>`. A check per name says
//!     whether the read succeeded and both hashes agree.
//!   - `escape`: every name is one the host must refuse; a check per name is `ok` when it
//!     was refused (outcome `<error kind>: …`), and a failed check names what was read.
//!     It also tries the WASI file system (reading `/etc/passwd`, a name of `names`,
//!     listing `.` and `/`), which must stay shut although files are granted.
//!   - `list`: `files.list` of each name; outcome `ok` with the entries joined by `,`.
//!
//! Built with `--cfg files_guest_v2` it is the "next version" of the comparison test:
//! in `read` mode it reads in chunks of `chunk * 2 + 1` and opens `v2-only.txt` as well.

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit/v0.2.0",
    world: "migration",
});

use std::cell::RefCell;

use exports::migrun::plugin::plugin::{
    ConfigKey, ConnectionNeed, Guest, PluginError, PluginInfo, UnitInfo,
};
use migrun::plugin::database::{Access, Connection, Dialect, open};
use migrun::plugin::types::Value;
use migrun::plugin::{checks, files};
use sha2::{Digest, Sha256};

struct Settings {
    names: Vec<String>,
    chunk: u32,
    mode: String,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = const {
        RefCell::new(Settings { names: Vec::new(), chunk: 65536, mode: String::new() })
    };
}

fn db(e: migrun::plugin::types::DbError) -> PluginError {
    PluginError::Database(e)
}

/// The `n`th parameter placeholder on `conn`'s dialect.
fn ph(conn: &Connection, n: usize) -> String {
    match conn.dialect() {
        Dialect::Postgres => format!("${n}"),
        Dialect::Sqlite | Dialect::Mysql => "?".to_owned(),
    }
}

fn error_text(e: &files::FileError) -> String {
    match e {
        files::FileError::NotGranted(m) => format!("not-granted: {m}"),
        files::FileError::NotFound(m) => format!("not-found: {m}"),
        files::FileError::Escape(m) => format!("escape: {m}"),
        files::FileError::InvalidName(m) => format!("invalid-name: {m}"),
        files::FileError::Io(m) => format!("io: {m}"),
    }
}

/// One name read to its end: `(outcome, size, host sha256, guest sha256, chunks)`.
fn read_whole(name: &str, chunk: u32) -> (String, i64, String, String, i64) {
    let file = match files::open(name) {
        Ok(file) => file,
        Err(e) => return (error_text(&e), 0, String::new(), String::new(), 0),
    };
    let mut hasher = Sha256::new();
    let mut chunks = 0;
    loop {
        match file.read(chunk) {
            Ok(bytes) if bytes.is_empty() => break,
            Ok(bytes) => {
                chunks += 1;
                hasher.update(&bytes);
            }
            Err(e) => {
                return (
                    error_text(&e),
                    file.size() as i64,
                    file.sha256(),
                    String::new(),
                    chunks,
                );
            }
        }
    }
    (
        "ok".to_owned(),
        file.size() as i64,
        file.sha256(),
        hex::encode(hasher.finalize()),
        chunks,
    )
}

fn record(
    target: &Connection,
    row: (String, String, i64, String, String, i64),
) -> Result<(), PluginError> {
    let (name, outcome, size, host, guest, chunks) = row;
    let sql = format!(
        "INSERT INTO file_reads (name, outcome, size, sha256_host, sha256_guest, chunks) \
         VALUES ({}, {}, {}, {}, {}, {})",
        ph(target, 1),
        ph(target, 2),
        ph(target, 3),
        ph(target, 4),
        ph(target, 5),
        ph(target, 6)
    );
    target
        .execute(
            &sql,
            &[
                Value::Text(name),
                Value::Text(outcome),
                Value::Int(size),
                Value::Text(host),
                Value::Text(guest),
                Value::Int(chunks),
            ],
        )
        .map_err(db)?;
    Ok(())
}

/// The WASI file system, which no grant opens: each door is a check, `ok` when shut.
fn wasi_doors(names: &[String]) {
    let mut doors: Vec<(String, bool)> = vec![
        (
            "wasi read /etc/passwd".into(),
            std::fs::read("/etc/passwd").is_err(),
        ),
        ("wasi list .".into(), std::fs::read_dir(".").is_err()),
        ("wasi list /".into(), std::fs::read_dir("/").is_err()),
    ];
    for name in names.iter().filter(|n| !n.is_empty() && !n.contains('\0')) {
        doors.push((format!("wasi read {name}"), std::fs::read(name).is_err()));
    }
    for (door, shut) in doors {
        checks::report(
            &door,
            shut,
            if shut {
                "shut"
            } else {
                "OPEN: it read something"
            },
        );
    }
}

fn read_files() -> Result<(), PluginError> {
    let (names, chunk, mode) = SETTINGS.with_borrow(|s| (s.names.clone(), s.chunk, s.mode.clone()));
    let target = open("target").map_err(db)?;
    target
        .execute(
            "CREATE TABLE IF NOT EXISTS file_reads (name VARCHAR(300), outcome VARCHAR(2000), \
             size BIGINT, sha256_host VARCHAR(64), sha256_guest VARCHAR(64), chunks BIGINT)",
            &[],
        )
        .map_err(db)?;
    match mode.as_str() {
        "list" => {
            for name in &names {
                let outcome = match files::list(name) {
                    Ok(entries) => format!("ok {}", entries.join(",")),
                    Err(e) => error_text(&e),
                };
                checks::report(&format!("list {name}"), outcome.starts_with("ok"), &outcome);
                record(
                    &target,
                    (name.clone(), outcome, 0, String::new(), String::new(), 0),
                )?;
            }
        }
        "escape" => {
            for name in &names {
                let (outcome, size, host, guest, chunks) = read_whole(name, chunk);
                let refused = outcome != "ok";
                checks::report(
                    &format!("refused {}", name.escape_debug()),
                    refused,
                    &if refused {
                        outcome.clone()
                    } else {
                        format!("READ {size} bytes (sha256 {host})")
                    },
                );
                record(&target, (name.clone(), outcome, size, host, guest, chunks))?;
            }
            wasi_doors(&names);
        }
        _ => {
            #[cfg(files_guest_v2)]
            let (names, chunk) = {
                let mut names = names;
                names.push("v2-only.txt".to_owned());
                (names, chunk * 2 + 1)
            };
            for name in &names {
                let (outcome, size, host, guest, chunks) = read_whole(name, chunk);
                let ok = outcome == "ok" && host == guest;
                checks::report(&format!("read {name}"), ok, &outcome);
                record(&target, (name.clone(), outcome, size, host, guest, chunks))?;
            }
        }
    }
    Ok(())
}

struct FilesGuest;

impl Guest for FilesGuest {
    fn describe() -> PluginInfo {
        let key = |name: &str, description: &str, default: Option<&str>| ConfigKey {
            name: name.to_owned(),
            description: description.to_owned(),
            required: false,
            default_value: default.map(str::to_owned),
            secret: false,
        };
        PluginInfo {
            name: "files-guest".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Reads the files the operator grants (contract 0.2.0)".to_owned(),
            connections: vec![ConnectionNeed {
                name: "target".to_owned(),
                access: Access::ReadWrite,
                description: "holds file_reads".to_owned(),
                writes: vec!["file_reads".to_owned()],
                optional: false,
            }],
            units: Vec::new(),
            config: vec![
                key("names", "the names to open, separated by `|`", Some("")),
                key("chunk", "max-bytes of each read", Some("65536")),
                key("mode", "read, escape or list", Some("read")),
            ],
        }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), PluginError> {
        SETTINGS.with_borrow_mut(|s| {
            for (key, value) in config {
                match key.as_str() {
                    "names" => {
                        s.names = value
                            .split('|')
                            .filter(|n| !n.is_empty())
                            .map(str::to_owned)
                            .collect();
                    }
                    "chunk" => {
                        s.chunk = value
                            .parse()
                            .map_err(|_| PluginError::Failed(format!("chunk {value:?}")))?;
                    }
                    "mode" => s.mode = value,
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn list_units() -> Result<Vec<UnitInfo>, PluginError> {
        Ok(vec![UnitInfo {
            name: "read-files".to_owned(),
            description: "reads the configured names".to_owned(),
            scope: None,
            transactional: true,
            always_run: false,
            skipped: None,
            lock_timeout_ms: None,
            statement_timeout_ms: None,
        }])
    }

    fn run_unit(unit: String) -> Result<(), PluginError> {
        match unit.as_str() {
            "read-files" => read_files(),
            other => Err(PluginError::Failed(format!("no unit {other}"))),
        }
    }

    fn verify() -> Result<(), PluginError> {
        Ok(())
    }
}

export!(FilesGuest);
