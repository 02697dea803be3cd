//! The squared Euclidean distance kernel of the vector scan.
//!
//! The distance is accumulated as `sum((q_i - x_i)^2)` in 16 independent
//! float32 partial sums (four `f32x4` accumulators in WebAssembly SIMD128,
//! sixteen scalars on the host), which are then added in float64. Summing
//! squared differences keeps the result accurate *relative to the distance
//! itself*, so scores near 1 (near duplicates) agree with a float64 reference
//! to ~1e-6 whatever the vectors' norms. The `|q|^2 + |x|^2 - 2 q.x`
//! expansion loses that accuracy to cancellation when the norms are large and
//! the vectors close, and costs the same memory traffic, which is what bounds
//! the scan.
//!
//! Both paths perform the same IEEE float32 operations in the same order, so
//! the host build (used by `cargo test`) and the wasm build give bit-identical
//! distances.

/// Elements consumed per step: four accumulators of four lanes.
pub const BLOCK: usize = 16;

/// Squared Euclidean distance between `a` and `b` (equal lengths; a longer
/// slice is cut to the shorter one).
pub fn l2_squared(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (a_blocks, a_tail) = a.as_chunks::<BLOCK>();
    let (b_blocks, b_tail) = b.as_chunks::<BLOCK>();
    let lanes = block_sums(a_blocks, b_blocks);
    let mut sum = 0.0f64;
    for lane in lanes {
        sum += f64::from(lane);
    }
    for (x, y) in a_tail.iter().zip(b_tail) {
        let d = f64::from(*x) - f64::from(*y);
        sum += d * d;
    }
    sum
}

/// The sixteen float32 partial sums of `(a - b)^2` over whole blocks; lane
/// `j` holds the elements whose index is `j` modulo 16.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn block_sums(a: &[[f32; BLOCK]], b: &[[f32; BLOCK]]) -> [f32; BLOCK] {
    use core::arch::wasm32::{f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, f32x4_sub};

    let mut acc0 = f32x4_splat(0.0);
    let mut acc1 = f32x4_splat(0.0);
    let mut acc2 = f32x4_splat(0.0);
    let mut acc3 = f32x4_splat(0.0);
    for (x, y) in a.iter().zip(b) {
        let d0 = f32x4_sub(load::<0>(x), load::<0>(y));
        let d1 = f32x4_sub(load::<1>(x), load::<1>(y));
        let d2 = f32x4_sub(load::<2>(x), load::<2>(y));
        let d3 = f32x4_sub(load::<3>(x), load::<3>(y));
        acc0 = f32x4_add(acc0, f32x4_mul(d0, d0));
        acc1 = f32x4_add(acc1, f32x4_mul(d1, d1));
        acc2 = f32x4_add(acc2, f32x4_mul(d2, d2));
        acc3 = f32x4_add(acc3, f32x4_mul(d3, d3));
    }
    let mut out = [0.0f32; BLOCK];
    for (k, acc) in [acc0, acc1, acc2, acc3].into_iter().enumerate() {
        out[4 * k] = f32x4_extract_lane::<0>(acc);
        out[4 * k + 1] = f32x4_extract_lane::<1>(acc);
        out[4 * k + 2] = f32x4_extract_lane::<2>(acc);
        out[4 * k + 3] = f32x4_extract_lane::<3>(acc);
    }
    out
}

/// Loads elements `4K..4K+4` of a block as one `v128`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn load<const K: usize>(block: &[f32; BLOCK]) -> core::arch::wasm32::v128 {
    const { assert!(K < BLOCK / 4) };
    // SAFETY: `K < 4` (checked at compile time above), so the 16 bytes at
    // element `4K` lie inside the 64-byte array `block`, which the borrow keeps
    // alive and valid for reads; `v128_load` performs an unaligned load, so no
    // alignment beyond `f32`'s is needed.
    unsafe { core::arch::wasm32::v128_load(block.as_ptr().add(4 * K).cast()) }
}

/// The portable twin of the SIMD path: the same float32 operations per lane.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn block_sums(a: &[[f32; BLOCK]], b: &[[f32; BLOCK]]) -> [f32; BLOCK] {
    let mut acc = [0.0f32; BLOCK];
    for (x, y) in a.iter().zip(b) {
        for j in 0..BLOCK {
            let d = x[j] - y[j];
            acc[j] += d * d;
        }
    }
    acc
}

/// A symmetric int8 quantisation of a vector: `x ≈ scale * q`.
pub struct Quantized {
    /// The scale, `max |x_i| / 127` (zero for a zero vector).
    pub scale: f32,
    /// `sum q_i^2`, exact.
    pub sq: u32,
    /// An upper bound on `|x - scale * q|` (Euclidean), in float64.
    pub err: f64,
}

/// Quantises `x` into `out` (same length) with one symmetric scale.
pub fn quantize<T: From<i8>>(x: &[f32], out: &mut [T]) -> Quantized {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = max / 127.0;
    // Any rounding is sound (the residual is measured afterwards); a
    // multiplication and `f32.nearest` are the cheap ones in wasm.
    let inv = if scale > 0.0 && scale.is_finite() {
        127.0 / max
    } else {
        0.0
    };
    let mut sq = 0u32;
    let mut err2 = 0.0f64;
    for (o, &v) in out.iter_mut().zip(x) {
        let qi = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
        *o = T::from(qi);
        sq += (i32::from(qi) * i32::from(qi)) as u32;
        // `qi * scale` is exact in float64 (8 + 24 significant bits).
        let r = f64::from(v) - f64::from(qi) * f64::from(scale);
        err2 += r * r;
    }
    // Generous slack for the float64 rounding of the residual sum.
    let err = err2.sqrt() * (1.0 + 1e-9) + f64::MIN_POSITIVE;
    Quantized { scale, sq, err }
}

/// `sum q_i * x_i` for a query widened to i16 and an int8 row (equal
/// lengths), exact.
pub fn dot_i8(q: &[i16], x: &[i8]) -> i32 {
    let n = q.len().min(x.len());
    let (q, x) = (&q[..n], &x[..n]);
    let (qb, qt) = q.as_chunks::<BLOCK>();
    let (xb, xt) = x.as_chunks::<BLOCK>();
    let mut sum = dot_blocks(qb, xb);
    for (a, b) in qt.iter().zip(xt) {
        sum += i32::from(*a) * i32::from(*b);
    }
    sum
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn dot_blocks(q: &[[i16; BLOCK]], x: &[[i8; BLOCK]]) -> i32 {
    use core::arch::wasm32::{
        i16x8_extend_high_i8x16, i16x8_extend_low_i8x16, i32x4_add, i32x4_dot_i16x8, i32x4_extract_lane, i32x4_splat,
        v128_load,
    };
    let mut acc0 = i32x4_splat(0);
    let mut acc1 = i32x4_splat(0);
    for (a, b) in q.iter().zip(x) {
        // SAFETY: `a` is 32 bytes and `b` 16 bytes, borrowed and valid for
        // reads; `v128_load` is an unaligned load.
        let (xa, q0, q1) = unsafe {
            (
                v128_load(b.as_ptr().cast()),
                v128_load(a.as_ptr().cast()),
                v128_load(a.as_ptr().add(8).cast()),
            )
        };
        acc0 = i32x4_add(acc0, i32x4_dot_i16x8(q0, i16x8_extend_low_i8x16(xa)));
        acc1 = i32x4_add(acc1, i32x4_dot_i16x8(q1, i16x8_extend_high_i8x16(xa)));
    }
    let acc = i32x4_add(acc0, acc1);
    i32x4_extract_lane::<0>(acc)
        + i32x4_extract_lane::<1>(acc)
        + i32x4_extract_lane::<2>(acc)
        + i32x4_extract_lane::<3>(acc)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot_blocks(q: &[[i16; BLOCK]], x: &[[i8; BLOCK]]) -> i32 {
    let mut sum = 0i32;
    for (a, b) in q.iter().zip(x) {
        for j in 0..BLOCK {
            sum += i32::from(a[j]) * i32::from(b[j]);
        }
    }
    sum
}

/// The Euclidean norm of `v`, in float64.
pub fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt()
}

/// A bound on the relative error of [`l2_squared`] for `dim`-element
/// vectors: each lane adds at most `dim / 16` rounded terms, each term carries
/// at most three roundings, so the float32 result is within
/// `(dim / 16 + 3) * 2^-24` of the exact value relatively. This returns a
/// generous multiple of that, used to prune only rows that provably cannot
/// rank.
pub fn relative_error_bound(dim: usize) -> f64 {
    (dim as f64 + 64.0) * f64::powi(2.0, -23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_float64_reference() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
        };
        for dim in [1usize, 3, 15, 16, 17, 100, 1536, 3072] {
            let a: Vec<f32> = (0..dim).map(|_| next() * 40.0).collect();
            let b: Vec<f32> = a.iter().map(|x| x + next() * 1e-3).collect();
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum();
            let got = l2_squared(&a, &b);
            assert!((got - exact).abs() <= exact * 1e-5, "dim {dim}: {got} vs {exact}");
            let (s1, s2) = (1.0 / (1.0 + got), 1.0 / (1.0 + exact));
            assert!((s1 - s2).abs() < 1e-6);
        }
    }

    #[test]
    fn zero_and_identical() {
        let a = vec![0.25f32; 37];
        assert_eq!(l2_squared(&a, &a), 0.0);
        let z = vec![0.0f32; 37];
        assert!((l2_squared(&a, &z) - 37.0 * 0.0625).abs() < 1e-12);
        assert!((norm(&a) - (37.0f64 * 0.0625).sqrt()).abs() < 1e-12);
    }
}
