//! `tool-guard`: reads the JSON that LLMs write as tool arguments and
//! structured outputs, in one pass, and says which repairs it needed.
//!
//! The contract (mirrored exactly by the Python reference,
//! `fast_crewai/tool_guard/_reference.py`):
//!
//! 1. A text that `json::parse` accepts is returned as parsed, no repairs.
//! 2. Otherwise the lenient reader ([`read`]) tries candidate starts in order
//!    and returns the first that reads: the start of the text when it begins
//!    with `{` or `[`; else the content of the first Markdown code fence,
//!    when that begins with `{` or `[`; then every `{` or `[` of the text in
//!    order, each at or after the point where the previous one failed; when
//!    none reads, the first candidate's failure is reported. A limit
//!    (nesting depth, integer length) ends the read at once.
//! 3. A schema, when given, is checked whole before the text is read
//!    ([`schema`]); violations are field-level errors beside the value.
//!
//! The result crosses the boundary as one JSON text ([`write`]).

pub mod lenient;
pub mod read;
pub mod schema;
pub mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_schema;

/// Why a call failed. Positions are offsets in Unicode code points.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardError {
    /// No value could be read from the text.
    Unreadable { message: String, position: Option<usize> },
    /// The schema cannot be applied.
    InvalidSchema { message: String, position: Option<usize> },
}

/// Reads `text`, validates it against `schema` when one is given, and
/// returns `{"value":…,"repairs":[…]}` (plus `"errors":[…]` with a schema).
pub fn repair(text: &str, schema: Option<&str>) -> Result<String, GuardError> {
    let compiled = schema.map(schema::Schema::compile).transpose()?;
    let read = read::read(text)?;
    let mut out = String::with_capacity(text.len() + 32);
    out.push_str("{\"value\":");
    write::write_value(&mut out, &read.value, false);
    out.push_str(",\"repairs\":[");
    for (i, repair) in read.repairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(repair.name());
        out.push('"');
    }
    out.push(']');
    if let Some(compiled) = compiled {
        let errors = compiled.validate(&read.value)?;
        out.push_str(",\"errors\":[");
        for (i, error) in errors.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"path\":");
            crate::json::write_string(&mut out, &error.path);
            out.push_str(",\"message\":");
            crate::json::write_string(&mut out, &error.message);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    Ok(out)
}

/// Reads `text` as [`repair`] does and returns the canonical text of the
/// value: keys sorted at every level, compact.
pub fn canonicalize(text: &str) -> Result<String, GuardError> {
    let read = read::read(text)?;
    let mut out = String::with_capacity(text.len());
    write::write_value(&mut out, &read.value, true);
    Ok(out)
}

#[cfg(target_arch = "wasm32")]
mod component {
    use super::GuardError;
    use crate::bindings::exports::fast_crewai::core::tool_guard::{Error, Guest, Problem};

    impl From<GuardError> for Error {
        fn from(err: GuardError) -> Self {
            let problem = |message, position: Option<usize>| Problem {
                message,
                position: position.map(|p| p as u64),
            };
            match err {
                GuardError::Unreadable { message, position } => Error::Unreadable(problem(message, position)),
                GuardError::InvalidSchema { message, position } => Error::InvalidSchema(problem(message, position)),
            }
        }
    }

    impl Guest for crate::Core {
        fn repair(text: String) -> Result<String, Error> {
            Ok(super::repair(&text, None)?)
        }

        fn repair_with_schema(text: String, schema: String) -> Result<String, Error> {
            Ok(super::repair(&text, Some(&schema))?)
        }

        fn canonicalize(text: String) -> Result<String, Error> {
            Ok(super::canonicalize(&text)?)
        }
    }
}
