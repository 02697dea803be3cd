"""Agent messages, encoded and decoded strictly through the core.

Both backends implement one contract, ``canonicalize_many(text) -> text``
and ``canonicalize_one(text) -> text``: validate a message document and
return its canonical JSON, which equals
``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` of the
parsed value with the fields in declaration order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _backend
from ._errors import SerdeError

FIELDS = ("id", "sender", "recipient", "content", "timestamp", "metadata")
INTERFACE = "fast-crewai:core/message-serde@0.1.0"
MAX_DEPTH = 256
MAX_INT_DIGITS = 4300


class SerdeBackend(Protocol):
    def canonicalize_many(self, text: str) -> str: ...

    def canonicalize_one(self, text: str) -> str: ...


# --------------------------------------------------------------------------- Python reference


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


# --------------------------------------------------------------------------- the core


class WasmSerde:
    """The same contract, served by the core's ``message-serde``."""

    def _call(self, name: str, text: str) -> str:
        from ._runtime import error_of, field

        try:
            result = _backend.runtime().stateless().call(INTERFACE, name, text)
        except UnicodeEncodeError as exc:
            # A str holding a lone surrogate cannot even cross as UTF-8.
            raise SerdeError("invalid-json", "lone surrogate in string", position=exc.start) from None
        err = error_of(result)
        if err is not None:
            problem = err.payload
            position = field(problem, "position")
            raise SerdeError(err.tag, field(problem, "message"), field(problem, "field") or None, position)
        assert isinstance(result, str)
        return result

    def canonicalize_many(self, text: str) -> str:
        return self._call("canonicalize-many", text)

    def canonicalize_one(self, text: str) -> str:
        return self._call("canonicalize-one", text)


_BACKENDS: dict[str, SerdeBackend] = {"python": PythonSerde(), "wasm": WasmSerde()}


def serde_backend(name: str | None = None) -> SerdeBackend:
    """The named backend, or the active one."""
    return _BACKENDS[name or _backend.active()]


# --------------------------------------------------------------------------- the message type


def _encodable(value: Any) -> bool:
    """Whether ``value`` survives a strict encode: JSON types only, finite
    floats, no lone surrogates."""
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not _has_surrogate(value)
    if isinstance(value, (list, tuple)):
        return all(_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _encodable(k) and _encodable(v) for k, v in value.items())
    return False


def _locate(items: list[dict[str, Any]], one: bool) -> str | None:
    """The path of the first field that cannot be encoded, for errors."""
    for i, item in enumerate(items):
        for name, value in item.items():
            if not _encodable(value):
                return name if one else f"[{i}].{name}"
    return None


def _encode(messages: list[AgentMessage], one: bool) -> str:
    items = [m._as_dict() for m in messages]
    backend = serde_backend()
    try:
        # ASCII escapes let lone surrogates and NaN reach the strict
        # canonicaliser, which is the one place that rejects them.
        wire = json.dumps(items[0] if one else items, ensure_ascii=True, allow_nan=True, separators=(",", ":"))
        return backend.canonicalize_one(wire) if one else backend.canonicalize_many(wire)
    except (TypeError, ValueError) as exc:
        kind = exc.kind if isinstance(exc, SerdeError) else "invalid-message"
        where = _locate(items, one)
        if isinstance(exc, SerdeError) and (where is None or exc.field):
            raise
        message = exc.message if isinstance(exc, SerdeError) else str(exc)
        raise SerdeError(kind, message, where) from None


@dataclass
class AgentMessage:
    """A message between agents, encoded and decoded strictly by the core."""

    id: str
    sender: str
    recipient: str
    content: str
    timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def _as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def to_json(self) -> str:
        """The canonical JSON of this message."""
        return _encode([self], one=True)

    @classmethod
    def from_json(cls, text: str) -> AgentMessage:
        """Decodes one message; raises :class:`SerdeError` naming the field
        and position of the first problem."""
        return cls(**json.loads(serde_backend().canonicalize_one(text)))

    @staticmethod
    def encode_many(messages: Iterable[AgentMessage]) -> str:
        """One JSON array for a whole batch, in one call to the core."""
        return _encode(list(messages), one=False)

    @classmethod
    def decode_many(cls, text: str) -> list[AgentMessage]:
        """Decodes a JSON array of messages in one call to the core."""
        return [cls(**item) for item in json.loads(serde_backend().canonicalize_many(text))]
