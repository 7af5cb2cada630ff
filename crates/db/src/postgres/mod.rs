//! PostgreSQL: session setup, parameter encoding, result decoding and `COPY` text.
//!
//! Parameters and results use the binary protocol, encoded and decoded here
//! rather than through sqlx's `Encode`/`Decode` impls, for three reasons:
//! a NULL must be sent with the "unknown" type (oid 0) so the server infers it
//! from context (a NULL typed `text` fails against an integer column); numeric
//! values must keep their scale (`1.50` stays `1.50`); and `infinity` dates or
//! out-of-range values must become errors, not panics.
//!
//! sqlx caches prepared statements by SQL text alone, while PostgreSQL fixes a
//! statement's parameter types when it is parsed. The same SQL bound first
//! with an `int` and later with a NULL (or a text) would reuse a statement
//! whose types no longer match the bytes sent. [`bind`] therefore appends the
//! parameter types to the SQL as a trailing comment, so each type signature gets
//! its own cached statement.

//!
//! Files by role: this file holds the connect options ([`connect_options`]);
//! `encode.rs` the parameters, `decode.rs` the results, `copy.rs` bulk `COPY`,
//! `session.rs` transaction statements, `catalog.rs` row counts, `ledger.rs`
//! and `lock.rs` the ledger's and the run lock's statements. `dry_run.rs` the
//! dry-run's sequence snapshots. `types.rs` the per-connection cache of types
//! resolved by name (extension types, typed values) and pgvector's binary forms.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use super::{Access, DbError};

mod catalog;
mod copy;
mod decode;
pub(super) mod dry_run;
mod encode;
mod ledger;
mod lock;
pub(super) mod privileges;
mod session;
mod types;

pub(crate) use copy::{
    COPY_BINARY_HEADER, COPY_BINARY_TRAILER, COPY_COLUMNS_SQL, CopyColumn, copy_binary_row,
    copy_binary_supported, copy_column, copy_text_row, vector_value_error,
};
pub(crate) use decode::lowercase_types;
pub use decode::{decode_row, unreadable_column};
pub(crate) use encode::bind;
pub(crate) use types::TypeCache;

/// PostgreSQL's implementation of the dialect traits of [`super::driver`]; one
/// file per role (`session.rs`, `catalog.rs`, `ledger.rs`, `lock.rs`, `dry_run.rs`,
/// `privileges.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PgDriver;

/// Builtin type oids (stable across PostgreSQL versions: see `pg_type.dat`).
pub(super) mod oid {
    pub const UNKNOWN_PARAM: u32 = 0;
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const NAME_ARRAY: u32 = 1003;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const BPCHAR_ARRAY: u32 = 1014;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Connect options for `url`: application name `migrun` unless the URL sets
/// one, and for read-only access the startup option
/// `default_transaction_read_only=on` so that every transaction of the
/// session, implicit or not, starts read-only.
pub fn connect_options(url: &str, access: Access) -> Result<PgConnectOptions, DbError> {
    let mut options = PgConnectOptions::from_str(url).map_err(DbError::from)?;
    if options.get_application_name().is_none() {
        options = options.application_name("migrun");
    }
    if access == Access::ReadOnly {
        options = options.options([("default_transaction_read_only", "on")]);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::super::widen_f32;

    #[test]
    fn float4_widens_to_its_shortest_text() {
        assert_eq!(widen_f32(0.1), 0.1);
        assert!(widen_f32(f32::NAN).is_nan());
        assert_eq!(widen_f32(f32::MAX), 3.4028235e38);
    }
}
