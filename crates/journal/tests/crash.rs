//! A journal whose writer died at any byte: the longest valid prefix is read
//! back, the torn tail is reported, and nothing is called modified; damage
//! that a crash cannot cause (a flipped byte, an unknown version) is.

use std::path::Path;

use migrun_journal::verify::verify;
use migrun_journal::{Entry, FORMAT, Footer, Header, JournalReader, JournalWriter, SandboxSeeds};

fn header() -> Header {
    Header {
        format: FORMAT.to_owned(),
        migrun_version: "test".into(),
        contract_version: "0.1.1".into(),
        plugin_sha256: "00".repeat(32),
        plugin_name: "p".into(),
        plugin_version: "1".into(),
        run_id: "run-1".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        dry_run: false,
        only: None,
        shard: None,
        seeds: SandboxSeeds {
            clock_start_unix_nanos: 0,
            random_seed: 1,
        },
        connections: Vec::new(),
        limits: migrun_config::Limits::default(),
    }
}

fn tx(op: &str) -> Entry {
    Entry::Tx {
        connection: "target".into(),
        op: op.into(),
        error: None,
    }
}

/// Writes a journal of 1 header + 3 syncs of 4 entries + footer; returns the
/// entry count after each sync (the prefixes a crash may leave).
fn write_journal(path: &Path) -> Vec<u64> {
    let mut w = JournalWriter::create(path).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    w.sync().unwrap();
    let mut synced = vec![1];
    for unit in 0..3 {
        w.append(&tx("begin")).unwrap();
        w.append_owned(Entry::UnitSkipped {
            unit: format!("u{unit}"),
            reason: "x".repeat(300),
        })
        .unwrap();
        w.append(&tx("record-ledger")).unwrap();
        w.append(&tx("commit")).unwrap();
        w.sync().unwrap();
        synced.push(w.entries());
    }
    w.append(&Entry::Footer(Footer {
        outcome: "succeeded".into(),
        failure: None,
        calls: 0,
        rows_written: Default::default(),
        checks: 0,
        checks_failed: 0,
    }))
    .unwrap();
    w.finish().unwrap();
    synced.push(w.entries());
    synced
}

#[test]
fn a_journal_cut_at_any_byte_reads_back_its_longest_valid_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.journal");
    let synced = write_journal(&full);
    let bytes = std::fs::read(&full).unwrap();
    let whole = verify(&full);
    assert!(whole.is_complete(), "{}", whole.summary());
    assert_eq!(whole.entries, 14);
    let cut = dir.path().join("cut.journal");
    for len in 0..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let v = verify(&cut);
        let kind = v.problem.as_ref().map(|p| p.kind);
        assert!(
            matches!(kind, None | Some("no-entries")),
            "cut at {len}: {}",
            v.summary()
        );
        assert!(v.footer.is_none(), "cut at {len}: no footer");
        assert!(
            v.summary()
                .starts_with("incomplete: the run did not finish"),
            "cut at {len}: {}",
            v.summary()
        );
        if kind.is_none() {
            assert!(
                synced.contains(&v.entries),
                "cut at {len}: {} entries is a synced prefix ({synced:?})",
                v.entries
            );
            // The prefix is a journal the reader streams to its end.
            let (mut reader, _) = JournalReader::open(&cut).unwrap();
            while reader.next_entry().unwrap().is_some() {}
        }
    }
}

#[test]
fn damage_a_crash_cannot_cause_is_reported_with_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.journal");
    write_journal(&full);
    let bytes = std::fs::read(&full).unwrap();
    let damaged = dir.path().join("damaged.journal");
    // A flipped byte in every frame header or payload after the first frame.
    for at in 200..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        std::fs::write(&damaged, &b).unwrap();
        let v = verify(&damaged);
        let p = v
            .problem
            .unwrap_or_else(|| panic!("byte {at} flipped went unnoticed"));
        assert_eq!(p.kind, "modified", "byte {at}: {}", p.message);
        assert!(p.index.is_some(), "byte {at}: an entry index");
        assert!(
            p.message.contains("modified or damaged"),
            "byte {at}: {}",
            p.message
        );
    }
    // A version this migrun does not know.
    let mut b = bytes.clone();
    b[15] = b'9';
    std::fs::write(&damaged, &b).unwrap();
    let v = verify(&damaged);
    let p = v.problem.expect("refused");
    assert_eq!(p.kind, "unsupported-format");
    assert!(
        p.message
            .contains("format migrun.journal/9 is not supported (this migrun reads migrun.journal/2 and migrun.journal/1)"),
        "{}",
        p.message
    );
}
