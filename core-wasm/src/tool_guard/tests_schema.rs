//! Schema checking and validation, case by case.

use super::read::read;
use super::schema::{Schema, MAX_ERRORS};
use super::GuardError;
use crate::json::json_eq;

/// The violations of `value` (read leniently) as `path: message` lines.
fn violations(schema: &str, value: &str) -> Vec<String> {
    let schema = Schema::compile(schema).unwrap_or_else(|e| panic!("{schema}: {e:?}"));
    let value = read(value).unwrap().value;
    schema
        .validate(&value)
        .unwrap()
        .into_iter()
        .map(|v| format!("{}: {}", v.path, v.message))
        .collect()
}

fn schema_error(schema: &str) -> String {
    match Schema::compile(schema) {
        Err(GuardError::InvalidSchema { message, .. }) => message,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("{schema} was accepted"),
    }
}

const SEARCH: &str = r##"{
  "type": "object",
  "properties": {
    "query": {"type": "string", "description": "what to look for"},
    "limit": {"type": "integer"},
    "mode": {"enum": ["fast", "deep"]},
    "tags": {"type": "array", "items": {"type": "string"}},
    "near": {"anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}], "default": null}
  },
  "required": ["query"],
  "additionalProperties": false,
  "$defs": {
    "Point": {
      "type": "object",
      "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
      "required": ["lat", "lon"]
    }
  }
}"##;

#[test]
fn a_valid_value_has_no_violations() {
    assert!(violations(SEARCH, r#"{"query": "x"}"#).is_empty());
    assert!(violations(
        SEARCH,
        r#"{"query": "x", "limit": 3.0, "mode": "deep", "tags": ["a"], "near": {"lat": 1, "lon": 2.5}}"#
    )
    .is_empty());
    assert!(violations(SEARCH, r#"{"query": "x", "near": null}"#).is_empty());
}

#[test]
fn field_level_violations() {
    assert_eq!(
        violations(
            SEARCH,
            r#"{"limit": "3", "mode": "slow", "tags": ["a", 2], "extra": 1, "near": {"lat": 1}}"#
        ),
        vec![
            "/query: required property is missing",
            "/limit: expected integer, got string",
            "/mode: value is not one of the allowed values",
            "/tags/1: expected string, got integer",
            "/extra: additional property is not allowed",
            "/near: value matches none of the allowed schemas",
        ]
    );
    assert_eq!(violations(SEARCH, "[1]"), vec![": expected object, got array"]);
    assert_eq!(
        violations(SEARCH, r#"{"query": true}"#),
        vec!["/query: expected string, got boolean"]
    );
}

#[test]
fn the_schema_echoed_back_is_caught() {
    // A model that answers with the schema instead of the arguments.
    let echoed = r#"{"query": {"type": "string", "description": "what to look for"}}"#;
    assert_eq!(violations(SEARCH, echoed), vec!["/query: expected string, got object"]);
}

#[test]
fn keywords_compose() {
    let schema = r#"{"type": ["string", "null"], "allOf": [{"const": "a"}]}"#;
    assert!(violations(schema, r#""a""#).is_empty());
    assert_eq!(violations(schema, "1"), vec![": expected string or null, got integer"]);
    assert_eq!(
        violations(schema, r#""b""#),
        vec![": value is not the allowed constant"]
    );
    let one_of = r#"{"oneOf": [{"type": "integer"}, {"type": "number"}]}"#;
    assert_eq!(
        violations(one_of, "1"),
        vec![": value matches more than one of the exclusive schemas"]
    );
    assert!(violations(one_of, "1.5").is_empty());
    assert_eq!(
        violations(one_of, r#""x""#),
        vec![": value matches none of the allowed schemas"]
    );
    let tuple = r#"{"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false}"#;
    assert!(violations(tuple, r#"["a", 1]"#).is_empty());
    assert_eq!(
        violations(tuple, r#"[1, 1, 2]"#),
        vec!["/0: expected string, got integer", "/2: additional item is not allowed"]
    );
    assert_eq!(violations("false", "{}"), vec![": no value is allowed here"]);
    assert!(violations("true", "{}").is_empty());
    let typed_rest = r#"{"additionalProperties": {"type": "integer"}}"#;
    assert_eq!(
        violations(typed_rest, r#"{"a/b~": "x"}"#),
        vec!["/a~1b~0: expected integer, got string"]
    );
}

#[test]
fn recursive_models_validate_through_refs() {
    let tree = r##"{"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
        "required": ["name"]}}}"##;
    assert!(violations(tree, r#"{"name": "a", "children": [{"name": "b", "children": []}]}"#).is_empty());
    assert_eq!(
        violations(tree, r#"{"name": "a", "children": [{"children": [{"name": 1}]}]}"#),
        vec![
            "/children/0/name: required property is missing",
            "/children/0/children/0/name: expected string, got integer"
        ]
    );
}

#[test]
fn enum_equality_is_json_equality() {
    let eq = |a: &str, b: &str| json_eq(&read(a).unwrap().value, &read(b).unwrap().value);
    assert!(eq("[1]", "[1.0]"));
    assert!(eq(r#"{"a": 1, "b": [true]}"#, r#"{"b": [true], "a": 1.0}"#));
    assert!(!eq("[1]", "[true]"));
    assert!(!eq("[0]", "[false]"));
    assert!(!eq("[null]", "[0]"));
    assert!(eq("[1152921504606846976]", "[1152921504606846976.0]"));
    assert!(!eq("[1152921504606846977]", "[1152921504606846976.0]"));
    // The double nearest 12345678901234567890 is 12345678901234567168.
    assert!(!eq("[12345678901234567890]", "[12345678901234567890.0]"));
    assert!(!eq("[NaN]", "[NaN]"));
    assert!(eq("[-0]", "[0.0]"));
    assert!(!eq(r#"{"a": 1}"#, r#"{"a": 1, "b": 2}"#));
}

#[test]
fn bad_schemas_are_reported_whole() {
    assert_eq!(schema_error("{"), "the schema is not strict JSON");
    assert_eq!(schema_error("[]"), "#: a schema must be an object or a boolean");
    assert_eq!(schema_error(r#"{"type": "float"}"#), "#: unknown type \"float\"");
    assert_eq!(
        schema_error(r#"{"properties": {"a": {"type": 3}}}"#),
        "#/properties/a: \"type\" must be a type name or a non-empty array of type names"
    );
    assert_eq!(
        schema_error(r#"{"required": "a"}"#),
        "#: \"required\" must be an array of strings"
    );
    assert_eq!(schema_error(r#"{"enum": 1}"#), "#: \"enum\" must be an array");
    assert_eq!(
        schema_error(r#"{"anyOf": []}"#),
        "#: \"anyOf\" must be a non-empty array of schemas"
    );
    assert_eq!(
        schema_error(r##"{"$ref": "#/$defs/X"}"##),
        "#: cannot resolve $ref \"#/$defs/X\""
    );
    assert_eq!(
        schema_error(r#"{"$ref": "http://x"}"#),
        "#: cannot resolve $ref \"http://x\""
    );
    assert_eq!(
        schema_error(r##"{"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}}"##),
        "#/$defs/A: $ref cycle through \"#/$defs/B\""
    );
    assert_eq!(
        schema_error(r##"{"$defs": {"A": {"items": 5}}, "$ref": "#/$defs/A"}"##),
        "#/$defs/A/items: a schema must be an object or a boolean"
    );
    // A target reached only through a $ref is checked too.
    assert_eq!(
        schema_error(r##"{"x": {"type": 1}, "$ref": "#/x"}"##),
        "#/x: \"type\" must be a type name or a non-empty array of type names"
    );
}

#[test]
fn a_schema_that_recurses_without_reaching_a_value_is_an_error() {
    let schema = Schema::compile(r##"{"anyOf": [{"$ref": "#"}]}"##).unwrap();
    let value = read("{}").unwrap().value;
    assert!(matches!(schema.validate(&value), Err(GuardError::InvalidSchema { .. })));
}

#[test]
fn violations_are_capped() {
    let schema = r#"{"items": {"type": "string"}}"#;
    let many: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    let found = violations(schema, &format!("[{}]", many.join(",")));
    assert_eq!(found.len(), MAX_ERRORS);
    assert_eq!(found[0], "/0: expected string, got integer");
}
