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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantized {
    /// The scale, `max |x_i| / 127` (zero for a zero vector).
    pub scale: f32,
    /// `sum q_i^2`, exact.
    pub sq: u32,
    /// `sum q_i`, exact: undoes the query's offset in [`QueryCode::dot`].
    pub sum: i32,
    /// An upper bound on `|x - scale * q|` (Euclidean), in float64.
    pub err: f64,
}

/// Quantises `x` into `out` (same length) with one symmetric scale.
///
/// The residual `x - scale * q` is measured in float32, sixteen lanes at a
/// time like the distance kernel, and its bound widened by what float32 may
/// have lost: each residual element is off by at most `2^-24` of itself
/// plus `2^-24` of `max |x_i|` (the rounded product and difference), each
/// lane's sum of squares by `(len / 16 + 1) * 2^-24` relatively, and squares
/// that underflow by less than `2^-149` each.
pub fn quantize(x: &[f32], out: &mut [i8]) -> Quantized {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = max / 127.0;
    // Any rounding is sound (the residual is measured afterwards); a
    // multiplication and `f32.nearest` are the cheap ones in wasm.
    let inv = if scale > 0.0 && scale.is_finite() {
        127.0 / max
    } else {
        0.0
    };
    let n = x.len().min(out.len());
    let (x_blocks, x_tail) = x[..n].as_chunks::<BLOCK>();
    let (out_blocks, out_tail) = out[..n].as_chunks_mut::<BLOCK>();
    let mut sq = [0u32; BLOCK];
    let mut sum = [0i32; BLOCK];
    let mut err2 = [0.0f32; BLOCK];
    let mut lane = |j: usize, v: f32| {
        let q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i32;
        sq[j] += (q * q) as u32;
        sum[j] += q;
        let d = v - q as f32 * scale;
        err2[j] += d * d;
        q as i8
    };
    for (xs, os) in x_blocks.iter().zip(out_blocks) {
        for j in 0..BLOCK {
            os[j] = lane(j, xs[j]);
        }
    }
    for (o, &v) in out_tail.iter_mut().zip(x_tail) {
        *o = lane(0, v);
    }
    let len = n as f64;
    let ulp = f64::powi(2.0, -23);
    let measured: f64 =
        err2.iter().map(|&e| f64::from(e)).sum::<f64>() * (1.0 + (len / 16.0 + 2.0) * ulp) + len * f64::powi(2.0, -120);
    let err = (measured.sqrt() + len.sqrt() * f64::from(max) * ulp) / (1.0 - ulp);
    Quantized {
        scale,
        sq: sq.iter().sum(),
        sum: sum.iter().sum(),
        err: residual_bound(err * err),
    }
}

/// Generous slack for the float64 rounding of a residual's sum of squares.
fn residual_bound(err2: f64) -> f64 {
    err2.sqrt() * (1.0 + 1e-9) + f64::MIN_POSITIVE
}

/// The largest digit of the query's two base-126 digits (see [`QueryCode`]).
const DIGIT: i32 = 63;
/// The offset that makes a digit a 7-bit unsigned value.
const OFFSET: i32 = 64;

/// A query quantised to 14 bits for the int8 scan: `q ≈ scale * Q` with
/// `Q_i = 126 * h_i + l_i` and `h_i, l_i` in `[-63, 63]`. Each digit is
/// stored plus 64, in `[1, 127]`, the 7-bit unsigned operand of relaxed
/// SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add`, whose result every
/// implementation then agrees on. The high digits alone are a coarse 7-bit
/// code, `q ≈ 126 * scale * h`, enough to rule out most rows with one dot
/// product; the low digits then make the query's own rounding negligible
/// next to the row's for the rows left.
pub struct QueryCode {
    high: Digits,
    low: Digits,
    /// `scale` above.
    pub scale: f64,
    /// `sum Q_i^2`, exact.
    pub sq: f64,
    /// An upper bound on `|q - scale * Q|` (Euclidean).
    pub err: f64,
    /// `sum h_i^2`, exact.
    pub high_sq: f64,
    /// An upper bound on `|q - 126 * scale * h|`.
    pub high_err: f64,
}

/// One base-126 digit of each element of a query.
struct Digits {
    /// Per 16-element block, the digits plus 64.
    blocks: Vec<[u8; BLOCK]>,
    /// The digits of the elements after the last whole block.
    tail: Vec<i32>,
}

impl Digits {
    fn new(digits: &[i32]) -> Digits {
        let (whole, rest) = digits.as_chunks::<BLOCK>();
        Digits {
            blocks: whole.iter().map(|b| b.map(|d| (d + OFFSET) as u8)).collect(),
            tail: rest.to_vec(),
        }
    }

    /// `sum d_i * x_i` for an int8 row `x` quantised with `code`, exact.
    fn dot(&self, x: &[i8], code: &Quantized) -> i64 {
        let (blocks, tail) = x.as_chunks::<BLOCK>();
        // The offset added `64 * x_i` to each term of the whole blocks.
        let tail_sum: i64 = tail.iter().map(|&v| i64::from(v)).sum();
        let mut sum =
            i64::from(dot_blocks(&self.blocks, blocks)) - i64::from(OFFSET) * (i64::from(code.sum) - tail_sum);
        for (&d, &v) in self.tail.iter().zip(tail) {
            sum += i64::from(d) * i64::from(v);
        }
        sum
    }
}

impl QueryCode {
    pub fn new(q: &[f32]) -> QueryCode {
        let top = 126 * DIGIT;
        let max = q.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
        let scale = if max > 0.0 && max.is_finite() {
            max / f64::from(top)
        } else {
            0.0
        };
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let (mut high, mut low) = (Vec::with_capacity(q.len()), Vec::with_capacity(q.len()));
        let (mut sq, mut err2, mut high_sq, mut high_err2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for &v in q {
            let big = (f64::from(v) * inv)
                .round_ties_even()
                .clamp(-f64::from(top), f64::from(top)) as i32;
            let h = (big + DIGIT).div_euclid(126);
            high.push(h);
            low.push(big - 126 * h);
            sq += f64::from(big) * f64::from(big);
            high_sq += f64::from(h) * f64::from(h);
            // Each product is rounded once in float64: relative 2^-53 of
            // each term, far inside the bound's slack.
            let r = f64::from(v) - f64::from(big) * scale;
            err2 += r * r;
            let rh = f64::from(v) - f64::from(126 * h) * scale;
            high_err2 += rh * rh;
        }
        QueryCode {
            high: Digits::new(&high),
            low: Digits::new(&low),
            scale,
            sq,
            err: residual_bound(err2),
            high_sq,
            high_err: residual_bound(high_err2),
        }
    }

    /// `sum h_i * x_i` for an int8 row `x` quantised with `code`, exact.
    pub fn dot_high(&self, x: &[i8], code: &Quantized) -> i64 {
        self.high.dot(x, code)
    }

    /// `sum Q_i * x_i`, exact, given `high = self.dot_high(x, code)`.
    pub fn dot(&self, x: &[i8], code: &Quantized, high: i64) -> f64 {
        (126 * high + self.low.dot(x, code)) as f64
    }
}

/// `sum (d_i + 64) x_i` over whole blocks, for offset digits `q`.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
fn dot_blocks(q: &[[u8; BLOCK]], x: &[[i8; BLOCK]]) -> i32 {
    use core::arch::wasm32::{
        i32x4_add, i32x4_extract_lane, i32x4_relaxed_dot_i8x16_i7x16_add, i32x4_splat, v128_load,
    };
    // Four blocks per step, each into its own accumulator: measured in
    // wasmtime, this unrolling made the scan markedly faster.
    const STEP: usize = 4;
    let mut acc = [i32x4_splat(0); STEP];
    let (q4, q_rest) = q.as_chunks::<STEP>();
    let (x4, x_rest) = x.as_chunks::<STEP>();
    for (ds, bs) in q4.iter().zip(x4) {
        for k in 0..STEP {
            // SAFETY: both operands are borrowed 16-byte arrays, valid for
            // reads; `v128_load` is an unaligned load.
            let (xv, dv) = unsafe { (v128_load(bs[k].as_ptr().cast()), v128_load(ds[k].as_ptr().cast())) };
            // The second operand's lanes are in [1, 127], where the relaxed
            // instruction is deterministic, and each pair of products fits
            // i16.
            acc[k] = i32x4_relaxed_dot_i8x16_i7x16_add(xv, dv, acc[k]);
        }
    }
    for (d, b) in q_rest.iter().zip(x_rest) {
        // SAFETY: as above.
        let (xv, dv) = unsafe { (v128_load(b.as_ptr().cast()), v128_load(d.as_ptr().cast())) };
        acc[0] = i32x4_relaxed_dot_i8x16_i7x16_add(xv, dv, acc[0]);
    }
    let total = i32x4_add(i32x4_add(acc[0], acc[1]), i32x4_add(acc[2], acc[3]));
    i32x4_extract_lane::<0>(total)
        + i32x4_extract_lane::<1>(total)
        + i32x4_extract_lane::<2>(total)
        + i32x4_extract_lane::<3>(total)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
fn dot_blocks(q: &[[u8; BLOCK]], x: &[[i8; BLOCK]]) -> i32 {
    let mut sum = 0i32;
    for (d, b) in q.iter().zip(x) {
        for j in 0..BLOCK {
            sum += i32::from(d[j]) * i32::from(b[j]);
        }
    }
    sum
}

/// The Euclidean norm of `v`, in float64 (squares are exact in float64;
/// their sum is within `len * 2^-53` relatively, far inside the slack of the
/// bounds it serves). Eight running sums, so that the additions do not wait
/// on one another and vectorise (a load computes a norm per row).
pub fn norm(v: &[f32]) -> f64 {
    let (blocks, tail) = v.as_chunks::<8>();
    let mut lanes = [0.0f64; 8];
    for block in blocks {
        for (lane, x) in lanes.iter_mut().zip(block) {
            let x = f64::from(*x);
            *lane += x * x;
        }
    }
    let sum = tail.iter().fold(lanes.iter().sum::<f64>(), |s, x| {
        let x = f64::from(*x);
        s + x * x
    });
    sum.sqrt()
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
    fn norm_is_the_float64_norm_and_not_finite_for_a_non_finite_vector() {
        for dim in [0usize, 1, 7, 8, 9, 100, 1536] {
            let v: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let exact = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            assert!((norm(&v) - exact).abs() <= exact * 1e-13, "dim {dim}");
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut v = vec![1.0f32; 20];
            v[13] = bad;
            assert!(!norm(&v).is_finite());
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
