//! Value coercion on the way into `auth_users`, and the comparison `verify` uses.
//!
//! The same Devise row reads back slightly differently per dialect: SQLite
//! has no timestamp type and returns a `datetime` column as the text it holds
//! (`2024-01-02 03:04:05.5`, as Rails and sqlx write it), MySQL and
//! PostgreSQL a canonical timestamp (`2024-01-02T03:04:05.500000`). Into
//! SQLite, values are copied exactly as read, so the copy equals the source
//! byte for byte; into PostgreSQL or MySQL, text read from a SQLite source is
//! bound as the timestamp its column holds. Comparisons look through these
//! spellings, never through a real difference.

use migrun_sdk::{Dialect, Value};

use crate::schema::Kind;

/// The value to bind into a `target` column of `kind`, given what the source returned.
pub fn coerce(target: Dialect, kind: Kind, value: Value) -> Value {
    if target == Dialect::Sqlite {
        return value;
    }
    match (kind, value) {
        (Kind::Timestamp, Value::Text(s)) => Value::Timestamp(s.replacen(' ', "T", 1)),
        (Kind::Timestamp, Value::Timestamptz(s)) => {
            Value::Timestamp(s.trim_end_matches('Z').to_owned())
        }
        (Kind::Int, Value::Bool(b)) => Value::Int(i64::from(b)),
        (_, v) => v,
    }
}

/// Whether two values of a column of `kind` are the same datum.
pub fn same(kind: Kind, a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match kind {
        Kind::Int => match (as_int(a), as_int(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        Kind::Timestamp => match (timestamp(a), timestamp(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        Kind::Text => match (text(a), text(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Decimal(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b).ok(),
        other => other.as_str(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]` with the fraction's trailing zeros (and a
/// bare dot) removed and no `Z`, so `…05`, `…05.000000` and `…05Z` agree.
pub fn timestamp(v: &Value) -> Option<String> {
    let s = match v {
        Value::Text(s) | Value::Timestamp(s) | Value::Timestamptz(s) => s.as_str(),
        _ => return None,
    };
    let s = s.trim().trim_end_matches('Z').replacen(' ', "T", 1);
    Some(match s.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_text_timestamps_become_canonical_timestamps_elsewhere() {
        let pg = Dialect::Postgres;
        assert_eq!(
            coerce(
                pg,
                Kind::Timestamp,
                Value::Text("2024-01-02 03:04:05.123456".into())
            ),
            Value::Timestamp("2024-01-02T03:04:05.123456".into())
        );
        assert_eq!(
            coerce(
                Dialect::MySql,
                Kind::Timestamp,
                Value::Timestamptz("2024-01-02T03:04:05Z".into())
            ),
            Value::Timestamp("2024-01-02T03:04:05".into())
        );
        assert_eq!(coerce(pg, Kind::Timestamp, Value::Null), Value::Null);
        assert_eq!(
            coerce(pg, Kind::Text, Value::Text("a b".into())),
            Value::Text("a b".into())
        );
        assert_eq!(coerce(pg, Kind::Int, Value::Bool(true)), Value::Int(1));
    }

    #[test]
    fn into_sqlite_values_are_copied_as_read() {
        let text = Value::Text("2024-01-02 03:04:05.123456".into());
        assert_eq!(coerce(Dialect::Sqlite, Kind::Timestamp, text.clone()), text);
    }

    #[test]
    fn spellings_of_one_datum_compare_equal() {
        let ts = |s: &str| Value::Timestamp(s.into());
        assert!(same(
            Kind::Timestamp,
            &Value::Text("2024-01-02 03:04:05.5".into()),
            &ts("2024-01-02T03:04:05.500000")
        ));
        assert!(same(
            Kind::Timestamp,
            &ts("2024-01-02T03:04:05.000000"),
            &ts("2024-01-02T03:04:05")
        ));
        assert!(same(
            Kind::Timestamp,
            &Value::Timestamptz("2024-01-02T03:04:05Z".into()),
            &ts("2024-01-02T03:04:05")
        ));
        assert!(same(Kind::Int, &Value::Int(1), &Value::Bool(true)));
        assert!(same(
            Kind::Text,
            &Value::Bytes(b"abc".to_vec()),
            &Value::Text("abc".into())
        ));
        assert!(same(Kind::Text, &Value::Null, &Value::Null));
    }

    #[test]
    fn real_differences_do_not() {
        let ts = |s: &str| Value::Timestamp(s.into());
        assert!(!same(
            Kind::Timestamp,
            &ts("2024-01-02T03:04:05.5"),
            &ts("2024-01-02T03:04:05.05")
        ));
        assert!(!same(
            Kind::Timestamp,
            &ts("2024-01-02T03:04:05"),
            &Value::Null
        ));
        assert!(!same(
            Kind::Text,
            &Value::Text("O'Brien".into()),
            &Value::Text("O\"Brien".into())
        ));
        assert!(!same(Kind::Text, &Value::Text("a".into()), &Value::Null));
        assert!(!same(
            Kind::Text,
            &Value::Text("Zoë".into()),
            &Value::Text("Zoe".into())
        ));
        assert!(!same(Kind::Int, &Value::Int(0), &Value::Null));
    }
}
