"""The public tool-guard API on both backends."""

from __future__ import annotations

import json
import math

import pytest

from fast_crewai import (
    FastCrewAIError,
    GuardResult,
    InvalidSchemaError,
    ToolGuardError,
    UnreadableJSONError,
    canonical_json,
    repair_json,
)
from fast_crewai.tool_guard import FieldError, canonical_text

CASES = [
    # (text, value, repairs)
    ('{"query": "x", "limit": 5}', {"query": "x", "limit": 5}, ()),
    (
        "{'query': 'x', 'n': None, 'ok': True}",
        {"query": "x", "n": None, "ok": True},
        ("single-quotes", "python-literal"),
    ),
    ('{"q": None}', {"q": None}, ("python-literal",)),
    ("{query: 'x', limit: 5,}", {"query": "x", "limit": 5}, ("unquoted-key", "single-quotes", "trailing-comma")),
    ('{"a": 1 // one\n}', {"a": 1}, ("comment",)),
    ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}, ("fence",)),
    ('I will call it with {"a": 1}. Done.', {"a": 1}, ("extract",)),
    ('{"a": "abc', {"a": "abc"}, ("truncated",)),
    ('{"a": {"b": [1, {"c": tru', {"a": {"b": [1, {"c": True}]}}, ("truncated",)),
    ('{"a": "say "hi" now"}', {"a": 'say "hi" now'}, ("inner-quote",)),
    ("{name: John Smith}", {"name": "John Smith"}, ("unquoted-key", "unquoted-value")),
    ('{"a": 1\n"b": 2}', {"a": 1, "b": 2}, ("missing-comma",)),
    ("[+1, .5]", [1, 0.5], ("number",)),
    ('{"p": "C:\\dir"}', {"p": "C:\\dir"}, ("escape",)),
]


@pytest.mark.parametrize(("text", "value", "repairs"), CASES)
def test_cases(backend: str, text: str, value: object, repairs: tuple[str, ...]) -> None:
    result = repair_json(text)
    assert result == GuardResult(value, repairs)
    assert result.valid


@pytest.mark.parametrize(
    "text",
    ['{"a": NaN}', '{"a": 1, "a": 2}', '{"a": "\\ud800"}', "[" * 300 + "]" * 300, '"just a string"', "3", "[1e400]"],
)
def test_valid_json_keeps_pythons_value(backend: str, text: str) -> None:
    # What json.loads reads is never changed, even where the core alone
    # would refuse (nesting) or repair (lone surrogates).
    result = repair_json(text)
    expected = json.loads(text)
    assert result.repairs == ()
    assert json.dumps(result.value) == json.dumps(expected)


def test_schema_errors_are_field_level(backend: str) -> None:
    schema = {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query"],
        "additionalProperties": False,
    }
    result = repair_json("{limit: '3', extra: 1}", schema)
    assert result.value == {"limit": "3", "extra": 1}
    assert result.errors == (
        FieldError("/query", "required property is missing"),
        FieldError("/limit", "expected integer, got string"),
        FieldError("/extra", "additional property is not allowed"),
    )
    assert not result.valid
    assert repair_json('{"query": "x"}', schema).errors == ()
    # The schema as text works the same; a valid input is validated too.
    assert repair_json('{"query": 1}', json.dumps(schema)).errors == (
        FieldError("/query", "expected string, got integer"),
    )


def test_valid_json_beyond_the_core_is_validated_in_python(backend: str) -> None:
    deep = '{"a": ' + "[" * 300 + "]" * 300 + "}"
    assert repair_json(deep, {"properties": {"a": {"type": "string"}}}).errors == (
        FieldError("/a", "expected string, got array"),
    )
    assert repair_json('{"a": "\\ud800"}', {"properties": {"a": {"type": "string"}}}).errors == ()


def test_errors_are_typed(backend: str) -> None:
    with pytest.raises(UnreadableJSONError) as info:
        repair_json("there is no JSON here")
    assert info.value.message == "no JSON object or array found" and info.value.position is None
    with pytest.raises(UnreadableJSONError) as info:
        repair_json('{"a" 1}')
    assert info.value.position == 5
    with pytest.raises(InvalidSchemaError, match="unknown type"):
        repair_json("{}", {"type": "float"})
    with pytest.raises(InvalidSchemaError, match="cannot resolve"):
        repair_json('{"a": 1}', {"$ref": "#/$defs/Missing"})
    with pytest.raises(InvalidSchemaError, match="recurses deeper"):
        repair_json("{}", {"anyOf": [{"$ref": "#"}]})
    with pytest.raises(ToolGuardError):
        repair_json(b"{}")  # type: ignore[arg-type]
    assert issubclass(UnreadableJSONError, FastCrewAIError) and issubclass(UnreadableJSONError, ValueError)


def test_lone_surrogates_in_the_text_become_replacement_characters(backend: str) -> None:
    result = repair_json("{'a': 'x\ud800y'}")
    assert result.value == {"a": "x\ufffdy"}
    assert result.repairs == ("single-quotes", "lone-surrogate")


def test_non_finite_numbers_cross_intact(backend: str) -> None:
    value = repair_json("{a: NaN, b: -Infinity, c: 1e999}").value
    assert math.isnan(value["a"]) and value["b"] == -math.inf and value["c"] == math.inf


def test_canonical_forms_agree(backend: str) -> None:
    value = {"b": [{"z": 1, "y": None}], "a": "é", "c": 1.5}
    expected = '{"a":"é","b":[{"y":null,"z":1}],"c":1.5}'
    assert canonical_json(value) == expected
    assert canonical_text(json.dumps(value)) == expected
    assert canonical_text("{c: 1.5, b: [{z: 1, y: None}], 'a': 'é'}") == expected
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    with pytest.raises(ToolGuardError):
        canonical_json({"a": object()})
    with pytest.raises(UnreadableJSONError):
        canonical_text("nothing")


def test_huge_input(backend: str) -> None:
    members = ", ".join(f"'k{i}': 'v{i}'" for i in range(20_000))
    result = repair_json("{" + members)
    assert len(result.value) == 20_000
    assert result.repairs == ("single-quotes", "truncated")
