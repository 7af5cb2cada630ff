//! End-to-end tests: real plugins built from source, real databases (a
//! database of its own per test), the real `migrun` binary.
//!
//! Topics: `values` (every value kind on every dialect), `auth_consolidation`
//! (seed 000), `conformance` (one plugin in Rust, Python and JavaScript, held
//! to identical behaviour), `dry_run` (a dry-run changes nothing; plans and
//! lint), `backup` (snapshots before writes, verify, restore on every dialect),
//! `sandbox` (hostile plugins), `output` (a plugin flooding or
//! tricking the operator's terminal), `restore_scope` (catch-all patterns,
//! what a restore may drop), `cli` (inspect, refusals, `migrun new`),
//! `multiplayer` (seed 001: the prod → multiplayer ETL across three
//! PostgreSQL databases), `backfill` (seeds 002 and 003: the expand/contract
//! rename with checkpointed batches under concurrent writes), `fresh_baseline`
//! (seed 004: reset with a backup first, the baseline schema and its alembic
//! revision, the seed's commands against the constraints), `cache` (the compiled-component cache), `privileges` (roles
//! checked at start; the documented least-privilege roles), `contracts` (0.1.0,
//! 0.1.1 and 0.2.0 components side by side; version refusals), `non_transactional`
//! (contract 0.2.0 units outside a transaction: autocommit, dry-run plans, reruns), `vectors`
//! (pgvector types and typed values on the suite's own PostgreSQL 18 + pgvector),
//! `timeouts` (lock and statement timeouts against held locks; the lint on real runs),
//! `structured_writes` (contract 0.2.0's bulk update/upsert/delete on every dialect: rows,
//! plans, read-only refusal, replay and per-key `replay --plugin` diffs), `files` (contract
//! 0.2.0 files the operator grants: streaming, escapes, replay, plan), `price_to_cents`
//! (seed 002's text price → integer cents: exact cents, warnings by key, plan, resume, and the
//! v1 → v2 `replay --plugin` diff by key), `rename_keeps` (the rename keeps the column's
//! whole definition, on every dialect).
//! `keep_going` (`--keep-going`: failed units rolled back, the others run, reruns),
//! `progress` (`--json` unit events, summary lines, `migrun status` of big ledgers),
//! `table_rename` (seed 002's table rename: copy, dual-write, backfill of changed rows, switch,
//! freeze and a contract in a later run, on every dialect),
//! `kubernetes` (the Indexed Job manifest validated; `--shard auto` workers killed and
//! restarted, every unit migrated once), `tenants` (one migration across tenant databases:
//! `[tenants]` and `${tenant}` URLs, keep-going, reruns, shards, a query's list), `sql_command`
//! (`migrun sql`: one transaction, text and JSON rows, rollback on failure),
//! `examples_python` (issue 21's Python examples on `migrun_sdk`: backfill and copy with
//! resume; the SDK's own pytest suite),
//! `table_copy` (the Rust SDK's `TableCopy`: keyset batches with a checkpoint each, resume
//! after the last key, composite keys, upserts, dry-runs, on every dialect), `examples`
//! (`examples/*-rust`: the price-cents backfill on every dialect, the customers copy
//! PostgreSQL → SQLite with a resume; each within 100 lines),
//! `sdk_js` (the JavaScript SDK: its Node tests, and a guest written with it on every
//! dialect — copy and backfill resumed after a crash, values, errors as exceptions).

mod attacks;
mod auth_consolidation;
mod backfill;
mod backup;
mod cache;
mod cli;
mod conformance;
mod contracts;
mod docs;
mod dry_run;
mod examples;
mod examples_python;
mod faults;
mod files;
mod first_use;
mod fresh_baseline;
mod jobs;
mod journal_trust;
mod keep_going;
mod kubernetes;
mod multiplayer;
mod non_transactional;
mod output;
mod own_state;
mod plan;
mod plan_apply;
mod price_to_cents;
mod privileges;
mod progress;
mod rename_keeps;
mod replay;
mod restore_scope;
mod resume;
mod sandbox;
mod scaffold;
mod sdk_js;
mod sdk_python;
mod sql_command;
mod streaming;
mod structured_writes;
mod support;
mod table_copy;
mod table_rename;
mod tenants;
mod timeouts;
mod unit_identity;
mod values;
mod vectors;
