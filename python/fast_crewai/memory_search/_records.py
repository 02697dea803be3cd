"""MemoryRecord to and from the memory-search contract's JSON, and the
checks on a StorageBackend method's arguments before they cross: what
:mod:`._storage` sends the index and builds from its answers.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import numbers
import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from crewai.memory.types import MemoryRecord

from .._errors import InvalidRecordError

# --------------------------------------------------------------------------- MemoryRecord <-> JSON


def _timestamp(moment: datetime) -> float:
    """Seconds since the epoch; a naive datetime is UTC (CrewAI's are)."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)).timestamp()


def _parse_datetime(text: str) -> datetime:
    # Python 3.10's fromisoformat does not read "Z".
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@functools.lru_cache(maxsize=64)
def _packer(length: int) -> struct.Struct:
    return struct.Struct(f"<{length}f")


def _packed(vector: Sequence[float]) -> bytes:
    """Little-endian float32 values. (``struct`` packs a list of floats about
    three times as fast as ``array('f', ...)``, rounding each to the nearest
    float32 the same way; a value past float32's range is refused here
    rather than made an infinity for the store to refuse.)"""
    try:
        return _packer(len(vector)).pack(*vector)
    except (TypeError, OverflowError, struct.error) as exc:
        raise InvalidRecordError(f"an embedding must be a sequence of numbers within float32's range: {exc}") from None


def _pack_vector(vector: Sequence[float]) -> str:
    """Base64 of little-endian float32 values."""
    return base64.b64encode(_packed(vector)).decode("ascii")


def _unpack_vector(text: str) -> list[float]:
    packed = array("f", bytes.fromhex(text))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


def records_to_wire(records: list[MemoryRecord]) -> tuple[str, str]:
    """The contract's ``save-packed`` arguments for ``records``: their JSON,
    each embedding replaced by its count of values, and every embedding in
    one base64 block (encoded once for the batch, and never read as JSON
    text by the store)."""
    fields = []
    vectors = []
    for record in records:
        embedding = record.embedding
        count = None
        if embedding is not None and len(embedding):
            vectors.append(_packed(embedding))
            count = len(embedding)
        fields.append(
            {
                "id": record.id,
                "content": record.content,
                "scope": record.scope,
                "categories": record.categories,
                "metadata": record.metadata,
                "importance": record.importance,
                "created_at": record.created_at.isoformat(),
                "created_ts": _timestamp(record.created_at),
                "last_accessed": record.last_accessed.isoformat(),
                "source": record.source,
                "private": record.private,
                "embedding": count,
            }
        )
    return _wire(fields, "a record"), base64.b64encode(b"".join(vectors)).decode("ascii")


def _record_builder() -> Callable[[dict[str, Any]], MemoryRecord]:
    """What builds a ``MemoryRecord`` from a complete dict of its fields,
    unvalidated: ``model_construct``, or, when pydantic lays the model out as
    it does today (checked here on a sample against ``model_construct``
    itself), the same object without ``model_construct``'s per-call
    bookkeeping; a search builds up to ``limit`` records."""

    def construct(fields: dict[str, Any]) -> MemoryRecord:
        return MemoryRecord.model_construct(**fields)

    if MemoryRecord.__private_attributes__ or MemoryRecord.model_config.get("extra") == "allow":
        return construct
    every_field = frozenset(MemoryRecord.model_fields)
    new, set_attribute = MemoryRecord.__new__, object.__setattr__

    def assemble(fields: dict[str, Any]) -> MemoryRecord:
        record = new(MemoryRecord)
        set_attribute(record, "__dict__", fields)
        set_attribute(record, "__pydantic_fields_set__", set(every_field))
        set_attribute(record, "__pydantic_extra__", None)
        set_attribute(record, "__pydantic_private__", None)
        return record

    moment = datetime(2026, 1, 1)
    sample = {
        "id": "x",
        "content": "c",
        "scope": "/s",
        "categories": ["a"],
        "metadata": {"k": 1},
        "importance": 0.5,
        "created_at": moment,
        "last_accessed": moment,
        "embedding": [1.0],
        "source": None,
        "private": False,
    }
    expected, got = construct(dict(sample)), assemble(dict(sample))
    same = (
        list(sample) == list(MemoryRecord.model_fields)
        and expected == got
        and expected.__dict__ == got.__dict__
        and expected.__pydantic_fields_set__ == got.__pydantic_fields_set__
        and expected.__pydantic_extra__ == got.__pydantic_extra__
        and expected.__pydantic_private__ == got.__pydantic_private__
        and expected.model_dump() == got.model_dump()
    )
    return assemble if same else construct


_build_record = _record_builder()


def record_from_wire(item: dict[str, Any]) -> MemoryRecord:
    """A ``MemoryRecord`` from the contract's JSON object. The store only
    holds records it validated, so pydantic's validation is skipped."""
    return _build_record(_fields_from_wire(item))


def _fields_from_wire(item: dict[str, Any]) -> dict[str, Any]:
    """The ``MemoryRecord`` fields of the contract's JSON object."""
    embedding = item["embedding"]
    # In the model's field order, as model_construct would lay them out.
    return {
        "id": item["id"],
        "content": item["content"],
        "scope": item["scope"],
        "categories": item["categories"],
        "metadata": item["metadata"],
        "importance": item["importance"],
        "created_at": _parse_datetime(item["created_at"]),
        "last_accessed": _parse_datetime(item["last_accessed"]),
        "embedding": None if embedding is None else _unpack_vector(embedding),
        "source": item["source"],
        "private": item["private"],
    }


_FLAT = frozenset({str, int, float, bool, type(None)})


class _Built:
    """A record's fields as built once from the store's JSON, kept in the
    record cache. Each hit gets a new ``MemoryRecord`` with its own lists and
    metadata (a caller may change what it was given), sharing only the
    immutable values: copying a list of floats costs far less than making
    the floats again."""

    __slots__ = ("fields", "flat", "size")

    def __init__(self, item: dict[str, Any]) -> None:
        self.fields = _fields_from_wire(item)
        embedding = self.fields["embedding"]
        # About what the fields take in Python: a float in a list is 32 bytes.
        self.size = 1024 + len(self.fields["content"]) + (0 if embedding is None else 32 * len(embedding))
        # Metadata of plain values is copied by copying the dict.
        self.flat = all(type(v) in _FLAT for v in self.fields["metadata"].values())

    def record(self) -> MemoryRecord:
        fields = dict(self.fields)
        fields["categories"] = list(fields["categories"])
        metadata = fields["metadata"]
        fields["metadata"] = dict(metadata) if self.flat else copy.deepcopy(metadata)
        if fields["embedding"] is not None:
            fields["embedding"] = list(fields["embedding"])
        return _build_record(fields)


def _wire(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(f"{what} cannot be stored as JSON: {exc}") from None
    except RecursionError:
        raise InvalidRecordError(f"{what} is nested too deeply to store as JSON") from None


# --------------------------------------------------------------------------- arguments
# What a Python caller may reasonably pass is accepted (numpy integers and
# floats, tuples); anything else is an InvalidRecordError naming the argument,
# on either backend, before anything reaches the index.


def _wrong(name: str, want: str, value: object) -> InvalidRecordError:
    return InvalidRecordError(f"{name} must be {want}, not {type(value).__name__}")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _wrong(name, "a string", value)
    return value


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, f"{name} (or None)")


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _wrong(name, "an integer", value)
    return int(value)


def _real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _wrong(name, "a number", value)
    return float(value)


def _collection(value: object, name: str) -> list[Any]:
    """A list, tuple or set (not a string, which would be read letter by letter)."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _wrong(name, "a list", value)
    return list(value)


def _strings(value: object, name: str) -> list[str] | None:
    if value is None:
        return None
    items = _collection(value, f"{name} (or None)")
    for item in items:
        if not isinstance(item, str):
            raise _wrong(f"every item of {name}", "a string", item)
    return items


def _filter(
    scope_prefix: str | None = None,
    categories: list[str] | None = None,
    metadata_filter: dict[str, Any] | None = None,
    record_ids: list[str] | None = None,
    older_than: datetime | None = None,
) -> str:
    members: dict[str, Any] = {}
    if scope_prefix is not None:
        members["scope_prefix"] = _text(scope_prefix, "scope_prefix (or None)")
    # Empty lists and dicts mean "no filter", as in LanceDBStorage.
    if categories := _strings(categories, "categories"):
        members["categories"] = categories
    if metadata_filter is not None and not isinstance(metadata_filter, dict):
        raise _wrong("metadata_filter (or None)", "a dict", metadata_filter)
    if metadata_filter:
        members["metadata"] = metadata_filter
    if record_ids:
        members["ids"] = [str(i) for i in record_ids]
    if older_than is not None:
        if not isinstance(older_than, datetime):
            raise _wrong("older_than (or None)", "a datetime", older_than)
        members["older_than"] = _timestamp(older_than)
    return _wire(members, "the filter")


def _utc_now_iso() -> str:
    # The format LanceDBStorage writes: naive UTC.
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()
