//! `message-serde`: strict validation and canonical encoding of agent
//! messages.

use crate::json::{self, ErrorKind, Value, MAX_DOCUMENT_BYTES};

/// The fields of a message, in canonical order.
pub const FIELDS: [&str; 6] = ["id", "sender", "recipient", "content", "timestamp", "metadata"];

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum SerdeError {
    InvalidJson {
        message: String,
        position: usize,
    },
    InvalidMessage {
        message: String,
        field: String,
    },
    /// The input, one object in it, or the canonical output is past a
    /// limit of the codec ([`json::MAX_DOCUMENT_BYTES`], [`json::MAX_MEMBERS`]).
    TooLarge {
        message: String,
    },
    /// Arrays and objects nest deeper than [`json::MAX_DEPTH`].
    TooDeep {
        message: String,
        position: usize,
    },
}

/// Validates a JSON array of messages and returns its canonical text.
pub fn canonicalize_many(text: &str) -> Result<String, SerdeError> {
    let doc = parse(text)?;
    let Value::Array(items) = &doc else {
        return Err(invalid("a batch must be a JSON array of messages", "", &doc));
    };
    let mut out = String::with_capacity(text.len());
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_message(&mut out, item, &format!("[{i}]"))?;
    }
    out.push(']');
    within_limit(out)
}

/// Validates one JSON message and returns its canonical text.
pub fn canonicalize_one(text: &str) -> Result<String, SerdeError> {
    let doc = parse(text)?;
    let mut out = String::with_capacity(text.len());
    write_message(&mut out, &doc, "")?;
    within_limit(out)
}

/// The canonical text, if it can cross back: it may be longer than its
/// input (`1e15` becomes `1000000000000000.0`).
fn within_limit(out: String) -> Result<String, SerdeError> {
    if out.len() > MAX_DOCUMENT_BYTES {
        return Err(SerdeError::TooLarge {
            message: format!(
                "the canonical form is {} bytes, more than the limit of {MAX_DOCUMENT_BYTES} bytes",
                out.len()
            ),
        });
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Value, SerdeError> {
    json::parse(text).map_err(|e| match e.kind {
        ErrorKind::Syntax => SerdeError::InvalidJson {
            message: e.message,
            position: e.position,
        },
        ErrorKind::TooLarge => SerdeError::TooLarge { message: e.message },
        ErrorKind::TooDeep => SerdeError::TooDeep {
            message: e.message,
            position: e.position,
        },
    })
}

fn path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn invalid(message: &str, field: &str, got: &Value) -> SerdeError {
    SerdeError::InvalidMessage {
        message: format!("{message}, got {}", got.type_name()),
        field: field.to_owned(),
    }
}

fn write_message(out: &mut String, value: &Value, prefix: &str) -> Result<(), SerdeError> {
    let Value::Object(members) = value else {
        return Err(invalid("a message must be a JSON object", prefix, value));
    };
    if let Some((unknown, _)) = members.iter().find(|(k, _)| !FIELDS.contains(&k.as_str())) {
        return Err(SerdeError::InvalidMessage {
            message: format!("unknown field {unknown:?}"),
            field: path(prefix, unknown),
        });
    }
    out.push('{');
    for (i, field) in FIELDS.iter().enumerate() {
        let field_path = path(prefix, field);
        let Some(item) = value.get(field) else {
            return Err(SerdeError::InvalidMessage {
                message: "missing field".to_owned(),
                field: field_path,
            });
        };
        let ok = match (*field, item) {
            ("timestamp", Value::Number(_)) => true,
            ("timestamp", _) => return Err(invalid("timestamp must be a number", &field_path, item)),
            ("metadata", Value::Object(_)) => true,
            ("metadata", _) => return Err(invalid("metadata must be an object", &field_path, item)),
            (_, Value::String(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(invalid(&format!("{field} must be a string"), &field_path, item));
        }
        if i > 0 {
            out.push(',');
        }
        json::write_string(out, field);
        out.push(':');
        json::write_value(out, item);
    }
    out.push('}');
    Ok(())
}

#[cfg(target_arch = "wasm32")]
mod component {
    use super::SerdeError;
    use crate::bindings::exports::fast_crewai::core::message_serde::{Error, Guest, Problem};

    impl From<SerdeError> for Error {
        fn from(err: SerdeError) -> Self {
            match err {
                SerdeError::InvalidJson { message, position } => Error::InvalidJson(Problem {
                    message,
                    field: None,
                    position: Some(position as u64),
                }),
                SerdeError::InvalidMessage { message, field } => Error::InvalidMessage(Problem {
                    message,
                    field: Some(field),
                    position: None,
                }),
                SerdeError::TooLarge { message } => Error::TooLarge(Problem {
                    message,
                    field: None,
                    position: None,
                }),
                SerdeError::TooDeep { message, position } => Error::TooDeep(Problem {
                    message,
                    field: None,
                    position: Some(position as u64),
                }),
            }
        }
    }

    impl Guest for crate::Core {
        fn canonicalize_many(messages: String) -> Result<String, Error> {
            Ok(super::canonicalize_many(&messages)?)
        }

        fn canonicalize_one(message: String) -> Result<String, Error> {
            Ok(super::canonicalize_one(&message)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = r#"{"metadata":{"n":12345678901234567890,"f":0.1},"content":"hi 😀","recipient":"b","sender":"a","id":"1","timestamp":1.5}"#;

    #[test]
    fn canonical_order_and_values() {
        assert_eq!(
            canonicalize_one(MSG).unwrap(),
            r#"{"id":"1","sender":"a","recipient":"b","content":"hi 😀","timestamp":1.5,"metadata":{"n":12345678901234567890,"f":0.1}}"#
        );
    }

    #[test]
    fn batch_errors_name_the_field() {
        let batch = format!("[{MSG},{}]", MSG.replace(r#""sender":"a","#, ""));
        assert_eq!(
            canonicalize_many(&batch),
            Err(SerdeError::InvalidMessage {
                message: "missing field".into(),
                field: "[1].sender".into()
            })
        );
        let wrong = MSG.replace(r#""timestamp":1.5"#, r#""timestamp":"x""#);
        let Err(SerdeError::InvalidMessage { field, .. }) = canonicalize_one(&wrong) else {
            panic!()
        };
        assert_eq!(field, "timestamp");
        let extra = MSG.replace(r#""id":"1""#, r#""id":"1","x":1"#);
        let Err(SerdeError::InvalidMessage { field, .. }) = canonicalize_one(&extra) else {
            panic!()
        };
        assert_eq!(field, "x");
    }

    #[test]
    fn limits_have_their_own_kinds() {
        let deep = MSG.replace(r#""f":0.1"#, &format!(r#""f":{}{}"#, "[".repeat(300), "]".repeat(300)));
        assert_eq!(
            canonicalize_one(&deep),
            Err(SerdeError::TooDeep {
                message: format!("arrays and objects nested more than {} deep", json::MAX_DEPTH),
                // The message and its metadata are the first two levels.
                position: deep.find('[').unwrap() + json::MAX_DEPTH - 2,
            })
        );
        let keys: Vec<String> = (0..=json::MAX_MEMBERS).map(|i| format!(r#""k{i}":0"#)).collect();
        let wide = MSG.replace(r#""n":12345678901234567890,"f":0.1"#, &keys.join(","));
        assert!(matches!(canonicalize_one(&wide), Err(SerdeError::TooLarge { .. })));
    }

    #[test]
    fn invalid_json_has_a_position() {
        let Err(SerdeError::InvalidJson { position, .. }) = canonicalize_many("[{]") else {
            panic!()
        };
        assert_eq!(position, 2);
    }
}
