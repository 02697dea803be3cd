//! Parameters and values crossing the boundary as JSON: `{"$blob": base64}`
//! for blobs, `{"$real": "inf"}` for infinities.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::ToSql;
use std::fmt::Write as _;

use super::SqlError;
use crate::json::{self, Number, Value};

/// Parameters in their two shapes.
pub(super) enum Params {
    Positional(Vec<SqlValue>),
    /// Names without their sigil (`:`, `@` or `$`).
    Named(Vec<(String, SqlValue)>),
}

pub(super) fn parse_params(text: &str) -> Result<Params, SqlError> {
    if text.is_empty() {
        return Ok(Params::Positional(Vec::new()));
    }
    let value = json::parse(text).map_err(|e| SqlError::Misuse(format!("parameters: {}", e.message)))?;
    params_from_value(&value)
}

pub(super) fn params_from_value(value: &Value) -> Result<Params, SqlError> {
    match value {
        Value::Array(items) => Ok(Params::Positional(
            items.iter().map(sql_value).collect::<Result<_, _>>()?,
        )),
        Value::Object(members) => {
            let mut named: Vec<(String, SqlValue)> = Vec::with_capacity(members.len());
            for (key, item) in members {
                let name = key.strip_prefix([':', '@', '$']).unwrap_or(key);
                if named.iter().any(|(k, _)| k == name) {
                    return Err(SqlError::Misuse(format!("parameter {name} is given twice")));
                }
                named.push((name.to_owned(), sql_value(item)?));
            }
            Ok(Params::Named(named))
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
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(members) => match members.as_slice() {
            [(key, Value::String(b64))] if key == "$blob" => SqlValue::Blob(
                BASE64
                    .decode(b64)
                    .map_err(|e| SqlError::Misuse(format!("blob parameter: {e}")))?,
            ),
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
        Params::Named(values) => {
            let mut used = vec![false; values.len()];
            for i in 1..=expected {
                let Some(name) = stmt.parameter_name(i) else {
                    return Err(SqlError::Misuse(
                        "named parameters given to a statement with positional ones".into(),
                    ));
                };
                let Some(found) = values.iter().position(|(k, _)| k == &name[1..]) else {
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

pub(super) fn write_sql_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("null"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
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
