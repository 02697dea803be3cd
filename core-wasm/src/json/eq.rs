//! JSON equality, as the memory store's metadata filters and the tool
//! guard's `enum`/`const` checks compare values.

use super::{Number, Value};

/// Exact JSON equality: numbers by mathematical value (`1 == 1.0`, exactly:
/// 2^53 + 1 does not equal the double 2^53), booleans apart from numbers,
/// objects regardless of member order (the reader keeps keys unique).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| b.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => false,
    }
}

fn number_eq(a: &Number, b: &Number) -> bool {
    match (a, b) {
        // The reader keeps integers canonical (no leading zeros, no "-0").
        (Number::Integer(x), Number::Integer(y)) => x == y,
        (Number::Float(x), Number::Float(y)) => x == y,
        (Number::Integer(i), Number::Float(f)) | (Number::Float(f), Number::Integer(i)) => {
            if !f.is_finite() || f.fract() != 0.0 {
                return false;
            }
            // `{:.0}` writes an integral double's exact digits.
            let digits = format!("{f:.0}");
            let digits = if digits == "-0" { "0" } else { &digits };
            digits == i
        }
    }
}
