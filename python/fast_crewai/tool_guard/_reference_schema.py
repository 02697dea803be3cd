"""The pure-Python reference of the tool guard's JSON-schema subset, line for
line the rules of ``core-wasm/src/tool_guard/schema.rs``.

A schema is checked whole when compiled; validation collects field-level
violations as ``(JSON pointer, message)`` pairs.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .._errors import InvalidSchemaError, SerdeError
from ..message_serde._reference import _py_parse
from ._contract import MAX_ERRORS, MAX_SCHEMA_DEPTH

TYPES = frozenset(("null", "boolean", "object", "array", "number", "integer", "string"))

# Absent, as opposed to a JSON null.
_ABSENT: Any = object()


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _token(key: str) -> str:
    """``key`` as one JSON-pointer reference token."""
    return key.replace("~", "~0").replace("/", "~1")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _has_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    if name == "number":
        return _is_number(value)
    if name == "integer":
        if isinstance(value, float):
            return math.isfinite(value) and value.is_integer()
        return _is_number(value)
    return False


def json_eq(a: Any, b: Any) -> bool:
    """Exact JSON equality: numbers by value (``1 == 1.0``), booleans apart
    from numbers, objects regardless of member order."""
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        # Python compares int and float exactly, as the core does.
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and json_eq(v, b[k]) for k, v in a.items())
    return False


class Schema:
    """A checked schema document."""

    def __init__(self, text: str) -> None:
        try:
            self.root = _py_parse(text)
        except SerdeError:
            raise InvalidSchemaError("the schema is not strict JSON") from None
        self._check(self.root, "#", set())

    def resolve(self, reference: str) -> Any:
        """The node a local ``$ref`` points at, or ``_ABSENT``."""
        if not reference.startswith("#"):
            return _ABSENT
        pointer = reference[1:]
        if not pointer:
            return self.root
        if not pointer.startswith("/"):
            return _ABSENT
        node = self.root
        for raw in pointer[1:].split("/"):
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict):
                if token not in node:
                    return _ABSENT
                node = node[token]
            elif isinstance(node, list) and token and all(c in "0123456789" for c in token):
                index = int(token)
                if index >= len(node):
                    return _ABSENT
                node = node[index]
            else:
                return _ABSENT
        return node

    def _check(self, node: Any, at: str, visited: set[str]) -> None:
        def fail(message: str) -> InvalidSchemaError:
            return InvalidSchemaError(f"{at}: {message}")

        if isinstance(node, bool):
            return
        if not isinstance(node, dict):
            raise fail("a schema must be an object or a boolean")
        if "type" in node:
            kind = node["type"]
            if isinstance(kind, str):
                if kind not in TYPES:
                    raise fail(f"unknown type {_quoted(kind)}")
            elif not (isinstance(kind, list) and kind and all(isinstance(k, str) and k in TYPES for k in kind)):
                raise fail('"type" must be a type name or a non-empty array of type names')
        if "enum" in node and not isinstance(node["enum"], list):
            raise fail('"enum" must be an array')
        if "required" in node:
            required = node["required"]
            if not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
                raise fail('"required" must be an array of strings')
        if "$ref" in node:
            reference = node["$ref"]
            if not isinstance(reference, str):
                raise fail('"$ref" must be a string')
            self._check_chain(reference, at)
            if reference not in visited:
                visited.add(reference)
                self._check(self.resolve(reference), reference, visited)
        if "properties" in node:
            properties = node["properties"]
            if not isinstance(properties, dict):
                raise fail('"properties" must be an object')
            for key, sub in properties.items():
                self._check(sub, f"{at}/properties/{_token(key)}", visited)
        if "additionalProperties" in node:
            self._check(node["additionalProperties"], f"{at}/additionalProperties", visited)
        if "items" in node:
            items = node["items"]
            if isinstance(items, list):
                self._check_all(items, f"{at}/items", visited)
            else:
                self._check(items, f"{at}/items", visited)
        for keyword in ("prefixItems", "anyOf", "allOf", "oneOf"):
            if keyword in node:
                subs = node[keyword]
                if isinstance(subs, list) and (keyword == "prefixItems" or subs):
                    self._check_all(subs, f"{at}/{keyword}", visited)
                elif keyword == "prefixItems":
                    raise fail('"prefixItems" must be an array of schemas')
                else:
                    raise fail(f'"{keyword}" must be a non-empty array of schemas')
        for keyword in ("$defs", "definitions"):
            if keyword in node:
                defs = node[keyword]
                if not isinstance(defs, dict):
                    raise fail(f'"{keyword}" must be an object')
                for key, sub in defs.items():
                    self._check(sub, f"{at}/{keyword}/{_token(key)}", visited)

    def _check_all(self, subs: list[Any], at: str, visited: set[str]) -> None:
        for i, sub in enumerate(subs):
            self._check(sub, f"{at}/{i}", visited)

    def _check_chain(self, first: str, at: str) -> None:
        chain: list[str] = []
        reference = first
        while True:
            if reference in chain:
                raise InvalidSchemaError(f"{at}: $ref cycle through {_quoted(reference)}")
            chain.append(reference)
            target = self.resolve(reference)
            if target is _ABSENT:
                raise InvalidSchemaError(f"{at}: cannot resolve $ref {_quoted(reference)}")
            following = target.get("$ref") if isinstance(target, dict) else None
            if not isinstance(following, str):
                return
            reference = following

    def validate(self, value: Any) -> list[tuple[str, str]]:
        """The violations of ``value``, at most ``MAX_ERRORS``."""
        errors: list[tuple[str, str]] = []
        self._walk(value, self.root, "", 0, errors)
        return errors[:MAX_ERRORS]

    def _walk(self, value: Any, schema: Any, path: str, depth: int, errors: list[tuple[str, str]]) -> None:
        # One frame per level (anyOf and oneOf recurse here too), so deep
        # values stay far from Python's recursion limit.
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidSchemaError(f"the schema recurses deeper than {MAX_SCHEMA_DEPTH} levels")
        if schema is False:
            errors.append((path, "no value is allowed here"))
            return
        if not isinstance(schema, dict):
            return
        reference = schema.get("$ref")
        if isinstance(reference, str):
            self._walk(value, self.resolve(reference), path, depth + 1, errors)
        kind = schema.get("type")
        if isinstance(kind, str) and not _has_type(value, kind):
            errors.append((path, f"expected {kind}, got {_got(value)}"))
            return
        if isinstance(kind, list) and not any(isinstance(k, str) and _has_type(value, k) for k in kind):
            names = " or ".join(k for k in kind if isinstance(k, str))
            errors.append((path, f"expected {names}, got {_got(value)}"))
            return
        options = schema.get("enum")
        if isinstance(options, list) and not any(json_eq(o, value) for o in options):
            errors.append((path, "value is not one of the allowed values"))
        if "const" in schema and not json_eq(schema["const"], value):
            errors.append((path, "value is not the allowed constant"))
        if isinstance(value, dict):
            required = schema.get("required")
            if isinstance(required, list):
                for key in required:
                    if isinstance(key, str) and key not in value:
                        errors.append((f"{path}/{_token(key)}", "required property is missing"))
            properties = schema.get("properties")
            additional = schema.get("additionalProperties", _ABSENT)
            for key, item in value.items():
                child = f"{path}/{_token(key)}"
                sub = properties.get(key, _ABSENT) if isinstance(properties, dict) else _ABSENT
                if sub is not _ABSENT:
                    self._walk(item, sub, child, depth + 1, errors)
                elif additional is False:
                    errors.append((child, "additional property is not allowed"))
                elif additional is not _ABSENT:
                    self._walk(item, additional, child, depth + 1, errors)
        elif isinstance(value, list):
            items = schema.get("items", _ABSENT)
            prefix_items = schema.get("prefixItems")
            if isinstance(items, list):
                prefix, rest = items, _ABSENT
            elif isinstance(prefix_items, list):
                prefix, rest = prefix_items, items
            else:
                prefix, rest = [], items
            for i, item in enumerate(value):
                child = f"{path}/{i}"
                if i < len(prefix):
                    self._walk(item, prefix[i], child, depth + 1, errors)
                elif rest is False:
                    errors.append((child, "additional item is not allowed"))
                elif rest is not _ABSENT:
                    self._walk(item, rest, child, depth + 1, errors)
        all_of = schema.get("allOf")
        if isinstance(all_of, list):
            for sub in all_of:
                self._walk(value, sub, path, depth + 1, errors)
        any_of = schema.get("anyOf")
        if isinstance(any_of, list):
            for sub in any_of:
                found: list[tuple[str, str]] = []
                self._walk(value, sub, path, depth + 1, found)
                if not found:
                    break
            else:
                errors.append((path, "value matches none of the allowed schemas"))
        one_of = schema.get("oneOf")
        if isinstance(one_of, list):
            count = 0
            for sub in one_of:
                found = []
                self._walk(value, sub, path, depth + 1, found)
                count += not found
            if count == 0:
                errors.append((path, "value matches none of the allowed schemas"))
            elif count > 1:
                errors.append((path, "value matches more than one of the exclusive schemas"))
