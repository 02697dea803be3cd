"""The pure-Python reference of ``message-serde``: a strict JSON reader
(also used by the memory reference) and the message checks.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .._errors import SerdeError
from ._contract import FIELDS, MAX_DEPTH, MAX_INT_DIGITS


class _Reject(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
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


def _check_tree(value: Any) -> None:
    """Depth limit and lone surrogates, which ``json.loads`` lets through."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Reject(f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            if _has_surrogate(item):
                raise _Reject("lone surrogate in string")
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if _has_surrogate(key):
                    raise _Reject("lone surrogate in string")
                stack.append((child, depth + 1))


def _py_parse(text: str) -> Any:
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float, parse_int=_int)
        _check_tree(value)
    except json.JSONDecodeError as exc:
        raise SerdeError("invalid-json", exc.msg, position=exc.pos) from None
    except _Reject as exc:
        raise SerdeError("invalid-json", exc.message) from None
    except RecursionError:
        raise SerdeError("invalid-json", f"nesting deeper than {MAX_DEPTH} levels") from None
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


class PythonSerde:
    """The reference implementation, in pure Python."""

    def canonicalize_many(self, text: str) -> str:
        doc = _py_parse(text)
        if not isinstance(doc, list):
            raise SerdeError("invalid-message", f"a batch must be a JSON array of messages, got {_type_name(doc)}")
        return _dumps([_check_message(item, f"[{i}]") for i, item in enumerate(doc)])

    def canonicalize_one(self, text: str) -> str:
        return _dumps(_check_message(_py_parse(text), ""))
