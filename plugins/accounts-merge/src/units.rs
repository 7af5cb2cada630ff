//! The three units.

use std::collections::HashSet;

use migrun_sdk::{Connection, Context, Result, Row, Value, bail, info, params, progress};

use crate::normalise::{account, identity};
use crate::schema::{
    ACCOUNT_COLUMNS, ACCOUNTS, COUNT_PROVIDERS, COUNT_USERS, IDENTITIES, IDENTITY_COLUMNS,
    SELECT_PROVIDERS, SELECT_USERS, create_tables as ddl, present_accounts, present_identities,
};
use crate::{UNIT_ACCOUNTS, UNIT_IDENTITIES};

/// Unit `create-tables`.
pub fn create_tables() -> Result<()> {
    let target = Connection::open("target")?;
    let dialect = target.dialect();
    for (table, sql) in [ACCOUNTS, IDENTITIES].into_iter().zip(ddl(dialect)) {
        target
            .execute(sql, params![])
            .with_context(|| format!("creating {table}"))?;
    }
    info!(dialect = dialect; "{ACCOUNTS} and {IDENTITIES} exist");
    Ok(())
}

/// The first column of a row: the user's id.
fn id_of(row: &Row) -> Result<i64> {
    row.get_at(0).context("reading a user's id")
}

/// The first and last id of a (non-empty) batch, and the ids a range lookup
/// (`present_sql`, two parameters whatever the batch size) finds between them on `target`.
fn present(
    target: &Connection,
    present_sql: &str,
    batch: &[Row],
) -> Result<(i64, i64, HashSet<i64>)> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        bail!("a cursor returned an empty batch");
    };
    let (first, last) = (id_of(first)?, id_of(last)?);
    let ids: Vec<i64> = target.query_as(present_sql, params![first, last])?;
    Ok((first, last, ids.into_iter().collect()))
}

/// Unit `copy-accounts`.
pub fn copy_accounts(batch_size: u32) -> Result<()> {
    let source = Connection::open("source")?;
    let target = Connection::open("target")?;
    let dialect = target.dialect();
    let total: u64 = source.query_scalar(COUNT_USERS, params![])?;
    let present_sql = present_accounts(dialect);

    let (mut done, mut copied, mut skipped, mut normalised, mut without_email) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    progress(UNIT_ACCOUNTS, 0, total);
    for batch in source.cursor(SELECT_USERS, params![], batch_size)? {
        let batch = batch.context("reading users")?;
        let (first, last, present) = present(&target, &present_sql, &batch)?;
        done += batch.len() as u64;
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(batch.len());
        for user in &batch {
            if present.contains(&id_of(user)?) {
                skipped += 1;
                continue;
            }
            let account = account(dialect, user)?;
            normalised += u64::from(account.email_changed);
            without_email += u64::from(account.without_email);
            rows.push(account.values);
        }
        copied += target
            .bulk_insert(ACCOUNTS, &ACCOUNT_COLUMNS, rows)
            .with_context(|| format!("inserting accounts {first} to {last}"))?;
        progress(UNIT_ACCOUNTS, done, total);
    }
    info!(copied = copied, skipped = skipped, normalised = normalised, without_email = without_email;
        "copied {copied} users into {ACCOUNTS}; {skipped} were already present, \
         {normalised} emails were normalised, {without_email} have no email");
    Ok(())
}

/// Unit `split-identities`.
pub fn split_identities(batch_size: u32) -> Result<()> {
    let source = Connection::open("source")?;
    let target = Connection::open("target")?;
    let total: u64 = source.query_scalar(COUNT_PROVIDERS, params![])?;
    let present_sql = present_identities(target.dialect());

    let (mut done, mut copied, mut skipped, mut without_email) = (0u64, 0u64, 0u64, 0u64);
    progress(UNIT_IDENTITIES, 0, total);
    for batch in source.cursor(SELECT_PROVIDERS, params![], batch_size)? {
        let batch = batch.context("reading users with a provider")?;
        let (first, last, present) = present(&target, &present_sql, &batch)?;
        done += batch.len() as u64;
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(batch.len());
        for user in &batch {
            if present.contains(&id_of(user)?) {
                skipped += 1;
                continue;
            }
            let row = identity(user)?;
            without_email += u64::from(row[3].is_null());
            rows.push(row);
        }
        copied += target
            .bulk_insert(IDENTITIES, &IDENTITY_COLUMNS, rows)
            .with_context(|| format!("inserting identities of accounts {first} to {last}"))?;
        progress(UNIT_IDENTITIES, done, total);
    }
    info!(copied = copied, skipped = skipped, without_email = without_email;
        "split {copied} identities into {IDENTITIES}; {skipped} were already present, {without_email} have no email");
    Ok(())
}
