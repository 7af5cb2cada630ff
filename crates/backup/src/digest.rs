//! Table checksums: what a manifest records and what `restore` re-checks.
//!
//! A table's digest is its row count and an order-independent checksum: the
//! sum of one hash per row, so the order rows come back in never matters and
//! a restored table compares equal to the original exactly when it holds the
//! same multiset of rows. PostgreSQL and MariaDB compute it on the server
//! (`md5` of each row's text, summed in two 60-bit halves as exact numerics),
//! SQLite in the host over each row's canonical values. A digest is only
//! ever compared with one computed the same way on the same dialect.

use sha2::{Digest, Sha256};
use sqlx::Connection as _;

/// A table's row count and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    /// Rows in the table.
    pub rows: u64,
    /// Hex sha256 over the dialect's tag, the row count and the per-row hash sums.
    pub checksum: String,
}

impl TableDigest {
    /// Seals the parts of a digest into its checksum.
    pub(crate) fn seal(dialect_tag: &str, rows: u64, sums: &[String]) -> TableDigest {
        let mut h = Sha256::new();
        h.update(dialect_tag.as_bytes());
        h.update(format!(":{rows}").as_bytes());
        for s in sums {
            h.update(b":");
            h.update(s.as_bytes());
        }
        TableDigest {
            rows,
            checksum: hex::encode(h.finalize()),
        }
    }
}

/// Sums per-row sha256 hashes (as four wrapping 64-bit lanes): order-independent.
#[derive(Default)]
pub(crate) struct RowSum {
    rows: u64,
    lanes: [u64; 4],
}

impl RowSum {
    /// Adds one row, given as its canonical bytes.
    pub(crate) fn add(&mut self, row: &[u8]) {
        let hash = Sha256::digest(row);
        for (lane, chunk) in self.lanes.iter_mut().zip(hash.chunks_exact(8)) {
            *lane = lane.wrapping_add(u64::from_be_bytes(chunk.try_into().expect("8 bytes")));
        }
        self.rows += 1;
    }

    /// The digest of the rows added.
    pub(crate) fn finish(self, dialect_tag: &str) -> TableDigest {
        let sum: String = self.lanes.iter().map(|l| format!("{l:016x}")).collect();
        TableDigest::seal(dialect_tag, self.rows, &[sum])
    }
}

/// The digest of `table` on a PostgreSQL connection (inside whatever transaction is open).
pub(crate) async fn postgres(
    conn: &mut sqlx::PgConnection,
    quoted_table: &str,
) -> Result<TableDigest, sqlx::Error> {
    let sql = format!(
        "SELECT count(*)::int8, \
                coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::int8), 0)::text, \
                coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::int8), 0)::text \
         FROM (SELECT md5(t::text) AS h FROM {quoted_table} AS t) AS s"
    );
    let (rows, a, b): (i64, String, String) = sqlx::query_as(&sql).fetch_one(conn).await?;
    Ok(TableDigest::seal("postgres-md5", rows as u64, &[a, b]))
}

/// The digest of `table` on a MariaDB/MySQL connection; `columns` are its columns, in order.
pub(crate) async fn mysql(
    conn: &mut sqlx::MySqlConnection,
    quoted_table: &str,
    columns: &[String],
) -> Result<TableDigest, sqlx::Error> {
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| format!("QUOTE(`{}`)", c.replace('`', "``")))
        .collect();
    let sql = format!(
        "SELECT COUNT(*), \
                CAST(COALESCE(SUM(CAST(CONV(SUBSTR(h, 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR), \
                CAST(COALESCE(SUM(CAST(CONV(SUBSTR(h, 16, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR) \
         FROM (SELECT MD5(CONCAT_WS(',', {})) AS h FROM {quoted_table}) AS s",
        quoted.join(", ")
    );
    let (rows, a, b): (i64, String, String) = sqlx::query_as(&sql).fetch_one(conn).await?;
    Ok(TableDigest::seal("mysql-md5", rows as u64, &[a, b]))
}

/// The digest of `table` on a SQLite connection, over each row's canonical values.
pub(crate) async fn sqlite(
    conn: &mut sqlx::SqliteConnection,
    quoted_table: &str,
) -> Result<TableDigest, String> {
    use futures::TryStreamExt;
    let sql = format!("SELECT * FROM {quoted_table}");
    let mut sum = RowSum::default();
    let mut stream = sqlx::query(&sql).fetch(&mut *conn);
    while let Some(row) = stream.try_next().await.map_err(|e| e.to_string())? {
        let values = migrun_db::sqlite::decode_row(&row).map_err(|e| e.to_string())?;
        let bytes = serde_json::to_vec(&values).map_err(|e| e.to_string())?;
        sum.add(&bytes);
    }
    drop(stream);
    let _ = conn.ping().await;
    Ok(sum.finish("sqlite-rows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_sums_ignore_order_but_not_content() {
        let digest = |rows: &[&[u8]]| {
            let mut s = RowSum::default();
            rows.iter().for_each(|r| s.add(r));
            s.finish("t")
        };
        let a = digest(&[b"1", b"2", b"3"]);
        assert_eq!(a, digest(&[b"3", b"1", b"2"]));
        assert_ne!(a, digest(&[b"1", b"2", b"4"]));
        assert_ne!(a, digest(&[b"1", b"2"]));
        assert_ne!(a, digest(&[b"1", b"2", b"3", b"3"]));
    }
}
