//! A JSON-schema subset, enough for the schemas pydantic emits for tool
//! arguments and structured outputs: `type`, `enum`, `const`, `required`,
//! `properties`, `additionalProperties`, `items`, `prefixItems`, `anyOf`,
//! `allOf`, `oneOf` and local `$ref` (into `$defs`, `definitions` or any
//! JSON pointer of the document). Other keywords are ignored.
//!
//! A schema is checked whole when compiled, so a bad schema is reported
//! whatever the value; violations are collected, not stopped at.

use std::collections::HashSet;

use super::GuardError;
use crate::json::{self, json_eq, Number, Value};

/// At most this many violations are reported.
pub const MAX_ERRORS: usize = 100;

/// Validation deeper than this (values and `$ref` hops together) means the
/// schema recurses without consuming the value.
pub const MAX_SCHEMA_DEPTH: usize = 512;

const TYPES: [&str; 7] = ["null", "boolean", "object", "array", "number", "integer", "string"];

/// One field-level violation: a JSON pointer into the value and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

/// A checked schema document.
pub struct Schema {
    root: Value,
}

fn invalid(message: String) -> GuardError {
    GuardError::InvalidSchema {
        message,
        position: None,
    }
}

fn violation(path: String, message: &str) -> Violation {
    Violation {
        path,
        message: message.to_owned(),
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::new();
    json::write_string(&mut out, s);
    out
}

/// `s` as one JSON-pointer reference token.
fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn got(value: &Value) -> &'static str {
    match value {
        Value::Number(Number::Integer(_)) => "integer",
        Value::Number(Number::Float(_)) => "number",
        other => other.type_name(),
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match (name, value) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("string", Value::String(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_))
        | ("number", Value::Number(_))
        | ("integer", Value::Number(Number::Integer(_))) => true,
        ("integer", Value::Number(Number::Float(f))) => f.is_finite() && f.fract() == 0.0,
        _ => false,
    }
}

impl Schema {
    /// Parses (strictly) and checks a schema document.
    pub fn compile(text: &str) -> Result<Schema, GuardError> {
        let root = json::parse(text).map_err(|_| invalid("the schema is not strict JSON".to_owned()))?;
        let schema = Schema { root };
        let mut visited = HashSet::new();
        schema.check(&schema.root, "#", &mut visited)?;
        Ok(schema)
    }

    /// The node a local `$ref` points at.
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(&self.root);
        }
        let mut node = &self.root;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            node = match node {
                Value::Object(_) => node.get(&token)?,
                Value::Array(items) if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) => {
                    items.get(token.parse::<usize>().ok()?)?
                }
                _ => return None,
            };
        }
        Some(node)
    }

    fn check(&self, node: &Value, at: &str, visited: &mut HashSet<String>) -> Result<(), GuardError> {
        let fail = |message: &str| Err(invalid(format!("{at}: {message}")));
        match node {
            Value::Bool(_) => return Ok(()),
            Value::Object(_) => {}
            _ => return fail("a schema must be an object or a boolean"),
        }
        match node.get("type") {
            None => {}
            Some(Value::String(name)) if TYPES.contains(&name.as_str()) => {}
            Some(Value::Array(names))
                if !names.is_empty()
                    && names
                        .iter()
                        .all(|n| matches!(n, Value::String(s) if TYPES.contains(&s.as_str()))) => {}
            Some(Value::String(name)) => return fail(&format!("unknown type {}", quoted(name))),
            Some(_) => return fail("\"type\" must be a type name or a non-empty array of type names"),
        }
        if node.get("enum").is_some_and(|e| !matches!(e, Value::Array(_))) {
            return fail("\"enum\" must be an array");
        }
        if let Some(required) = node.get("required") {
            if !matches!(required, Value::Array(items) if items.iter().all(|i| matches!(i, Value::String(_)))) {
                return fail("\"required\" must be an array of strings");
            }
        }
        if let Some(reference) = node.get("$ref") {
            let Value::String(reference) = reference else {
                return fail("\"$ref\" must be a string");
            };
            self.check_chain(reference, at)?;
            if visited.insert(reference.clone()) {
                let target = self.resolve(reference).expect("check_chain resolved it");
                self.check(target, reference, visited)?;
            }
        }
        if let Some(properties) = node.get("properties") {
            let Value::Object(members) = properties else {
                return fail("\"properties\" must be an object");
            };
            for (key, sub) in members {
                self.check(sub, &format!("{at}/properties/{}", escape_token(key)), visited)?;
            }
        }
        if let Some(sub) = node.get("additionalProperties") {
            self.check(sub, &format!("{at}/additionalProperties"), visited)?;
        }
        match node.get("items") {
            Some(Value::Array(subs)) => self.check_all(subs, &format!("{at}/items"), visited)?,
            Some(sub) => self.check(sub, &format!("{at}/items"), visited)?,
            None => {}
        }
        for keyword in ["prefixItems", "anyOf", "allOf", "oneOf"] {
            match node.get(keyword) {
                None => {}
                Some(Value::Array(subs)) if keyword == "prefixItems" || !subs.is_empty() => {
                    self.check_all(subs, &format!("{at}/{keyword}"), visited)?;
                }
                Some(_) if keyword == "prefixItems" => return fail("\"prefixItems\" must be an array of schemas"),
                Some(_) => return fail(&format!("\"{keyword}\" must be a non-empty array of schemas")),
            }
        }
        for keyword in ["$defs", "definitions"] {
            match node.get(keyword) {
                None => {}
                Some(Value::Object(members)) => {
                    for (key, sub) in members {
                        self.check(sub, &format!("{at}/{keyword}/{}", escape_token(key)), visited)?;
                    }
                }
                Some(_) => return fail(&format!("\"{keyword}\" must be an object")),
            }
        }
        Ok(())
    }

    fn check_all(&self, subs: &[Value], at: &str, visited: &mut HashSet<String>) -> Result<(), GuardError> {
        for (i, sub) in subs.iter().enumerate() {
            self.check(sub, &format!("{at}/{i}"), visited)?;
        }
        Ok(())
    }

    /// Follows a chain of `$ref`s: each must resolve, none may come back.
    fn check_chain(&self, first: &str, at: &str) -> Result<(), GuardError> {
        let mut chain: Vec<&str> = Vec::new();
        let mut reference = first;
        loop {
            if chain.contains(&reference) {
                return Err(invalid(format!("{at}: $ref cycle through {}", quoted(reference))));
            }
            chain.push(reference);
            let Some(target) = self.resolve(reference) else {
                return Err(invalid(format!("{at}: cannot resolve $ref {}", quoted(reference))));
            };
            match target.get("$ref") {
                Some(Value::String(next)) => reference = next,
                _ => return Ok(()),
            }
        }
    }

    /// The violations of `value`, at most [`MAX_ERRORS`].
    pub fn validate(&self, value: &Value) -> Result<Vec<Violation>, GuardError> {
        let mut errors = Vec::new();
        self.walk(value, &self.root, "", 0, &mut errors)?;
        errors.truncate(MAX_ERRORS);
        Ok(errors)
    }

    fn valid(&self, value: &Value, schema: &Value, path: &str, depth: usize) -> Result<bool, GuardError> {
        let mut errors = Vec::new();
        self.walk(value, schema, path, depth, &mut errors)?;
        Ok(errors.is_empty())
    }

    fn walk(
        &self,
        value: &Value,
        schema: &Value,
        path: &str,
        depth: usize,
        errors: &mut Vec<Violation>,
    ) -> Result<(), GuardError> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(invalid(format!(
                "the schema recurses deeper than {MAX_SCHEMA_DEPTH} levels"
            )));
        }
        match schema {
            Value::Bool(false) => {
                errors.push(violation(path.to_owned(), "no value is allowed here"));
                return Ok(());
            }
            Value::Object(_) => {}
            _ => return Ok(()),
        }
        if let Some(Value::String(reference)) = schema.get("$ref") {
            let target = self.resolve(reference).expect("compile resolved every $ref");
            self.walk(value, target, path, depth + 1, errors)?;
        }
        match schema.get("type") {
            Some(Value::String(name)) if !has_type(value, name) => {
                errors.push(violation(
                    path.to_owned(),
                    &format!("expected {name}, got {}", got(value)),
                ));
                return Ok(());
            }
            Some(Value::Array(names))
                if !names
                    .iter()
                    .any(|n| matches!(n, Value::String(s) if has_type(value, s))) =>
            {
                let names: Vec<&str> = names
                    .iter()
                    .filter_map(|n| match n {
                        Value::String(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect();
                errors.push(violation(
                    path.to_owned(),
                    &format!("expected {}, got {}", names.join(" or "), got(value)),
                ));
                return Ok(());
            }
            _ => {}
        }
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.iter().any(|o| json_eq(o, value)) {
                errors.push(violation(path.to_owned(), "value is not one of the allowed values"));
            }
        }
        if let Some(constant) = schema.get("const") {
            if !json_eq(constant, value) {
                errors.push(violation(path.to_owned(), "value is not the allowed constant"));
            }
        }
        match value {
            Value::Object(members) => {
                if let Some(Value::Array(required)) = schema.get("required") {
                    for key in required {
                        if let Value::String(key) = key {
                            if value.get(key).is_none() {
                                errors.push(violation(
                                    format!("{path}/{}", escape_token(key)),
                                    "required property is missing",
                                ));
                            }
                        }
                    }
                }
                let properties = schema.get("properties");
                let additional = schema.get("additionalProperties");
                for (key, item) in members {
                    let child = format!("{path}/{}", escape_token(key));
                    match (properties.and_then(|p| p.get(key)), additional) {
                        (Some(sub), _) => self.walk(item, sub, &child, depth + 1, errors)?,
                        (None, Some(Value::Bool(false))) => {
                            errors.push(violation(child, "additional property is not allowed"))
                        }
                        (None, Some(sub)) => self.walk(item, sub, &child, depth + 1, errors)?,
                        (None, None) => {}
                    }
                }
            }
            Value::Array(items) => {
                let (prefix, rest): (&[Value], Option<&Value>) = match (schema.get("prefixItems"), schema.get("items"))
                {
                    (_, Some(Value::Array(legacy))) => (legacy, None),
                    (Some(Value::Array(prefix)), rest) => (prefix, rest),
                    (_, rest) => (&[], rest),
                };
                for (i, item) in items.iter().enumerate() {
                    let child = format!("{path}/{i}");
                    match (prefix.get(i), rest) {
                        (Some(sub), _) => self.walk(item, sub, &child, depth + 1, errors)?,
                        (None, Some(Value::Bool(false))) => {
                            errors.push(violation(child, "additional item is not allowed"))
                        }
                        (None, Some(sub)) => self.walk(item, sub, &child, depth + 1, errors)?,
                        (None, None) => {}
                    }
                }
            }
            _ => {}
        }
        if let Some(Value::Array(subs)) = schema.get("allOf") {
            for sub in subs {
                self.walk(value, sub, path, depth + 1, errors)?;
            }
        }
        if let Some(Value::Array(subs)) = schema.get("anyOf") {
            let mut any = false;
            for sub in subs {
                if self.valid(value, sub, path, depth + 1)? {
                    any = true;
                    break;
                }
            }
            if !any {
                errors.push(violation(path.to_owned(), "value matches none of the allowed schemas"));
            }
        }
        if let Some(Value::Array(subs)) = schema.get("oneOf") {
            let mut count = 0;
            for sub in subs {
                if self.valid(value, sub, path, depth + 1)? {
                    count += 1;
                }
            }
            let message = match count {
                0 => Some("value matches none of the allowed schemas"),
                1 => None,
                _ => Some("value matches more than one of the exclusive schemas"),
            };
            if let Some(message) = message {
                errors.push(violation(path.to_owned(), message));
            }
        }
        Ok(())
    }
}
