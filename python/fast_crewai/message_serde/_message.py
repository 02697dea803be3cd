"""Agent messages, encoded and decoded strictly through the active backend."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import SerdeError
from ..runtime import backend as _backend
from ._contract import FIELDS, MAX_DEPTH, SerdeBackend, require_text
from ._core import WasmSerde
from ._reference import TOO_DEEP, PythonSerde, _has_surrogate

_BACKENDS: dict[str, SerdeBackend] = {"python": PythonSerde(), "wasm": WasmSerde()}


def serde_backend(name: str | None = None) -> SerdeBackend:
    """The named backend, or the active one."""
    return _BACKENDS[name or _backend.active()]


# --------------------------------------------------------------------------- the message type


def _encodable(value: Any) -> bool:
    """Whether ``value`` survives a strict encode: JSON types only, finite
    floats, no lone surrogates; without recursing."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, str):
            if _has_surrogate(item):
                return False
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str) or _has_surrogate(key):
                    return False
                stack.append(child)
        else:
            return False
    return True


def _too_deep(value: Any, depth: int) -> bool:
    """Whether ``value``, at nesting level ``depth`` if it is a list or a
    dict, goes past ``MAX_DEPTH``; without recursing."""
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth > MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _path(i: int, name: str, one: bool) -> str:
    return name if one else f"[{i}].{name}"


def _locate(items: list[dict[str, Any]], one: bool) -> str | None:
    """The path of the first field that cannot be encoded, for errors."""
    for i, item in enumerate(items):
        for name, value in item.items():
            if not _encodable(value):
                return _path(i, name, one)
    return None


def _locate_deep(items: list[dict[str, Any]], one: bool) -> str | None:
    """The path of the first field nested too deep: its value sits inside
    the message (and the batch's array)."""
    for i, item in enumerate(items):
        for name, value in item.items():
            if _too_deep(value, 2 if one else 3):
                return _path(i, name, one)
    return None


def _as_dicts(messages: list[Any]) -> list[dict[str, Any]]:
    items = []
    for i, message in enumerate(messages):
        if not isinstance(message, AgentMessage):
            raise SerdeError("invalid-message", f"an AgentMessage is needed, got {type(message).__name__}", f"[{i}]")
        items.append(message._as_dict())
    return items


def _encode(messages: list[Any], one: bool) -> str:
    items = _as_dicts(messages)
    backend = serde_backend()
    try:
        # ASCII escapes let lone surrogates and NaN reach the strict
        # canonicaliser, which is the one place that rejects them.
        wire = json.dumps(items[0] if one else items, ensure_ascii=True, allow_nan=True, separators=(",", ":"))
        return backend.canonicalize_one(wire) if one else backend.canonicalize_many(wire)
    except RecursionError:
        # Nesting far past the limit overflows the encoder before the
        # canonicaliser can refuse it.
        raise SerdeError("too-deep", TOO_DEEP, _locate_deep(items, one)) from None
    except SerdeError as exc:
        if exc.kind == "too-deep":
            raise SerdeError("too-deep", exc.message, _locate_deep(items, one), exc.position) from None
        raise _with_field(exc, items, one) from None
    except (TypeError, ValueError) as exc:
        raise _with_field(exc, items, one) from None


def _with_field(exc: TypeError | ValueError, items: list[dict[str, Any]], one: bool) -> SerdeError:
    """``exc`` as a :class:`SerdeError` naming the field that caused it."""
    where = _locate(items, one)
    if isinstance(exc, SerdeError):
        if where is None or exc.field:
            return exc
        return SerdeError(exc.kind, exc.message, where)
    return SerdeError("invalid-message", str(exc), where)


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
        and position of the first problem (also for anything but a ``str``)."""
        return cls(**json.loads(serde_backend().canonicalize_one(require_text(text))))

    @staticmethod
    def encode_many(messages: Iterable[AgentMessage]) -> str:
        """One JSON array for a whole batch, in one call to the core."""
        return _encode(list(messages), one=False)

    @classmethod
    def decode_many(cls, text: str) -> list[AgentMessage]:
        """Decodes a JSON array of messages in one call to the core."""
        return [cls(**item) for item in json.loads(serde_backend().canonicalize_many(require_text(text)))]
