"""What both serde backends implement: ``canonicalize_many(text) -> text``
and ``canonicalize_one(text) -> text`` validate a message document and
return its canonical JSON, which equals
``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` of the
parsed value with the fields in declaration order.
"""

from __future__ import annotations

from typing import Protocol

FIELDS = ("id", "sender", "recipient", "content", "timestamp", "metadata")
INTERFACE = "fast-crewai:core/message-serde@0.1.0"
MAX_DEPTH = 256
MAX_INT_DIGITS = 4300


class SerdeBackend(Protocol):
    def canonicalize_many(self, text: str) -> str: ...

    def canonicalize_one(self, text: str) -> str: ...
