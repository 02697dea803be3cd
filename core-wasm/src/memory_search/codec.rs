//! The JSON and vector encodings of records as they cross the boundary:
//! records in (base64 float32 embeddings) and records out (hex embeddings).

use base64::Engine as _;

use super::filter::rooted_scope;
use super::index::{Index, Record};
use super::{invalid, parse_json, MemError};
use crate::json::{self, Value};

/// anything but finite numbers.
pub(super) fn decode_vector(text: &str, what: &str) -> Result<Vec<f32>, MemError> {
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

pub(super) fn parse_records(text: &str) -> Result<Vec<NewRecord>, MemError> {
    let Value::Array(items) = parse_json(text, "records")? else {
        return Err(invalid("records must be a JSON array of record objects"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        out.push(parse_record(item, i)?);
    }
    Ok(out)
}

pub(super) fn parse_record(item: Value, i: usize) -> Result<NewRecord, MemError> {
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

pub(super) fn write_record(out: &mut String, index: &Index, row: usize) {
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

pub(super) fn write_hits(index: &Index, hits: &[(usize, f64)]) -> String {
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

pub(super) fn write_rows(index: &Index, rows: impl Iterator<Item = usize>) -> String {
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
