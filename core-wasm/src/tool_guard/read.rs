//! Where in an LLM's text the value starts: the whole text, a Markdown code
//! fence, or an object or array inside prose. Each candidate start is read
//! by [`Lenient`]; the first that reads wins.

use super::lenient::{Fail, Lenient};
use super::GuardError;
use crate::json::{self, Value};

/// A repair the reader applied. The names are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    Fence,
    Extract,
    Comment,
    SingleQuotes,
    UnquotedKey,
    UnquotedValue,
    PythonLiteral,
    TrailingComma,
    MissingComma,
    Number,
    Escape,
    InnerQuote,
    LoneSurrogate,
    Truncated,
}

impl Repair {
    /// The repair's name in results.
    pub fn name(self) -> &'static str {
        match self {
            Repair::Fence => "fence",
            Repair::Extract => "extract",
            Repair::Comment => "comment",
            Repair::SingleQuotes => "single-quotes",
            Repair::UnquotedKey => "unquoted-key",
            Repair::UnquotedValue => "unquoted-value",
            Repair::PythonLiteral => "python-literal",
            Repair::TrailingComma => "trailing-comma",
            Repair::MissingComma => "missing-comma",
            Repair::Number => "number",
            Repair::Escape => "escape",
            Repair::InnerQuote => "inner-quote",
            Repair::LoneSurrogate => "lone-surrogate",
            Repair::Truncated => "truncated",
        }
    }
}

/// The repairs applied so far: each listed once, in the order first applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repairs {
    seen: u32,
    order: Vec<Repair>,
}

impl Repairs {
    /// Records `repair` unless it is already listed.
    pub fn add(&mut self, repair: Repair) {
        let bit = 1u32 << (repair as u32);
        if self.seen & bit == 0 {
            self.seen |= bit;
            self.order.push(repair);
        }
    }

    /// The repairs in the order first applied.
    pub fn iter(&self) -> impl Iterator<Item = Repair> + '_ {
        self.order.iter().copied()
    }

    /// Whether no repair was applied.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// A value read from a text, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub value: Value,
    pub repairs: Repairs,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The first byte at or after `from` that is not JSON whitespace.
fn skip_ws(bytes: &[u8], mut from: usize) -> usize {
    while from < bytes.len() && is_ws(bytes[from]) {
        from += 1;
    }
    from
}

/// The first Markdown code fence: the start of its content when that
/// content begins with `{` or `[`, and the content's end (the closing fence,
/// or the end of the text when the fence is never closed).
pub fn fence(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let open = text.find("```")?;
    let mut i = open + 3;
    // The info string ("json", "python", ...), then the rest of its line.
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_+.-".contains(&bytes[i])) {
        i += 1;
    }
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'\r') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'\n') {
        i += 1;
    }
    let end = text[i..].find("```").map_or(text.len(), |k| i + k);
    let start = skip_ws(&bytes[..end], i);
    matches!(bytes.get(start), Some(b'{' | b'[')).then_some((start, end))
}

/// Reads `text`: strictly when it is JSON, else leniently (see the module
/// documentation of `tool_guard` for the order of candidates).
pub fn read(text: &str) -> Result<Read, GuardError> {
    if let Ok(value) = json::parse(text) {
        return Ok(Read {
            value,
            repairs: Repairs::default(),
        });
    }
    let bytes = text.as_bytes();
    let first = skip_ws(bytes, 0);
    let mut first_failure: Option<Fail> = None;
    if !matches!(bytes.get(first), Some(b'{' | b'[')) {
        if let Some((start, end)) = fence(text) {
            match attempt(&text[..end], start, Some(Repair::Fence)) {
                Ok(read) => return Ok(read),
                Err(failure) if failure.limit => return Err(unreadable(text, failure)),
                Err(failure) => first_failure = Some(failure),
            }
        }
    }
    // After a failure the next candidate starts at or after the point of
    // failure, so the whole scan stays linear in the text.
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|b| matches!(b, b'{' | b'[')) {
        let start = from + offset;
        let lead = if start == first { None } else { Some(Repair::Extract) };
        match attempt(text, start, lead) {
            Ok(read) => return Ok(read),
            Err(failure) if failure.limit => return Err(unreadable(text, failure)),
            Err(failure) => {
                from = failure.position.max(start + 1);
                first_failure.get_or_insert(failure);
            }
        }
    }
    Err(match first_failure {
        Some(failure) => unreadable(text, failure),
        None => GuardError::Unreadable {
            message: "no JSON object or array found".to_owned(),
            position: None,
        },
    })
}

fn unreadable(text: &str, failure: Fail) -> GuardError {
    GuardError::Unreadable {
        message: failure.message,
        position: Some(code_points(text, failure.position)),
    }
}

/// Reads one value at byte `start` of `source`; prose after it is dropped.
fn attempt(source: &str, start: usize, lead: Option<Repair>) -> Result<Read, Fail> {
    let mut parser = Lenient::new(source, start);
    if let Some(lead) = lead {
        parser.repairs.add(lead);
    }
    let value = parser
        .value(0, false)?
        .expect("a candidate starts with a bracket, so a value is always read");
    parser.skip_ws_comments();
    if parser.pos < source.len() {
        parser.repairs.add(Repair::Extract);
    }
    Ok(Read {
        value,
        repairs: parser.repairs,
    })
}

/// The offset in code points of byte offset `byte_pos` in `text`.
pub fn code_points(text: &str, byte_pos: usize) -> usize {
    let mut boundary = byte_pos.min(text.len());
    while !text.is_char_boundary(boundary) {
        boundary -= 1;
    }
    text[..boundary].chars().count()
}
