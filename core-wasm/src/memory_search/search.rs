//! Ranking: exact top-`k` vector search (int8 pre-scan, then the float32
//! kernel) and BM25 top-`k`.

use std::collections::{BinaryHeap, HashSet};

use super::filter::Filter;
use super::index::Index;
use super::kernel;

/// A candidate; orders best (smallest key, then earliest insertion) first.
/// The key is a vector search's distance, or a text search's negated score
/// (negation reverses `total_cmp`'s order exactly, so the highest score
/// ranks first).
#[derive(PartialEq)]
struct Near {
    d: f64,
    seq: i64,
    row: usize,
}

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.d.total_cmp(&other.d).then(self.seq.cmp(&other.seq))
    }
}

/// Offers `item` to a max-heap holding the best `k` seen so far.
fn offer<T: Ord>(heap: &mut BinaryHeap<T>, k: usize, item: T) {
    if heap.len() < k {
        heap.push(item);
    } else if let Some(mut worst) = heap.peek_mut() {
        if item < *worst {
            *worst = item;
        }
    }
}

/// Smallest store (rows) and dimension for which the int8 pre-scan pays
/// (in wasmtime it beat the float32 scan from 1k rows at 384 and 1536
/// dimensions).
const QUANTIZED_MIN_ROWS: usize = 256;
const QUANTIZED_MIN_DIM: usize = 64;
/// Largest dimension for the int8 pre-scan, far inside where its integer
/// sums are exact (a relaxed-SIMD `i32` lane adds `dim / 4` products of at
/// most 127^2; `sum q_i^2` is a `u32`). (With widening SIMD128 dot products
/// instead of relaxed SIMD's, it was no faster than the float32 scan at
/// 1536 dimensions.)
const QUANTIZED_MAX_DIM: usize = 4096;

/// Exact top-`k` by distance among rows matching `filter`, best first, as
/// `(row, score)`.
pub(super) fn vector_top_k(index: &Index, q: &[f32], filter: &Filter, k: usize, min_score: f64) -> Vec<(usize, f64)> {
    if k == 0 || index.len() == 0 || min_score > 1.0 {
        return Vec::new();
    }
    if index.len() >= QUANTIZED_MIN_ROWS && (QUANTIZED_MIN_DIM..=QUANTIZED_MAX_DIM).contains(&q.len()) {
        if let Some(hits) = vector_top_k_quantized(index, q, filter, k, min_score) {
            return hits;
        }
    }
    vector_top_k_exact(index, q, filter, k, min_score)
}

/// The same result as [`vector_top_k_exact`], found by scanning the int8 copy
/// of the vectors first: each row gets a rigorous interval `[lo, hi]` around
/// the distance the exact kernel would compute, and only rows with `lo` at
/// most the `k`-th smallest `hi` (and within the `min_score` cap) are rescored
/// with the exact kernel. `None` when the bounds are unusable.
pub(super) fn vector_top_k_quantized(
    index: &Index,
    q: &[f32],
    filter: &Filter,
    k: usize,
    min_score: f64,
) -> Option<Vec<(usize, f64)>> {
    let rel = kernel::relative_error_bound(q.len());
    if rel >= 0.5 {
        return None;
    }
    let d_cap = if min_score > 0.0 {
        (1.0 / min_score - 1.0) * (1.0 + 1e-9)
    } else {
        f64::INFINITY
    };
    let qz = kernel::QueryCode::new(q);
    let qs = qz.scale;
    let qa = qs * qs * qz.sq;
    let qs_high = 126.0 * qs;
    let qa_high = qs_high * qs_high * qz.high_sq;
    let trivial = filter.is_empty();
    let matcher = filter.matcher(index);
    let candidates = filter.candidate_rows(index);
    // Rows that may rank, with the lower bound of their distance.
    let mut maybe: Vec<(usize, f64)> = Vec::new();
    // The `k` smallest upper bounds so far (max-heap).
    let mut uppers: BinaryHeap<Near> = BinaryHeap::with_capacity(k.min(index.len()));
    let lo_shrink = (1.0 - rel) * (1.0 - 1e-12);
    let hi_grow = (1.0 + rel) * (1.0 + 1e-12);
    // Float32 underflow (squares of tiny differences) is not relative error:
    // allow an absolute slack far above its worst case (~2^-149 per step).
    let tiny = q.len() as f64 * f64::powi(2.0, -120);
    // A row whose `lo` exceeds `cut` cannot rank. `root_cut` is the `near`
    // (see below) at which `lo` reaches `cut`, so most rows are rejected
    // without a square root.
    let root_of = |cut: f64| ((cut + tiny) / lo_shrink).max(0.0).sqrt();
    let mut cut = d_cap;
    let mut root_cut = root_of(cut);
    let skip_unusable = index.has_unusable();
    let mut visit = |row: usize| {
        if !trivial && !matcher.matches(row) {
            return;
        }
        if skip_unusable && !index.norm(row).is_finite() {
            return;
        }
        let code = index.qcode(row);
        let x = index.qvector(row);
        let xs = f64::from(code.scale);
        let b = xs * xs * f64::from(code.sq);
        // For a code q^ of the query, |q^ - x^|^2 from exact integers with a
        // few float64 roundings is `d2` within `slack`; the row cannot rank
        // when `near > root_cut` (see below), i.e. when this holds, squared
        // and with a margin for the comparison's own rounding.
        let beyond = |d2: f64, slack: f64, e: f64| {
            let reach = root_cut + e;
            (d2 - slack) * (1.0 - 1e-14) > reach * reach * (1.0 + 1e-9)
        };
        // The coarse code first: one dot product rules out most rows.
        let high = qz.dot_high(x, code);
        let c = qs_high * xs * high as f64;
        if beyond(
            qa_high + b - 2.0 * c,
            1e-13 * (qa_high + b + 2.0 * c.abs()),
            (qz.high_err + code.err) * (1.0 + 1e-12),
        ) {
            return;
        }
        let c = qs * xs * qz.dot(x, code, high);
        let d2 = qa + b - 2.0 * c;
        let slack = 1e-13 * (qa + b + 2.0 * c.abs());
        let e = (qz.err + code.err) * (1.0 + 1e-12);
        if beyond(d2, slack, e) {
            return;
        }
        let near = ((d2 - slack).max(0.0).sqrt() * (1.0 - 1e-15) - e).max(0.0);
        let lo = near * near * lo_shrink - tiny;
        if lo > cut {
            return;
        }
        let far = (d2 + slack).max(0.0).sqrt() * (1.0 + 1e-15) + e;
        let hi = far * far * hi_grow + tiny;
        offer(&mut uppers, k, Near { d: hi, seq: 0, row });
        maybe.push((row, lo));
        if let Some(worst) = uppers.peek() {
            if uppers.len() >= k && worst.d < cut {
                cut = worst.d;
                root_cut = root_of(cut);
            }
        }
    };
    match candidates {
        Some(rows) => rows.into_iter().for_each(&mut visit),
        None => (0..index.len()).for_each(&mut visit),
    }
    let threshold = match uppers.peek() {
        Some(worst) if uppers.len() >= k => worst.d.min(d_cap),
        _ => d_cap,
    };
    let mut heap: BinaryHeap<Near> = BinaryHeap::with_capacity(k.min(maybe.len()));
    for (row, lo) in maybe {
        if lo > threshold {
            continue;
        }
        let d = kernel::l2_squared(q, index.vector(row)).max(0.0);
        if 1.0 / (1.0 + d) < min_score {
            continue;
        }
        let seq = index.seq(row);
        offer(&mut heap, k, Near { d, seq, row });
    }
    Some(
        heap.into_sorted_vec()
            .into_iter()
            .map(|n| (n.row, 1.0 / (1.0 + n.d)))
            .collect(),
    )
}

/// Exact top-`k` by distance among rows matching `filter`, best first, by a
/// full scan of the float32 vectors.
pub(super) fn vector_top_k_exact(
    index: &Index,
    q: &[f32],
    filter: &Filter,
    k: usize,
    min_score: f64,
) -> Vec<(usize, f64)> {
    if k == 0 || index.len() == 0 || min_score > 1.0 {
        return Vec::new();
    }
    let q_norm = kernel::norm(q);
    // Rows whose norm bound exceeds this distance cannot pass `min_score`.
    let d_cap = if min_score > 0.0 {
        (1.0 / min_score - 1.0) * (1.0 + 1e-9)
    } else {
        f64::INFINITY
    };
    let shrink = 1.0 - kernel::relative_error_bound(q.len());
    let prune = shrink > 0.0;
    // Float32 underflow is not relative error (see the quantised scan).
    let tiny = q.len() as f64 * f64::powi(2.0, -120);
    let trivial = filter.is_empty();
    let matcher = filter.matcher(index);
    let candidates = filter.candidate_rows(index);
    let mut heap: BinaryHeap<Near> = BinaryHeap::with_capacity(k.min(index.len()));
    let skip_unusable = index.has_unusable();
    let mut visit = |row: usize| {
        if !trivial && !matcher.matches(row) {
            return;
        }
        if skip_unusable && !index.norm(row).is_finite() {
            return;
        }
        if prune {
            let x_norm = index.norm(row);
            let gap = ((q_norm - x_norm).abs() - 1e-9 * (q_norm + x_norm)).max(0.0);
            let bound = match heap.peek() {
                Some(worst) if heap.len() >= k => worst.d.min(d_cap),
                _ => d_cap,
            };
            // The computed distance is at least gap^2 * shrink, so above
            // `bound`: the row can neither pass `min_score` nor displace the
            // current worst.
            if gap * gap * shrink - tiny > bound {
                return;
            }
        }
        let d = kernel::l2_squared(q, index.vector(row)).max(0.0);
        if 1.0 / (1.0 + d) < min_score {
            return;
        }
        let seq = index.seq(row);
        offer(&mut heap, k, Near { d, seq, row });
    };
    match candidates {
        Some(rows) => rows.into_iter().for_each(&mut visit),
        None => (0..index.len()).for_each(&mut visit),
    }
    heap.into_sorted_vec()
        .into_iter()
        .map(|n| (n.row, 1.0 / (1.0 + n.d)))
        .collect()
}

/// BM25 top-`k` among rows matching `filter`, best first, as `(row, score)`.
pub(super) fn text_top_k(index: &Index, query: &str, filter: &Filter, k: usize) -> Vec<(usize, f64)> {
    if k == 0 {
        return Vec::new();
    }
    let hits = index.text().score(query);
    let matcher = filter.matcher(index);
    let candidates: Option<HashSet<usize>> = filter.candidate_rows(index).map(|rows| rows.into_iter().collect());
    let mut heap: BinaryHeap<Near> = BinaryHeap::with_capacity(k.min(hits.len()));
    for (row, score) in hits {
        if let Some(allowed) = &candidates {
            if !allowed.contains(&row) {
                continue;
            }
        }
        if !matcher.matches(row) {
            continue;
        }
        let seq = index.seq(row);
        offer(&mut heap, k, Near { d: -score, seq, row });
    }
    heap.into_sorted_vec().into_iter().map(|n| (n.row, -n.d)).collect()
}
