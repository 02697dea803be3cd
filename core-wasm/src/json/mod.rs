//! A strict JSON reader and a canonical writer.
//!
//! Strict where `serde_json` and Python's `json` are lenient: duplicate keys,
//! lone surrogate escapes, `NaN`/`Infinity`, numbers that overflow a double
//! and integers longer than Python will parse are all rejected. Errors carry
//! the offset in Unicode code points, the unit Python reports positions in.
//!
//! Every document is read under three limits ([`MAX_DOCUMENT_BYTES`],
//! [`MAX_DEPTH`], [`MAX_MEMBERS`]) so that no input, however hostile, costs
//! more than time linear (sorting keys: n log n) in its size or exhausts the
//! core's stack; passing one is a [`ErrorKind::TooLarge`] or
//! [`ErrorKind::TooDeep`] error rather than a syntax error. An object's key
//! count and duplicate keys are checked when it closes, as Python's
//! `object_pairs_hook` sees them, so both readers report the same first fault.
//!
//! The writer emits exactly what Python's
//! `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` emits for
//! the same parsed value, so the core and the Python reference agree byte for
//! byte.

mod eq;
mod read;
mod write;

pub use eq::json_eq;
pub use write::{to_string, write_float, write_string, write_string_array, write_value};

/// Arrays and objects nest at most this deep; the bracket that would open
/// one more is rejected rather than recursed into, so a hostile document
/// cannot exhaust the core's stack.
pub const MAX_DEPTH: usize = 256;

/// The most members one object may have: more than any SQLite statement can
/// bind (32,766 parameters) and far more than any agent metadata holds.
pub const MAX_MEMBERS: usize = 65_536;

/// The largest document, in UTF-8 bytes, read or returned across the
/// boundary: wasmtime copies at most 128 MiB out of the guest per call (its
/// default host-call fuel), and 1 MiB of that is left for the envelope.
pub const MAX_DOCUMENT_BYTES: usize = 127 << 20;

/// CPython refuses to convert integer literals longer than this
/// (`sys.int_info.default_max_str_digits`); the core refuses them too so
/// that everything it accepts can be read back in Python.
pub const MAX_INT_DIGITS: usize = 4300;

/// A parsed JSON value. Objects keep their members in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// A JSON number: integers keep their digits, everything else is a double.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// The decimal text of an integer without fraction or exponent.
    Integer(String),
    /// A number written with a fraction or an exponent.
    Float(f64),
}

impl Value {
    /// The member `key` of an object, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The name of this value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The value as a double, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(Number::Float(f)) => Some(*f),
            Value::Number(Number::Integer(text)) => text.parse().ok(),
            _ => None,
        }
    }
}

/// Which rule a rejected document broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not well-formed strict JSON.
    Syntax,
    /// Past [`MAX_DOCUMENT_BYTES`] or [`MAX_MEMBERS`].
    TooLarge,
    /// Past [`MAX_DEPTH`].
    TooDeep,
}

/// Why a document was rejected, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub kind: ErrorKind,
    pub message: String,
    /// Offset of the problem in code points from the start of the input.
    pub position: usize,
}

/// Parses one JSON document of at most [`MAX_DOCUMENT_BYTES`]; whitespace
/// may surround it, nothing else may.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    parse_limited(text, MAX_DOCUMENT_BYTES)
}

/// [`parse`] with another size limit, for inputs that never cross back
/// whole (a batch of records the core splits up).
pub fn parse_limited(text: &str, max_bytes: usize) -> Result<Value, ParseError> {
    if text.len() > max_bytes {
        return Err(ParseError {
            kind: ErrorKind::TooLarge,
            message: too_large_message(text.len(), max_bytes),
            position: 0,
        });
    }
    read::document(text)
}

/// The message for a document of `len` bytes past `max` bytes.
pub fn too_large_message(len: usize, max: usize) -> String {
    format!("the document is {len} bytes, more than the limit of {max} bytes")
}

/// The index of the first item, in order, whose key an earlier item
/// already has. Sorting indices by key costs O(n log n) for any n; small
/// lists, nearly all of them, are compared pairwise.
pub fn first_repeat<T>(items: &[T], key: impl Fn(&T) -> &str) -> Option<usize> {
    const PAIRWISE: usize = 16;
    if items.len() <= PAIRWISE {
        return (1..items.len()).find(|&i| items[..i].iter().any(|earlier| key(earlier) == key(&items[i])));
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|&a, &b| key(&items[a]).cmp(key(&items[b])).then(a.cmp(&b)));
    // In a run of equal keys, every index after the run's first repeats it.
    order
        .windows(2)
        .filter(|pair| key(&items[pair[0]]) == key(&items[pair[1]]))
        .map(|pair| pair[1])
        .min()
}

#[cfg(test)]
mod tests;
