"""The Python reference's reading of records and filters: the same
checks, in the same order, as the core's codec and filters.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._errors import (
    InvalidRecordError,
    SerdeError,
)
from ..message_serde._reference import _has_surrogate, _py_parse, _type_name
from ._contract import _surrogate_error

if TYPE_CHECKING:
    from ._reference_table import _Table


def _parse_json(text: str, what: str) -> Any:
    try:
        return _py_parse(text)
    except SerdeError as exc:
        where = f" at position {exc.position}" if exc.position is not None else ""
        raise InvalidRecordError(f"{what} is not valid JSON: {exc.message}{where}") from None


def _plain_text(value: str) -> str:
    """A string argument that could cross into the core (valid UTF-8)."""
    if _has_surrogate(value):
        raise _surrogate_error()
    return value


def _number(value: Any) -> float | None:
    """A JSON number as a finite double; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    # +0.0 for -0.0, as the core stores it (SQLite keeps a REAL -0.0 as 0).
    return number + 0.0 if math.isfinite(number) else None


Vector = npt.NDArray[np.float32]


def _decode_vector(text: str, what: str) -> Vector:
    """Standard padded base64 of little-endian float32 values, canonical
    form only, finite values only (as the core decodes it)."""
    vector = _decode_floats(text, what)
    _check_finite(vector, what)
    return vector


def _check_finite(vector: Vector, what: str) -> None:
    finite = np.isfinite(vector)
    if not finite.all():
        i = int(np.argmin(finite))
        raise InvalidRecordError(f"{what}[{i}] is {vector[i]}, not a finite number")


def _decode_floats(text: str, what: str) -> Vector:
    """Standard padded base64 of little-endian float32 values, canonical
    form only."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise InvalidRecordError(f"{what} is not valid base64: {exc}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise InvalidRecordError(f"{what} is not valid base64: not in canonical form")
    if len(raw) % 4:
        raise InvalidRecordError(f"{what} has {len(raw)} bytes, not a multiple of 4 (float32 values)")
    vector: Vector = np.frombuffer(raw, dtype="<f4")
    return vector


@dataclass(slots=True)
class _Record:
    id: str
    content: str
    scope: str
    categories: list[str]
    metadata: dict[str, Any]
    importance: float
    created_at: str
    created_ts: float
    last_accessed: str
    source: str | None
    private: bool
    has_embedding: bool


# Per record field: the JSON type it takes (as errors name it) and whether
# null stands for its default.
_STRING, _STRINGS, _OBJECT, _NUMBER, _BOOLEAN = "a string", "an array of strings", "an object", "a number", "a boolean"
_RECORD_FIELDS: dict[str, tuple[str, bool]] = {
    "id": (_STRING, False),
    "content": (_STRING, False),
    "scope": (_STRING, True),
    "categories": (_STRINGS, True),
    "metadata": (_OBJECT, True),
    "importance": (_NUMBER, True),
    "created_at": (_STRING, False),
    "created_ts": (_NUMBER, False),
    "last_accessed": (_STRING, True),
    "source": (_STRING, True),
    "private": (_BOOLEAN, True),
    "embedding": (_STRING, True),
}


class _Block:
    """A packed batch's vector block and how many values records took."""

    def __init__(self, vectors: str) -> None:
        self.values = _decode_floats(vectors, "vectors")
        self.taken = 0

    def take(self, count: Any, i: int) -> Vector | None:
        """The embedding of ``records[i]``, ``count`` values from here."""
        what = f"records[{i}].embedding"
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidRecordError(f"{what} must be the count of its values in vectors, or null")
        end = self.taken + count
        if end > len(self.values):
            raise InvalidRecordError(f"{what} takes {count} values, past the {len(self.values)} in vectors")
        values = self.values[self.taken : end]
        self.taken = end
        _check_finite(values, what)
        # An empty embedding is no embedding, as in LanceDB.
        return values if count else None


def _parse_record(item: Any, i: int, block: _Block | None = None) -> tuple[_Record, Vector | None]:
    if not isinstance(item, dict):
        raise InvalidRecordError(f"records[{i}] must be an object, not {_type_name(item)}")
    given: dict[str, Any] = {}
    embedding: Vector | None = None
    for key, value in item.items():
        spec = _RECORD_FIELDS.get(key)
        if spec is None:
            raise InvalidRecordError(f"records[{i}] has an unknown field {json.dumps(key, ensure_ascii=False)}")
        kind, nullable = spec
        if value is None and nullable:
            continue
        if key == "embedding" and block is not None:
            embedding = block.take(value, i)
            continue
        if kind == _STRING:
            ok = isinstance(value, str)
        elif kind == _STRINGS:
            ok = isinstance(value, list)
            for j, c in enumerate(value if ok else ()):
                if not isinstance(c, str):
                    raise InvalidRecordError(f"records[{i}].categories[{j}] must be a string, not {_type_name(c)}")
        elif kind == _OBJECT:
            ok = isinstance(value, dict)
        elif kind == _BOOLEAN:
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                value = _number(value)
                if value is None:
                    raise InvalidRecordError(f"records[{i}].{key} is out of range for a double")
        if not ok:
            want = "a string or null" if key in ("source", "embedding") else kind
            raise InvalidRecordError(f"records[{i}].{key} must be {want}, not {_type_name(value)}")
        if key == "embedding":
            decoded = _decode_vector(value, f"records[{i}].embedding")
            # An empty embedding is no embedding, as in LanceDB.
            embedding = decoded if len(decoded) else None
        else:
            given[key] = value
    for required in ("created_at", "id", "content", "created_ts"):
        if required not in given:
            raise InvalidRecordError(f"records[{i}] lacks the required field {json.dumps(required)}")
    record = _Record(
        id=given["id"],
        content=given["content"],
        scope=_rooted_scope(given.get("scope", "/")),
        categories=given.get("categories", []),
        metadata=given.get("metadata", {}),
        importance=given.get("importance", 0.5),
        created_at=given["created_at"],
        created_ts=given["created_ts"],
        last_accessed=given.get("last_accessed", given["created_at"]),
        source=given.get("source"),
        private=given.get("private", False),
        has_embedding=embedding is not None,
    )
    return record, embedding


def _parse_records(text: str, vectors: str | None = None) -> list[tuple[_Record, Vector | None]]:
    """The records of ``save``, or with ``vectors`` of ``save-packed``."""
    block = None if vectors is None else _Block(vectors)
    items = _parse_json(text, "records")
    if not isinstance(items, list):
        raise InvalidRecordError("records must be a JSON array of record objects")
    batch = [_parse_record(item, i, block) for i, item in enumerate(items)]
    if block is not None and block.taken != len(block.values):
        raise InvalidRecordError(f"vectors holds {len(block.values)} values, the records take {block.taken}")
    return batch


def _rooted_scope(scope: str) -> str:
    """A scope as the store keeps it: with a leading ``/`` added when it
    lacks one, so that rooted prefixes reach it."""
    return scope if scope.startswith("/") else "/" + scope


def _rooted_prefix(prefix: str) -> str:
    """A scope prefix as it is compared: trailing ``/`` removed, rooted;
    empty for the root (everything)."""
    trimmed = prefix.rstrip("/")
    return trimmed if not trimmed or trimmed.startswith("/") else "/" + trimmed


def _effective_prefix(prefix: str | None) -> str | None:
    """:func:`_rooted_prefix`, None for the root (no constraint)."""
    if prefix is None:
        return None
    return _rooted_prefix(prefix) or None


def _in_scope(scope: str, prefix: str) -> bool:
    return scope.startswith(prefix) and (len(scope) == len(prefix) or scope[len(prefix)] == "/")


def _json_eq(a: Any, b: Any) -> bool:
    """JSON equality: numbers by exact value, ``true`` is not ``1``, objects
    regardless of member order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and _json_eq(v, b[k]) for k, v in a.items())
    return type(a) is type(b) and bool(a == b)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list):
        raise InvalidRecordError(f"filter.{what} must be an array of strings, not {_type_name(value)}")
    for j, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidRecordError(f"filter.{what}[{j}] must be a string, not {_type_name(item)}")
    return value


@dataclass
class _Filter:
    scope: str | None = None
    categories: list[str] | None = None
    metadata: list[tuple[str, Any]] = field(default_factory=list)
    ids: list[str] | None = None
    older_than: float | None = None

    @classmethod
    def parse(cls, text: str) -> _Filter:
        members = _parse_json(text, "filter")
        if not isinstance(members, dict):
            raise InvalidRecordError("filter must be a JSON object")
        f = cls()
        for key, value in members.items():
            if value is None:
                continue
            if key == "scope_prefix":
                if not isinstance(value, str):
                    raise InvalidRecordError(f"filter.scope_prefix must be a string, not {_type_name(value)}")
                f.scope = _effective_prefix(value)
            elif key == "categories":
                f.categories = _strings(value, "categories")
            elif key == "ids":
                f.ids = _strings(value, "ids")
            elif key == "metadata":
                if not isinstance(value, dict):
                    raise InvalidRecordError(f"filter.metadata must be an object, not {_type_name(value)}")
                f.metadata = list(value.items())
            elif key == "older_than":
                f.older_than = _number(value)
                if f.older_than is None:
                    raise InvalidRecordError(
                        f"filter.older_than must be a number (seconds since the epoch), not {_type_name(value)}"
                    )
            else:
                raise InvalidRecordError(f"filter has an unknown member {json.dumps(key, ensure_ascii=False)}")
        return f

    @classmethod
    def of_scope(cls, prefix: str | None) -> _Filter:
        return cls(scope=_effective_prefix(prefix))

    def is_empty(self) -> bool:
        return (
            self.scope is None
            and self.categories is None
            and not self.metadata
            and self.ids is None
            and self.older_than is None
        )

    def matches(self, r: _Record) -> bool:
        """Every member but ``ids`` (see :meth:`rows`)."""
        if self.scope is not None and not _in_scope(r.scope, self.scope):
            return False
        if self.older_than is not None and r.created_ts >= self.older_than:
            return False
        if self.categories is not None and not any(c in r.categories for c in self.categories):
            return False
        return all(_json_eq(r.metadata.get(k), want) for k, want in self.metadata)

    def rows(self, table: _Table) -> list[int]:
        """The matching rows, ascending."""
        if self.ids is None:
            candidates: Iterable[int] = range(len(table.records))
        else:
            candidates = sorted({table.by_id[i] for i in self.ids if i in table.by_id})
        return [row for row in candidates if self.matches(table.records[row])]
