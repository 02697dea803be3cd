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

use std::fmt::Write as _;

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

/// The message for a document of `len` bytes past `max` bytes.
pub fn too_large_message(len: usize, max: usize) -> String {
    format!("the document is {len} bytes, more than the limit of {max} bytes")
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

/// Whether any byte of `word` is a quote, a backslash or a control byte
/// (the exact "has a zero byte" and "has a byte below n" bit tricks).
fn needs_care(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    zero_byte(word ^ (ONES * u64::from(b'"')))
        || zero_byte(word ^ (ONES * u64::from(b'\\')))
        || word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0
}

/// Appends `s` as a JSON string literal, escaping exactly what Python's
/// `json.dumps(..., ensure_ascii=False)` escapes.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut run_start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run_start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        run_start = i + 1;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

/// Appends a double the way Python's `repr(float)` writes it: the shortest
/// digits that round-trip, positional for exponents -4..16, else `1e+16`
/// style.
pub fn write_float(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push_str(if value.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e-7".
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("LowerExp always writes an exponent");
    let exponent: i32 = exponent.parse().expect("LowerExp writes a decimal exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if (-4..16).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(&digits);
        } else {
            let point = exponent as usize + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs());
    }
}

/// Appends `value` in canonical compact form.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(Number::Integer(text)) => out.push_str(text),
        Value::Number(Number::Float(f)) => write_float(out, *f),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// The canonical compact text of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        to_string(&parse(text).unwrap())
    }

    #[test]
    fn floats_are_written_like_python_repr() {
        for (input, expected) in [
            ("1.0", "1.0"),
            ("1.50", "1.5"),
            ("1e16", "1e+16"),
            ("1E15", "1000000000000000.0"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("-0.0", "-0.0"),
            ("123456789.125", "123456789.125"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("0.1", "0.1"),
            ("2.5e-7", "2.5e-07"),
        ] {
            assert_eq!(canon(input), expected, "{input}");
        }
    }

    #[test]
    fn integers_keep_their_digits() {
        let big = "123456789012345678901234567890";
        assert_eq!(canon(big), big);
        assert_eq!(canon("-0"), "0");
        assert!(parse(&"9".repeat(MAX_INT_DIGITS + 1)).is_err());
    }

    #[test]
    fn strings_escape_like_python() {
        assert_eq!(
            canon(r#""a\u0001\n\"\\\/é\ud83d\ude00""#),
            "\"a\\u0001\\n\\\"\\\\/é😀\""
        );
    }

    #[test]
    fn rejects_what_strict_json_rejects() {
        for bad in [
            "",
            "[1,]",
            "{\"a\":1,\"a\":2}",
            "NaN",
            "[Infinity]",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"\\ud800\\u0041\"",
            "01",
            "1.",
            "1e",
            "\"a\u{1}\"",
            "[1] 2",
            "{a:1}",
            "1e400",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn positions_count_code_points() {
        let err = parse("[\"é😀\", x]").unwrap_err();
        assert_eq!(err.position, 7);
    }

    #[test]
    fn the_word_scan_flags_exactly_the_bytes_that_need_care() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                assert_eq!(needs_care(u64::from_le_bytes(word)), special(b), "byte {b} at {at}");
            }
        }
        let mut seed = 99u64;
        for _ in 0..100_000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let word = seed.to_le_bytes();
            assert_eq!(needs_care(seed), word.iter().any(|&b| special(b)));
        }
        let long = format!("\"{}\\n{}\"", "x".repeat(37), "é".repeat(9));
        assert_eq!(
            parse(&long).unwrap(),
            Value::String(format!("{}\n{}", "x".repeat(37), "é".repeat(9)))
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "[".repeat(100_000);
        let err = parse(&text).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep);
        assert_eq!(err.position, MAX_DEPTH);
    }

    #[test]
    fn depth_limit_edges() {
        let nested = |n: usize, inner: &str| format!("{}{inner}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&nested(MAX_DEPTH, "1")).is_ok());
        assert!(parse(&nested(MAX_DEPTH, "")).is_ok());
        let err = parse(&nested(MAX_DEPTH + 1, "")).unwrap_err();
        assert_eq!((err.kind, err.position), (ErrorKind::TooDeep, MAX_DEPTH));
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(parse(&objects).is_ok());
        let objects = format!("[{objects}]");
        assert_eq!(parse(&objects).unwrap_err().kind, ErrorKind::TooDeep);
        // A fault before the bracket that goes too deep is reported first.
        let early = format!("{}x[", "[".repeat(MAX_DEPTH));
        assert_eq!(parse(&early).unwrap_err().kind, ErrorKind::Syntax);
    }

    fn object_of(n: usize, key: impl Fn(usize) -> String) -> String {
        let mut text = String::from("{");
        for i in 0..n {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "\"{}\":{i}", key(i));
        }
        text.push('}');
        text
    }

    #[test]
    fn member_limit_edges() {
        let Value::Object(members) = parse(&object_of(MAX_MEMBERS, |i| format!("k{i}"))).unwrap() else {
            panic!()
        };
        assert_eq!(members.len(), MAX_MEMBERS);
        let err = parse(&format!("[{}]", object_of(MAX_MEMBERS + 1, |i| format!("k{i}")))).unwrap_err();
        assert_eq!((err.kind, err.position), (ErrorKind::TooLarge, 1));
    }

    #[test]
    fn huge_objects_are_linearithmic() {
        // 200k keys compared pairwise took ~90 s in the core; sorted, a few ms.
        let text = object_of(200_000, |i| format!("key-{i}"));
        let started = std::time::Instant::now();
        assert_eq!(parse(&text).unwrap_err().kind, ErrorKind::TooLarge);
        let text = object_of(MAX_MEMBERS, |i| format!("key-{}", (i * 7919) % MAX_MEMBERS));
        assert!(parse(&text).is_ok());
        let mut dup = object_of(MAX_MEMBERS - 1, |i| format!("key-{i}"));
        dup.insert_str(dup.len() - 1, ",\"key-5\":0");
        let err = parse(&dup).unwrap_err();
        assert_eq!(err.message, "duplicate key \"key-5\"");
        assert_eq!(err.position, dup.rfind("\"key-5\"").unwrap());
        assert!(started.elapsed().as_secs_f64() < 1.0, "{:?}", started.elapsed());
    }

    #[test]
    fn the_first_repeated_key_in_document_order_is_reported() {
        let keys = [
            "q", "b", "a", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "a", "b",
        ];
        let text = object_of(keys.len(), |i| keys[i].to_owned());
        let err = parse(&text).unwrap_err();
        assert_eq!(err.message, "duplicate key \"a\"");
        assert_eq!(err.position, text.find("\"a\":17").unwrap());
        assert_eq!(parse(r#"{"b":1,"a":2,"b":3,"a":4}"#).unwrap_err().position, 13);
        // Keys are checked when the object closes, as Python's object_pairs_hook sees them.
        let err = parse(r#"{"a":1,"a":2,"#).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Syntax);
        assert!(!err.message.contains("duplicate"), "{err:?}");
        assert!(parse(r#"{"a":{"b":1},"b":{"a":2},"c":{"a":{"a":3}}}"#).is_ok());
    }

    #[test]
    fn size_limit() {
        let err = parse_limited("[1, 2]", 5).unwrap_err();
        assert_eq!((err.kind, err.position), (ErrorKind::TooLarge, 0));
        assert!(parse_limited("[1,2]", 5).is_ok());
    }
}
