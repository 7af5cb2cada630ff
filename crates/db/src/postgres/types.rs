//! Types PostgreSQL defines per database — extension types such as pgvector's
//! `vector`/`halfvec`/`sparsevec` or `ltree`, whose oids differ from one
//! database to the next — resolved by name on one connection and cached
//! there, and the binary forms of pgvector's types.
//!
//! A typed value ([`Value::Typed`]) carries its type's *name*; writing it
//! resolves that name on the writing connection (`to_regtype`), declares the
//! parameter with the oid found, and lets the type's own `recv` function read
//! the bytes. The one place where a binary form names an oid — an array's
//! element type (`array_send`) — is rewritten to the writing database's oid.
//!
//! pgvector's binary forms (checked against `vector_send`, `halfvec_send`,
//! `sparsevec_send` of pgvector 0.8.6):
//!
//! | type | layout (big endian) |
//! |---|---|
//! | `vector` | int16 dim, int16 unused (0), dim × float4 |
//! | `halfvec` | int16 dim, int16 unused (0), dim × IEEE binary16 |
//! | `sparsevec` | int32 dim, int32 nnz, int32 unused (0), nnz × int32 index (0-based), nnz × float4 |
//!
//! `vector` and `halfvec` are modelled (a `float32-array`: binary16 → f32 is
//! exact); `sparsevec` travels as a typed value.

use std::borrow::Cow;
use std::collections::HashMap;

use half::f16;
use sqlx::postgres::PgConnection;

use crate::DbError;
use migrun_types::binary16::{self, ByteOrder};
use migrun_types::value::Value;

/// One type as the writing database knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgType {
    /// The type's oid in this database.
    pub(crate) oid: u32,
    /// Its element type's oid when it is an array type, else 0.
    pub(crate) element: u32,
}

/// Type names resolved on one connection. Cleared with the statement cache
/// (after DDL, and after the rollback of a transaction that ran DDL), since a
/// dropped and re-created extension gives its types new oids.
#[derive(Debug, Default, Clone)]
pub(crate) struct TypeCache {
    by_name: HashMap<String, PgType>,
}

impl TypeCache {
    /// The type named `name` on `conn`, from the cache or the catalog.
    pub(crate) async fn resolve(
        &mut self,
        conn: &mut PgConnection,
        name: &str,
    ) -> Result<PgType, DbError> {
        if let Some(found) = self.by_name.get(name) {
            return Ok(*found);
        }
        check_type_name(name)?;
        // `to_regtype` answers NULL for an unknown name instead of an error that
        // would abort the caller's transaction.
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT t.oid::int8, (CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END)::int8 \
             FROM pg_type t WHERE t.oid = to_regtype($1)",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((oid, element)) = row else {
            return Err(DbError::value(format!(
                "a typed `{name}` value cannot be written here: this database has no type `{name}` \
                 (is its extension created?)"
            )));
        };
        let found = PgType {
            oid: u32::try_from(oid).unwrap_or(0),
            element: u32::try_from(element).unwrap_or(0),
        };
        self.by_name.insert(name.to_owned(), found);
        Ok(found)
    }

    /// The type `name` resolved earlier on this connection.
    pub(crate) fn get(&self, name: &str) -> Option<PgType> {
        self.by_name.get(name).copied()
    }

    /// Resolves the type of every typed value in `values`.
    pub(crate) async fn resolve_all<'a>(
        &mut self,
        conn: &mut PgConnection,
        values: impl IntoIterator<Item = &'a Value>,
    ) -> Result<(), DbError> {
        for value in values {
            if let Value::Typed { type_name, .. } = value {
                self.resolve(conn, type_name).await?;
            }
        }
        Ok(())
    }

    /// Forgets every resolved name.
    pub(crate) fn clear(&mut self) {
        self.by_name.clear();
    }
}

/// A type name as PostgreSQL prints one (`ltree`, `public.ltree`, `int8[]`,
/// `"My Type"`, `time with time zone`); anything else is refused before it
/// reaches the server.
fn check_type_name(name: &str) -> Result<(), DbError> {
    let plain = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ' ' | '[' | ']' | '"'));
    if plain {
        Ok(())
    } else {
        Err(DbError::value(format!(
            "invalid type name {name:?} on a typed value"
        )))
    }
}

/// A typed value's bytes as the type `ty` of the writing database reads them:
/// an array's element oid (bytes 8..12 of `array_send`) replaced by this
/// database's, everything else unchanged.
pub(crate) fn typed_bytes(ty: PgType, bytes: &[u8]) -> Cow<'_, [u8]> {
    if ty.element == 0 || bytes.len() < 12 {
        return Cow::Borrowed(bytes);
    }
    let mut patched = bytes.to_vec();
    patched[8..12].copy_from_slice(&ty.element.to_be_bytes());
    Cow::Owned(patched)
}

// ---------------------------------------------------------------------------
// pgvector
// ---------------------------------------------------------------------------

/// `vector_send` → the floats.
pub(crate) fn decode_vector(b: &[u8]) -> Result<Vec<f32>, String> {
    let dim = vector_dim(b, 4)?;
    Ok(b[4..]
        .chunks_exact(4)
        .take(dim)
        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// `halfvec_send` → the halves, widened to f32 (exact).
pub(crate) fn decode_halfvec(b: &[u8]) -> Result<Vec<f32>, String> {
    vector_dim(b, 2)?;
    Ok(binary16::widen(&b[4..], ByteOrder::Big))
}

fn vector_dim(b: &[u8], element: usize) -> Result<usize, String> {
    let head = b.get(..2).ok_or("truncated vector")?;
    let dim = i16::from_be_bytes([head[0], head[1]]);
    let dim = usize::try_from(dim).map_err(|_| format!("negative dimension {dim}"))?;
    if b.len() != 4 + dim * element {
        return Err(format!(
            "{dim} dimensions need {} bytes, got {}",
            4 + dim * element,
            b.len()
        ));
    }
    Ok(dim)
}

/// Appends `vector_recv`'s form of `v`.
pub(crate) fn encode_vector(v: &[f32], out: &mut Vec<u8>) {
    out.reserve(4 + 4 * v.len());
    out.extend_from_slice(&(v.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    let at = out.len();
    out.resize(at + 4 * v.len(), 0);
    for (bytes, f) in out[at..].chunks_exact_mut(4).zip(v) {
        bytes.copy_from_slice(&f.to_be_bytes());
    }
}

/// Appends `halfvec_recv`'s form of `v`; every element must have passed
/// [`halfvec_element_error`].
pub(crate) fn encode_halfvec(v: &[f32], out: &mut Vec<u8>) {
    out.reserve(4 + 2 * v.len());
    out.extend_from_slice(&(v.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    binary16::narrow(v, ByteOrder::Big, out);
}

/// What pgvector's input would refuse in a `halfvec`: NaN, an infinity, or a
/// float that rounds (to nearest, ties to even) beyond binary16's range.
/// `None` when every element converts.
pub(crate) fn halfvec_element_error(v: &[f32]) -> Option<String> {
    // A branch-free pass over the whole vector first; the slow search names the element.
    if binary16::all_finite_in_range(v) {
        return None;
    }
    v.iter().enumerate().find_map(|(i, f)| {
        if f.is_nan() {
            Some(format!("NaN at index {i} is not allowed in halfvec"))
        } else if f.is_infinite() {
            Some(format!(
                "infinite value at index {i} is not allowed in halfvec"
            ))
        } else if f16::from_f32(*f).is_infinite() {
            Some(format!("{f} at index {i} is out of range for type halfvec"))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_forms_match_pgvector_send() {
        // SELECT vector_send('[1,2.5,-3]') = \x000300003f80000040200000c0400000
        let mut out = Vec::new();
        encode_vector(&[1.0, 2.5, -3.0], &mut out);
        assert_eq!(hex::encode(&out), "000300003f80000040200000c0400000");
        assert_eq!(decode_vector(&out).unwrap(), [1.0, 2.5, -3.0]);
        // SELECT halfvec_send('[1,2.5,-3]') = \x000300003c004100c200
        let mut out = Vec::new();
        encode_halfvec(&[1.0, 2.5, -3.0], &mut out);
        assert_eq!(hex::encode(&out), "000300003c004100c200");
        assert_eq!(decode_halfvec(&out).unwrap(), [1.0, 2.5, -3.0]);
        assert!(
            decode_vector(&out).is_err(),
            "a halfvec's length is no vector's"
        );
        assert!(decode_halfvec(&[0, 2, 0, 0, 0x3c]).is_err());
    }

    #[test]
    fn halfvec_bulk_conversions_match_one_by_one() {
        // Every finite binary16 (both signs), plus floats between them and at the top of
        // the range, through the chunked conversions: same bits as one by one.
        let mut floats: Vec<f32> = (0..=u16::MAX)
            .map(f16::from_bits)
            .filter(|h| h.is_finite())
            .map(f16::to_f32)
            .collect();
        floats.extend([1.0e-8, 3.3333, -0.1, 65519.996, -65519.996, 1.0 / 3.0]);
        assert!(floats.len() > 3 * 256);
        let mut bulk = Vec::new();
        encode_halfvec(&floats[..1000], &mut bulk);
        let mut single = Vec::new();
        single.extend_from_slice(&1000i16.to_be_bytes());
        single.extend_from_slice(&0i16.to_be_bytes());
        for f in &floats[..1000] {
            single.extend_from_slice(&f16::from_f32(*f).to_bits().to_be_bytes());
        }
        assert_eq!(bulk, single);
        let decoded = decode_halfvec(&bulk).unwrap();
        let expected: Vec<f32> = floats[..1000]
            .iter()
            .map(|f| f16::from_f32(*f).to_f32())
            .collect();
        assert_eq!(decoded, expected);
        for f in &floats {
            let one_by_one = !f16::from_f32(*f).is_infinite();
            assert_eq!(halfvec_element_error(&[*f]).is_none(), one_by_one, "{f}");
        }
    }

    #[test]
    fn halfvec_refuses_what_pgvector_refuses() {
        assert_eq!(halfvec_element_error(&[0.0, 65504.0, -65519.0]), None);
        assert_eq!(halfvec_element_error(&[65519.996, -65519.996]), None);
        assert!(
            halfvec_element_error(&[1.0, 65520.0])
                .unwrap()
                .contains("index 1")
        );
        assert!(
            halfvec_element_error(&[-65520.0])
                .unwrap()
                .contains("out of range")
        );
        assert!(
            halfvec_element_error(&[1.0, 65520.0])
                .unwrap()
                .contains("65520 at index 1 is out of range for type halfvec")
        );
        assert!(halfvec_element_error(&[f32::NAN]).unwrap().contains("NaN"));
        assert!(
            halfvec_element_error(&[f32::NEG_INFINITY])
                .unwrap()
                .contains("infinite")
        );
    }

    #[test]
    fn array_element_oids_are_rewritten() {
        let bytes = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0x01, 0, 0, 0, 0];
        let ty = PgType {
            oid: 9,
            element: 0x4002,
        };
        assert_eq!(typed_bytes(ty, &bytes)[8..12], [0, 0, 0x40, 0x02]);
        let scalar = PgType { oid: 9, element: 0 };
        assert_eq!(&*typed_bytes(scalar, &bytes), &bytes);
        assert!(check_type_name("time with time zone").is_ok());
        assert!(check_type_name("ltree'; DROP").is_err());
    }
}
