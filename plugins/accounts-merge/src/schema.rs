//! Tables, columns and every SQL statement the plugin sends.
//!
//! The Python and JavaScript twins hold these strings verbatim: the
//! conformance suite compares the statements themselves.

use migrun_sdk::Dialect;

/// The accounts table written.
pub const ACCOUNTS: &str = "accounts";
/// The identities table written.
pub const IDENTITIES: &str = "identities";

/// Columns of `accounts`, in insert order.
pub const ACCOUNT_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "email",
    "email_domain",
    "password_kind",
    "sign_in_count",
    "locked",
    "created_at",
    "last_sign_in_at",
];

/// Columns of `identities`, in insert order.
pub const IDENTITY_COLUMNS: [&str; 4] = ["provider", "uid", "account_id", "email"];

/// `CREATE TABLE IF NOT EXISTS` for both tables, `accounts` first (identities refer to it).
///
/// SQLite: `DATETIME` columns keep the text they are given, so a copy from
/// SQLite to SQLite is exact. PostgreSQL and MySQL: microsecond timestamps,
/// as in `users`. The unique email is the point of normalising it.
pub fn create_tables(dialect: Dialect) -> [&'static str; 2] {
    match dialect {
        Dialect::Sqlite => [
            "CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, email_domain TEXT, password_kind TEXT NOT NULL, sign_in_count INTEGER NOT NULL, locked BOOLEAN NOT NULL, created_at DATETIME, last_sign_in_at DATETIME)",
            "CREATE TABLE IF NOT EXISTS identities (provider TEXT NOT NULL, uid TEXT NOT NULL, account_id INTEGER NOT NULL REFERENCES accounts (id), email TEXT, PRIMARY KEY (provider, uid))",
        ],
        Dialect::Postgres => [
            "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name varchar(30) NOT NULL, email varchar(50) UNIQUE, email_domain varchar(255), password_kind varchar(16) NOT NULL, sign_in_count integer NOT NULL, locked boolean NOT NULL, created_at timestamp(6), last_sign_in_at timestamp(6))",
            "CREATE TABLE IF NOT EXISTS identities (provider varchar(255) NOT NULL, uid varchar(255) NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id), email varchar(255), PRIMARY KEY (provider, uid))",
        ],
        // `Dialect` is non-exhaustive: anything newer is treated like MySQL.
        _ => [
            "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name varchar(30) NOT NULL, email varchar(50) UNIQUE, email_domain varchar(255), password_kind varchar(16) NOT NULL, sign_in_count int NOT NULL, locked boolean NOT NULL, created_at datetime(6), last_sign_in_at datetime(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE IF NOT EXISTS identities (provider varchar(255) NOT NULL, uid varchar(255) NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id), email varchar(255), PRIMARY KEY (provider, uid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ],
    }
}

/// Every user.
pub const COUNT_USERS: &str = "SELECT COUNT(*) FROM users";
/// The users `copy-accounts` reads, in id order.
pub const SELECT_USERS: &str = "SELECT id, name, email, encrypted_password, password_salt, sign_in_count, unlock_token, locked_at, created_at, last_sign_in_at FROM users ORDER BY id";
/// Users with a provider identity.
pub const COUNT_PROVIDERS: &str = "SELECT COUNT(*) FROM users WHERE provider IS NOT NULL";
/// The identities `split-identities` reads, in id order.
pub const SELECT_PROVIDERS: &str =
    "SELECT id, provider, uid, neopass_email FROM users WHERE provider IS NOT NULL ORDER BY id";
/// Rows of `accounts`.
pub const COUNT_ACCOUNTS: &str = "SELECT COUNT(*) FROM accounts";
/// Rows of `identities`.
pub const COUNT_IDENTITIES: &str = "SELECT COUNT(*) FROM identities";
/// Every stored email, for the normalisation check.
pub const SELECT_EMAILS: &str =
    "SELECT id, email FROM accounts WHERE email IS NOT NULL ORDER BY id";
/// Identities whose account is missing.
pub const COUNT_ORPHANS: &str = "SELECT COUNT(*) FROM identities LEFT JOIN accounts ON accounts.id = identities.account_id WHERE accounts.id IS NULL";

/// Ids `accounts` already holds in a range (two placeholders, whatever the batch size).
pub fn present_accounts(dialect: Dialect) -> String {
    format!(
        "SELECT id FROM accounts WHERE id BETWEEN {} AND {}",
        dialect.placeholder(1),
        dialect.placeholder(2)
    )
}

/// Accounts `identities` already covers in a range.
pub fn present_identities(dialect: Dialect) -> String {
    format!(
        "SELECT account_id FROM identities WHERE account_id BETWEEN {} AND {}",
        dialect.placeholder(1),
        dialect.placeholder(2)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_use_the_dialects_placeholders() {
        assert_eq!(
            present_accounts(Dialect::Postgres),
            "SELECT id FROM accounts WHERE id BETWEEN $1 AND $2"
        );
        assert_eq!(
            present_identities(Dialect::Sqlite),
            "SELECT account_id FROM identities WHERE account_id BETWEEN ? AND ?"
        );
    }

    #[test]
    fn ddl_names_every_column_in_insert_order() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            let [accounts, identities] = create_tables(dialect);
            let mut at = 0;
            for column in ACCOUNT_COLUMNS {
                let found = accounts[at..].find(&format!("{column} ")).expect(column);
                at += found + column.len();
            }
            for column in IDENTITY_COLUMNS {
                assert!(identities.contains(&format!("{column} ")), "{column}");
            }
        }
    }
}
