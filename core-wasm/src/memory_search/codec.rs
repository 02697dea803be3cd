//! The JSON and vector encodings of records as they cross the boundary:
//! records in (base64 float32 embeddings) and records out (hex embeddings).

use base64::Engine as _;

use super::constants::constants;
use super::filter::rooted_scope;
use super::index::{Index, Record};
use super::{invalid, parse_json, MemError};
use crate::json::{self, Number, Value};

/// anything but finite numbers.
pub(super) fn decode_vector(text: &str, what: &str) -> Result<Vec<f32>, MemError> {
    let out = decode_floats(text, what)?;
    check_finite(&out, what)?;
    Ok(out)
}

/// Decodes standard padded base64 of little-endian float32 values.
fn decode_floats(text: &str, what: &str) -> Result<Vec<f32>, MemError> {
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
    out.extend(floats.iter().map(|b| f32::from_le_bytes(*b)));
    Ok(out)
}

fn check_finite(values: &[f32], what: &str) -> Result<(), MemError> {
    match values.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(invalid(format!("{what}[{i}] is {}, not a finite number", values[i]))),
        None => Ok(()),
    }
}

/// Writes `v` as a JSON string of the lowercase hex of its little-endian
/// float32 bytes: what the store returns, because the host turns hex into
/// bytes more cheaply than base64 and a search returns up to `limit` vectors.
pub(super) fn encode_vector(out: &mut String, v: &[f32]) {
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
pub(super) type NewRecord = (Record, Option<Vec<f32>>);

/// The records of `save`: each embedding its own base64 member.
pub(super) fn parse_records(text: &str) -> Result<Vec<NewRecord>, MemError> {
    parse_batch(text, None)
}

/// The records of `save-packed`: each embedding member the count of values
/// the record takes, in order, from the base64 block `vectors`.
pub(super) fn parse_packed_records(text: &str, vectors: &str) -> Result<Vec<NewRecord>, MemError> {
    let mut block = Block {
        values: decode_floats(vectors, "vectors")?,
        taken: 0,
    };
    let batch = parse_batch(text, Some(&mut block))?;
    if block.taken != block.values.len() {
        return Err(invalid(format!(
            "vectors holds {} values, the records take {}",
            block.values.len(),
            block.taken
        )));
    }
    Ok(batch)
}

/// A batch's vector block and how many of its values records took.
struct Block {
    values: Vec<f32>,
    taken: usize,
}

fn parse_batch(text: &str, mut block: Option<&mut Block>) -> Result<Vec<NewRecord>, MemError> {
    let Value::Array(items) = parse_json(text, "records")? else {
        return Err(invalid("records must be a JSON array of record objects"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        out.push(parse_record(item, i, block.as_deref_mut())?);
    }
    Ok(out)
}

/// The embedding a packed record takes: `count` values from `block`.
fn take_embedding(block: &mut Block, count: &Value, i: usize) -> Result<Option<Vec<f32>>, MemError> {
    let what = format!("records[{i}].embedding");
    let count = match count {
        Value::Number(Number::Integer(n)) => n.parse::<usize>().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(format!("{what} must be the count of its values in vectors, or null")))?;
    let end = block.taken.checked_add(count).filter(|&end| end <= block.values.len());
    let Some(end) = end else {
        return Err(invalid(format!(
            "{what} takes {count} values, past the {} in vectors",
            block.values.len()
        )));
    };
    let values = &block.values[block.taken..end];
    block.taken = end;
    check_finite(values, &what)?;
    // An empty embedding is no embedding, as in LanceDB.
    Ok((!values.is_empty()).then(|| values.to_vec()))
}

fn parse_record(item: Value, i: usize, mut block: Option<&mut Block>) -> Result<NewRecord, MemError> {
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
            ("embedding", v @ Value::Number(_)) if block.is_some() => {
                if let Some(block) = block.as_deref_mut() {
                    embedding = take_embedding(block, &v, i)?;
                }
            }
            ("embedding", Value::String(s)) if block.is_none() => {
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
                    "embedding" if block.is_some() => "the count of its values in vectors, or null",
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
        scope: scope.map_or_else(|| "/".to_owned(), rooted_scope),
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

pub(super) fn number(v: &Value, i: usize, key: &str) -> Result<f64, MemError> {
    v.as_f64()
        .filter(|x| x.is_finite())
        // SQLite stores a REAL -0.0 as the integer 0, so the index keeps what
        // a reload will read: +0.0 (adding +0.0 turns -0.0 into +0.0).
        .map(|x| x + 0.0)
        .ok_or_else(|| invalid(format!("records[{i}].{key} is out of range for a double")))
}

// ---------------------------------------------------------------------------
// Records out

/// Writes `r` with `embedding` as the store returns records.
fn write_fields(out: &mut String, r: &Record, embedding: Option<&[f32]>) {
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
    match embedding {
        Some(v) => encode_vector(out, v),
        None => out.push_str("null"),
    }
    out.push('}');
}

pub(super) fn write_record(out: &mut String, index: &Index, row: usize) {
    write_fields(out, index.record(row), index.embedding(row));
}

/// Checks that `r`, with an embedding of `dim` elements (`None`: none), is
/// at most `max_record_bytes` as the store returns it, so that every record
/// saved can be read back across the boundary. `scratch` is working space;
/// `what` names the record in the error.
pub(super) fn check_record_size(
    scratch: &mut String,
    r: &Record,
    dim: Option<usize>,
    what: impl FnOnce() -> String,
) -> Result<(), MemError> {
    scratch.clear();
    write_fields(scratch, r, None);
    let len = scratch.len() - "null".len() + dim.map_or("null".len(), |d| 8 * d + 2);
    let limit = constants().max_record_bytes;
    if len as u64 > limit {
        return Err(MemError::RecordTooLarge(format!(
            "{} is {len} bytes as the store returns it (JSON, the embedding as hex), over the limit of {limit}",
            what()
        )));
    }
    Ok(())
}

pub(super) fn write_string_array<'a>(out: &mut String, items: impl Iterator<Item = &'a String>) {
    out.push('[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_string(out, s);
    }
    out.push(']');
}

/// The most a string's JSON literal may take: every byte escaped as
/// `\u00XX`, and the quotes.
fn string_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

/// The most `value`'s JSON may take (see [`string_bound`]).
pub(super) fn value_bound(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(Number::Integer(digits)) => digits.len(),
        // `repr` of a double is at most 24 characters.
        Value::Number(Number::Float(_)) => 32,
        Value::String(s) => string_bound(s),
        Value::Array(items) => items.iter().fold(2, |n, v| n.saturating_add(value_bound(v) + 1)),
        Value::Object(members) => members.iter().fold(2, |n, (k, v)| {
            n.saturating_add(string_bound(k)).saturating_add(value_bound(v) + 2)
        }),
    }
}

/// Bounds on the length of row `row`'s JSON: `(at least, at most)`.
fn record_bounds(index: &Index, row: usize) -> (usize, usize) {
    let r = index.record(row);
    let strings = [&r.id, &r.content, &r.scope, &r.created_at, &r.last_accessed]
        .into_iter()
        .chain(&r.categories)
        .chain(&r.source);
    let vector = index.embedding(row).map_or(4, |v| 8 * v.len() + 2);
    let (mut low, mut high) = (vector, vector.saturating_add(value_bound(&r.metadata)));
    for s in strings {
        low = low.saturating_add(s.len());
        high = high.saturating_add(string_bound(s) + 1);
    }
    // The member names, the two floats and the punctuation (of a hit too).
    (low, high.saturating_add(512))
}

/// A JSON result being written. It is refused once it outgrows what one call
/// may return across the boundary (`max_result_bytes`), and when the core's
/// memory cannot hold it, so that no read ever traps.
pub(super) struct Output {
    text: String,
    limit: usize,
}

impl Output {
    pub(super) fn new() -> Output {
        Output {
            text: String::new(),
            limit: usize::try_from(constants().max_result_bytes).unwrap_or(usize::MAX),
        }
    }

    fn too_large(&self) -> MemError {
        MemError::ResultTooLarge(format!(
            "the result would be over {} bytes, the most one call may return; ask for fewer records",
            self.limit
        ))
    }

    /// Makes room for `bound` more bytes without aborting when memory runs
    /// out.
    fn room(&mut self, bound: usize) -> Result<(), MemError> {
        if self.text.try_reserve(bound).is_err() && self.text.try_reserve_exact(bound).is_err() {
            return Err(MemError::Capacity(format!(
                "not enough memory in the core for a result of {} bytes; ask for fewer records",
                self.text.len().saturating_add(bound)
            )));
        }
        Ok(())
    }

    pub(super) fn push_str(&mut self, s: &str) -> Result<(), MemError> {
        self.room(s.len())?;
        self.text.push_str(s);
        self.check()
    }

    pub(super) fn push_record(&mut self, index: &Index, row: usize) -> Result<(), MemError> {
        let (low, high) = record_bounds(index, row);
        if self.text.len().saturating_add(low) > self.limit {
            return Err(self.too_large());
        }
        self.room(high)?;
        write_record(&mut self.text, index, row);
        self.check()
    }

    /// `score` as JSON (room for it was made with its record).
    pub(super) fn push_score(&mut self, score: f64) {
        json::write_float(&mut self.text, score);
    }

    fn check(&self) -> Result<(), MemError> {
        if self.text.len() > self.limit {
            return Err(self.too_large());
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<String, MemError> {
        self.check()?;
        Ok(self.text)
    }
}

/// A result written whole (scopes, categories), checked against the limit.
pub(super) fn bounded(text: String) -> Result<String, MemError> {
    Output { text, ..Output::new() }.finish()
}

pub(super) fn write_hits(index: &Index, hits: &[(usize, f64)]) -> Result<String, MemError> {
    let mut out = Output::new();
    out.push_str("[")?;
    for (i, &(row, score)) in hits.iter().enumerate() {
        out.push_str(if i > 0 { ",[" } else { "[" })?;
        out.push_record(index, row)?;
        out.push_str(",")?;
        out.push_score(score);
        out.push_str("]")?;
    }
    out.push_str("]")?;
    out.finish()
}

/// `[[id, version, score], ...]` for `hits`.
pub(super) fn write_hit_ids(index: &Index, hits: &[(usize, f64)]) -> Result<String, MemError> {
    let mut out = Output::new();
    out.push_str("[")?;
    for (i, &(row, score)) in hits.iter().enumerate() {
        let id = &index.record(row).id;
        // The id, a version (20 digits) and a score (24 characters at most).
        out.room(string_bound(id).saturating_add(64))?;
        out.text.push_str(if i > 0 { ",[" } else { "[" });
        json::write_string(&mut out.text, id);
        out.text.push(',');
        out.text.push_str(&index.version(row).to_string());
        out.text.push(',');
        json::write_float(&mut out.text, score);
        out.text.push(']');
        out.check()?;
    }
    out.push_str("]")?;
    out.finish()
}

/// `[[version, record] | null, ...]` for `rows`.
pub(super) fn write_versioned(index: &Index, rows: impl Iterator<Item = Option<usize>>) -> Result<String, MemError> {
    let mut out = Output::new();
    out.push_str("[")?;
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push_str(",")?;
        }
        match row {
            Some(row) => {
                out.push_str("[")?;
                out.push_str(&index.version(row).to_string())?;
                out.push_str(",")?;
                out.push_record(index, row)?;
                out.push_str("]")?;
            }
            None => out.push_str("null")?,
        }
    }
    out.push_str("]")?;
    out.finish()
}

pub(super) fn write_rows(index: &Index, rows: impl Iterator<Item = usize>) -> Result<String, MemError> {
    let mut out = Output::new();
    out.push_str("[")?;
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push_str(",")?;
        }
        out.push_record(index, row)?;
    }
    out.push_str("]")?;
    out.finish()
}
