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
        jobs: None,
        keep_going: false,
        seeds: SandboxSeeds {
            clock_start_unix_nanos: 0,
            random_seed: 1,
        },
        connections: Vec::new(),
        files_dir: None,
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
            .contains("format migrun.journal/9 is not supported (this migrun reads migrun.journal/3, migrun.journal/2 and migrun.journal/1)"),
        "{}",
        p.message
    );
}

/// The `/2` journal kept as a fixture (a hello-rust run recorded by the release before
/// `/3`, several frames): still intact, and the crash and damage rules of `/2` still hold
/// on it — cut at any byte it reads as a synced prefix, never as modified; any byte
/// flipped after its magic line is damage with an entry index.
#[test]
fn a_v2_journal_still_reads_and_its_crash_and_damage_rules_hold() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/e2e/fixtures/journal-v2/hello-rust.journal");
    let bytes = std::fs::read(&fixture).unwrap();
    assert!(bytes.starts_with(b"migrun.journal/2\n"));
    let whole = verify(&fixture);
    assert!(whole.is_complete(), "{}", whole.summary());
    assert_eq!(whole.format, "migrun.journal/2");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.journal");
    for len in 0..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let v = verify(&cut);
        assert!(
            matches!(
                v.problem.as_ref().map(|p| p.kind),
                None | Some("no-entries")
            ),
            "cut at {len}: {}",
            v.summary()
        );
        assert!(
            v.footer.is_none() && v.summary().starts_with("incomplete"),
            "cut at {len}"
        );
    }
    for at in 17..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        std::fs::write(&cut, &b).unwrap();
        let p = verify(&cut)
            .problem
            .unwrap_or_else(|| panic!("byte {at} flipped went unnoticed"));
        assert_eq!(p.kind, "modified", "byte {at}: {}", p.message);
        assert!(p.index.is_some(), "byte {at}: an entry index");
    }
}

/// Records deleted or swapped in a `/3` journal (hashes as written) break the chain at
/// the first one moved; a recomputed chain reads as intact (only the ledger catches it);
/// a record whose lane or entry bytes were changed breaks it at that record.
#[test]
fn deleted_swapped_and_edited_records_break_the_chain_at_their_index() {
    use migrun_journal::frame::{read_records, write_records};
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.journal");
    write_journal(&full);
    let records = read_records(std::fs::File::open(&full).unwrap()).unwrap();
    assert_eq!(records.len(), 14);
    let edited = dir.path().join("edited.journal");
    let check = |records: &[migrun_journal::frame::RawRecord], rechain: bool| {
        let mut file = Vec::new();
        write_records(&mut file, records, rechain).unwrap();
        std::fs::write(&edited, file).unwrap();
        verify(&edited)
    };
    let mut deleted = records.clone();
    deleted.remove(5);
    let p = check(&deleted, false)
        .problem
        .expect("a deletion is caught");
    assert_eq!((p.kind, p.index), ("modified", Some(5)), "{}", p.message);
    assert!(p.message.contains("hash chain broken"), "{}", p.message);
    let mut swapped = records.clone();
    swapped.swap(6, 7);
    let p = check(&swapped, false).problem.expect("a swap is caught");
    assert_eq!(p.index, Some(6), "{}", p.message);
    let mut lane = records.clone();
    lane[8].payload[0] = 3;
    let p = check(&lane, false)
        .problem
        .expect("a changed lane is caught");
    assert_eq!(p.index, Some(8), "{}", p.message);
    // A reader asked again after the break gets the same error, never an early end
    // (which a replay would take for a killed run).
    check(&deleted, false);
    let (mut reader, _) = JournalReader::open(&edited).unwrap();
    let first = loop {
        match reader.next_entry() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the reader ended before the break"),
            Err(e) => break e.to_string(),
        }
    };
    for _ in 0..2 {
        let again = reader.next_entry().expect_err("the same error again");
        assert_eq!(again.to_string(), first);
    }
    // Rechained: the file alone cannot tell (the ledger's anchors can, see journal_trust).
    let v = check(&deleted, true);
    assert!(v.problem.is_none(), "{}", v.summary());
    assert_eq!(v.entries, 13);
}

/// Lanes written are lanes read: entries of concurrent workers interleave in one chain.
#[test]
fn each_entry_reads_back_in_the_lane_it_was_written_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lanes.journal");
    let mut w = JournalWriter::create(&path).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    for i in 0..12u16 {
        w.append_in_lane(i % 3, tx(&format!("op-{i}"))).unwrap();
    }
    w.finish().unwrap();
    let (mut reader, _) = JournalReader::open(&path).unwrap();
    assert_eq!(reader.lane(), 0, "the header is lane 0");
    let mut seen = Vec::new();
    while let Some((_, entry)) = reader.next_entry().unwrap() {
        let Entry::Tx { op, .. } = entry else {
            panic!("{entry:?}")
        };
        seen.push((reader.lane(), op));
    }
    let expected: Vec<(u16, String)> = (0..12u16).map(|i| (i % 3, format!("op-{i}"))).collect();
    assert_eq!(seen, expected);
}

/// Memory is bounded by bytes, not entries: batches of embeddings (~6 MB each, like a
/// bulk copy's 1,000 × 1536 floats) are never queued more than the budget allows — at
/// most one such batch waits while another is encoded — and every one is written.
#[test]
fn batches_in_flight_to_the_writer_stay_within_the_byte_budget() {
    use migrun_journal::{CallResult, HostCall, IN_FLIGHT_BYTES};
    use migrun_types::Value;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.journal");
    let mut w = JournalWriter::create(&path).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    let batch = |seed: u32| Entry::Call {
        call: HostCall::NextBatch { cursor: 1 },
        result: CallResult::Batch {
            rows: Some(
                (0..1000u32)
                    .map(|r| {
                        vec![
                            Value::Int(r as i64),
                            Value::Float32Array(
                                (0..1536u32)
                                    .map(|i| (seed * 1_000_003 + r * 1536 + i) as f32)
                                    .collect::<Vec<f32>>()
                                    .into(),
                            ),
                        ]
                    })
                    .collect(),
            ),
        },
    };
    let one = batch(0).approx_bytes();
    assert!(
        one > 6_000_000 && one < 7_000_000,
        "a batch of 1,000 × 1536 floats weighs {one} bytes"
    );
    for seed in 0..12 {
        w.append_owned(batch(seed)).unwrap();
    }
    let peak = w.peak_in_flight_bytes();
    w.finish().unwrap();
    assert!(
        peak <= IN_FLIGHT_BYTES.max(one),
        "{peak} bytes were in flight; the budget is {IN_FLIGHT_BYTES}"
    );
    assert!(peak >= one, "the peak {peak} holds at least one batch");
    let (mut reader, _) = JournalReader::open(&path).unwrap();
    let mut batches = 0;
    while let Some((_, entry)) = reader.next_entry().unwrap() {
        if matches!(entry, Entry::Call { .. }) {
            batches += 1;
        }
    }
    assert_eq!(batches, 12, "every batch was written");
}

/// A `/3` journal is read ahead on a thread while the caller works on the entries
/// before (a replay runs the plugin on them), within a byte budget: records are decoded
/// before they are asked for, never more than the budget (or one record) at a time,
/// and they come back in order, exactly as written.
#[test]
fn a_reader_reads_ahead_of_its_caller_within_the_byte_budget() {
    use migrun_journal::{CallResult, HostCall, READ_AHEAD_BYTES};
    use migrun_types::Value;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ahead.journal");
    let mut w = JournalWriter::create(&path).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    // ~1.8 MB each: the budget holds two.
    let batch = |seed: u32| Entry::Call {
        call: HostCall::NextBatch { cursor: 1 },
        result: CallResult::Batch {
            rows: Some(
                (0..300u32)
                    .map(|r| {
                        vec![Value::Float32Array(
                            (0..1536u32)
                                .map(|i| (seed * 1_000_003 + r * 1536 + i) as f32)
                                .collect::<Vec<f32>>()
                                .into(),
                        )]
                    })
                    .collect(),
            ),
        },
    };
    for seed in 0..12 {
        w.append_owned(batch(seed)).unwrap();
    }
    w.finish().unwrap();
    let (mut reader, _) = JournalReader::open(&path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ahead = reader.peak_read_ahead_bytes();
    assert!(
        ahead > 1_000_000,
        "records were decoded before they were asked for: {ahead} bytes"
    );
    let mut seed = 0;
    while let Some((_, entry)) = reader.next_entry().unwrap() {
        assert_eq!(entry, batch(seed), "batch {seed} reads back in order");
        seed += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(seed, 12);
    let peak = reader.peak_read_ahead_bytes();
    assert!(
        peak <= READ_AHEAD_BYTES,
        "{peak} bytes waited for the caller; the budget is {READ_AHEAD_BYTES}"
    );
    // A reader dropped half-way stops its thread (it does not wait for room forever).
    let (mut reader, _) = JournalReader::open(&path).unwrap();
    reader.next_entry().unwrap();
    drop(reader);
}

/// The batches of a journal whose rows start with a float array, in order.
fn float_batches(path: &Path) -> Vec<Vec<Vec<migrun_types::Value>>> {
    use migrun_journal::CallResult;
    let (mut reader, _) = JournalReader::open(path).unwrap();
    let mut read = Vec::new();
    while let Some((_, entry)) = reader.next_entry().unwrap() {
        if let Entry::Call {
            result: CallResult::Batch { rows: Some(rows) },
            ..
        } = entry
            && matches!(rows[0][0], migrun_types::Value::Float32Array(_))
        {
            read.push(rows);
        }
    }
    read
}

/// Random floats (embeddings) hardly compress: the writer's probe finds so and stores
/// them as raw zstd blocks (a copy), while text that compresses keeps being
/// compressed; all read back exactly.
#[test]
fn incompressible_blocks_are_stored_fast_and_text_is_still_compressed() {
    use migrun_journal::{CallResult, HostCall};
    use migrun_types::Value;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let batch = |rows: Vec<Vec<Value>>| Entry::Call {
        call: HostCall::NextBatch { cursor: 1 },
        result: CallResult::Batch { rows: Some(rows) },
    };
    let dir = tempfile::tempdir().unwrap();
    let floats = dir.path().join("floats.journal");
    let mut w = JournalWriter::create(&floats).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    let mut written = Vec::new();
    for _ in 0..8 {
        let rows: Vec<Vec<Value>> = (0..200)
            .map(|_| {
                vec![Value::Float32Array(
                    (0..1536).map(|_| random()).collect::<Vec<f32>>().into(),
                )]
            })
            .collect();
        written.push(rows.clone());
        w.append_owned(batch(rows)).unwrap();
    }
    w.finish().unwrap();
    let float_bytes = 8 * 200 * 1536 * 4;
    let size = std::fs::metadata(&floats).unwrap().len() as usize;
    assert!(
        size > float_bytes * 97 / 100,
        "random floats are stored as they are (level 1 would shrink each block ~9%, at ~250 MB/s): {size} bytes for {float_bytes} bytes of floats"
    );
    assert_eq!(
        float_batches(&floats),
        written,
        "every float reads back bit for bit"
    );

    // A copy's blocks: each batch of binary16 embeddings (what a halfvec column
    // holds, values in ±0.1: level 1 shrinks them ~10%) after the small, compressible
    // entries of the bulk insert before it. The probe samples the whole block, not
    // its compressible start: the embeddings are stored.
    let halves = dir.path().join("halves.journal");
    let mut w = JournalWriter::create(&halves).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    let mut written = Vec::new();
    for b in 0..8 {
        let notes = (0..400)
            .map(|r| {
                vec![Value::Text(format!(
                    "inserted row {b}-{r} into me_e00.memory"
                ))]
            })
            .collect();
        w.append_owned(batch(notes)).unwrap();
        let rows: Vec<Vec<Value>> = (0..200)
            .map(|_| {
                let floats = (0..1536)
                    .map(|_| half::f16::from_f32(random() * 0.2).to_f32())
                    .collect::<Vec<f32>>();
                vec![Value::Float32Array(floats.into())]
            })
            .collect();
        written.push(rows.clone());
        w.append_owned(batch(rows)).unwrap();
    }
    w.finish().unwrap();
    let half_bytes = 8 * 200 * 1536 * 2;
    let size = std::fs::metadata(&halves).unwrap().len() as usize;
    assert!(
        size > half_bytes * 98 / 100,
        "binary16 embeddings are stored, not compressed by ~10% at level 1's cost: {size} bytes for {half_bytes} bytes of halves"
    );
    assert_eq!(
        float_batches(&halves),
        written,
        "every binary16 float reads back bit for bit"
    );

    let text = dir.path().join("text.journal");
    let mut w = JournalWriter::create(&text).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    for b in 0..8 {
        let rows = (0..2000)
            .map(|r| {
                vec![Value::Text(format!(
                    "memory {b}-{r}: the agent noted the user's preference for tea"
                ))]
            })
            .collect();
        w.append_owned(batch(rows)).unwrap();
    }
    w.finish().unwrap();
    let size = std::fs::metadata(&text).unwrap().len() as usize;
    assert!(
        size < 8 * 2000 * 60 / 4,
        "text still compresses: {size} bytes"
    );
}

/// A journal holds every row the plugin read: the file is its owner's only (0600), and so
/// is a journal folder migrun creates (0700); a folder that exists keeps its mode.
#[cfg(unix)]
#[test]
fn journals_and_the_folders_made_for_them_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("made/by/migrun/run.journal");
    write_journal(&path);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "the journal file");
    assert_eq!(
        mode(&dir.path().join("made/by/migrun")),
        0o700,
        "a folder migrun made"
    );
    assert_eq!(
        mode(&dir.path().join("made")),
        0o700,
        "its parents migrun made"
    );

    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_journal(&shared.join("run.journal"));
    assert_eq!(
        mode(&shared),
        0o755,
        "an existing folder keeps the operator's mode"
    );
    assert_eq!(mode(&shared.join("run.journal")), 0o600);
}

/// A journal as large as the data it recorded does not stay in the page cache: the
/// writer hands every few MiB to the disk and drops them (`page_cache.rs`), so a bulk
/// copy's journal does not push the database's pages out — while it is written, and
/// after. Linux only (elsewhere the writer gives no such advice).
#[cfg(target_os = "linux")]
#[test]
fn a_journal_as_large_as_the_data_leaves_the_page_cache_as_it_is_written_and_read() {
    use migrun_journal::{CallResult, HostCall};
    use migrun_types::Value;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    // On the target's disk, not a tmpfs /tmp, whose pages cannot be dropped.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("large.journal");
    let mut w = JournalWriter::create(&path).unwrap();
    w.append(&Entry::Header(header())).unwrap();
    let batches = 40; // ~1.2 MiB each: ~49 MiB of floats
    let mut checksum = 0f64;
    for _ in 0..batches {
        let rows: Vec<Vec<Value>> = (0..200)
            .map(|_| {
                vec![Value::Float32Array(
                    (0..1536).map(|_| random()).collect::<Vec<f32>>().into(),
                )]
            })
            .collect();
        checksum += rows.iter().map(|r| first_float(&r[0])).sum::<f64>();
        w.append_owned(Entry::Call {
            call: HostCall::NextBatch { cursor: 1 },
            result: CallResult::Batch { rows: Some(rows) },
        })
        .unwrap();
    }
    w.head(); // every entry encoded and framed
    let written = std::fs::metadata(&path).unwrap().len();
    let during = resident_bytes(&path);
    assert!(
        written > 45 << 20 && during < 24 << 20,
        "while it is written, at most two steps of 8 MiB and a block stay cached: {during} of {written} bytes"
    );
    w.finish().unwrap();
    let after = resident_bytes(&path);
    assert!(
        after <= 64 << 10,
        "once synced, only the page holding the end may stay cached: {after} bytes"
    );
    // Dropped from the cache, not lost: it reads back from the disk — and a reader
    // drops what it read, even when the file was cached before.
    let cached = std::fs::read(&path).unwrap().len() as u64;
    assert!(
        resident_bytes(&path) > cached / 2,
        "read whole, the file is cached"
    );
    let (mut reader, _) = JournalReader::open(&path).unwrap();
    let mut read = 0f64;
    while let Some((_, entry)) = reader.next_entry().unwrap() {
        if let Entry::Call {
            result: CallResult::Batch { rows: Some(rows) },
            ..
        } = entry
        {
            read += rows.iter().map(|r| first_float(&r[0])).sum::<f64>();
        }
    }
    assert_eq!(read, checksum);
    let after_reading = resident_bytes(&path);
    assert!(
        after_reading < 24 << 20,
        "a reader keeps at most a step and the kernel's read-ahead cached: {after_reading} of {written} bytes"
    );

    fn first_float(v: &Value) -> f64 {
        match v {
            Value::Float32Array(f) => f64::from(f[0]),
            other => panic!("not floats: {other:?}"),
        }
    }
}

/// Bytes of `path` in the page cache (`mincore` over a read-only mapping; maps, touches
/// nothing).
#[cfg(target_os = "linux")]
fn resident_bytes(path: &Path) -> u64 {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let page = 4096usize;
    // SAFETY: a read-only shared mapping of a file we hold open, never dereferenced;
    // `mincore` writes one byte per page into `pages`, sized for every page.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap");
        let mut pages = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(map, len, pages.as_mut_ptr());
        libc::munmap(map, len);
        assert_eq!(rc, 0, "mincore");
        pages.iter().filter(|&&p| p & 1 == 1).count() as u64 * page as u64
    }
}
