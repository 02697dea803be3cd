"""Agent messages, encoded and decoded strictly through the active backend."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import SerdeError
from ..runtime import backend as _backend
from ._contract import FIELDS, SerdeBackend
from ._core import WasmSerde
from ._reference import (
    PythonSerde,
    _has_surrogate,
)

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
