//! The `auth_users` table: its columns, its DDL per dialect, its indexes, and
//! the catalog queries that check them.

use migrun_sdk::{Connection, Dialect, Result, params};
use serde::Deserialize;

/// The table copied from.
pub const SOURCE_TABLE: &str = "users";
/// The table copied into.
pub const TARGET_TABLE: &str = "auth_users";

/// Rails' record of the migrations that ran, on the target (`openneo_impress`).
pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";

/// The version of the seed's Rails migration (`db:migrate:down VERSION=20251102064247`).
pub const DEFAULT_MIGRATION_VERSION: &str = "20251102064247";

/// `schema_migrations` as Rails creates it, the same text on the three dialects.
pub const CREATE_SCHEMA_MIGRATIONS: &str =
    "CREATE TABLE schema_migrations (version varchar(255) NOT NULL PRIMARY KEY)";

/// How a column's values are carried, for coercion and comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer.
    Int,
    /// Text.
    Text,
    /// A zone-less timestamp (Rails `datetime`, stored in UTC).
    Timestamp,
}

/// The Devise columns of openneo_id's `users`, in the order they are copied.
pub const COLUMNS: [(&str, Kind); 21] = [
    ("id", Kind::Int),
    ("name", Kind::Text),
    ("encrypted_password", Kind::Text),
    ("email", Kind::Text),
    ("password_salt", Kind::Text),
    ("reset_password_token", Kind::Text),
    ("reset_password_sent_at", Kind::Timestamp),
    ("remember_created_at", Kind::Timestamp),
    ("sign_in_count", Kind::Int),
    ("current_sign_in_at", Kind::Timestamp),
    ("last_sign_in_at", Kind::Timestamp),
    ("current_sign_in_ip", Kind::Text),
    ("last_sign_in_ip", Kind::Text),
    ("failed_attempts", Kind::Int),
    ("unlock_token", Kind::Text),
    ("locked_at", Kind::Timestamp),
    ("created_at", Kind::Timestamp),
    ("updated_at", Kind::Timestamp),
    ("neopass_email", Kind::Text),
    ("provider", Kind::Text),
    ("uid", Kind::Text),
];

/// The column names, in copy order.
pub fn column_names() -> Vec<&'static str> {
    COLUMNS.iter().map(|(name, _)| *name).collect()
}

/// One index `auth_users` must have. All four are unique, as on openneo_id's
/// `users` (Devise's schema): two accounts never share an email, a reset or
/// unlock token, or a provider identity. NULLs never collide in a unique index
/// on any of the three dialects, so the many users without a token or a
/// NeoPass identity are fine.
#[derive(Debug, Clone, Copy)]
pub struct IndexSpec {
    /// The Rails-style index name used when creating it.
    pub name: &'static str,
    /// The indexed columns, in order.
    pub columns: &'static [&'static str],
    /// The verification check that reports it.
    pub check: &'static str,
}

/// The four indexes of the seed's deployment checklist.
pub const INDEXES: [IndexSpec; 4] = [
    IndexSpec {
        name: "index_auth_users_on_email",
        columns: &["email"],
        check: "index on email exists",
    },
    IndexSpec {
        name: "index_auth_users_on_provider_and_uid",
        columns: &["provider", "uid"],
        check: "index on provider+uid exists",
    },
    IndexSpec {
        name: "index_auth_users_on_reset_password_token",
        columns: &["reset_password_token"],
        check: "index on reset_password_token exists",
    },
    IndexSpec {
        name: "index_auth_users_on_unlock_token",
        columns: &["unlock_token"],
        check: "index on unlock_token exists",
    },
];

impl IndexSpec {
    /// `CREATE UNIQUE INDEX …`, valid on all three dialects.
    pub fn create_sql(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {TARGET_TABLE} ({})",
            self.name,
            self.columns.join(", ")
        )
    }
}

/// SQLite: `VARCHAR(n)` has TEXT affinity (lengths are not enforced) and
/// `DATETIME` holds the canonical timestamp text. `INTEGER PRIMARY KEY` is the
/// rowid, so new registrations continue after the largest copied id.
pub const CREATE_SQLITE: &str = "CREATE TABLE auth_users (
    id INTEGER PRIMARY KEY,
    name VARCHAR(30) NOT NULL,
    encrypted_password VARCHAR(64),
    email VARCHAR(50),
    password_salt VARCHAR(32),
    reset_password_token VARCHAR(255),
    reset_password_sent_at DATETIME,
    remember_created_at DATETIME,
    sign_in_count INTEGER DEFAULT 0,
    current_sign_in_at DATETIME,
    last_sign_in_at DATETIME,
    current_sign_in_ip VARCHAR(255),
    last_sign_in_ip VARCHAR(255),
    failed_attempts INTEGER DEFAULT 0,
    unlock_token VARCHAR(255),
    locked_at DATETIME,
    created_at DATETIME,
    updated_at DATETIME,
    neopass_email VARCHAR(255),
    provider VARCHAR(255),
    uid VARCHAR(255)
)";

/// PostgreSQL: `bigint` holds MySQL's `int unsigned` ids; the identity is
/// `BY DEFAULT` so the copied ids can be inserted, and `copy-users` restarts it
/// after the largest id. Timestamps keep microseconds and no zone (Rails
/// stores UTC in `datetime`).
pub const CREATE_POSTGRES: &str = "CREATE TABLE auth_users (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name varchar(30) NOT NULL,
    encrypted_password varchar(64),
    email varchar(50),
    password_salt varchar(32),
    reset_password_token varchar(255),
    reset_password_sent_at timestamp(6) without time zone,
    remember_created_at timestamp(6) without time zone,
    sign_in_count integer DEFAULT 0,
    current_sign_in_at timestamp(6) without time zone,
    last_sign_in_at timestamp(6) without time zone,
    current_sign_in_ip varchar(255),
    last_sign_in_ip varchar(255),
    failed_attempts integer DEFAULT 0,
    unlock_token varchar(255),
    locked_at timestamp(6) without time zone,
    created_at timestamp(6) without time zone,
    updated_at timestamp(6) without time zone,
    neopass_email varchar(255),
    provider varchar(255),
    uid varchar(255)
)";

/// MySQL/MariaDB: the source's exact types (`int unsigned` id), `datetime(6)`
/// so microseconds survive, utf8mb4 for names beyond the BMP, and
/// `utf8mb4_general_ci`, the utf8mb4 twin of the source's
/// `utf8mb3_general_ci`, so the unique email index accepts exactly what the
/// source's did. The indexes are inline: DDL commits implicitly on MySQL, and
/// one statement leaves no half-created table behind.
pub const CREATE_MYSQL: &str = "CREATE TABLE auth_users (
    id int unsigned NOT NULL AUTO_INCREMENT,
    name varchar(30) NOT NULL,
    encrypted_password varchar(64),
    email varchar(50),
    password_salt varchar(32),
    reset_password_token varchar(255),
    reset_password_sent_at datetime(6),
    remember_created_at datetime(6),
    sign_in_count int DEFAULT 0,
    current_sign_in_at datetime(6),
    last_sign_in_at datetime(6),
    current_sign_in_ip varchar(255),
    last_sign_in_ip varchar(255),
    failed_attempts int DEFAULT 0,
    unlock_token varchar(255),
    locked_at datetime(6),
    created_at datetime(6),
    updated_at datetime(6),
    neopass_email varchar(255),
    provider varchar(255),
    uid varchar(255),
    PRIMARY KEY (id),
    UNIQUE KEY index_auth_users_on_email (email),
    UNIQUE KEY index_auth_users_on_provider_and_uid (provider, uid),
    UNIQUE KEY index_auth_users_on_reset_password_token (reset_password_token),
    UNIQUE KEY index_auth_users_on_unlock_token (unlock_token)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";

/// The `CREATE TABLE auth_users` statement for `dialect`.
pub fn create_table_sql(dialect: Dialect) -> Result<&'static str> {
    Ok(match dialect {
        Dialect::Sqlite => CREATE_SQLITE,
        Dialect::Postgres => CREATE_POSTGRES,
        Dialect::MySql => CREATE_MYSQL,
    })
}

/// Whether `table` exists in the connection's current schema/database (the SDK's
/// catalog helper, the same question on every dialect).
pub fn table_exists(conn: &Connection, table: &str) -> Result<bool> {
    conn.table_exists(table)
}

/// The column names of `table`, lowercased.
pub fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    Ok(conn
        .columns_of(table)?
        .into_iter()
        .map(|c| c.name.to_lowercase())
        .collect())
}

/// An index as the catalog reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Its name.
    pub name: String,
    /// Whether it is unique.
    pub unique: bool,
    /// Its key columns, in order (lowercased).
    pub columns: Vec<String>,
}

impl Index {
    /// `UNIQUE (provider, uid)` or `(email)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {}({})",
            self.name,
            if self.unique { "UNIQUE " } else { "" },
            self.columns.join(", ")
        )
    }
}

/// One row per indexed column, ordered by index then position.
#[derive(Debug, Deserialize)]
struct IndexColumn {
    index_name: String,
    is_unique: bool,
    column_name: String,
}

/// The indexes of `table` read from the dialect's catalog: `pragma_index_list`
/// and `pragma_index_info` on SQLite, `pg_index` on PostgreSQL (key columns
/// only, not `INCLUDE`d ones), `information_schema.STATISTICS` on MySQL.
pub fn table_indexes(conn: &Connection, table: &str) -> Result<Vec<Index>> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "SELECT il.name AS index_name, il.\"unique\" AS is_unique, ii.name AS column_name \
             FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii \
             ORDER BY il.name, ii.seqno"
        }
        Dialect::Postgres => {
            "SELECT i.relname::text AS index_name, ix.indisunique AS is_unique, \
                    a.attname::text AS column_name \
             FROM pg_class t \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             JOIN pg_index ix ON ix.indrelid = t.oid \
             JOIN pg_class i ON i.oid = ix.indexrelid \
             CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
             WHERE t.relname::text = $1 AND n.nspname::text = current_schema() AND k.ord <= ix.indnkeyatts \
             ORDER BY i.relname, k.ord"
        }
        Dialect::MySql => {
            "SELECT INDEX_NAME AS index_name, CASE WHEN NON_UNIQUE = 0 THEN 1 ELSE 0 END AS is_unique, \
                    COLUMN_NAME AS column_name \
             FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX"
        }
    };
    let rows: Vec<IndexColumn> = conn.query_as(sql, params![table])?;
    Ok(group_indexes(rows))
}

fn group_indexes(rows: Vec<IndexColumn>) -> Vec<Index> {
    let mut indexes: Vec<Index> = Vec::new();
    for row in rows {
        match indexes.last_mut() {
            Some(last) if last.name == row.index_name => {
                last.columns.push(row.column_name.to_lowercase())
            }
            _ => indexes.push(Index {
                name: row.index_name,
                unique: row.is_unique,
                columns: vec![row.column_name.to_lowercase()],
            }),
        }
    }
    indexes
}

/// How `spec` is met by the indexes present.
#[derive(Debug, PartialEq, Eq)]
pub enum IndexState<'a> {
    /// A unique index on exactly the spec's columns exists.
    Present(&'a Index),
    /// An index on the spec's columns exists but is not unique.
    NotUnique(&'a Index),
    /// No index on the spec's columns, but one with the spec's name covers other columns.
    NameTaken(&'a Index),
    /// Nothing.
    Missing,
}

/// Finds the index satisfying `spec` by its columns (any name).
pub fn index_state<'a>(spec: &IndexSpec, indexes: &'a [Index]) -> IndexState<'a> {
    let same_columns = |i: &&Index| {
        i.columns
            .iter()
            .map(String::as_str)
            .eq(spec.columns.iter().copied())
    };
    if let Some(found) = indexes.iter().filter(same_columns).find(|i| i.unique) {
        return IndexState::Present(found);
    }
    if let Some(found) = indexes.iter().find(same_columns) {
        return IndexState::NotUnique(found);
    }
    match indexes
        .iter()
        .find(|i| i.name.eq_ignore_ascii_case(spec.name))
    {
        Some(found) => IndexState::NameTaken(found),
        None => IndexState::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ddl_declares_the_columns_in_copy_order() {
        for ddl in [CREATE_SQLITE, CREATE_POSTGRES, CREATE_MYSQL] {
            let declared: Vec<&str> = ddl
                .lines()
                .skip(1)
                .map(str::trim)
                .filter_map(|l| l.split_whitespace().next())
                .filter(|w| !["PRIMARY", "UNIQUE", ")"].contains(w) && !w.starts_with(')'))
                .collect();
            assert_eq!(declared, column_names(), "{ddl}");
        }
    }

    #[test]
    fn mysql_declares_the_four_unique_indexes_inline() {
        for spec in INDEXES {
            let line = format!("UNIQUE KEY {} ({})", spec.name, spec.columns.join(", "));
            assert!(CREATE_MYSQL.contains(&line), "{line}");
        }
        assert_eq!(
            INDEXES[1].create_sql(),
            "CREATE UNIQUE INDEX index_auth_users_on_provider_and_uid ON auth_users (provider, uid)"
        );
    }

    fn col(index: &str, unique: bool, column: &str) -> IndexColumn {
        IndexColumn {
            index_name: index.into(),
            is_unique: unique,
            column_name: column.into(),
        }
    }

    #[test]
    fn index_states_are_judged_by_columns() {
        let indexes = group_indexes(vec![
            col("PRIMARY", true, "id"),
            col("by_email", true, "EMAIL"),
            col("index_auth_users_on_provider_and_uid", true, "uid"),
            col("index_auth_users_on_provider_and_uid", true, "provider"),
            col("tok", false, "unlock_token"),
        ]);
        assert_eq!(indexes.len(), 4);
        assert_eq!(indexes[1].describe(), "by_email UNIQUE (email)");
        assert!(
            matches!(index_state(&INDEXES[0], &indexes), IndexState::Present(i) if i.name == "by_email")
        );
        assert!(
            matches!(index_state(&INDEXES[1], &indexes), IndexState::NameTaken(_)),
            "column order matters"
        );
        assert_eq!(index_state(&INDEXES[2], &indexes), IndexState::Missing);
        assert!(matches!(
            index_state(&INDEXES[3], &indexes),
            IndexState::NotUnique(_)
        ));
    }
}
