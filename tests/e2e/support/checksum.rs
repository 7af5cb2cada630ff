//! Table and database checksums, to prove that data is byte-identical (a
//! dry-run changed nothing, a copy equals its source).
//!
//! A table's checksum is the SHA-256 of its row count and every row's values
//! in canonical text (NULL distinct from empty text), with the rows sorted by
//! that encoding. Sorting in the client rather than with `ORDER BY` makes the
//! checksum independent of collations and of types without an ordering (PG
//! `json`), and equal for equal data in two different tables or databases.
//! Everything is read through a read-only [`Connection`].

#![allow(
    dead_code,
    reason = "each test topic uses a different part of the fixture"
)]

use std::collections::BTreeMap;

use migrun::db::{Access, Connection, Dialect};
use migrun::value::Value;
use sha2::{Digest, Sha256};

async fn open(url: &str) -> Connection {
    Connection::connect("checksum", url, Access::ReadOnly)
        .await
        .unwrap_or_else(|e| panic!("checksum connection: {e}"))
}

/// One value's bytes in a row encoding: a tag, then the length-prefixed canonical text.
fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value.canonical_text() {
        None => out.push(b'N'),
        Some(text) => {
            out.push(b'V');
            out.extend_from_slice(&(text.len() as u64).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

async fn checksum_with(conn: &mut Connection, table: &str) -> String {
    let quoted = conn.dialect().quote_table(table).expect("table name");
    let cursor = conn
        .open_cursor(&format!("SELECT * FROM {quoted}"), &[], 5_000)
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"));
    let mut rows: Vec<Vec<u8>> = Vec::new();
    while let Some(batch) = conn
        .next_batch(&cursor)
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"))
    {
        for row in batch {
            let mut encoded = Vec::new();
            for value in &row {
                encode_value(value, &mut encoded);
            }
            rows.push(encoded);
        }
    }
    rows.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update((rows.len() as u64).to_be_bytes());
    for row in &rows {
        hasher.update((row.len() as u64).to_be_bytes());
        hasher.update(row);
    }
    hex::encode(hasher.finalize())
}

/// SHA-256 (hex) of every row of `table` (`table` or `schema.table`) at `url`.
pub async fn table_checksum(url: &str, table: &str) -> String {
    let mut conn = open(url).await;
    let sum = checksum_with(&mut conn, table).await;
    conn.close().await;
    sum
}

/// The number of rows of `table` at `url`.
pub async fn row_count(url: &str, table: &str) -> i64 {
    let mut conn = open(url).await;
    let quoted = conn.dialect().quote_table(table).expect("table name");
    let rows = conn
        .query(&format!("SELECT COUNT(*) FROM {quoted}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count of {table}: {e}"));
    conn.close().await;
    match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        Some(Value::Decimal(d)) => d.parse().expect("count"),
        other => panic!("unexpected count {other:?}"),
    }
}

/// The names of the user tables at `url` (`schema.table` on PostgreSQL; system schemas excluded).
pub async fn user_tables(url: &str) -> Vec<String> {
    let mut conn = open(url).await;
    let sql = match conn.dialect() {
        Dialect::Postgres => {
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') \
             AND table_schema NOT LIKE 'pg\\_%' ORDER BY 1"
        }
        Dialect::MySql => {
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1"
        }
        Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1"
        }
    };
    let rows = conn
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("list tables: {e}"));
    conn.close().await;
    rows.rows
        .into_iter()
        .map(|r| match r.into_iter().next() {
            Some(Value::Text(name)) => name,
            Some(Value::Bytes(name)) => String::from_utf8(name).expect("UTF-8 table name"),
            other => panic!("unexpected table name {other:?}"),
        })
        .collect()
}

/// The checksum of every user table at `url`, by table name.
pub async fn database_checksums(url: &str) -> BTreeMap<String, String> {
    let tables = user_tables(url).await;
    let mut conn = open(url).await;
    let mut sums = BTreeMap::new();
    for table in tables {
        let sum = checksum_with(&mut conn, &table).await;
        sums.insert(table, sum);
    }
    conn.close().await;
    sums
}
