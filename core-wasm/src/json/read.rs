//! The strict reader.

use super::{first_repeat, ErrorKind, Number, ParseError, Value, MAX_DEPTH, MAX_INT_DIGITS, MAX_MEMBERS};

/// Reads `text` as one JSON document; whitespace may surround it.
pub(super) fn document(text: &str) -> Result<Value, ParseError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        key_positions: Vec::new(),
    };
    parser.skip_ws();
    let value = parser.value(0)?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error("unexpected content after the JSON value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Where each key of the objects being read starts, as a stack: an
    /// object's keys are on top while it is open (only errors read them).
    key_positions: Vec<usize>,
}

impl Parser<'_> {
    fn error_at(&self, byte_pos: usize, message: impl Into<String>) -> ParseError {
        self.error_kind_at(ErrorKind::Syntax, byte_pos, message)
    }

    fn error_kind_at(&self, kind: ErrorKind, byte_pos: usize, message: impl Into<String>) -> ParseError {
        let byte_pos = byte_pos.min(self.text.len());
        // Code-point offsets: count chars up to the nearest char boundary.
        let mut boundary = byte_pos;
        while !self.text.is_char_boundary(boundary) {
            boundary -= 1;
        }
        ParseError {
            kind,
            message: message.into(),
            position: self.text[..boundary].chars().count(),
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.pos, message)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Reads a value inside `depth` open arrays and objects.
    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.bytes.get(self.pos) {
            None => Err(self.error("unexpected end of input, expecting a value")),
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err(self.error_kind_at(
                ErrorKind::TooDeep,
                self.pos,
                format!("arrays and objects nested more than {MAX_DEPTH} deep"),
            )),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'N' | b'I') => Err(self.error("NaN and Infinity are not JSON")),
            Some(_) => Err(self.error("expecting a value")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expecting a value"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        let keys_base = self.key_positions.len();
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expecting a property name in double quotes"));
            }
            self.key_positions.push(self.pos);
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error("expecting ':' after a property name"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            members.push((key, value));
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.check_members(&members, start, keys_base)?;
                    self.key_positions.truncate(keys_base);
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error("expecting ',' or '}' in an object")),
            }
        }
    }

    /// The checks of a closed object: its size, then its keys' uniqueness.
    fn check_members(&self, members: &[(String, Value)], start: usize, keys_base: usize) -> Result<(), ParseError> {
        if members.len() > MAX_MEMBERS {
            return Err(self.error_kind_at(
                ErrorKind::TooLarge,
                start,
                format!("an object has more than {MAX_MEMBERS} members"),
            ));
        }
        match first_repeat(members, |(k, _)| k) {
            Some(i) => Err(self.error_at(
                self.key_positions[keys_base + i],
                format!("duplicate key {:?}", members[i].0),
            )),
            None => Ok(()),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expecting ',' or ']' in an array")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            // Copy the longest run without quotes, escapes or control bytes.
            let run_start = self.pos;
            // Eight bytes at a time first: long strings (base64 vectors) are
            // most of a batch's bytes.
            while let Some(word) = self.bytes.get(self.pos..self.pos + 8) {
                let Ok(word) = <[u8; 8]>::try_from(word) else { break };
                if needs_care(u64::from_le_bytes(word)) {
                    break;
                }
                self.pos += 8;
            }
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.bytes.get(self.pos) {
                None => return Err(self.error_at(start, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let escape_pos = self.pos;
                    self.pos += 1;
                    let Some(&kind) = self.bytes.get(self.pos) else {
                        return Err(self.error_at(start, "unterminated string"));
                    };
                    self.pos += 1;
                    match kind {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(self.error_at(escape_pos, "lone surrogate in string"));
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(self.error_at(escape_pos, "lone surrogate in string"));
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&high) {
                                return Err(self.error_at(escape_pos, "lone surrogate in string"));
                            } else {
                                high
                            };
                            // Every code point outside the surrogate range is a char.
                            out.push(
                                char::from_u32(code).ok_or_else(|| self.error_at(escape_pos, "invalid \\u escape"))?,
                            );
                        }
                        _ => return Err(self.error_at(escape_pos, "invalid escape in string")),
                    }
                }
                Some(_) => return Err(self.error("control character in string")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
                    self.pos += 1;
                }
            }
            Some(b'I') => return Err(self.error_at(start, "NaN and Infinity are not JSON")),
            _ => return Err(self.error("expecting a digit")),
        }
        let int_digits = self.pos - int_start;
        let mut is_float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            is_float = true;
            self.pos += 1;
            if !matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.error("expecting a digit after the decimal point"));
            }
            while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            is_float = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.error("expecting a digit in the exponent"));
            }
            while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
        }
        let text = &self.text[start..self.pos];
        if is_float {
            let value: f64 = text.parse().map_err(|_| self.error_at(start, "invalid number"))?;
            if !value.is_finite() {
                return Err(self.error_at(start, "number out of range for a double"));
            }
            Ok(Value::Number(Number::Float(value)))
        } else if int_digits > MAX_INT_DIGITS {
            Err(self.error_at(start, format!("integer longer than {MAX_INT_DIGITS} digits")))
        } else if text == "-0" {
            Ok(Value::Number(Number::Integer("0".to_owned())))
        } else {
            Ok(Value::Number(Number::Integer(text.to_owned())))
        }
    }
}

/// Whether any byte of `word` is a quote, a backslash or a control byte
/// (the exact "has a zero byte" and "has a byte below n" bit tricks).
pub(super) fn needs_care(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    zero_byte(word ^ (ONES * u64::from(b'"')))
        || zero_byte(word ^ (ONES * u64::from(b'\\')))
        || word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0
}
