//! IEEE binary16 ("half") to and from `f32`, a whole slice at a time: pgvector's
//! `halfvec` on the wire (big-endian) and the journal's float16 arrays
//! (little-endian) are the two places an embedding is narrowed or widened.
//!
//! Why not the `half` crate's slice conversions: they call their F16C kernel
//! through a function pointer eight floats at a time and leave the byte order
//! to a second loop. A seed-001 copy converts each 1536-float embedding four
//! times (read, journal, journal check, write), ~95 million floats a pass at
//! ×1; that was ~7% of migrun's CPU. Here one call converts a whole slice:
//! with AVX and F16C (checked at run time, once per call) in 16-byte steps
//! with the byte swap folded in; without them, element by element through
//! `half`'s scalar conversion. Both give the same bits (round to nearest, ties
//! to even), which the tests check against `half`.
//!
//! Invariants: [`widen`] is exact; [`narrow`] rounds; [`narrow_exact`] writes
//! only when widening its output gives back every input bit for bit.

use half::f16;

/// The byte order of binary16 values in a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Most significant byte first: PostgreSQL's binary forms (`halfvec_send`).
    Big,
    /// Least significant byte first: the journal's float16 arrays.
    Little,
}

impl ByteOrder {
    fn put(self, h: u16) -> [u8; 2] {
        match self {
            ByteOrder::Big => h.to_be_bytes(),
            ByteOrder::Little => h.to_le_bytes(),
        }
    }

    fn get(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Big => u16::from_be_bytes(b),
            ByteOrder::Little => u16::from_le_bytes(b),
        }
    }
}

/// Widens binary16 values (`bytes`, two each, in `order`) to `f32`, exactly.
/// A trailing odd byte is ignored; callers check lengths first.
pub fn widen(bytes: &[u8], order: ByteOrder) -> Vec<f32> {
    let n = bytes.len() / 2;
    let mut out = Vec::with_capacity(n);
    #[cfg(target_arch = "x86_64")]
    if x86::usable() {
        // SAFETY: AVX and F16C are present (checked just above); `out` has
        // capacity for `n` floats and `widen` initialises exactly `n`.
        unsafe {
            x86::widen(&bytes[..2 * n], order, out.as_mut_ptr());
            out.set_len(n);
        }
        return out;
    }
    scalar::widen(bytes, order, &mut out);
    out
}

/// Appends every float narrowed to binary16 (round to nearest, ties to even; a
/// float beyond binary16's range becomes an infinity), in `order`.
pub fn narrow(floats: &[f32], order: ByteOrder, out: &mut Vec<u8>) {
    append_narrowed::<false>(floats, order, out);
}

/// Appends every float as binary16 in `order` when each one is exactly a
/// binary16 (widening gives back its bits); otherwise appends nothing and
/// returns `false`. An array of arbitrary floats fails on its first 8.
pub fn narrow_exact(floats: &[f32], order: ByteOrder, out: &mut Vec<u8>) -> bool {
    append_narrowed::<true>(floats, order, out)
}

/// [`narrow`] (`EXACT` false: always `true`) and [`narrow_exact`] (`EXACT` true):
/// one kernel each, the exactness check compiled in or out.
fn append_narrowed<const EXACT: bool>(floats: &[f32], order: ByteOrder, out: &mut Vec<u8>) -> bool {
    let at = out.len();
    out.resize(at + 2 * floats.len(), 0);
    #[cfg(target_arch = "x86_64")]
    let done = if x86::usable() {
        // SAFETY: AVX and F16C are present; the destination has 2 bytes per float.
        unsafe { x86::narrow::<EXACT>(floats, order, &mut out[at..]) }
    } else {
        scalar::narrow::<EXACT>(floats, order, &mut out[at..])
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = scalar::narrow::<EXACT>(floats, order, &mut out[at..]);
    if !done {
        out.truncate(at);
    }
    done
}

/// Whether every float narrows to a finite binary16: no NaN, no infinity, and
/// a magnitude below 65520 (from which rounding to nearest gives infinity).
pub fn all_finite_in_range(floats: &[f32]) -> bool {
    // On the bits: below 65520 in magnitude, and not NaN (whose magnitude bits
    // are above every finite float's). Branch-free, so the compiler vectorises it.
    const LIMIT: u32 = 0x477F_F000; // 65520.0
    floats
        .iter()
        .fold(0u32, |worst, f| worst.max(f.to_bits() & 0x7FFF_FFFF))
        < LIMIT
}

/// Element by element through `half`'s scalar conversion: CPUs without AVX
/// and F16C, and the reference the tests hold the kernels to.
mod scalar {
    use super::{ByteOrder, f16};

    pub(super) fn widen(bytes: &[u8], order: ByteOrder, out: &mut Vec<f32>) {
        out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_bits(order.get([c[0], c[1]])).to_f32()),
        );
    }

    /// Narrows `floats` into `out` (2 bytes each); with `EXACT`, stops with `false`
    /// at the first float that does not widen back to its own bits.
    pub(super) fn narrow<const EXACT: bool>(
        floats: &[f32],
        order: ByteOrder,
        out: &mut [u8],
    ) -> bool {
        for (dst, f) in out.chunks_exact_mut(2).zip(floats) {
            let h = f16::from_f32(*f);
            if EXACT && h.to_f32().to_bits() != f.to_bits() {
                return false;
            }
            dst.copy_from_slice(&order.put(h.to_bits()));
        }
        true
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::ByteOrder;

    /// Whether this CPU has the instructions the kernels below use (std caches the answer).
    pub(super) fn usable() -> bool {
        std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("f16c")
    }

    /// Swaps the two bytes of each of the eight 16-bit lanes.
    #[target_feature(enable = "avx,f16c")]
    fn swap_lanes(v: __m128i) -> __m128i {
        let order = _mm_setr_epi8(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
        _mm_shuffle_epi8(v, order)
    }

    /// Converts `bytes` (binary16 in `order`) into `out[..bytes.len() / 2]`.
    ///
    /// # Safety
    /// The CPU has AVX and F16C; `out` is valid for `bytes.len() / 2` floats.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn widen(bytes: &[u8], order: ByteOrder, out: *mut f32) {
        let n = bytes.len() / 2;
        let whole = n / 8;
        for i in 0..whole {
            // SAFETY: 16 bytes at 16·i are within `bytes`; 8 floats at 8·i within `out`.
            unsafe {
                let mut h = _mm_loadu_si128(bytes.as_ptr().add(16 * i).cast());
                if order == ByteOrder::Big {
                    h = swap_lanes(h);
                }
                _mm256_storeu_ps(out.add(8 * i), _mm256_cvtph_ps(h));
            }
        }
        for i in 8 * whole..n {
            let h = order.get([bytes[2 * i], bytes[2 * i + 1]]);
            // SAFETY: `i < n`.
            unsafe { out.add(i).write(half::f16::from_bits(h).to_f32()) };
        }
    }

    /// Narrows eight floats to binary16 (round to nearest, ties to even).
    #[target_feature(enable = "avx,f16c")]
    fn narrow8(v: __m256) -> __m128i {
        _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v)
    }

    /// Narrows `floats` into `out` (2 bytes each, in `order`); with `EXACT`, stops
    /// with `false` at the first eight floats of which one does not widen back to
    /// its own bits.
    ///
    /// # Safety
    /// The CPU has AVX and F16C; `out.len() == 2 * floats.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn narrow<const EXACT: bool>(
        floats: &[f32],
        order: ByteOrder,
        out: &mut [u8],
    ) -> bool {
        let whole = floats.len() / 8;
        for i in 0..whole {
            // SAFETY: 8 floats at 8·i are within `floats`; 16 bytes at 16·i within `out`.
            unsafe {
                let v = _mm256_loadu_ps(floats.as_ptr().add(8 * i));
                let mut h = narrow8(v);
                if EXACT {
                    let back = _mm256_cvtph_ps(h);
                    let differ = _mm256_castps_si256(_mm256_xor_ps(v, back));
                    if _mm256_testz_si256(differ, differ) == 0 {
                        return false;
                    }
                }
                if order == ByteOrder::Big {
                    h = swap_lanes(h);
                }
                _mm_storeu_si128(out.as_mut_ptr().add(16 * i).cast(), h);
            }
        }
        for i in 8 * whole..floats.len() {
            let h = half::f16::from_f32(floats[i]);
            if EXACT && h.to_f32().to_bits() != floats[i].to_bits() {
                return false;
            }
            out[2 * i..2 * i + 2].copy_from_slice(&order.put(h.to_bits()));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every binary16 bit pattern but the NaNs (whose payloads F16C and `half`'s
    /// scalar code need not carry alike; pgvector refuses NaN anyway).
    fn every_half() -> Vec<u16> {
        (0..=u16::MAX)
            .filter(|h| !f16::from_bits(*h).is_nan())
            .collect()
    }

    /// Floats of every kind: exact halves, their neighbours, ties, subnormals of
    /// both widths, the range's edge, a spread of ordinary values.
    fn awkward_floats() -> Vec<f32> {
        let mut v = Vec::new();
        for h in every_half().into_iter().step_by(7) {
            let f = f16::from_bits(h).to_f32();
            v.push(f);
            v.push(f32::from_bits(f.to_bits().wrapping_add(1)));
            v.push(f32::from_bits(f.to_bits() | 0x0000_1000)); // a tie below the next half
        }
        v.extend([
            0.0,
            -0.0,
            65504.0,
            65519.99,
            65520.0,
            -65520.0,
            1e-8,
            -6e-8,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        let mut x = 0x2545_F491u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(f32::from_bits(x & 0xBFFF_FFFF)); // no NaN
        }
        v
    }

    fn bytes_of(halves: &[u16], order: ByteOrder) -> Vec<u8> {
        halves.iter().flat_map(|h| order.put(*h)).collect()
    }

    #[test]
    fn widening_matches_the_scalar_conversion_for_every_half_in_both_orders() {
        let halves = every_half();
        for order in [ByteOrder::Big, ByteOrder::Little] {
            // Odd lengths too, for the tail after the last whole 8.
            for len in [0, 1, 7, 8, 9, 1536, halves.len()] {
                let got = widen(&bytes_of(&halves[..len], order), order);
                assert_eq!(got.len(), len);
                for (h, f) in halves.iter().zip(&got) {
                    assert_eq!(
                        f.to_bits(),
                        f16::from_bits(*h).to_f32().to_bits(),
                        "{h:#06x}"
                    );
                }
            }
        }
    }

    #[test]
    fn narrowing_rounds_as_the_scalar_conversion_does() {
        let floats = awkward_floats();
        for order in [ByteOrder::Big, ByteOrder::Little] {
            let mut out = vec![0xAA]; // appends after what is there
            narrow(&floats, order, &mut out);
            assert_eq!(out.len(), 1 + 2 * floats.len());
            assert_eq!(out[0], 0xAA);
            for (f, b) in floats.iter().zip(out[1..].chunks_exact(2)) {
                assert_eq!(
                    order.get([b[0], b[1]]),
                    f16::from_f32(*f).to_bits(),
                    "{f:e}"
                );
            }
        }
    }

    #[test]
    fn exact_narrowing_takes_only_arrays_of_halves_and_leaves_nothing_otherwise() {
        let halves = every_half();
        let exact: Vec<f32> = halves.iter().map(|h| f16::from_bits(*h).to_f32()).collect();
        for order in [ByteOrder::Big, ByteOrder::Little] {
            let mut out = Vec::new();
            assert!(narrow_exact(&exact, order, &mut out));
            assert_eq!(out, bytes_of(&halves, order));
            // One float that is not a half, in the vectorised part or in the tail.
            for at in [0, 5, exact.len() / 2, exact.len() - 1] {
                let mut spoiled = exact.clone();
                spoiled[at] = 0.1;
                let mut out = vec![1, 2, 3];
                assert!(!narrow_exact(&spoiled, order, &mut out), "at {at}");
                assert_eq!(out, [1, 2, 3]);
            }
        }
        // A NaN whose payload binary16 cannot hold is not exact; -0.0 keeps its sign.
        let mut out = Vec::new();
        let payload = f32::from_bits(0x7FC0_0001);
        assert!(!narrow_exact(&[payload; 9], ByteOrder::Little, &mut out));
        assert!(!narrow_exact(&[payload], ByteOrder::Little, &mut out));
        assert!(narrow_exact(&[-0.0; 9], ByteOrder::Little, &mut out));
        assert_eq!(out[1], 0x80);
    }

    #[test]
    fn the_vector_kernels_and_the_scalar_path_agree_bit_for_bit() {
        let floats = awkward_floats();
        let halves = every_half();
        for order in [ByteOrder::Big, ByteOrder::Little] {
            let bytes = bytes_of(&halves, order);
            let mut scalar_widened = Vec::new();
            scalar::widen(&bytes, order, &mut scalar_widened);
            let widened = widen(&bytes, order);
            assert!(
                scalar_widened
                    .iter()
                    .zip(&widened)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            let mut narrowed = Vec::new();
            narrow(&floats, order, &mut narrowed);
            let mut scalar_narrowed = vec![0; 2 * floats.len()];
            assert!(scalar::narrow::<false>(
                &floats,
                order,
                &mut scalar_narrowed
            ));
            assert_eq!(narrowed, scalar_narrowed);
            let mut exact = Vec::new();
            assert!(narrow_exact(&widened, order, &mut exact));
            let mut scalar_exact = vec![0; 2 * widened.len()];
            assert!(scalar::narrow::<true>(&widened, order, &mut scalar_exact));
            assert_eq!(exact, scalar_exact);
            assert_eq!(exact, bytes);
        }
    }

    #[test]
    fn the_range_check_refuses_nan_infinity_and_what_rounds_to_infinity() {
        assert!(all_finite_in_range(&[]));
        assert!(all_finite_in_range(&[0.0, -0.0, 65504.0, -65519.99, 1e-30]));
        for bad in [
            65520.0,
            -65520.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e30,
        ] {
            let mut v = vec![0.5; 1536];
            v[700] = bad;
            assert!(!all_finite_in_range(&v), "{bad}");
            assert!(f16::from_f32(bad).is_infinite() || bad.is_nan());
        }
        // The bound is exact: the largest float below 65520 rounds to 65504.
        let below = f32::from_bits(0x477F_F000 - 1);
        assert!(all_finite_in_range(&[below]));
        assert!(!f16::from_f32(below).is_infinite());
    }
}
