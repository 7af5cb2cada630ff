//! The bodies of migrun's fuzz targets, shared by the cargo-fuzz binaries
//! (`fuzz_targets/`) and the deterministic corpus run (`tests/corpus.rs`).
//!
//! Each target feeds arbitrary bytes to one of the library's parsers of
//! untrusted input: a journal file (`migrun replay` reads whatever file it is
//! given), a `migrun.toml`, and the value forms that cross the journal and the
//! plugin boundary. The contract under test: every input ends in a value or a
//! typed error, never a panic, and what parses round-trips.

use std::io::Cursor;
use std::path::Path;

use migrun_config::{ConfigFile, RunConfig};
use migrun_journal::JournalReader;
use migrun_types::Value;
use sha2::{Digest, Sha256};

/// Most entries one input may yield (a bound on the work per input).
const MAX_ENTRIES: usize = 10_000;

/// The journal reader over seven views of the input, chosen by its first byte:
/// the raw bytes as the file; the rest compressed as it stands (`<hash>\t<json>`
/// lines, hashes as given) as `migrun.journal/1`; or each line of the rest taken
/// as an entry's JSON and chained with the right hashes, so that the fuzzer
/// reaches entry decoding past the hash check; those two again framed as
/// `migrun.journal/2`; and the rest cut into binary records (a length byte
/// before each payload) framed as `migrun.journal/3`, with the hashes as
/// given or rechained — the binary entry and value decoder past the hash check.
pub fn journal_reader(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let framed = |lines: &[u8]| {
        let mut file = Vec::new();
        migrun_journal::frame::write_lines(&mut file, lines).expect("framing in memory");
        file
    };
    let file = match mode % 7 {
        0 => rest.to_vec(),
        1 => zstd::encode_all(rest, 1).expect("compressing in memory"),
        2 => zstd::encode_all(chained(rest).as_bytes(), 1).expect("compressing in memory"),
        3 => framed(rest),
        4 => framed(chained(rest).as_bytes()),
        m => {
            let mut file = Vec::new();
            migrun_journal::frame::write_records(&mut file, &records(rest), m == 6)
                .expect("framing in memory");
            file
        }
    };
    let Ok((mut reader, _header)) =
        JournalReader::from_reader(Path::new("fuzz"), Cursor::new(file))
    else {
        return;
    };
    for _ in 0..MAX_ENTRIES {
        match reader.next_entry() {
            Ok(Some((_, entry))) => {
                // Describing an entry (what `migrun journal show` prints) must not panic either.
                let _ = migrun_journal::stats::describe(&entry);
            }
            Ok(None) | Err(_) => break,
        }
    }
}

/// `data` cut into `/3` records: a length byte, then that many payload bytes
/// (`lane:u16le entry`), each with a zero hash.
pub fn records(mut data: &[u8]) -> Vec<migrun_journal::frame::RawRecord> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let n = usize::from(len).min(rest.len());
        out.push(migrun_journal::frame::RawRecord {
            hash: [0; 32],
            payload: rest[..n].to_vec(),
        });
        data = &rest[n..];
    }
    out
}

/// Each line of `data` as an entry's JSON, with the hash chain a writer would compute.
pub fn chained(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let mut prev = [0u8; 32];
    let mut out = String::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let mut hasher = Sha256::new();
        hasher.update(prev);
        hasher.update(line.as_bytes());
        prev = hasher.finalize().into();
        out.push_str(&hex::encode(prev));
        out.push('\t');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `migrun.toml`: parsing, then resolving against an environment that knows
/// some variables and not others.
pub fn config_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = ConfigFile::parse(text) else {
        return;
    };
    let env = |name: &str| {
        name.len()
            .is_multiple_of(2)
            .then(|| format!("value-of-{name}"))
    };
    let _ = RunConfig::resolve(file, Path::new("/etc/migrun"), &env);
}

/// The kinds whose text forms the host parses.
const KINDS: [&str; 16] = [
    "boolean",
    "int",
    "float",
    "text",
    "bytes",
    "json",
    "uuid",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "decimal",
    "float32-array",
    "text-array",
    "typed",
    "no-such-kind",
];

/// The value forms: canonical text by kind (the first byte picks the kind),
/// the validating parsers, the journal's JSON form (`/1`, `/2`) and its binary
/// form (`/3`, the whole input). Whatever parses must round-trip: its
/// canonical text (or journal form) parses back to the same canonical text
/// (or journal form).
pub fn value_decoding(data: &[u8]) {
    if let Ok(value) = migrun_journal::binary::decode_value(data) {
        let bytes = migrun_journal::binary::encode_value(&value);
        let again = migrun_journal::binary::decode_value(&bytes)
            .unwrap_or_else(|e| panic!("{value:?} → {bytes:?} does not decode back: {e}"));
        assert_eq!(
            migrun_journal::binary::encode_value(&again),
            bytes,
            "{data:?}: binary form is not stable"
        );
    }
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let kind = KINDS[usize::from(pick) % KINDS.len()];
    if let Ok(value) = Value::from_kind_and_text(kind, text)
        && let Some(canonical) = value.canonical_text()
    {
        let again = Value::from_kind_and_text(value.kind(), &canonical)
            .unwrap_or_else(|e| panic!("{kind} {text:?} → {canonical:?} does not parse back: {e}"));
        assert_eq!(
            again.canonical_text().as_deref(),
            Some(canonical.as_str()),
            "{kind} {text:?}: canonical text is not stable"
        );
    }
    let _ = Value::parse_uuid(text);
    let _ = Value::parse_date(text);
    let _ = Value::parse_time(text);
    let _ = Value::parse_timestamp(text);
    let _ = Value::parse_timestamptz(text);
    let _ = Value::parse_decimal(text);
    let _ = Value::parse_json(text.to_owned());
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let form = serde_json::to_string(&value).expect("a value serializes");
        let again: Value = serde_json::from_str(&form)
            .unwrap_or_else(|e| panic!("{text:?} → {form:?} does not parse back: {e}"));
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            form,
            "{text:?}: journal form is not stable"
        );
    }
}
