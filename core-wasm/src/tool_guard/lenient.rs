//! The lenient value reader. On strict JSON it reads exactly what
//! `json::parse` (and Python's `json.loads`) reads; everything it accepts
//! beyond that is recorded as a [`Repair`].

use std::collections::HashMap;

use super::read::{Repair, Repairs};
use crate::json::{Number, Value, MAX_DEPTH, MAX_INT_DIGITS};

/// Why a candidate could not be read: a message and a byte offset. A
/// `limit` failure (nesting depth, integer length) ends the whole read.
#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub message: String,
    pub position: usize,
    pub limit: bool,
}

/// Objects with more members than this look keys up through a hash map, so
/// repeated keys cost no quadratic scan.
const INDEX_FROM: usize = 16;

/// The literal words, as written and as read. A word cut off at the end of
/// the text is completed when it is the start of exactly one of these.
const WORDS: [(&str, Lit); 6] = [
    ("true", Lit::Json(true)),
    ("false", Lit::Json(false)),
    ("null", Lit::JsonNull),
    ("True", Lit::Python(Some(true))),
    ("False", Lit::Python(Some(false))),
    ("None", Lit::Python(None)),
];

#[derive(Clone, Copy)]
enum Lit {
    Json(bool),
    JsonNull,
    Python(Option<bool>),
}

impl Lit {
    fn value(self) -> Value {
        match self {
            Lit::Json(b) | Lit::Python(Some(b)) => Value::Bool(b),
            Lit::JsonNull | Lit::Python(None) => Value::Null,
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

fn is_key_byte(b: u8) -> bool {
    is_word_byte(b) || b == b'-'
}

fn starts_value(b: u8) -> bool {
    matches!(b, b'{' | b'[' | b'"' | b'\'' | b'-' | b'+' | b'.') || is_word_byte(b)
}

fn hex_digit(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// A reader positioned in `text` (a byte offset), collecting repairs.
pub struct Lenient<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pub pos: usize,
    pub repairs: Repairs,
}

impl<'a> Lenient<'a> {
    pub fn new(text: &'a str, pos: usize) -> Self {
        Lenient {
            text,
            bytes: text.as_bytes(),
            pos,
            repairs: Repairs::default(),
        }
    }

    fn fail<T>(&self, message: &str, position: usize) -> Result<T, Fail> {
        Err(Fail {
            message: message.to_owned(),
            position,
            limit: false,
        })
    }

    fn limit<T>(&self, message: String, position: usize) -> Result<T, Fail> {
        Err(Fail {
            message,
            position,
            limit: true,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    /// Skips whitespace and `//` or `/* */` comments (an unclosed block
    /// comment runs to the end of the text).
    pub fn skip_ws_comments(&mut self) {
        loop {
            while self.peek().is_some_and(is_ws) {
                self.pos += 1;
            }
            if self.bytes[self.pos..].starts_with(b"//") {
                self.repairs.add(Repair::Comment);
                self.pos = self.text[self.pos..]
                    .find('\n')
                    .map_or(self.bytes.len(), |k| self.pos + k + 1);
            } else if self.bytes[self.pos..].starts_with(b"/*") {
                self.repairs.add(Repair::Comment);
                self.pos = self.text[self.pos + 2..]
                    .find("*/")
                    .map_or(self.bytes.len(), |k| self.pos + 2 + k + 2);
            } else {
                return;
            }
        }
    }

    /// Reads one value. `Ok(None)` means the text ended before a value
    /// began (the caller drops what was waiting for it). In an object
    /// member's value (`member`) an unquoted run of text is a string.
    pub fn value(&mut self, depth: usize, member: bool) -> Result<Option<Value>, Fail> {
        if depth > MAX_DEPTH {
            return self.limit(format!("nesting deeper than {MAX_DEPTH} levels"), self.pos);
        }
        self.skip_ws_comments();
        match self.peek() {
            None => Ok(None),
            Some(b'{') => self.object(depth).map(Some),
            Some(b'[') => self.array(depth).map(Some),
            Some(quote @ (b'"' | b'\'')) => Ok(Some(Value::String(self.string(quote, false).0))),
            Some(_) if member => self.member_run(),
            Some(_) => self.scalar(),
        }
    }

    /// Before a member or item: whether the container ends here, because
    /// the input ran out (truncated) or at its closing byte (after which a
    /// comma was trailing).
    fn ends_before(&mut self, close: u8, after_comma: bool) -> bool {
        self.skip_ws_comments();
        match self.peek() {
            None => {
                self.repairs.add(Repair::Truncated);
                true
            }
            Some(b) if b == close => {
                if after_comma {
                    self.repairs.add(Repair::TrailingComma);
                }
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// After a member or item: `Ok(true)` when the container ends here (the
    /// input ran out, or its closing byte), `Ok(false)` after a comma, or a
    /// missing one before what can only start the next (`next_starts`).
    fn ends_after(&mut self, close: u8, next_starts: fn(u8) -> bool, expecting: &str) -> Result<bool, Fail> {
        self.skip_ws_comments();
        match self.peek() {
            None => {
                self.repairs.add(Repair::Truncated);
                Ok(true)
            }
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if next_starts(b) => {
                self.repairs.add(Repair::MissingComma);
                Ok(false)
            }
            _ => self.fail(expecting, self.pos),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Fail> {
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut index: Option<HashMap<String, usize>> = None;
        let mut after_comma = false;
        loop {
            if self.ends_before(b'}', after_comma) {
                return Ok(Value::Object(members));
            }
            let key = match self.peek() {
                Some(quote @ (b'"' | b'\'')) => {
                    let (key, cut) = self.string(quote, true);
                    if cut {
                        return Ok(Value::Object(members));
                    }
                    key
                }
                Some(b) if is_key_byte(b) => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_key_byte) {
                        self.pos += 1;
                    }
                    self.repairs.add(Repair::UnquotedKey);
                    self.text[start..self.pos].to_owned()
                }
                _ => return self.fail("expecting a property name", self.pos),
            };
            self.skip_ws_comments();
            match self.peek() {
                None => {
                    self.repairs.add(Repair::Truncated);
                    return Ok(Value::Object(members));
                }
                Some(b':') => self.pos += 1,
                _ => return self.fail("expecting ':' after a property name", self.pos),
            }
            let Some(value) = self.value(depth + 1, true)? else {
                self.repairs.add(Repair::Truncated);
                return Ok(Value::Object(members));
            };
            insert(&mut members, &mut index, key, value);
            let starts_member = |b| b == b'"' || b == b'\'' || is_key_byte(b);
            if self.ends_after(b'}', starts_member, "expecting ',' or '}' in an object")? {
                return Ok(Value::Object(members));
            }
            after_comma = true;
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, Fail> {
        self.pos += 1;
        let mut items = Vec::new();
        let mut after_comma = false;
        loop {
            if self.ends_before(b']', after_comma) {
                return Ok(Value::Array(items));
            }
            let Some(item) = self.value(depth + 1, false)? else {
                self.repairs.add(Repair::Truncated);
                return Ok(Value::Array(items));
            };
            items.push(item);
            if self.ends_after(b']', starts_value, "expecting ',' or ']' in an array")? {
                return Ok(Value::Array(items));
            }
            after_comma = true;
        }
    }

    /// Whether the quote at `self.pos` closes its string: it does when what
    /// follows (after spaces) is a line break, the end, a delimiter, a
    /// comment or another quote; otherwise it is a quote inside the text.
    fn closes(&self) -> bool {
        let mut j = self.pos + 1;
        while let Some(b) = self.at(j) {
            match b {
                b'\n' | b'\r' => return true,
                b' ' | b'\t' => j += 1,
                _ => break,
            }
        }
        match self.at(j) {
            None | Some(b',' | b'}' | b']' | b':' | b'"' | b'\'') => true,
            Some(b'/') => matches!(self.at(j + 1), Some(b'/' | b'*')),
            Some(_) => false,
        }
    }

    /// Reads a string opened by `quote` at `self.pos`; in a key every
    /// quote closes. The flag says the text ended inside it.
    fn string(&mut self, quote: u8, key: bool) -> (String, bool) {
        if quote == b'\'' {
            self.repairs.add(Repair::SingleQuotes);
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == quote || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => {
                    self.repairs.add(Repair::Truncated);
                    return (out, true);
                }
                Some(b'\\') => {
                    if self.escape(quote, &mut out) {
                        return (out, true);
                    }
                }
                Some(b) if b == quote => {
                    if key || self.closes() {
                        self.pos += 1;
                        return (out, false);
                    }
                    self.repairs.add(Repair::InnerQuote);
                    out.push(quote as char);
                    self.pos += 1;
                }
                Some(control) => {
                    self.repairs.add(Repair::Escape);
                    out.push(control as char);
                    self.pos += 1;
                }
            }
        }
    }

    /// Decodes the escape at `self.pos` into `out`; true when the text ends
    /// inside it.
    fn escape(&mut self, quote: u8, out: &mut String) -> bool {
        let Some(kind) = self.at(self.pos + 1) else {
            self.pos += 1;
            self.repairs.add(Repair::Truncated);
            return true;
        };
        let simple = match kind {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'\'' => {
                if quote == b'"' {
                    self.repairs.add(Repair::Escape);
                }
                Some('\'')
            }
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            self.pos += 2;
            return false;
        }
        let digits = match kind {
            b'u' => 4,
            b'x' => 2,
            _ => 0,
        };
        if digits > 0 {
            let start = self.pos + 2;
            let hex: Vec<u32> = (start..start + digits)
                .map_while(|i| self.at(i).and_then(hex_digit))
                .collect();
            if hex.len() < digits && start + hex.len() == self.bytes.len() {
                self.pos = self.bytes.len();
                self.repairs.add(Repair::Truncated);
                return true;
            }
            if hex.len() == digits {
                let code = hex.iter().fold(0, |acc, d| acc * 16 + d);
                self.pos = start + digits;
                if kind == b'x' {
                    self.repairs.add(Repair::Escape);
                    out.push(char::from_u32(code).expect("two hex digits are a char"));
                } else {
                    out.push(self.unicode(code));
                }
                return false;
            }
        }
        // An escape JSON does not know: the backslash is kept as text.
        self.repairs.add(Repair::Escape);
        out.push('\\');
        self.pos += 1;
        false
    }

    /// The character of a `\u` escape whose code is `code`; a surrogate pair
    /// continues with a second escape, a lone surrogate becomes U+FFFD.
    fn unicode(&mut self, code: u32) -> char {
        if (0xD800..0xDC00).contains(&code) && self.bytes[self.pos..].starts_with(b"\\u") {
            let low: Option<u32> = (self.pos + 2..self.pos + 6)
                .map(|i| self.at(i).and_then(hex_digit))
                .try_fold(0, |acc, d| d.map(|d| acc * 16 + d));
            if let Some(low @ 0xDC00..=0xDFFF) = low {
                self.pos += 6;
                let combined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(combined).expect("a surrogate pair is a char");
            }
        }
        char::from_u32(code).unwrap_or_else(|| {
            self.repairs.add(Repair::LoneSurrogate);
            '\u{FFFD}'
        })
    }

    /// A number or a literal word outside an object member's value.
    fn scalar(&mut self) -> Result<Option<Value>, Fail> {
        let start = self.pos;
        match self.peek() {
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            Some(b) if is_word_byte(b) => {
                while self.peek().is_some_and(is_word_byte) {
                    self.pos += 1;
                }
                let word = &self.text[start..self.pos];
                if let Some(value) = self.word(word, self.pos == self.bytes.len()) {
                    return Ok(Some(value));
                }
                self.fail("expecting a value", start)
            }
            _ => self.fail("expecting a value", start),
        }
    }

    /// The value of a literal word; `at_end` allows completing a cut word.
    fn word(&mut self, word: &str, at_end: bool) -> Option<Value> {
        match word {
            "NaN" => return Some(Value::Number(Number::Float(f64::NAN))),
            "Infinity" => return Some(Value::Number(Number::Float(f64::INFINITY))),
            _ => {}
        }
        if let Some((_, lit)) = WORDS.iter().find(|(w, _)| *w == word) {
            if let Lit::Python(_) = lit {
                self.repairs.add(Repair::PythonLiteral);
            }
            return Some(lit.value());
        }
        if at_end {
            let mut matches = WORDS.iter().filter(|(w, _)| w.starts_with(word));
            if let (Some((_, lit)), None) = (matches.next(), matches.next()) {
                if let Lit::Python(_) = lit {
                    self.repairs.add(Repair::PythonLiteral);
                }
                self.repairs.add(Repair::Truncated);
                return Some(lit.value());
            }
        }
        None
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number, JSON's grammar widened with a leading `+`, a leading or
    /// trailing `.`, leading zeros and `Infinity` after a sign. An exponent
    /// cut off by the end of the text is dropped.
    fn number(&mut self) -> Result<Option<Value>, Fail> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if matches!(self.peek(), Some(b'-' | b'+')) {
            if self.peek() == Some(b'+') {
                self.repairs.add(Repair::Number);
            }
            self.pos += 1;
            if self.bytes[self.pos..].starts_with(b"Infinity") && !self.at(self.pos + 8).is_some_and(is_word_byte) {
                self.pos += 8;
                let inf = if negative { f64::NEG_INFINITY } else { f64::INFINITY };
                return Ok(Some(Value::Number(Number::Float(inf))));
            }
        }
        let int_start = self.pos;
        let int_len = self.digits();
        let int_digits = &self.text[int_start..int_start + int_len];
        let mut frac_digits = None;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let frac_start = self.pos;
            let frac_len = self.digits();
            frac_digits = Some(&self.text[frac_start..frac_start + frac_len]);
        }
        if int_len == 0 && frac_digits.is_none_or(str::is_empty) {
            if self.pos == self.bytes.len() {
                return Ok(None);
            }
            return self.fail("expecting a value", start);
        }
        let mut exponent = None;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let exp_start = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() > 0 {
                exponent = Some(&self.text[exp_start..self.pos]);
            } else if self.pos == self.bytes.len() {
                self.repairs.add(Repair::Truncated);
            } else {
                return self.fail("expecting a digit in the exponent", self.pos);
            }
        }
        let frac_empty = frac_digits.is_some_and(str::is_empty);
        if int_len == 0 || frac_empty || (int_len > 1 && int_digits.starts_with('0')) {
            self.repairs.add(Repair::Number);
        }
        let sign = if negative { "-" } else { "" };
        if frac_digits.is_none() && exponent.is_none() {
            let significant = int_digits.trim_start_matches('0');
            if significant.len() > MAX_INT_DIGITS {
                return self.limit(format!("integer longer than {MAX_INT_DIGITS} digits"), start);
            }
            let text = match significant {
                "" => "0".to_owned(),
                digits => format!("{sign}{digits}"),
            };
            return Ok(Some(Value::Number(Number::Integer(text))));
        }
        let int_part = if int_len == 0 { "0" } else { int_digits };
        let frac_part = match frac_digits {
            Some("") | None => "0",
            Some(frac) => frac,
        };
        let normal = format!("{sign}{int_part}.{frac_part}{}", exponent.unwrap_or(""));
        let value: f64 = normal.parse().expect("a normalized decimal always parses");
        Ok(Some(Value::Number(Number::Float(value))))
    }

    /// An object member's value that does not start with a bracket or a
    /// quote: the run of text up to `,`, `}`, `]`, a line break or a comment
    /// after a space (so `http://x` stays whole). A run
    /// that is exactly one number or literal word is that; any other run is
    /// the string it spells.
    fn member_run(&mut self) -> Result<Option<Value>, Fail> {
        let start = self.pos;
        let mut end = start;
        while let Some(b) = self.at(end) {
            let comment = b == b'/'
                && matches!(self.at(end + 1), Some(b'/' | b'*'))
                && matches!(end.checked_sub(1).and_then(|i| self.at(i)), Some(b' ' | b'\t'));
            if matches!(b, b',' | b'}' | b']' | b'\n' | b'\r') || comment {
                break;
            }
            end += 1;
        }
        let trimmed_end = start + self.text[start..end].trim_end_matches([' ', '\t']).len();
        if trimmed_end == start {
            return self.fail("expecting a value", start);
        }
        let saved = self.repairs.clone();
        if let Ok(token) = self.scalar() {
            if token.is_none() || self.pos == trimmed_end {
                return Ok(token);
            }
        }
        self.repairs = saved;
        self.pos = trimmed_end;
        self.repairs.add(Repair::UnquotedValue);
        Ok(Some(Value::String(self.text[start..trimmed_end].to_owned())))
    }
}

/// Adds a member; a repeated key keeps its first place and takes the new
/// value, as Python's `json.loads` does.
fn insert(members: &mut Vec<(String, Value)>, index: &mut Option<HashMap<String, usize>>, key: String, value: Value) {
    if index.is_none() && members.len() >= INDEX_FROM {
        *index = Some(members.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect());
    }
    let found = match index {
        Some(map) => map.get(&key).copied(),
        None => members.iter().position(|(k, _)| *k == key),
    };
    match found {
        Some(i) => members[i].1 = value,
        None => {
            if let Some(map) = index {
                map.insert(key.clone(), members.len());
            }
            members.push((key, value));
        }
    }
}
