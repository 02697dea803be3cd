//! `memory-search`: CrewAI memory records with exact vector search and BM25
//! lexical search, persisted in one SQLite file per store.
//!
//! # Design
//! * The whole store is held in an in-memory [`index::Index`]; SQLite is the
//!   durable copy. Every mutating call runs in one `BEGIN IMMEDIATE`
//!   transaction and touches the index only after `COMMIT` succeeded, so a
//!   failed call changes nothing. Reads are served from the index alone; the
//!   host calls `refresh` when the file's change counter moved (another
//!   process committed), which compares `PRAGMA data_version` with the value
//!   seen at the last load and reloads. Checking that inside the core costs
//!   several WASI calls, which the host does natively in microseconds.
//!   Writes make the same check inside their own transaction.
//! * Vector search is an exact scan (see [`kernel`]): score `1 / (1 + d)` with
//!   `d` the squared Euclidean distance, records without an embedding count as
//!   zero vectors (as in LanceDB). Filters are evaluated inside the scan; a
//!   bounded heap keeps the top `limit`. A row is skipped without reading its
//!   vector only when the norm bound `(|q| - |x|)^2 <= d` proves it cannot
//!   rank, so results are those of the full scan.
//! * Ties: equal distances (or equal BM25 scores) rank by insertion order,
//!   earlier first. "Insertion" is the latest write of the record (`save`
//!   of an existing id re-inserts it, as LanceDB's update does), which is the
//!   SQLite rowid and so survives reopening. `list` orders by `created_ts`
//!   descending, then later insertion first.
//! * Scope prefixes are compared by path segment: a prefix `p` (trailing `/`
//!   removed) matches scope `p` and scopes starting with `p/`; an absent,
//!   empty or `/` prefix matches everything. No leading `/` is added (CrewAI
//!   normalises scopes before they reach storage). LanceDB's plain string
//!   prefix (`/a/b` also matching `/a/bc`) and its `OR scope = '/'` in
//!   `delete` are deliberately not reproduced.
//! * Filter members are ANDed; `null` is the same as absent. `categories` and
//!   `ids` are "any of": an empty list matches nothing (LanceDB treats an
//!   empty list as no filter; the caller drops empty lists to get that).
//!   `metadata` compares each key with JSON equality (numbers by value,
//!   `1 == 1.0`; `true` is not `1`); a key missing from a record compares as
//!   `null`, as Python's `dict.get(k) == v` does.

mod bm25;
mod index;
mod kernel;
mod persist;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};

use base64::Engine as _;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::json::{self, Number, Value};
use index::{Index, Record};

/// Why a memory call failed (the WIT `error` variant).
#[derive(Debug, Clone, PartialEq)]
pub enum MemError {
    InvalidInput(String),
    DimensionMismatch { stored: u32, given: u32 },
    Capacity(String),
    Storage(String),
}

impl std::fmt::Display for MemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            MemError::DimensionMismatch { stored, given } => write!(
                f,
                "dimension mismatch: the store holds {stored}-dimensional vectors, got {given}"
            ),
            MemError::Capacity(m) => write!(f, "capacity: {m}"),
            MemError::Storage(m) => write!(f, "storage: {m}"),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for MemError {
    fn from(err: rusqlite::types::FromSqlError) -> Self {
        MemError::Storage(format!("corrupt memory store: {err}"))
    }
}

fn invalid(message: impl Into<String>) -> MemError {
    MemError::InvalidInput(message.into())
}

fn mismatch(stored: usize, given: usize) -> MemError {
    MemError::DimensionMismatch {
        stored: u32::try_from(stored).unwrap_or(u32::MAX),
        given: u32::try_from(given).unwrap_or(u32::MAX),
    }
}

fn parse_json(text: &str, what: &str) -> Result<Value, MemError> {
    json::parse(text).map_err(|e| {
        invalid(format!(
            "{what} is not valid JSON: {} at position {}",
            e.message, e.position
        ))
    })
}

// ---------------------------------------------------------------------------
// Vectors

/// Decodes standard padded base64 of little-endian float32 values, rejecting
/// anything but finite numbers.
fn decode_vector(text: &str, what: &str) -> Result<Vec<f32>, MemError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| invalid(format!("{what} is not valid base64: {e}")))?;
    let (floats, rest) = bytes.as_chunks::<4>();
    if !rest.is_empty() {
        return Err(invalid(format!(
            "{what} has {} bytes, not a multiple of 4 (float32 values)",
            bytes.len()
        )));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(floats.len())
        .map_err(|_| MemError::Capacity(format!("{what} does not fit in memory")))?;
    for (i, b) in floats.iter().enumerate() {
        let x = f32::from_le_bytes(*b);
        if !x.is_finite() {
            return Err(invalid(format!("{what}[{i}] is {x}, not a finite number")));
        }
        out.push(x);
    }
    Ok(out)
}

/// Writes `v` as a JSON string of the lowercase hex of its little-endian
/// float32 bytes: what the store returns, because the host turns hex into
/// bytes more cheaply than base64 and a search returns up to `limit` vectors.
fn encode_vector(out: &mut String, v: &[f32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(v.len() * 8 + 2);
    out.push('"');
    for x in v {
        for byte in x.to_le_bytes() {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 15)]));
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------
// Records in

/// A record to save and its decoded embedding.
type NewRecord = (Record, Option<Vec<f32>>);

fn parse_records(text: &str) -> Result<Vec<NewRecord>, MemError> {
    let Value::Array(items) = parse_json(text, "records")? else {
        return Err(invalid("records must be a JSON array of record objects"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        out.push(parse_record(item, i)?);
    }
    Ok(out)
}

fn parse_record(item: Value, i: usize) -> Result<NewRecord, MemError> {
    let Value::Object(members) = item else {
        return Err(invalid(format!(
            "records[{i}] must be an object, not {}",
            item.type_name()
        )));
    };
    let field_err = |key: &str, want: &str, got: &Value| {
        invalid(format!("records[{i}].{key} must be {want}, not {}", got.type_name()))
    };
    let mut id = None;
    let mut content = None;
    let mut scope = None;
    let mut categories = Vec::new();
    let mut metadata = Value::Object(Vec::new());
    let mut importance = 0.5;
    let mut created_at = None;
    let mut created_ts = None;
    let mut last_accessed = None;
    let mut source = None;
    let mut private = false;
    let mut embedding = None;
    for (key, value) in members {
        match (key.as_str(), value) {
            ("id", Value::String(s)) => id = Some(s),
            ("content", Value::String(s)) => content = Some(s),
            ("scope", Value::String(s)) => scope = Some(s),
            ("scope", Value::Null) => {}
            ("categories", Value::Array(list)) => {
                categories = Vec::with_capacity(list.len());
                for (j, c) in list.into_iter().enumerate() {
                    match c {
                        Value::String(s) => categories.push(s),
                        other => return Err(field_err(&format!("categories[{j}]"), "a string", &other)),
                    }
                }
            }
            ("categories", Value::Null) => {}
            ("metadata", v @ Value::Object(_)) => metadata = v,
            ("metadata", Value::Null) => {}
            ("importance", v @ Value::Number(_)) => importance = number(&v, i, "importance")?,
            ("importance", Value::Null) => {}
            ("created_at", Value::String(s)) => created_at = Some(s),
            ("created_ts", v @ Value::Number(_)) => created_ts = Some(number(&v, i, "created_ts")?),
            ("last_accessed", Value::String(s)) => last_accessed = Some(s),
            ("last_accessed", Value::Null) => {}
            ("source", Value::String(s)) => source = Some(s),
            ("source", Value::Null) => source = None,
            ("private", Value::Bool(b)) => private = b,
            ("private", Value::Null) => {}
            ("embedding", Value::String(s)) => {
                let v = decode_vector(&s, &format!("records[{i}].embedding"))?;
                // An empty embedding is no embedding, as in LanceDB.
                embedding = (!v.is_empty()).then_some(v);
            }
            ("embedding", Value::Null) => embedding = None,
            (
                k @ ("id" | "content" | "scope" | "categories" | "metadata" | "importance" | "created_at"
                | "created_ts" | "last_accessed" | "source" | "private" | "embedding"),
                v,
            ) => {
                let want = match k {
                    "categories" => "an array of strings",
                    "metadata" => "an object",
                    "importance" | "created_ts" => "a number",
                    "private" => "a boolean",
                    "source" | "embedding" => "a string or null",
                    _ => "a string",
                };
                return Err(field_err(k, want, &v));
            }
            (k, _) => return Err(invalid(format!("records[{i}] has an unknown field {k:?}"))),
        }
    }
    let missing = |k: &str| invalid(format!("records[{i}] lacks the required field {k:?}"));
    let created_at = created_at.ok_or_else(|| missing("created_at"))?;
    let record = Record {
        id: id.ok_or_else(|| missing("id"))?,
        content: content.ok_or_else(|| missing("content"))?,
        scope: scope.unwrap_or_else(|| "/".to_owned()),
        categories,
        metadata,
        importance,
        created_ts: created_ts.ok_or_else(|| missing("created_ts"))?,
        last_accessed: last_accessed.unwrap_or_else(|| created_at.clone()),
        created_at,
        source,
        private,
        has_embedding: embedding.is_some(),
    };
    Ok((record, embedding))
}

fn number(v: &Value, i: usize, key: &str) -> Result<f64, MemError> {
    v.as_f64()
        .filter(|x| x.is_finite())
        // SQLite stores a REAL -0.0 as the integer 0, so the index keeps what
        // a reload will read: +0.0 (adding +0.0 turns -0.0 into +0.0).
        .map(|x| x + 0.0)
        .ok_or_else(|| invalid(format!("records[{i}].{key} is out of range for a double")))
}

// ---------------------------------------------------------------------------
// Records out

fn write_record(out: &mut String, index: &Index, row: usize) {
    let r = index.record(row);
    out.push_str("{\"id\":");
    json::write_string(out, &r.id);
    out.push_str(",\"content\":");
    json::write_string(out, &r.content);
    out.push_str(",\"scope\":");
    json::write_string(out, &r.scope);
    out.push_str(",\"categories\":");
    write_string_array(out, r.categories.iter());
    out.push_str(",\"metadata\":");
    json::write_value(out, &r.metadata);
    out.push_str(",\"importance\":");
    json::write_float(out, r.importance);
    out.push_str(",\"created_at\":");
    json::write_string(out, &r.created_at);
    out.push_str(",\"created_ts\":");
    json::write_float(out, r.created_ts);
    out.push_str(",\"last_accessed\":");
    json::write_string(out, &r.last_accessed);
    out.push_str(",\"source\":");
    match &r.source {
        Some(s) => json::write_string(out, s),
        None => out.push_str("null"),
    }
    out.push_str(",\"private\":");
    out.push_str(if r.private { "true" } else { "false" });
    out.push_str(",\"embedding\":");
    match index.embedding(row) {
        Some(v) => encode_vector(out, v),
        None => out.push_str("null"),
    }
    out.push('}');
}

fn write_string_array<'a>(out: &mut String, items: impl Iterator<Item = &'a String>) {
    out.push('[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_string(out, s);
    }
    out.push(']');
}

fn write_hits(index: &Index, hits: &[(usize, f64)]) -> String {
    let mut out = String::from("[");
    for (i, &(row, score)) in hits.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        write_record(&mut out, index, row);
        out.push(',');
        json::write_float(&mut out, score);
        out.push(']');
    }
    out.push(']');
    out
}

fn write_rows(index: &Index, rows: impl Iterator<Item = usize>) -> String {
    let mut out = String::from("[");
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_record(&mut out, index, row);
    }
    out.push(']');
    out
}

// ---------------------------------------------------------------------------
// Scopes and filters

/// The effective form of a scope prefix: trailing `/` removed, `None` when
/// that leaves nothing (no scope constraint).
fn scope_prefix(prefix: Option<&str>) -> Option<&str> {
    let p = prefix?.trim_end_matches('/');
    (!p.is_empty()).then_some(p)
}

/// Whether `scope` is `prefix` or lies below it (by path segment).
fn in_scope(scope: &str, prefix: &str) -> bool {
    scope.starts_with(prefix) && (scope.len() == prefix.len() || scope.as_bytes()[prefix.len()] == b'/')
}

#[derive(Debug, Default)]
struct Filter {
    scope: Option<String>,
    categories: Option<Vec<String>>,
    metadata: Vec<(String, Value)>,
    ids: Option<Vec<String>>,
    older_than: Option<f64>,
}

fn string_list(value: Value, what: &str) -> Result<Vec<String>, MemError> {
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "filter.{what} must be an array of strings, not {}",
            value.type_name()
        )));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(j, v)| match v {
            Value::String(s) => Ok(s),
            other => Err(invalid(format!(
                "filter.{what}[{j}] must be a string, not {}",
                other.type_name()
            ))),
        })
        .collect()
}

impl Filter {
    fn parse(text: &str) -> Result<Filter, MemError> {
        let Value::Object(members) = parse_json(text, "filter")? else {
            return Err(invalid("filter must be a JSON object"));
        };
        let mut f = Filter::default();
        for (key, value) in members {
            if value == Value::Null {
                continue;
            }
            match key.as_str() {
                "scope_prefix" => match value {
                    Value::String(s) => f.scope = scope_prefix(Some(&s)).map(str::to_owned),
                    other => {
                        return Err(invalid(format!(
                            "filter.scope_prefix must be a string, not {}",
                            other.type_name()
                        )))
                    }
                },
                "categories" => f.categories = Some(string_list(value, "categories")?),
                "ids" => f.ids = Some(string_list(value, "ids")?),
                "metadata" => match value {
                    Value::Object(m) => f.metadata = m,
                    other => {
                        return Err(invalid(format!(
                            "filter.metadata must be an object, not {}",
                            other.type_name()
                        )))
                    }
                },
                "older_than" => {
                    f.older_than = Some(value.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                        invalid(format!(
                            "filter.older_than must be a number (seconds since the epoch), \
                                 not {}",
                            value.type_name()
                        ))
                    })?)
                }
                other => return Err(invalid(format!("filter has an unknown member {other:?}"))),
            }
        }
        Ok(f)
    }

    fn scope(scope: Option<&str>) -> Filter {
        Filter {
            scope: scope_prefix(scope).map(str::to_owned),
            ..Filter::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.scope.is_none()
            && self.categories.is_none()
            && self.metadata.is_empty()
            && self.ids.is_none()
            && self.older_than.is_none()
    }

    /// The filter prepared against `index`: the scope prefix is decided
    /// once per distinct scope.
    fn matcher<'a>(&'a self, index: &'a Index) -> Matcher<'a> {
        Matcher {
            filter: self,
            index,
            scope_ok: self
                .scope
                .as_ref()
                .map(|p| index.scope_names().iter().map(|s| in_scope(s, p)).collect()),
            check_record: self.categories.is_some() || !self.metadata.is_empty(),
        }
    }

    /// The matching rows, ascending.
    fn rows(&self, index: &Index) -> Vec<usize> {
        let m = self.matcher(index);
        match self.candidate_rows(index) {
            Some(rows) => rows.into_iter().filter(|&row| m.matches(row)).collect(),
            None => (0..index.len()).filter(|&row| m.matches(row)).collect(),
        }
    }

    /// The rows `ids` allows (ascending), `None` for all; the other members
    /// are applied by [`Matcher::matches`].
    fn candidate_rows(&self, index: &Index) -> Option<Vec<usize>> {
        self.ids.as_ref().map(|ids| {
            let mut rows: Vec<usize> = ids.iter().filter_map(|id| index.row_of(id)).collect();
            rows.sort_unstable();
            rows.dedup();
            rows
        })
    }
}

/// A [`Filter`] prepared for one pass over an index.
struct Matcher<'a> {
    filter: &'a Filter,
    index: &'a Index,
    /// Per scope id, whether the scope lies under the prefix.
    scope_ok: Option<Vec<bool>>,
    /// Whether `categories` or `metadata` need the record itself.
    check_record: bool,
}

impl Matcher<'_> {
    /// Every member but `ids` (see [`Filter::candidate_rows`]).
    fn matches(&self, row: usize) -> bool {
        if let Some(ok) = &self.scope_ok {
            if !ok[self.index.scope_id(row)] {
                return false;
            }
        }
        if let Some(t) = self.filter.older_than {
            if self.index.created_ts(row) >= t {
                return false;
            }
        }
        if !self.check_record {
            return true;
        }
        let r = self.index.record(row);
        if let Some(cats) = &self.filter.categories {
            if !cats.iter().any(|c| r.categories.contains(c)) {
                return false;
            }
        }
        self.filter.metadata.iter().all(|(k, want)| match r.metadata.get(k) {
            Some(have) => json_eq(have, want),
            None => *want == Value::Null,
        })
    }
}

/// JSON equality: numbers by value (an integer equals a float of the same
/// value, exactly), objects regardless of member order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| k == k2 && json_eq(v, v2)))
        }
        _ => false,
    }
}

fn number_eq(a: &Number, b: &Number) -> bool {
    match (a, b) {
        // The parser keeps integers canonical (no leading zeros, no "-0").
        (Number::Integer(x), Number::Integer(y)) => x == y,
        (Number::Float(x), Number::Float(y)) => x == y,
        (Number::Integer(i), Number::Float(f)) | (Number::Float(f), Number::Integer(i)) => {
            if f.fract() != 0.0 {
                return false;
            }
            // `{:.0}` writes a float's exact integer value.
            let text = format!("{f:.0}");
            let text = if text == "-0" { "0" } else { text.as_str() };
            text == i
        }
    }
}

// ---------------------------------------------------------------------------
// Ranking

/// A vector-search candidate; orders best (smallest distance, then earliest
/// insertion) first.
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

/// A text-search candidate; orders best (highest score, then earliest
/// insertion) first.
#[derive(PartialEq)]
struct Scored {
    score: f64,
    seq: i64,
    row: usize,
}

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.score.total_cmp(&self.score).then(self.seq.cmp(&other.seq))
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
fn vector_top_k(index: &Index, q: &[f32], filter: &Filter, k: usize, min_score: f64) -> Vec<(usize, f64)> {
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
fn vector_top_k_quantized(
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
    let mut visit = |row: usize| {
        if !trivial && !matcher.matches(row) {
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
fn vector_top_k_exact(index: &Index, q: &[f32], filter: &Filter, k: usize, min_score: f64) -> Vec<(usize, f64)> {
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
    let mut visit = |row: usize| {
        if !trivial && !matcher.matches(row) {
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
fn text_top_k(index: &Index, query: &str, filter: &Filter, k: usize) -> Vec<(usize, f64)> {
    if k == 0 {
        return Vec::new();
    }
    let hits = index.text().score(query);
    let matcher = filter.matcher(index);
    let candidates: Option<HashSet<usize>> = filter.candidate_rows(index).map(|rows| rows.into_iter().collect());
    let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k.min(hits.len()));
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
        offer(&mut heap, k, Scored { score, seq, row });
    }
    heap.into_sorted_vec().into_iter().map(|s| (s.row, s.score)).collect()
}

// ---------------------------------------------------------------------------
// The store

/// An open memory store: the SQLite connection and the in-memory index.
pub struct Store {
    conn: Connection,
    index: Index,
    /// `PRAGMA data_version` when `index` was last loaded; `i64::MIN` forces
    /// a reload.
    data_version: i64,
    /// How many times the index was (re)loaded from the file.
    loads: u64,
}

/// Reloads `index`, in one read transaction, when another connection
/// committed since its load (or when `version` is `i64::MIN`).
fn sync(conn: &mut Connection, index: &mut Index, version: &mut i64, loads: &mut u64) -> Result<(), MemError> {
    if persist::data_version(conn)? == *version {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    reload(&tx, index, version, loads)?;
    tx.commit()?;
    Ok(())
}

fn reload(conn: &Connection, index: &mut Index, version: &mut i64, loads: &mut u64) -> Result<(), MemError> {
    *loads += 1;
    // Free the old index first (the memory may not hold two), and leave the
    // version invalid until the new one is complete, so that a failed reload
    // is retried by the next call.
    *index = Index::default();
    *version = i64::MIN;
    let new_index = persist::load(conn)?;
    let new_version = persist::data_version(conn)?;
    *index = new_index;
    *version = new_version;
    Ok(())
}

/// Starts a write transaction, holding the database's write lock, with the
/// index brought up to date inside it.
fn begin_write<'c>(
    conn: &'c mut Connection,
    index: &mut Index,
    version: &mut i64,
    loads: &mut u64,
) -> Result<Transaction<'c>, MemError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if persist::data_version(&tx)? != *version {
        reload(&tx, index, version, loads)?;
    }
    Ok(tx)
}

impl Store {
    /// Opens (creating when missing) the store in the SQLite file at `path`.
    pub fn open(path: &str) -> Result<Store, MemError> {
        if path.is_empty() {
            return Err(invalid("path is empty"));
        }
        if path.contains('\0') {
            return Err(invalid("path contains a NUL character"));
        }
        let mut store = Store {
            conn: persist::open(path)?,
            index: Index::default(),
            data_version: i64::MIN,
            loads: 0,
        };
        store.sync()?;
        Ok(store)
    }

    fn sync(&mut self) -> Result<(), MemError> {
        sync(&mut self.conn, &mut self.index, &mut self.data_version, &mut self.loads)
    }

    /// Inserts or replaces (by id) a JSON array of records; returns how many
    /// were written.
    pub fn save(&mut self, records: &str) -> Result<u32, MemError> {
        let batch = parse_records(records)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let tx = begin_write(&mut self.conn, &mut self.index, &mut self.data_version, &mut self.loads)?;
        let index = &mut self.index;
        // Every embedding must have the store's dimension, or, in a store
        // without one yet, that of the batch's first embedding.
        let mut expected = index.dim();
        for e in batch.iter().filter_map(|(_, e)| e.as_ref()) {
            match expected {
                None => expected = Some(e.len()),
                Some(d) if d != e.len() => return Err(mismatch(d, e.len())),
                Some(_) => {}
            }
        }
        let new_dim = if index.dim().is_none() { expected } else { None };
        let fresh: HashSet<&str> = batch
            .iter()
            .map(|(r, _)| r.id.as_str())
            .filter(|id| index.row_of(id).is_none())
            .collect();
        index.reserve(index.len() + fresh.len(), index.dim().or(new_dim))?;
        if let Some(d) = new_dim {
            persist::set_dimension(&tx, d)?;
        }
        let mut seqs = Vec::with_capacity(batch.len());
        for (record, embedding) in &batch {
            seqs.push(persist::put(&tx, record, embedding.as_deref())?);
        }
        tx.commit()?;
        if let Some(d) = new_dim {
            index.set_dim(d);
        }
        let written = batch.len();
        for ((record, embedding), seq) in batch.into_iter().zip(seqs) {
            index.upsert(record, embedding.as_deref(), seq);
        }
        Ok(u32::try_from(written).unwrap_or(u32::MAX))
    }

    /// Exact top-`limit` vector search; JSON `[[record, score], ...]`.
    pub fn search(&mut self, query: &str, filter: &str, limit: u32, min_score: f64) -> Result<String, MemError> {
        if min_score.is_nan() {
            return Err(invalid("min-score is NaN"));
        }
        let q = decode_vector(query, "query")?;
        let filter = Filter::parse(filter)?;
        let Some(dim) = self.index.dim() else {
            return Ok("[]".to_owned());
        };
        if q.len() != dim {
            return Err(mismatch(dim, q.len()));
        }
        let hits = vector_top_k(&self.index, &q, &filter, limit as usize, min_score);
        Ok(write_hits(&self.index, &hits))
    }

    /// BM25 search of `content`; JSON `[[record, score], ...]`.
    pub fn search_text(&mut self, query: &str, filter: &str, limit: u32) -> Result<String, MemError> {
        let filter = Filter::parse(filter)?;
        let hits = text_top_k(&self.index, query, &filter, limit as usize);
        Ok(write_hits(&self.index, &hits))
    }

    /// Deletes the records matching `filter` (`{}` deletes all); returns how
    /// many.
    pub fn delete(&mut self, filter: &str) -> Result<u32, MemError> {
        let filter = Filter::parse(filter)?;
        self.delete_where(&filter, false)
    }

    fn delete_where(&mut self, filter: &Filter, forget_dim: bool) -> Result<u32, MemError> {
        let tx = begin_write(&mut self.conn, &mut self.index, &mut self.data_version, &mut self.loads)?;
        let index = &mut self.index;
        if filter.is_empty() {
            let n = index.len();
            persist::delete_all(&tx, forget_dim)?;
            tx.commit()?;
            index.clear(forget_dim);
            return Ok(u32::try_from(n).unwrap_or(u32::MAX));
        }
        let rows = filter.rows(index);
        if rows.is_empty() {
            return Ok(0);
        }
        for &row in &rows {
            persist::delete_seq(&tx, index.seq(row))?;
        }
        tx.commit()?;
        let n = rows.len();
        index.remove_rows(rows);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The record with this id as JSON.
    pub fn get(&mut self, id: &str) -> Result<Option<String>, MemError> {
        Ok(self.index.row_of(id).map(|row| {
            let mut out = String::new();
            write_record(&mut out, &self.index, row);
            out
        }))
    }

    /// Records under `scope_prefix`, newest `created_ts` first (then latest
    /// insertion first), paged.
    pub fn list(&mut self, scope_prefix: Option<&str>, limit: u32, offset: u32) -> Result<String, MemError> {
        let index = &self.index;
        let mut rows = Filter::scope(scope_prefix).rows(index);
        let newest_first = |a: &usize, b: &usize| {
            index
                .record(*b)
                .created_ts
                .total_cmp(&index.record(*a).created_ts)
                .then(index.seq(*b).cmp(&index.seq(*a)))
        };
        let end = (offset as usize).saturating_add(limit as usize);
        if end < rows.len() {
            rows.select_nth_unstable_by(end, newest_first);
            rows.truncate(end);
        }
        rows.sort_unstable_by(newest_first);
        Ok(write_rows(
            index,
            rows.into_iter().skip(offset as usize).take(limit as usize),
        ))
    }

    /// `{"record_count", "categories", "oldest", "newest", "child_scopes"}`
    /// for `scope` and everything below it.
    pub fn scope_info(&mut self, scope: &str) -> Result<String, MemError> {
        let index = &self.index;
        let prefix = scope.trim_end_matches('/');
        let child_prefix = format!("{prefix}/");
        let mut count = 0u64;
        let mut categories: BTreeSet<&String> = BTreeSet::new();
        let mut children: BTreeSet<&str> = BTreeSet::new();
        let mut oldest: Option<(f64, i64, usize)> = None;
        let mut newest: Option<(f64, i64, usize)> = None;
        for (row, r) in index.records().iter().enumerate() {
            if !prefix.is_empty() && !in_scope(&r.scope, prefix) {
                continue;
            }
            count += 1;
            categories.extend(r.categories.iter());
            if let Some(rest) = r.scope.strip_prefix(&child_prefix) {
                let first = rest.split('/').next().unwrap_or("");
                if !first.is_empty() {
                    children.insert(&r.scope[..child_prefix.len() + first.len()]);
                }
            }
            let key = (r.created_ts, index.seq(row), row);
            let older = |a: &(f64, i64, usize), b: &(f64, i64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt();
            if oldest.is_none_or(|o| older(&key, &o)) {
                oldest = Some(key);
            }
            if newest.is_none_or(|n| older(&n, &key)) {
                newest = Some(key);
            }
        }
        let mut out = String::from("{\"record_count\":");
        out.push_str(&count.to_string());
        out.push_str(",\"categories\":");
        write_string_array(&mut out, categories.into_iter());
        for (name, end) in [("oldest", oldest), ("newest", newest)] {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            match end {
                Some((_, _, row)) => json::write_string(&mut out, &index.record(row).created_at),
                None => out.push_str("null"),
            }
        }
        out.push_str(",\"child_scopes\":[");
        for (i, c) in children.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_string(&mut out, c);
        }
        out.push_str("]}");
        Ok(out)
    }

    /// The immediate child scopes of `parent`, sorted.
    pub fn list_scopes(&mut self, parent: &str) -> Result<String, MemError> {
        let prefix = format!("{}/", parent.trim_end_matches('/'));
        let mut children: BTreeSet<&str> = BTreeSet::new();
        for r in self.index.records() {
            if let Some(rest) = r.scope.strip_prefix(&prefix) {
                let first = rest.split('/').next().unwrap_or("");
                if !first.is_empty() {
                    children.insert(&r.scope[..prefix.len() + first.len()]);
                }
            }
        }
        let mut out = String::from("[");
        for (i, c) in children.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_string(&mut out, c);
        }
        out.push(']');
        Ok(out)
    }

    /// `{category: number of records having it}` under `scope_prefix`,
    /// keys sorted.
    pub fn list_categories(&mut self, scope_prefix: Option<&str>) -> Result<String, MemError> {
        let filter = Filter::scope(scope_prefix);
        let matcher = filter.matcher(&self.index);
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut seen: Vec<&str> = Vec::new();
        for (row, r) in self.index.records().iter().enumerate() {
            if !matcher.matches(row) {
                continue;
            }
            seen.clear();
            for c in &r.categories {
                if !seen.contains(&c.as_str()) {
                    seen.push(c);
                    *counts.entry(c).or_insert(0) += 1;
                }
            }
        }
        let mut out = String::from("{");
        for (i, (c, n)) in counts.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_string(&mut out, c);
            out.push(':');
            out.push_str(&n.to_string());
        }
        out.push('}');
        Ok(out)
    }

    /// How many records lie under `scope_prefix` (all when absent or `/`).
    pub fn count(&mut self, scope_prefix: Option<&str>) -> Result<u64, MemError> {
        let filter = Filter::scope(scope_prefix);
        if filter.is_empty() {
            return Ok(self.index.len() as u64);
        }
        let matcher = filter.matcher(&self.index);
        Ok((0..self.index.len()).filter(|&row| matcher.matches(row)).count() as u64)
    }

    /// Deletes everything under `scope_prefix`; when it is absent (or empty
    /// or `/`), deletes every record and forgets the dimension.
    pub fn reset(&mut self, scope_prefix: Option<&str>) -> Result<(), MemError> {
        let filter = Filter::scope(scope_prefix);
        let forget_dim = filter.is_empty();
        self.delete_where(&filter, forget_dim).map(|_| ())
    }

    /// Sets `last_accessed` to `at` for the given ids (a JSON array of
    /// strings); returns how many distinct ids exist.
    pub fn touch(&mut self, ids: &str, at: &str) -> Result<u32, MemError> {
        let ids = match parse_json(ids, "ids")? {
            v @ Value::Array(_) => string_list(v, "ids").map_err(|_| invalid("ids must be a JSON array of strings"))?,
            _ => return Err(invalid("ids must be a JSON array of strings")),
        };
        let tx = begin_write(&mut self.conn, &mut self.index, &mut self.data_version, &mut self.loads)?;
        let index = &mut self.index;
        let mut rows: Vec<usize> = ids.iter().filter_map(|id| index.row_of(id)).collect();
        rows.sort_unstable();
        rows.dedup();
        if rows.is_empty() {
            return Ok(0);
        }
        for &row in &rows {
            persist::touch(&tx, index.seq(row), at)?;
        }
        tx.commit()?;
        for &row in &rows {
            index.set_last_accessed(row, at);
        }
        Ok(u32::try_from(rows.len()).unwrap_or(u32::MAX))
    }

    /// The store's vector dimension, if one has been saved.
    pub fn dimension(&mut self) -> Option<u32> {
        self.index.dim().and_then(|d| u32::try_from(d).ok())
    }

    /// Reloads the index when another connection committed since it was
    /// loaded; returns whether it did.
    pub fn refresh(&mut self) -> Result<bool, MemError> {
        let loads = self.loads;
        self.sync()?;
        Ok(self.loads != loads)
    }

    #[cfg(test)]
    fn check(&self) {
        self.index.check();
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::RefCell;

    use super::{MemError, Store as Inner};
    use crate::bindings::exports::fast_crewai::core::memory_search::{Dimensions, Error, Guest, GuestStore, Store};

    impl From<MemError> for Error {
        fn from(err: MemError) -> Self {
            match err {
                MemError::InvalidInput(m) => Error::InvalidInput(m),
                MemError::DimensionMismatch { stored, given } => Error::DimensionMismatch(Dimensions { stored, given }),
                MemError::Capacity(m) => Error::Capacity(m),
                MemError::Storage(m) => Error::Storage(m),
            }
        }
    }

    /// The resource's representation. Methods take `&self`; the core is
    /// single-threaded and never re-entered, so the `RefCell` is never
    /// contended.
    pub struct StoreResource(RefCell<Inner>);

    impl StoreResource {
        fn with<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T, MemError>) -> Result<T, Error> {
            let mut inner = self
                .0
                .try_borrow_mut()
                .map_err(|_| Error::Storage("the store is already in use".into()))?;
            Ok(f(&mut inner)?)
        }
    }

    impl Guest for crate::Core {
        type Store = StoreResource;
    }

    impl GuestStore for StoreResource {
        fn open(path: String) -> Result<Store, Error> {
            let inner = Inner::open(&path)?;
            Ok(Store::new(StoreResource(RefCell::new(inner))))
        }

        fn save(&self, records: String) -> Result<u32, Error> {
            self.with(|s| s.save(&records))
        }

        fn search(&self, query: String, filter: String, limit: u32, min_score: f64) -> Result<String, Error> {
            self.with(|s| s.search(&query, &filter, limit, min_score))
        }

        fn search_text(&self, query: String, filter: String, limit: u32) -> Result<String, Error> {
            self.with(|s| s.search_text(&query, &filter, limit))
        }

        fn delete(&self, filter: String) -> Result<u32, Error> {
            self.with(|s| s.delete(&filter))
        }

        fn get(&self, id: String) -> Result<Option<String>, Error> {
            self.with(|s| s.get(&id))
        }

        fn refresh(&self) -> Result<bool, Error> {
            self.with(|s| s.refresh())
        }

        fn list(&self, scope_prefix: Option<String>, limit: u32, offset: u32) -> Result<String, Error> {
            self.with(|s| s.list(scope_prefix.as_deref(), limit, offset))
        }

        fn scope_info(&self, scope: String) -> Result<String, Error> {
            self.with(|s| s.scope_info(&scope))
        }

        fn list_scopes(&self, parent: String) -> Result<String, Error> {
            self.with(|s| s.list_scopes(&parent))
        }

        fn list_categories(&self, scope_prefix: Option<String>) -> Result<String, Error> {
            self.with(|s| s.list_categories(scope_prefix.as_deref()))
        }

        fn count(&self, scope_prefix: Option<String>) -> Result<u64, Error> {
            self.with(|s| s.count(scope_prefix.as_deref()))
        }

        fn reset(&self, scope_prefix: Option<String>) -> Result<(), Error> {
            self.with(|s| s.reset(scope_prefix.as_deref()))
        }

        fn touch(&self, ids: String, at: String) -> Result<u32, Error> {
            self.with(|s| s.touch(&ids, &at))
        }

        fn dimension(&self) -> Option<u32> {
            self.0.try_borrow_mut().ok().and_then(|mut s| s.dimension())
        }
    }
}

#[cfg(test)]
mod tests;
