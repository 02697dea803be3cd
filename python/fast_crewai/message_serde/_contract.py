"""What both serde backends implement: ``canonicalize_many(text) -> text``
and ``canonicalize_one(text) -> text`` validate a message document and
return its canonical JSON, which equals
``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` of the
parsed value with the fields in declaration order.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._errors import SerdeError

FIELDS = ("id", "sender", "recipient", "content", "timestamp", "metadata")
INTERFACE = "fast-crewai:core/message-serde@0.1.0"
#: Arrays and objects nest at most this deep (the core's ``json::MAX_DEPTH``).
MAX_DEPTH = 256
#: The most members one object may have (``json::MAX_MEMBERS``).
MAX_MEMBERS = 65_536
#: The largest document, in UTF-8 bytes, either way (``json::MAX_DOCUMENT_BYTES``):
#: wasmtime copies at most 128 MiB out of the guest per call.
MAX_DOCUMENT_BYTES = 127 << 20
MAX_INT_DIGITS = 4300


class SerdeBackend(Protocol):
    def canonicalize_many(self, text: str) -> str: ...

    def canonicalize_one(self, text: str) -> str: ...


def require_text(text: Any) -> str:
    """``text`` if it is a ``str``; both backends refuse anything else alike."""
    if not isinstance(text, str):
        raise SerdeError("invalid-json", f"a JSON document must be a str, not {type(text).__name__}")
    return text


def utf8_length(text: str) -> int:
    """The UTF-8 size of ``text``, which must hold no lone surrogate."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))
