//! The native baselines of the seed-001 shape: what a team would write by hand
//! in Rust to copy the 34 tables at full speed. Each table's binary
//! `COPY … TO STDOUT` is parsed into rows — tuple header, field lengths, each
//! field's bytes, the embedding decoded into `f32`s (`halfvec`: IEEE binary16;
//! `real[]`: the array's binary form) — and every row is re-encoded into a
//! binary `COPY … FROM STDIN` on the target: a copy that looks at every value,
//! as a migration with a per-row mapping must, not a byte pipe.
//!
//! [`copy_tables`] with `tasks = 1` copies table after table; with `tasks = 2`
//! the tables are split (by size, largest first, onto the lighter task) over
//! two tasks, each with its own pair of connections.

use anyhow::{Context, bail};
use futures::StreamExt;
use sqlx::{Connection, PgConnection, Row};

use super::Vector;

/// The binary COPY signature, flags and header extension length.
pub(super) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const COLUMNS: &str = "id, content, meta, tree, temporal, embedding, created_at";
/// Position of the embedding among [`COLUMNS`].
const EMBEDDING: usize = 5;
/// Bytes buffered before a `COPY` data message is sent.
pub(super) const SEND_AT: usize = 1 << 20;

/// Copies every `me_<slug>.memory` table of `from` into `to`, over `tasks` tasks.
pub async fn copy_tables(from: &str, to: &str, vector: Vector, tasks: usize) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(from).await?;
    let tables: Vec<(String, i64)> = sqlx::query(
        "SELECT n.nspname::text, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname LIKE 'me\\_%' AND c.relname = 'memory' ORDER BY 2 DESC, 1",
    )
    .fetch_all(&mut conn)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    conn.close().await?;
    let mut shares: Vec<(i64, Vec<String>)> = vec![(0, Vec::new()); tasks.max(1)];
    for (schema, rows) in tables {
        let lightest = shares
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one task");
        lightest.0 += rows.max(1);
        lightest.1.push(schema);
    }
    let mut handles = Vec::new();
    for (_, schemas) in shares {
        let (from, to) = (from.to_owned(), to.to_owned());
        handles.push(tokio::spawn(async move {
            let mut src = PgConnection::connect(&from).await?;
            let mut dst = PgConnection::connect(&to).await?;
            for schema in schemas {
                copy_table(&mut src, &mut dst, &format!("{schema}.memory"), vector)
                    .await
                    .with_context(|| format!("copying {schema}.memory"))?;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(())
}

/// One row of the binary COPY stream: each field's bytes (`None`: NULL),
/// the embedding decoded.
struct MemoryRow {
    fields: Vec<Option<Vec<u8>>>,
    embedding: Option<Vec<f32>>,
}

async fn copy_table(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    table: &str,
    vector: Vector,
) -> anyhow::Result<()> {
    let mut input = dst
        .copy_in_raw(&format!(
            "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut output = src
        .copy_out_raw(&format!(
            "COPY {table} ({COLUMNS}) TO STDOUT (FORMAT binary)"
        ))
        .await?;
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    let mut header_seen = false;
    let mut out: Vec<u8> = Vec::with_capacity(SEND_AT + (64 << 10));
    out.extend_from_slice(COPY_HEADER);
    let mut finished = false;
    while let Some(chunk) = output.next().await {
        buf.drain(..pos);
        pos = 0;
        buf.extend_from_slice(&chunk?);
        if !header_seen {
            if buf.len() < 19 {
                continue;
            }
            if &buf[..11] != b"PGCOPY\n\xff\r\n\0" {
                bail!("{table}: not a binary COPY stream");
            }
            let ext = u32::from_be_bytes(buf[15..19].try_into()?) as usize;
            if buf.len() < 19 + ext {
                continue;
            }
            pos = 19 + ext;
            header_seen = true;
        }
        while let Some((row, used)) = parse_row(&buf[pos..], vector)? {
            pos += used;
            match row {
                Some(row) => {
                    encode_row(&row, vector, &mut out);
                    if out.len() >= SEND_AT {
                        input.send(std::mem::take(&mut out)).await?;
                        out.reserve(SEND_AT + (64 << 10));
                    }
                }
                None => finished = true,
            }
        }
    }
    if !finished || pos != buf.len() {
        bail!("{table}: the COPY stream ended without its trailer");
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    input.send(out).await?;
    input.finish().await?;
    Ok(())
}

/// Parses one tuple at the start of `data`: `Ok(None)` when it is incomplete,
/// `Ok(Some((None, 2)))` for the trailer.
fn parse_row(data: &[u8], vector: Vector) -> anyhow::Result<Option<(Option<MemoryRow>, usize)>> {
    if data.len() < 2 {
        return Ok(None);
    }
    let count = i16::from_be_bytes([data[0], data[1]]);
    if count == -1 {
        return Ok(Some((None, 2)));
    }
    let mut at = 2usize;
    let mut fields = Vec::with_capacity(count.max(0) as usize);
    let mut embedding = None;
    for i in 0..count.max(0) as usize {
        let Some(len) = data.get(at..at + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes(len.try_into()?);
        at += 4;
        if len < 0 {
            fields.push(None);
            continue;
        }
        let Some(bytes) = data.get(at..at + len as usize) else {
            return Ok(None);
        };
        at += len as usize;
        if i == EMBEDDING {
            embedding = Some(decode_embedding(bytes, vector)?);
            fields.push(None);
        } else {
            fields.push(Some(bytes.to_vec()));
        }
    }
    Ok(Some((Some(MemoryRow { fields, embedding }), at)))
}

fn encode_row(row: &MemoryRow, vector: Vector, out: &mut Vec<u8>) {
    out.extend_from_slice(&(row.fields.len() as i16).to_be_bytes());
    for (i, field) in row.fields.iter().enumerate() {
        if i == EMBEDDING
            && let Some(floats) = &row.embedding
        {
            let len_at = out.len();
            out.extend_from_slice(&0i32.to_be_bytes());
            encode_embedding(floats, vector, out);
            let len = (out.len() - len_at - 4) as i32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            continue;
        }
        match field {
            Some(bytes) => {
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
}

/// `halfvec_recv` form: int16 dimensions, int16 unused, then one binary16 per
/// dimension; `real[]` (`array_recv`): ndim, has-nulls, element oid, per
/// dimension (size, lower bound), then per element its length and float4.
fn decode_embedding(bytes: &[u8], vector: Vector) -> anyhow::Result<Vec<f32>> {
    let be16 = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    match vector {
        Vector::Halfvec => {
            if bytes.len() < 4 {
                bail!("a halfvec of {} bytes", bytes.len());
            }
            let dim = be16(0) as usize;
            if bytes.len() != 4 + 2 * dim {
                bail!("a halfvec of {dim} dimensions in {} bytes", bytes.len());
            }
            Ok((0..dim).map(|i| f16_to_f32(be16(4 + 2 * i))).collect())
        }
        Vector::Real => {
            if bytes.len() < 20 || be32(0) != 1 || be32(4) != 0 {
                bail!("not a one-dimensional real[] without NULLs");
            }
            let n = be32(12) as usize;
            if bytes.len() != 20 + 8 * n {
                bail!("a real[] of {n} elements in {} bytes", bytes.len());
            }
            (0..n)
                .map(|i| {
                    let at = 20 + 8 * i;
                    if be32(at) != 4 {
                        bail!("a real[] element of {} bytes", be32(at));
                    }
                    Ok(f32::from_bits(be32(at + 4)))
                })
                .collect()
        }
    }
}

pub(super) fn encode_embedding(floats: &[f32], vector: Vector, out: &mut Vec<u8>) {
    match vector {
        Vector::Halfvec => {
            out.extend_from_slice(&(floats.len() as u16).to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            for f in floats {
                out.extend_from_slice(&f32_to_f16(*f).to_be_bytes());
            }
        }
        Vector::Real => {
            // ndim 1, no NULLs, element type float4 (oid 700), size, lower bound 1.
            for word in [1u32, 0, 700, floats.len() as u32, 1] {
                out.extend_from_slice(&word.to_be_bytes());
            }
            for f in floats {
                out.extend_from_slice(&4u32.to_be_bytes());
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
        }
    }
}

/// IEEE binary16 → f32 (exact: every half is a float).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    if exp == 0 {
        // zero or subnormal: mant × 2^-24
        let magnitude = mant as f32 * f32::from_bits(0x3380_0000);
        return if sign != 0 { -magnitude } else { magnitude };
    }
    let bits = if exp == 0x1f {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 112) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

/// f32 → IEEE binary16, rounding to nearest even (what pgvector does), ±inf on overflow.
pub fn f32_to_f16(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let mant = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let kept = m >> shift;
        let rest = m & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        let rounded = if rest > half || (rest == half && kept & 1 == 1) {
            kept + 1
        } else {
            kept
        };
        return sign | rounded as u16;
    }
    let kept = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    let rounded = if rest > 0x1000 || (rest == 0x1000 && kept & 1 == 1) {
        kept + 1
    } else {
        kept
    };
    sign | rounded as u16
}

#[cfg(test)]
mod tests {
    use super::{f16_to_f32, f32_to_f16};

    #[test]
    fn every_half_survives_the_round_trip_through_f32() {
        for h in 0..=u16::MAX {
            let is_nan = (h >> 10) & 0x1f == 0x1f && h & 0x3ff != 0;
            if !is_nan {
                assert_eq!(f32_to_f16(f16_to_f32(h)), h, "half {h:#06x}");
            }
        }
    }

    #[test]
    fn floats_round_to_the_nearest_half() {
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        // 1 + 2^-11 is halfway between 1 and the next half: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + f32::powi(2.0, -11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * f32::powi(2.0, -11)), 0x3c02);
        assert_eq!(f32_to_f16(f32::powi(2.0, -24)), 0x0001);
        assert_eq!(f32_to_f16(f32::powi(2.0, -26)), 0x0000);
    }
}
