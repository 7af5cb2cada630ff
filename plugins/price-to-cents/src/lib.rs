//! Seed 002's type change — a price kept as text becomes an integer number of cents —
//! done the expand way: a new column next to the old one, filled in batches, checked;
//! the text column stays for the applications that still read it (drop it later, once
//! nobody does, e.g. with `expand-contract-rename`'s `contract` or by hand).
//!
//! Configured with `table` (default `orders`), `text_column` (`amount_text`),
//! `cents_column` (`amount_cents`), `key` (empty: the table's primary key) and
//! `batch_size` (1000), on the read-write connection `target`. Units, declared once with
//! [`Steps`](migrun_sdk::Steps):
//!
//! 1. `add-column`: adds `cents_column BIGINT` (nullable) unless the catalog says it exists
//!    (`column_exists`), so a rerun — or a second run after a crash on MariaDB, where DDL
//!    commits at once — changes nothing.
//! 2. `convert`: a [`Backfill`](migrun_sdk::Backfill) reading the key and `text_column` of
//!    each batch (`.columns([text_column])`), converting in the plugin and writing the
//!    batch back with **one `bulk_update` per batch** (keys: the key column; set: the
//!    cents column; no call for a batch with nothing convertible). Each batch commits
//!    with its checkpoint, so an interrupted `convert` resumes after its last batch. A
//!    row whose text is not a price is not written: it keeps NULL and is logged as a
//!    warning naming its key and text
//!    (`cannot convert the price; amount_cents stays NULL — id=12 amount_text="n/a"
//!    reason="not a price"`), one message for all of them so the report groups them. A NULL
//!    text is no price at all: its cents stay NULL, without a warning.
//! 3. `verify` (after the units): re-reads every row and checks that the cents are this
//!    build's conversion of the text, or NULL where the text is not a price (or NULL),
//!    with the counts in the check's detail: `20 rows: 15 converted, 4 unconvertible
//!    (NULL), 1 without a price, 0 not converted yet; 0 differ`. A convertible row still
//!    without cents fails it only in a run where `convert` finished (after `--only
//!    add-column`, or for rows written since the conversion, it is "not converted yet").
//!
//! The accepted forms and the rounding rule are in [`amount`]: `12.30`, `$1,234.50`,
//! `12`, ` 7.5 `, `-$3.10`; more than two decimals round half away from zero. Why not
//! reject `12.345`? Prices computed upstream (a percentage discount) carry such
//! fractions, and rounding them the way an invoice does loses nothing anyone billed.
//!
//! Each unit is recorded per conversion (contract 0.2.0's scope,
//! `<table>.<text_column>-><cents_column>`), so converting a second column with the same
//! build runs again instead of being skipped as done.
//!
//! This crate is the first build of the rule (a bare `12` is twelve dollars);
//! `tests/guests/price-to-cents-v2` compiles the same sources with [`BARE_INTEGERS`] set
//! to cents, so `migrun replay <journal> --plugin price_to_cents_v2.wasm` lists the rows
//! the changed rule converts differently, by key (`~ id=3 amount_cents: 1200 → 12`).
//!
//! `fail_after_batches` (default 0: never) makes `convert` fail after that many batches
//! of one run, to rehearse an interruption: those batches stay committed and the next run
//! resumes after them.

pub mod amount;
mod plugin;

/// How this build reads a number without a decimal point or `$`: as dollars.
pub const BARE_INTEGERS: amount::BareIntegers = amount::BareIntegers::Dollars;
