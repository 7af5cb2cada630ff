//! The checks: counts on both sides, every stored email normalised, no orphan identity.

use migrun_sdk::{Connection, Result, check, params};

use crate::normalise::normalise_email;
use crate::schema::{
    COUNT_ACCOUNTS, COUNT_IDENTITIES, COUNT_ORPHANS, COUNT_PROVIDERS, COUNT_USERS, SELECT_EMAILS,
};

pub fn run(batch_size: u32) -> Result<()> {
    let source = Connection::open("source")?;
    let target = Connection::open("target")?;

    let users: i64 = source.query_scalar(COUNT_USERS, params![])?;
    let accounts: i64 = target.query_scalar(COUNT_ACCOUNTS, params![])?;
    check(
        "accounts match users",
        users == accounts,
        &format!("users: {users}, accounts: {accounts}"),
    );

    let with_provider: i64 = source.query_scalar(COUNT_PROVIDERS, params![])?;
    let identities: i64 = target.query_scalar(COUNT_IDENTITIES, params![])?;
    check(
        "identities match users with a provider",
        with_provider == identities,
        &format!("users with a provider: {with_provider}, identities: {identities}"),
    );

    // Streamed and checked with the very function that normalised them, so the
    // check means the same on every dialect (SQL's LOWER differs between them).
    let (mut checked, mut wrong, mut first_wrong) = (0u64, 0u64, None);
    for batch in target.cursor_as::<(i64, String)>(SELECT_EMAILS, params![], batch_size)? {
        for (id, email) in batch? {
            checked += 1;
            if normalise_email(Some(&email)).as_deref() != Some(email.as_str()) {
                wrong += 1;
                first_wrong.get_or_insert(id);
            }
        }
    }
    let detail = match first_wrong {
        None => format!("{checked} emails are trimmed and lower-case"),
        Some(id) => format!(
            "{wrong} of {checked} emails are not trimmed and lower-case; first: account {id}"
        ),
    };
    check("emails are normalised", wrong == 0, &detail);

    let orphans: i64 = target.query_scalar(COUNT_ORPHANS, params![])?;
    check(
        "every identity has an account",
        orphans == 0,
        &format!("{orphans} identities without an account"),
    );
    Ok(())
}
