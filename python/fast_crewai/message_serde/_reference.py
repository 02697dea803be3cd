"""The pure-Python reference of ``message-serde``: a strict JSON reader
(also used by the memory reference) and the message checks.

The reader reports the first fault in document order, as the core's does:
``json.loads`` finds syntax errors and numbers in order and hands each
object to its hook when it closes, where the core checks an object's size
and keys too; nesting, which ``json.loads`` cannot limit, is measured
before it runs.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate, repeat
from typing import Any

from .._errors import SerdeError
from ._contract import (
    FIELDS,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_INT_DIGITS,
    MAX_MEMBERS,
    require_text,
    utf8_length,
)


class _Reject(Exception):
    def __init__(self, message: str, kind: str = "invalid-json") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(items) > MAX_MEMBERS:
        raise _Reject(f"an object has more than {MAX_MEMBERS} members", "too-large")
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            raise _Reject(f"duplicate key {json.dumps(key)}")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise _Reject("NaN and Infinity are not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Reject("number out of range for a double")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Reject(f"integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def _check_surrogates(value: Any) -> None:
    """Lone surrogates, which ``json.loads`` lets through."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                raise _Reject("lone surrogate in string")
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if _has_surrogate(key):
                    raise _Reject("lone surrogate in string")
                stack.append(child)


# A string (closed or running to the end) or a bracket, in JSON text.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS_ONLY = {ord(c): None for c in map(chr, range(0x80)) if c not in "[]{}"}
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
TOO_DEEP = f"arrays and objects nested more than {MAX_DEPTH} deep"


def _too_deep_at(text: str) -> int | None:
    """Where the bracket that opens the 257th nested array or object is, if
    one does before the brackets stop matching."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    # A quick bound in C first: most documents with many brackets are flat.
    brackets = _STRING.sub("", text).translate(_BRACKETS_ONLY)
    if len(brackets) <= MAX_DEPTH or max(accumulate(map(_DEPTH_STEP.get, brackets, repeat(0)))) <= MAX_DEPTH:
        return None
    depth = 0
    for token in _TOKEN.finditer(text):
        mark = text[token.start()]
        if mark in "[{":
            if depth == MAX_DEPTH:
                return token.start()
            depth += 1
        elif mark != '"':
            depth -= 1
            if depth < 0:
                return None
    return None


def _too_large(text: str) -> SerdeError | None:
    if len(text) * 4 <= MAX_DOCUMENT_BYTES:
        return None
    try:
        size = utf8_length(text)
    except UnicodeEncodeError as exc:
        # What the core's boundary says of a str it cannot carry.
        return SerdeError("invalid-json", "lone surrogate in string", position=exc.start)
    if size <= MAX_DOCUMENT_BYTES:
        return None
    return SerdeError("too-large", f"the document is {size} bytes, more than the limit of {MAX_DOCUMENT_BYTES} bytes")


def _py_parse(text: str) -> Any:
    error = _too_large(require_text(text))
    if error is not None:
        raise error
    deep = _too_deep_at(text)
    try:
        # Past the bracket that goes too deep nothing is read: what lies
        # before it is parsed for an earlier fault.
        value = json.loads(
            text if deep is None else text[:deep],
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
        _check_surrogates(value)
    except json.JSONDecodeError as exc:
        # Cut off where a value was expected: the fault is the bracket there.
        if deep is None or exc.pos < deep or exc.msg != "Expecting value":
            raise SerdeError("invalid-json", exc.msg, position=exc.pos) from None
    except _Reject as exc:
        raise SerdeError(exc.kind, exc.message) from None
    if deep is not None:
        # The core rejects a lone surrogate where it reads it: before the bracket.
        for token in _STRING.finditer(text, 0, deep):
            if _has_surrogate(json.loads(token.group())):
                raise SerdeError("invalid-json", "lone surrogate in string")
        raise SerdeError("too-deep", TOO_DEEP, position=deep)
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_message(value: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SerdeError("invalid-message", f"a message must be a JSON object, got {_type_name(value)}", prefix or None)
    for key in value:
        if key not in FIELDS:
            raise SerdeError("invalid-message", f"unknown field {json.dumps(key)}", _path(prefix, key))
    out: dict[str, Any] = {}
    for name in FIELDS:
        where = _path(prefix, name)
        if name not in value:
            raise SerdeError("invalid-message", "missing field", where)
        item = value[name]
        if name == "timestamp":
            ok, expected = isinstance(item, (int, float)) and not isinstance(item, bool), "timestamp must be a number"
        elif name == "metadata":
            ok, expected = isinstance(item, dict), "metadata must be an object"
        else:
            ok, expected = isinstance(item, str), f"{name} must be a string"
        if not ok:
            raise SerdeError("invalid-message", f"{expected}, got {_type_name(item)}", where)
        out[name] = item
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _within_limit(out: str) -> str:
    """The canonical text, if it can cross back as the core's would."""
    if len(out) * 4 > MAX_DOCUMENT_BYTES:
        size = utf8_length(out)
        if size > MAX_DOCUMENT_BYTES:
            raise SerdeError(
                "too-large", f"the canonical form is {size} bytes, more than the limit of {MAX_DOCUMENT_BYTES} bytes"
            )
    return out


class PythonSerde:
    """The reference implementation, in pure Python."""

    def canonicalize_many(self, text: str) -> str:
        doc = _py_parse(text)
        if not isinstance(doc, list):
            raise SerdeError("invalid-message", f"a batch must be a JSON array of messages, got {_type_name(doc)}")
        return _within_limit(_dumps([_check_message(item, f"[{i}]") for i, item in enumerate(doc)]))

    def canonicalize_one(self, text: str) -> str:
        return _within_limit(_dumps(_check_message(_py_parse(text), "")))
