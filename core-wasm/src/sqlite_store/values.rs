//! Parameters and values crossing the boundary as JSON: `{"$blob": base64}`
//! for blobs, `{"$real": "inf"}` for infinities.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::ToSql;
use std::fmt::Write as _;

use super::{SqlError, MAX_VALUE_BYTES};
use crate::json::{self, ErrorKind, Number, Value};

/// Parameters in their two shapes.
pub(super) enum Params {
    Positional(Vec<SqlValue>),
    Named(Named),
}

/// Named parameters in the caller's order, names without their sigil (`:`,
/// `@` or `$`).
pub(super) struct Named {
    values: Vec<(String, SqlValue)>,
    /// Indices of `values` sorted by name, for lookups in long lists (empty
    /// for short ones, which are searched in order).
    by_name: Vec<usize>,
}

impl Named {
    const SEARCHED_IN_ORDER: usize = 16;

    fn new(values: Vec<(String, SqlValue)>) -> Self {
        let mut by_name = Vec::new();
        if values.len() > Self::SEARCHED_IN_ORDER {
            by_name = (0..values.len()).collect();
            by_name.sort_unstable_by(|&a, &b| values[a].0.cmp(&values[b].0));
        }
        Named { values, by_name }
    }

    /// The first name given, if any.
    pub(super) fn first_name(&self) -> Option<&str> {
        self.values.first().map(|(name, _)| name.as_str())
    }

    pub(super) fn position(&self, name: &str) -> Option<usize> {
        if self.by_name.is_empty() {
            return self.values.iter().position(|(k, _)| k == name);
        }
        let found = self
            .by_name
            .binary_search_by(|&i| self.values[i].0.as_str().cmp(name))
            .ok()?;
        Some(self.by_name[found])
    }
}

/// A JSON document of parameters refused by the codec: too large (the
/// document or one object) is `too-large`, anything else is misuse.
pub(super) fn json_error(what: &str, err: json::ParseError) -> SqlError {
    let message = format!("{what}: {}", err.message);
    match err.kind {
        ErrorKind::TooLarge => SqlError::TooLarge(message),
        ErrorKind::Syntax | ErrorKind::TooDeep => SqlError::Misuse(message),
    }
}

pub(super) fn parse_params(text: &str) -> Result<Params, SqlError> {
    if text.is_empty() {
        return Ok(Params::Positional(Vec::new()));
    }
    let value = json::parse(text).map_err(|e| json_error("parameters", e))?;
    params_from_value(&value)
}

pub(super) fn params_from_value(value: &Value) -> Result<Params, SqlError> {
    match value {
        Value::Array(items) => Ok(Params::Positional(
            items.iter().map(sql_value).collect::<Result<_, _>>()?,
        )),
        Value::Object(members) => {
            let names: Vec<&str> = members
                .iter()
                .map(|(key, _)| key.strip_prefix([':', '@', '$']).unwrap_or(key))
                .collect();
            // Faults in the caller's order, as the host checks them.
            let repeat = json::first_repeat(&names, |name| name);
            let mut named: Vec<(String, SqlValue)> = Vec::with_capacity(members.len());
            for (i, (name, (_, item))) in names.iter().zip(members).enumerate() {
                if repeat == Some(i) {
                    return Err(SqlError::Misuse(format!("parameter {name} is given twice")));
                }
                named.push(((*name).to_owned(), sql_value(item)?));
            }
            Ok(Params::Named(Named::new(named)))
        }
        other => Err(SqlError::Misuse(format!(
            "parameters must be an array or an object, got {}",
            other.type_name()
        ))),
    }
}

fn sql_value(value: &Value) -> Result<SqlValue, SqlError> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(Number::Integer(text)) => SqlValue::Integer(
            text.parse()
                .map_err(|_| SqlError::Misuse(format!("integer {text} does not fit in 64 bits")))?,
        ),
        Value::Number(Number::Float(f)) => SqlValue::Real(*f),
        Value::String(s) => SqlValue::Text(within_limit(s.clone(), s.len())?),
        Value::Object(members) => match members.as_slice() {
            [(key, Value::String(b64))] if key == "$blob" => {
                let blob = BASE64
                    .decode(b64)
                    .map_err(|e| SqlError::Misuse(format!("blob parameter: {e}")))?;
                let len = blob.len();
                SqlValue::Blob(within_limit(blob, len)?)
            }
            [(key, Value::String(kind))] if key == "$real" => special_real(kind)?,
            _ => {
                return Err(SqlError::Misuse(
                    "an object parameter must be {\"$blob\": base64} or {\"$real\": \"inf\"|\"-inf\"}".into(),
                ))
            }
        },
        Value::Array(_) => return Err(SqlError::Misuse("a parameter cannot be an array".into())),
    })
}

/// The message for a text or blob parameter past [`MAX_VALUE_BYTES`].
pub fn value_too_large(len: usize) -> String {
    format!("a text or blob parameter of {len} bytes is larger than the limit of {MAX_VALUE_BYTES} bytes")
}

/// `value` if its `len` bytes are within [`MAX_VALUE_BYTES`]; SQLite would
/// refuse it too, but only with "string or blob too big".
fn within_limit<T>(value: T, len: usize) -> Result<T, SqlError> {
    if len > MAX_VALUE_BYTES {
        return Err(SqlError::TooLarge(value_too_large(len)));
    }
    Ok(value)
}

/// JSON has no infinities; they travel as `{"$real": "inf"}` and `"-inf"`.
fn special_real(kind: &str) -> Result<SqlValue, SqlError> {
    match kind {
        "inf" => Ok(SqlValue::Real(f64::INFINITY)),
        "-inf" => Ok(SqlValue::Real(f64::NEG_INFINITY)),
        _ => Err(SqlError::Misuse(format!("unknown special real {kind:?}"))),
    }
}

/// Binds every parameter of `stmt`: positional values by index (also to
/// named parameters, as stdlib sqlite3 does), named values by name without
/// the sigil. A missing value, a surplus value and an unknown name are all
/// refused, so a typo never silently binds NULL.
pub(super) fn bind(stmt: &mut rusqlite::Statement<'_>, params: &Params) -> Result<(), SqlError> {
    stmt.clear_bindings();
    let expected = stmt.parameter_count();
    match params {
        Params::Positional(values) => {
            if values.len() != expected {
                return Err(SqlError::Misuse(format!(
                    "the statement takes {expected} parameters, {} were given",
                    values.len()
                )));
            }
            for (i, value) in values.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, value)?;
            }
        }
        Params::Named(named) => {
            let values = &named.values;
            let mut used = vec![false; values.len()];
            for i in 1..=expected {
                let Some(name) = stmt.parameter_name(i) else {
                    return Err(SqlError::Misuse(
                        "named parameters given to a statement with positional ones".into(),
                    ));
                };
                let Some(found) = named.position(&name[1..]) else {
                    return Err(SqlError::Misuse(format!("no value given for parameter {name}")));
                };
                used[found] = true;
                stmt.raw_bind_parameter(i, &values[found].1 as &dyn ToSql)?;
            }
            if let Some(unused) = used.iter().position(|u| !u) {
                return Err(SqlError::Misuse(format!(
                    "unknown parameter {}: the statement has no such parameter",
                    values[unused].0
                )));
            }
        }
    }
    Ok(())
}

/// `i` in decimal, without the formatting machinery (a scan writes one per
/// integer cell).
fn push_integer(out: &mut String, i: i64) {
    let mut digits = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

pub(super) fn write_sql_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("null"),
        ValueRef::Integer(i) => push_integer(out, i),
        // The shortest digits that round-trip, in exponent form ("1.5e0"):
        // valid JSON, and far cheaper than reshaping them as Python's repr.
        ValueRef::Real(f) if f.is_finite() => {
            let _ = write!(out, "{f:e}");
        }
        ValueRef::Real(f) => out.push_str(if f > 0.0 {
            "{\"$real\":\"inf\"}"
        } else {
            "{\"$real\":\"-inf\"}"
        }),
        ValueRef::Text(bytes) => json::write_string(out, &String::from_utf8_lossy(bytes)),
        ValueRef::Blob(bytes) => {
            out.push_str("{\"$blob\":\"");
            out.push_str(&BASE64.encode(bytes));
            out.push_str("\"}");
        }
    }
}
