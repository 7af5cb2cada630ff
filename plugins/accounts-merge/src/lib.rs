//! Accounts merge: a cut of seed 000 written three times — here in Rust,
//! in Python (`plugins/accounts-merge-py`) and in JavaScript
//! (`plugins/accounts-merge-js`) — against the same WIT. The conformance
//! suite (`tests/e2e/conformance.rs`) runs the three on the same fixtures and
//! requires identical reports, identical host calls and identical tables.
//!
//! It reads openneo_id's Devise `users` through a read-only `source` and
//! writes two normalised tables through a read-write `target`:
//!
//! - `accounts`: one row per user, id preserved; the email trimmed and
//!   lower-cased (NULL when absent or blank) with its domain split out; the
//!   password reduced to its kind (`bcrypt`, `legacy-sha`, `none`,
//!   `unknown`); a `locked` flag; timestamps as read.
//! - `identities`: one row per user with a provider (NeoPass), keyed by
//!   `(provider, uid)`, pointing at its account, with its own normalised email.
//!
//! # The behaviour all three implementations share
//!
//! The twins must make the same host calls with the same arguments in the
//! same order, so this is specified exactly; the SQL text lives in
//! [`schema`] and is copied verbatim into the other two.
//!
//! - Every export call opens each connection it uses once, `source` before
//!   `target`, reading its dialect and access right after opening it.
//! - Unit `create-tables`: `CREATE TABLE IF NOT EXISTS` for `accounts`, then
//!   `identities`, in the target's dialect; one info message.
//! - Unit `copy-accounts`: counts `users`, reports progress 0 of the count,
//!   opens a cursor over `users` in id order with `batch_size` rows per batch
//!   (reading its columns once), and for every non-empty batch: looks up the
//!   ids `accounts` already holds between the batch's first and last id,
//!   bulk-inserts the batch's other rows (when there are any) and reports
//!   progress; finally one info message with the counts.
//! - Unit `split-identities`: the same shape over the users with a provider,
//!   into `identities`, skipping accounts whose identity is already there.
//! - `verify`: four checks, in this order — accounts match users, identities
//!   match users with a provider, every email normalised (streamed through a
//!   cursor and checked with the same function that normalised it), every
//!   identity has an account.
//!
//! Normalisation is ASCII-only on purpose: trimming and lower-casing only
//! ASCII whitespace and `A`–`Z` gives the same answer in every language
//! (Unicode case mappings differ between Rust, Python and JavaScript
//! versions), and email domains are ASCII (IDNs travel as punycode).
//!
//! # Layout
//!
//! - `schema.rs`: table and column names, DDL per dialect, every query.
//! - `normalise.rs`: the pure functions turning a `users` row into rows of
//!   `accounts` and `identities`.
//! - `units.rs`: the three units.
//! - `verify.rs`: the checks.
//!
//! # Connections and configuration
//!
//! - `source` (read-only): holds `users`.
//! - `target` (read-write): receives `accounts` and `identities`.
//! - `batch_size` (default 500, 1 to 100000): rows per cursor batch and per bulk insert.

use migrun_sdk::{Config, ConfigKey, Need, Plugin, PluginInfo, Result, bail};

mod normalise;
mod schema;
mod units;
mod verify;

/// Unit creating both tables.
pub const UNIT_CREATE: &str = "create-tables";
/// Unit copying users into accounts.
pub const UNIT_ACCOUNTS: &str = "copy-accounts";
/// Unit splitting provider identities out.
pub const UNIT_IDENTITIES: &str = "split-identities";

/// The largest `batch_size` accepted.
const MAX_BATCH: u32 = 100_000;

/// The plugin's state between calls.
#[derive(Debug)]
pub struct AccountsMerge {
    batch_size: u32,
}

/// Parses `batch_size`: decimal digits only, 1 to [`MAX_BATCH`]. Written out
/// by hand (no `+`, no whitespace) so the three twins accept exactly the same text.
fn parse_batch_size(text: &str) -> Result<u32> {
    let value = (!text.is_empty() && text.len() <= 6 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u32>().ok())
        .flatten()
        .filter(|n| (1..=MAX_BATCH).contains(n));
    match value {
        Some(n) => Ok(n),
        None => bail!(
            "config key `batch_size` must be a whole number from 1 to {MAX_BATCH}, got `{text}`"
        ),
    }
}

impl Plugin for AccountsMerge {
    fn describe() -> PluginInfo {
        PluginInfo::new("accounts-merge", env!("CARGO_PKG_VERSION"))
            .description("Merges openneo_id's users into normalised accounts and provider identities")
            .connection(Need::read_only(
                "source",
                "the openneo_id database, holding Devise's users table",
            ))
            .connection(
                Need::read_write("target", "the database receiving accounts and identities")
                    .writes([schema::ACCOUNTS, schema::IDENTITIES]),
            )
            .unit(UNIT_CREATE, "creates accounts and identities when absent")
            .unit(
                UNIT_ACCOUNTS,
                "copies every user into accounts in id order, email normalised, skipping ids already present",
            )
            .unit(
                UNIT_IDENTITIES,
                "copies each provider identity into identities, skipping accounts already split",
            )
            .config_key(
                ConfigKey::new("batch_size", "rows fetched and inserted per batch").default("500"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let batch_size = parse_batch_size(config.get_or("batch_size", "500"))?;
        Ok(AccountsMerge { batch_size })
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        match unit {
            UNIT_CREATE => units::create_tables(),
            UNIT_ACCOUNTS => units::copy_accounts(self.batch_size),
            UNIT_IDENTITIES => units::split_identities(self.batch_size),
            other => bail!(
                "unknown unit `{other}` (expected {UNIT_CREATE}, {UNIT_ACCOUNTS} or {UNIT_IDENTITIES})"
            ),
        }
    }

    fn verify(&mut self) -> Result<()> {
        verify::run(self.batch_size)
    }
}

migrun_sdk::export_plugin!(AccountsMerge);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_accepts_only_plain_digits_in_range() {
        assert_eq!(parse_batch_size("1").unwrap(), 1);
        assert_eq!(parse_batch_size("500").unwrap(), 500);
        assert_eq!(parse_batch_size("100000").unwrap(), 100_000);
        assert_eq!(parse_batch_size("007").unwrap(), 7);
        for bad in [
            "", "0", "100001", "+5", " 5", "5 ", "-1", "1e3", "9999999", "abc",
        ] {
            let e = parse_batch_size(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("got `{bad}`")), "{bad:?}: {e}");
        }
    }
}
