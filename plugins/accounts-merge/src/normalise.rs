//! From a `users` row to rows of `accounts` and `identities`: pure functions,
//! ASCII-only so that the Rust, Python and JavaScript twins agree byte for byte.

use migrun_sdk::{Dialect, Result, Row, Value};
use serde::Deserialize;

/// ASCII whitespace, as Rust's `char::is_ascii_whitespace` (no vertical tab).
fn trim_ascii(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// An email trimmed and lower-cased (`A`–`Z` only); `None` when absent or blank.
pub fn normalise_email(email: Option<&str>) -> Option<String> {
    let trimmed = trim_ascii(email?);
    (!trimmed.is_empty()).then(|| trimmed.to_ascii_lowercase())
}

/// What follows the last `@` of a normalised email, when non-empty.
pub fn email_domain(email: &str) -> Option<&str> {
    email
        .rsplit_once('@')
        .map(|(_, domain)| domain)
        .filter(|d| !d.is_empty())
}

/// The kind of password hash: `none`, `legacy-sha` (salted), `bcrypt` or `unknown`.
pub fn password_kind(encrypted: Option<&str>, salt: Option<&str>) -> &'static str {
    match (encrypted, salt) {
        (None | Some(""), _) => "none",
        (Some(_), Some(salt)) if !salt.is_empty() => "legacy-sha",
        (Some(hash), _) if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) => "bcrypt",
        _ => "unknown",
    }
}

/// A timestamp read from `source`, as it is bound into `target`: into SQLite
/// exactly as read; elsewhere SQLite's text (`2024-01-02 03:04:05.5`) and a
/// `timestamptz` become the zone-less timestamp the column holds.
pub fn timestamp(target: Dialect, value: Value) -> Value {
    if target == Dialect::Sqlite {
        return value;
    }
    match value {
        Value::Text(s) => Value::Timestamp(s.replacen(' ', "T", 1)),
        Value::Timestamptz(s) => Value::Timestamp(s.strip_suffix('Z').unwrap_or(&s).to_owned()),
        other => other,
    }
}

/// An `accounts` row and what normalising its email did.
pub struct Account {
    /// Its values, in [`ACCOUNT_COLUMNS`](crate::schema::ACCOUNT_COLUMNS) order.
    pub values: Vec<Value>,
    /// The email was present and normalising changed it.
    pub email_changed: bool,
    /// The account has no email.
    pub without_email: bool,
}

fn value_at(row: &Row, index: usize) -> Value {
    row.values().get(index).cloned().unwrap_or(Value::Null)
}

/// The columns of [`SELECT_USERS`](crate::schema::SELECT_USERS) read as Rust
/// values; the timestamps stay [`Value`]s, bound again as they were read.
#[derive(Deserialize)]
struct User {
    id: i64,
    name: String,
    email: Option<String>,
    encrypted_password: Option<String>,
    password_salt: Option<String>,
    sign_in_count: Option<i64>,
    unlock_token: Option<String>,
}

/// The `accounts` row for a row of [`SELECT_USERS`](crate::schema::SELECT_USERS).
pub fn account(target: Dialect, row: &Row) -> Result<Account> {
    let user: User = row.deserialize()?;
    let locked = user.unlock_token.is_some() || !value_at(row, 7).is_null();
    let normalised = normalise_email(user.email.as_deref());
    let domain = normalised
        .as_deref()
        .and_then(email_domain)
        .map(str::to_owned);
    Ok(Account {
        email_changed: user.email.is_some() && normalised != user.email,
        without_email: normalised.is_none(),
        values: vec![
            Value::Int(user.id),
            Value::Text(user.name),
            Value::from(normalised),
            Value::from(domain),
            Value::from(password_kind(
                user.encrypted_password.as_deref(),
                user.password_salt.as_deref(),
            )),
            Value::Int(user.sign_in_count.unwrap_or(0)),
            Value::Bool(locked),
            timestamp(target, value_at(row, 8)),
            timestamp(target, value_at(row, 9)),
        ],
    })
}

/// The `identities` row for a row of [`SELECT_PROVIDERS`](crate::schema::SELECT_PROVIDERS).
pub fn identity(user: &Row) -> Result<Vec<Value>> {
    let (id, provider, neopass_email): (i64, String, Option<String>) =
        (user.get_at(0)?, user.get_at(1)?, user.get_at(3)?);
    Ok(vec![
        Value::Text(trim_ascii(&provider).to_ascii_lowercase()),
        value_at(user, 2),
        Value::Int(id),
        Value::from(normalise_email(neopass_email.as_deref())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_ascii_lower_cased() {
        assert_eq!(
            normalise_email(Some("  Zoe.Smith+dti5@Example.COM\t")).as_deref(),
            Some("zoe.smith+dti5@example.com")
        );
        assert_eq!(normalise_email(Some(" \r\n")), None);
        assert_eq!(normalise_email(None), None);
        // Only A-Z: Unicode case mappings differ between the twins' languages.
        assert_eq!(
            normalise_email(Some("ÉLOISE@X.ORG")).as_deref(),
            Some("Éloise@x.org")
        );
        // A non-breaking space is not ASCII whitespace.
        assert_eq!(
            normalise_email(Some("\u{a0}a@b")).as_deref(),
            Some("\u{a0}a@b")
        );
    }

    #[test]
    fn domains_follow_the_last_at() {
        assert_eq!(email_domain("o'brien.2@example.org"), Some("example.org"));
        assert_eq!(email_domain("\"a@b\"@c.net"), Some("c.net"));
        assert_eq!(email_domain("nobody"), None);
        assert_eq!(email_domain("trailing@"), None);
    }

    #[test]
    fn password_kinds() {
        assert_eq!(password_kind(None, None), "none");
        assert_eq!(password_kind(Some(""), Some("salt")), "none");
        assert_eq!(password_kind(Some("abc"), Some("salt")), "legacy-sha");
        assert_eq!(password_kind(Some("$2a$10$xyz"), None), "bcrypt");
        assert_eq!(password_kind(Some("$2y$10$xyz"), Some("")), "bcrypt");
        assert_eq!(password_kind(Some("$1$md5"), None), "unknown");
    }

    #[test]
    fn timestamps_are_bound_as_the_target_holds_them() {
        let text = Value::Text("2024-01-02 03:04:05.5".into());
        assert_eq!(timestamp(Dialect::Sqlite, text.clone()), text);
        assert_eq!(
            timestamp(Dialect::Postgres, text),
            Value::Timestamp("2024-01-02T03:04:05.5".into())
        );
        assert_eq!(
            timestamp(
                Dialect::MySql,
                Value::Timestamptz("2024-01-02T03:04:05Z".into())
            ),
            Value::Timestamp("2024-01-02T03:04:05".into())
        );
        assert_eq!(timestamp(Dialect::Postgres, Value::Null), Value::Null);
    }
}
