"""The contract of the core's ``memory-search`` (``wit/memory-search.wit``)
as a string-in/string-out Python interface, served by the core
(:class:`WasmMemoryIndex`) or by a pure-Python reference
(:class:`PythonMemoryIndex`: stdlib ``sqlite3`` and numpy, the same file
schema, bit-identical distances and the same BM25 arithmetic, so both return
the same JSON).

Records, filters and results are JSON text; see the WIT file for their
shape. Errors: ``invalid-input`` is :class:`InvalidRecordError`,
``dimension-mismatch`` :class:`DimensionMismatchError`, ``capacity``
:class:`StoreCapacityError`, ``storage`` :class:`StorageFailure`. A string
holding a lone surrogate is invalid input on both backends.

One index per database file and backend serves the whole process
(:func:`open_index`); it serialises its calls, and processes are serialised
by :class:`~fast_crewai._filelock.FileLock` (shared for reads, exclusive for
writes and for the first read after a crashed writer, whose journal that
read rolls back). CrewAI is not imported here, so worker processes start fast.
"""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import regex

from . import _backend
from ._errors import (
    CoreTimeout,
    CoreTrap,
    DimensionMismatchError,
    InvalidRecordError,
    MemoryStoreError,
    SerdeError,
    StorageFailure,
    StoreCapacityError,
)
from ._filelock import ChangeCounter, FileLock, LockTimeout
from ._serde import _has_surrogate, _py_parse, _type_name

if TYPE_CHECKING:
    from ._runtime import Instance

INTERFACE = "fast-crewai:core/memory-search@0.1.0"
#: Seconds a call waits for another process's hold on the store's file lock.
LOCK_TIMEOUT = 30.0
U32_MAX = (1 << 32) - 1
#: The most vector data a store may hold (the core's limit: its 4 GiB linear
#: memory also holds the records, the text index and SQLite).
MAX_VECTOR_BYTES = 3 << 30
#: Per vector element: the float32 value and the core's int8 copy of it.
BYTES_PER_ELEMENT = 5
#: BM25 parameters, as in the core.
K1 = 1.2
B = 0.75


class MemoryIndex(Protocol):
    """The ``store`` resource of ``memory-search``; see the WIT file."""

    path: Path

    def save(self, records: str) -> int: ...

    def search(self, query: str, filter: str, limit: int, min_score: float) -> str: ...

    def search_text(self, query: str, filter: str, limit: int) -> str: ...

    def delete(self, filter: str) -> int: ...

    def get(self, id: str) -> str | None: ...

    def list(self, scope_prefix: str | None, limit: int, offset: int) -> str: ...

    def scope_info(self, scope: str) -> str: ...

    def list_scopes(self, parent: str) -> str: ...

    def list_categories(self, scope_prefix: str | None) -> str: ...

    def count(self, scope_prefix: str | None) -> int: ...

    def reset(self, scope_prefix: str | None) -> None: ...

    def touch(self, ids: str, at: str) -> int: ...

    def dimension(self) -> int | None: ...

    def refresh(self) -> bool: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- shared by both indexes


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _surrogate_error() -> InvalidRecordError:
    return InvalidRecordError("a string holds a lone surrogate, which has no UTF-8 form")


def _u32(value: int, name: str) -> int:
    if not 0 <= value <= U32_MAX:
        raise InvalidRecordError(f"{name} must be between 0 and {U32_MAX}, not {value}")
    return value


def _check_path(path: Path) -> None:
    if "\0" in str(path):
        raise InvalidRecordError("path contains a NUL character")


class _Guarded:
    """The cross-process lock around every call on one database file."""

    def __init__(self, path: Path) -> None:
        _check_path(path)
        self.path = path
        self._file_lock = FileLock(path, LOCK_TIMEOUT)
        self._journal = Path(f"{path}-journal")

    @contextmanager
    def _hold(self, write: bool) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                stack.enter_context(self._file_lock.hold(write))
                # A journal seen under the lock was left by a crashed writer;
                # the next reader rolls it back, which is a write.
                if not write and self._journal.exists():
                    stack.enter_context(self._file_lock.hold(True))
            except LockTimeout as exc:
                raise StorageFailure(str(exc)) from None
            yield


# --------------------------------------------------------------------------- the core


_CORE_ERRORS: dict[str, type[MemoryStoreError]] = {
    "invalid-input": InvalidRecordError,
    "capacity": StoreCapacityError,
    "storage": StorageFailure,
}


def _checked(value: Any) -> Any:
    from ._runtime import error_of, field

    err = error_of(value)
    if err is None:
        return value
    if err.tag == "dimension-mismatch":
        raise DimensionMismatchError(field(err.payload, "stored"), field(err.payload, "given"))
    raise _CORE_ERRORS.get(err.tag, StorageFailure)(str(err.payload))


class WasmMemoryIndex(_Guarded):
    """The contract served by the core: one ``store`` resource in the
    instance granted the database's directory."""

    def __init__(self, path: Path) -> None:
        from ._runtime import Resource, guest_path

        super().__init__(path)
        grant = path.parent.resolve()
        if not grant.is_dir():
            raise StorageFailure(f"unable to open {path}: the directory {path.parent} does not exist")
        self._instance = _backend.runtime().granted(grant)
        self._guest = guest_path(grant, grant / path.name)
        self._store = Resource(self._instance, INTERFACE, "store", self._open)
        self._counter = ChangeCounter(path)
        # The change counter as this store last left the file: when it moved,
        # another process committed and the index must be refreshed.
        self._seen = b""
        # Open now, so that a bad file fails here.
        self._call(True, "dimension")

    def _open(self, instance: Instance) -> Any:
        return _checked(instance.call(INTERFACE, "[static]store.open", self._guest))

    def _call(self, write: bool, method: str, *args: Any) -> Any:
        with self._hold(write):
            try:
                if not write and (self._counter.read() != self._seen or self._journal.exists()):
                    _checked(self._store.call("refresh"))
                result = self._store.call(method, *args)
                self._seen = self._counter.read()
            except UnicodeEncodeError:
                raise _surrogate_error() from None
            except CoreTrap:
                if write:
                    # Reopen while the exclusive lock is held, so that the
                    # interrupted transaction's journal is rolled back now.
                    with suppress(Exception):  # the trap is what gets reported
                        self._store.call("dimension")
                raise
        return _checked(result)

    def save(self, records: str) -> int:
        return int(self._call(True, "save", records))

    def search(self, query: str, filter: str, limit: int, min_score: float) -> str:
        return str(self._call(False, "search", query, filter, _u32(limit, "limit"), float(min_score)))

    def search_text(self, query: str, filter: str, limit: int) -> str:
        return str(self._call(False, "search-text", query, filter, _u32(limit, "limit")))

    def delete(self, filter: str) -> int:
        return int(self._call(True, "delete", filter))

    def get(self, id: str) -> str | None:
        found = self._call(False, "get", id)
        return None if found is None else str(found)

    def list(self, scope_prefix: str | None, limit: int, offset: int) -> str:
        return str(self._call(False, "list", scope_prefix, _u32(limit, "limit"), _u32(offset, "offset")))

    def scope_info(self, scope: str) -> str:
        return str(self._call(False, "scope-info", scope))

    def list_scopes(self, parent: str) -> str:
        return str(self._call(False, "list-scopes", parent))

    def list_categories(self, scope_prefix: str | None) -> str:
        return str(self._call(False, "list-categories", scope_prefix))

    def count(self, scope_prefix: str | None) -> int:
        return int(self._call(False, "count", scope_prefix))

    def reset(self, scope_prefix: str | None) -> None:
        self._call(True, "reset", scope_prefix)

    def touch(self, ids: str, at: str) -> int:
        return int(self._call(True, "touch", ids, at))

    def dimension(self) -> int | None:
        found = self._call(False, "dimension")
        return None if found is None else int(found)

    def refresh(self) -> bool:
        return bool(self._call(True, "refresh"))

    def close(self) -> None:
        self._store.close()
        self._counter.close()
        self._file_lock.close()


# --------------------------------------------------------------------------- the Python reference: input


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
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise InvalidRecordError(f"{what} is not valid base64: {exc}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise InvalidRecordError(f"{what} is not valid base64: not in canonical form")
    if len(raw) % 4:
        raise InvalidRecordError(f"{what} has {len(raw)} bytes, not a multiple of 4 (float32 values)")
    vector: Vector = np.frombuffer(raw, dtype="<f4")
    finite = np.isfinite(vector)
    if not finite.all():
        i = int(np.argmin(finite))
        raise InvalidRecordError(f"{what}[{i}] is {vector[i]}, not a finite number")
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


def _parse_record(item: Any, i: int) -> tuple[_Record, Vector | None]:
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
        scope=given.get("scope", "/"),
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


def _parse_records(text: str) -> list[tuple[_Record, Vector | None]]:
    items = _parse_json(text, "records")
    if not isinstance(items, list):
        raise InvalidRecordError("records must be a JSON array of record objects")
    return [_parse_record(item, i) for i, item in enumerate(items)]


def _effective_prefix(prefix: str | None) -> str | None:
    """A scope prefix without trailing ``/``; None when nothing is left (no
    constraint)."""
    if prefix is None:
        return None
    trimmed = prefix.rstrip("/")
    return trimmed or None


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


# --------------------------------------------------------------------------- the Python reference: the index

_TOKEN = regex.compile(r"[\p{Alphabetic}\p{N}]+")


def _tokens(text: str) -> list[str]:
    """Maximal runs of alphanumeric characters, lowercased: Rust's
    ``char::is_alphanumeric`` and ``str::to_lowercase``, as in the core."""
    return [token.lower() for token in _TOKEN.findall(text)]


class _TextIndex:
    """BM25 postings keyed by record id."""

    def __init__(self) -> None:
        self.postings: dict[str, dict[str, int]] = {}
        self.lengths: dict[str, int] = {}
        self.terms: dict[str, tuple[str, ...]] = {}
        self.total = 0

    def add(self, id: str, content: str) -> None:
        tokens = _tokens(content)
        counts = Counter(tokens)
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[id] = tf
        self.terms[id] = tuple(counts)
        self.lengths[id] = len(tokens)
        self.total += len(tokens)

    def remove(self, id: str) -> None:
        for term in self.terms.pop(id):
            docs = self.postings[term]
            del docs[id]
            if not docs:
                del self.postings[term]
        self.total -= self.lengths.pop(id)

    def score(self, query: str) -> dict[str, float]:
        """BM25 of every document holding a query token; each query token
        counts once per occurrence, statistics are the whole store's."""
        n = len(self.lengths)
        if n == 0 or self.total == 0:
            return {}
        avgdl = self.total / n
        scores: dict[str, float] = {}
        for term in _tokens(query):
            docs = self.postings.get(term)
            if docs is None:
                continue
            df = len(docs)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for id, tf in docs.items():
                dl = self.lengths[id]
                # The core's expression, term for term, so the doubles agree.
                part = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * dl / avgdl))
                scores[id] = scores.get(id, 0.0) + part
        return scores


class _Table:
    """The in-memory copy of a store: records by row, their vectors in one
    row-major float32 buffer, insertion sequence numbers, the text index."""

    def __init__(self, dim: int | None) -> None:
        self.dim = dim
        self.records: list[_Record] = []
        self.by_id: dict[str, int] = {}
        self.vectors: Vector = np.zeros((0, dim or 0), dtype="<f4")
        self.seqs: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.text = _TextIndex()

    def __len__(self) -> int:
        return len(self.records)

    def check_capacity(self, rows: int, dim: int | None) -> None:
        if dim is not None and rows * dim * BYTES_PER_ELEMENT > MAX_VECTOR_BYTES:
            raise StoreCapacityError(
                f"{rows} vectors of dimension {dim} need {rows * dim * BYTES_PER_ELEMENT} bytes, over the store's "
                f"limit of {MAX_VECTOR_BYTES}"
            )

    def _grow(self, rows: int) -> None:
        if rows <= len(self.seqs):
            return
        capacity = max(rows, len(self.seqs) * 3 // 2, 16)
        vectors = np.zeros((capacity, self.dim or 0), dtype="<f4")
        vectors[: len(self.records)] = self.vectors[: len(self.records)]
        seqs = np.zeros(capacity, dtype=np.int64)
        seqs[: len(self.records)] = self.seqs[: len(self.records)]
        self.vectors, self.seqs = vectors, seqs

    def set_dim(self, dim: int) -> None:
        """Fixes the dimension of a store that had none: existing rows get
        zero vectors."""
        self.dim = dim
        self.vectors = np.zeros((len(self.seqs), dim), dtype="<f4")

    def upsert(self, record: _Record, embedding: Vector | None, seq: int) -> None:
        row = self.by_id.get(record.id)
        if row is None:
            row = len(self.records)
            self._grow(row + 1)
            self.records.append(record)
            self.by_id[record.id] = row
        else:
            self.text.remove(record.id)
            self.records[row] = record
        if self.dim is not None:
            self.vectors[row] = 0.0 if embedding is None else embedding
        self.seqs[row] = seq
        self.text.add(record.id, record.content)

    def remove_rows(self, rows: list[int]) -> None:
        # Highest first: the row moved into a hole is never one still to go.
        for row in sorted(rows, reverse=True):
            last = len(self.records) - 1
            removed = self.records[row]
            if row != last:
                moved = self.records[row] = self.records[last]
                self.by_id[moved.id] = row
                self.vectors[row] = self.vectors[last]
                self.seqs[row] = self.seqs[last]
            self.records.pop()
            del self.by_id[removed.id]
            self.text.remove(removed.id)

    def embedding(self, row: int) -> str | None:
        if not self.records[row].has_embedding:
            return None
        vector: Vector = self.vectors[row]  # already little-endian float32
        return vector.tobytes().hex()

    def record_json(self, row: int) -> str:
        r = self.records[row]
        return _dumps(
            {
                "id": r.id,
                "content": r.content,
                "scope": r.scope,
                "categories": r.categories,
                "metadata": r.metadata,
                "importance": r.importance,
                "created_at": r.created_at,
                "created_ts": r.created_ts,
                "last_accessed": r.last_accessed,
                "source": r.source,
                "private": r.private,
                "embedding": self.embedding(row),
            }
        )

    def hits_json(self, hits: Iterable[tuple[int, float]]) -> str:
        return "[" + ",".join(f"[{self.record_json(row)},{float(score)!r}]" for row, score in hits) + "]"


_BLOCK = 16
_CHUNK_ROWS = 4096


def _squared_distances(vectors: Vector, q: Vector) -> npt.NDArray[np.float64]:
    """The core's kernel, bit for bit: ``(q - x)^2`` summed in float32 into 16
    lanes (element ``i`` into lane ``i % 16``, whole blocks of 16 only), the
    lanes then added in float64 in lane order, then the leftover elements'
    squared float64 differences. Same operations, same order, same doubles."""
    rows, dim = vectors.shape
    whole = dim - dim % _BLOCK
    blocks = whole // _BLOCK
    q_blocks = q[:whole].reshape(blocks, _BLOCK)
    out = np.empty(rows, dtype=np.float64)
    for start in range(0, rows, _CHUNK_ROWS):
        chunk = vectors[start : start + _CHUNK_ROWS]
        m = len(chunk)
        diff = q_blocks - chunk[:, :whole].reshape(m, blocks, _BLOCK)
        np.multiply(diff, diff, out=diff)
        lanes = np.zeros((m, _BLOCK), dtype=np.float32)
        # Sequential float32 accumulation per lane, as the SIMD loop does
        # (numpy's own reductions may sum pairwise).
        for k in range(blocks):
            lanes += diff[:, k, :]
        total = np.zeros(m, dtype=np.float64)
        for j in range(_BLOCK):
            total += lanes[:, j]
        for i in range(whole, dim):
            d = float(q[i]) - chunk[:, i].astype(np.float64)
            total += d * d
        out[start : start + m] = total
    return out


def _total_order(x: float) -> tuple[float, float]:
    """A sort key ordering floats as Rust's ``total_cmp`` does (-0.0 < 0.0)."""
    return (x, math.copysign(1.0, x))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    content TEXT NOT NULL,
    scope TEXT NOT NULL,
    categories TEXT NOT NULL,
    metadata TEXT NOT NULL,
    importance REAL NOT NULL,
    created_at TEXT NOT NULL,
    created_ts REAL NOT NULL,
    last_accessed TEXT NOT NULL,
    source TEXT,
    private INTEGER NOT NULL,
    embedding BLOB
);
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value
);
INSERT OR IGNORE INTO store_meta (key, value) VALUES ('schema_version', 1);
"""
_COLUMNS = (
    "id, content, scope, categories, metadata, importance, created_at, created_ts, last_accessed, source, private, "
    "embedding"
)
_SQLITE_INTERRUPT = 9


def _corrupt(what: str) -> StorageFailure:
    return StorageFailure(f"corrupt memory store: {what}")


class PythonMemoryIndex(_Guarded):
    """The reference implementation of ``memory-search``: the same file
    schema, the same results, in stdlib ``sqlite3`` and numpy."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._mutex = threading.RLock()
        self._deadline = math.inf
        self._table = _Table(None)
        # PRAGMA data_version when the table was loaded; None forces a load.
        self._version: int | None = None
        try:
            self._conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageFailure(str(exc)) from None
        self._conn.set_progress_handler(self._past_deadline, 1000)
        try:
            self._run(True, self._initialise)
        except BaseException:
            self._conn.close()
            raise

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def _initialise(self, conn: sqlite3.Connection) -> None:
        # What the core's open does, in the same order.
        (mode,) = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        if str(mode).lower() not in ("delete", "memory"):
            raise StorageFailure(f"could not switch the journal to DELETE mode (it is {mode})")
        # The core's page size (see its persist.rs): a file either backend
        # creates is laid out alike.
        conn.execute("PRAGMA page_size=32768")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA cache_size=-16384")
        conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        self._sync(conn)

    def _run(self, write: bool, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Runs ``work`` under the locks and the call deadline; a failed call
        rolls back and leaves the in-memory table as it was."""
        with self._mutex, self._hold(write):
            timeout = _backend.call_timeout()
            self._deadline = time.monotonic() + timeout
            try:
                return work(self._conn)
            except BaseException as exc:
                self._deadline = math.inf
                if self._conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_INTERRUPT:
                        raise CoreTimeout(
                            f"a memory store call ran longer than {timeout:g}s and was interrupted"
                        ) from None
                    raise StorageFailure(str(exc)) from None
                if isinstance(exc, UnicodeEncodeError):
                    raise _surrogate_error() from None
                raise
            finally:
                self._deadline = math.inf

    # -------------------------------------------------------------- loading

    def _sync(self, conn: sqlite3.Connection) -> None:
        """Reloads the table when another connection committed since its load."""
        if self._data_version(conn) == self._version:
            return
        conn.execute("BEGIN")
        self._reload(conn)
        conn.execute("COMMIT")

    @staticmethod
    def _data_version(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def _reload(self, conn: sqlite3.Connection) -> None:
        self._version = None
        self._table = _Table(None)
        self._table = self._load(conn)
        self._version = self._data_version(conn)

    def _load(self, conn: sqlite3.Connection) -> _Table:
        stored = conn.execute("SELECT value FROM store_meta WHERE key = 'dimension'").fetchone()
        dim: int | None = None
        if stored is not None:
            if not isinstance(stored[0], int) or not 0 < stored[0] <= U32_MAX:
                raise _corrupt(f"dimension {stored[0]}")
            dim = stored[0]
        (rows,) = conn.execute("SELECT COUNT(*) FROM memories").fetchone()
        table = _Table(dim)
        table.check_capacity(rows, dim)
        table._grow(rows)
        for row in conn.execute(f"SELECT seq, {_COLUMNS} FROM memories ORDER BY seq"):
            seq, id, content, scope, categories_text, metadata_text, importance, created_at, created_ts = row[:9]
            accessed, source, private, blob = row[9:]
            try:
                categories = json.loads(categories_text)
                metadata = json.loads(metadata_text)
            except (TypeError, ValueError):
                raise _corrupt(f"categories or metadata of {id!r}") from None
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise _corrupt(f"categories of {id!r}")
            if not isinstance(metadata, dict):
                raise _corrupt(f"metadata of {id!r}")
            embedding: Vector | None = None
            if blob is not None:
                if not isinstance(blob, bytes) or not blob or len(blob) % 4:
                    raise _corrupt(f"embedding of {id!r}")
                if table.dim is None:
                    # Only a file written by something else lacks the key.
                    table.check_capacity(rows, len(blob) // 4)
                    table.set_dim(len(blob) // 4)
                if len(blob) // 4 != table.dim:
                    raise _corrupt(f"embedding length of {id!r}")
                embedding = np.frombuffer(blob, dtype="<f4")
            if id in table.by_id:
                raise _corrupt(f"duplicate id {id!r}")
            record = _Record(
                id=id,
                content=content,
                scope=scope,
                categories=categories,
                metadata=metadata,
                importance=float(importance),
                created_at=created_at,
                created_ts=float(created_ts),
                last_accessed=accessed,
                source=source,
                private=bool(private),
                has_embedding=embedding is not None,
            )
            table.upsert(record, embedding, seq)
        return table

    def _begin_write(self, conn: sqlite3.Connection) -> _Table:
        """Starts a write transaction with the table brought up to date."""
        conn.execute("BEGIN IMMEDIATE")
        if self._data_version(conn) != self._version:
            self._reload(conn)
        return self._table

    def _read(self, work: Callable[[_Table], Any]) -> Any:
        def run(conn: sqlite3.Connection) -> Any:
            self._sync(conn)
            return work(self._table)

        return self._run(False, run)

    # -------------------------------------------------------------- writes

    def save(self, records: str) -> int:
        batch = _parse_records(_plain_text(records))
        if not batch:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            table = self._begin_write(conn)
            # Every embedding must have the store's dimension, or, in a store
            # without one yet, that of the batch's first embedding.
            expected = table.dim
            for _, e in batch:
                if e is None:
                    continue
                if expected is None:
                    expected = len(e)
                elif len(e) != expected:
                    raise DimensionMismatchError(expected, len(e))
            new_dim = expected if table.dim is None else None
            fresh = {r.id for r, _ in batch if r.id not in table.by_id}
            table.check_capacity(len(table) + len(fresh), table.dim or new_dim)
            if new_dim is not None:
                conn.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('dimension', ?)", (new_dim,))
            seqs = []
            for r, e in batch:
                cursor = conn.execute(
                    f"INSERT OR REPLACE INTO memories ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.id,
                        r.content,
                        r.scope,
                        _dumps(r.categories),
                        _dumps(r.metadata),
                        r.importance,
                        r.created_at,
                        r.created_ts,
                        r.last_accessed,
                        r.source,
                        int(r.private),
                        None if e is None else e.tobytes(),
                    ),
                )
                seqs.append(cursor.lastrowid)
            conn.execute("COMMIT")
            if new_dim is not None:
                table.set_dim(new_dim)
            for (r, e), seq in zip(batch, seqs, strict=True):
                table.upsert(r, e, int(seq or 0))
            return len(batch)

        return int(self._run(True, work))

    def _delete_where(self, f: _Filter, forget_dim: bool) -> int:
        def work(conn: sqlite3.Connection) -> int:
            table = self._begin_write(conn)
            if f.is_empty():
                count = len(table)
                conn.execute("DELETE FROM memories")
                if forget_dim:
                    conn.execute("DELETE FROM store_meta WHERE key = 'dimension'")
                conn.execute("COMMIT")
                self._table = _Table(None if forget_dim else table.dim)
                return count
            rows = f.rows(table)
            if not rows:
                conn.execute("ROLLBACK")
                return 0
            conn.executemany("DELETE FROM memories WHERE seq = ?", [(int(table.seqs[row]),) for row in rows])
            conn.execute("COMMIT")
            table.remove_rows(rows)
            return len(rows)

        return int(self._run(True, work))

    def delete(self, filter: str) -> int:
        return self._delete_where(_Filter.parse(_plain_text(filter)), forget_dim=False)

    def reset(self, scope_prefix: str | None) -> None:
        f = _Filter.of_scope(None if scope_prefix is None else _plain_text(scope_prefix))
        self._delete_where(f, forget_dim=f.is_empty())

    def touch(self, ids: str, at: str) -> int:
        parsed = _parse_json(_plain_text(ids), "ids")
        if not isinstance(parsed, list) or not all(isinstance(i, str) for i in parsed):
            raise InvalidRecordError("ids must be a JSON array of strings")
        _plain_text(at)

        def work(conn: sqlite3.Connection) -> int:
            table = self._begin_write(conn)
            rows = sorted({table.by_id[i] for i in parsed if i in table.by_id})
            if not rows:
                conn.execute("ROLLBACK")
                return 0
            conn.executemany(
                "UPDATE memories SET last_accessed = ? WHERE seq = ?", [(at, int(table.seqs[row])) for row in rows]
            )
            conn.execute("COMMIT")
            for row in rows:
                table.records[row].last_accessed = at
            return len(rows)

        return int(self._run(True, work))

    # -------------------------------------------------------------- reads

    def search(self, query: str, filter: str, limit: int, min_score: float) -> str:
        _u32(limit, "limit")
        if math.isnan(min_score):
            raise InvalidRecordError("min-score is NaN")
        q = _decode_vector(_plain_text(query), "query")
        f = _Filter.parse(_plain_text(filter))

        def work(table: _Table) -> str:
            if table.dim is None:
                return "[]"
            if len(q) != table.dim:
                raise DimensionMismatchError(table.dim, len(q))
            if limit == 0 or not len(table) or min_score > 1.0:
                return "[]"
            rows = None if f.is_empty() else np.asarray(f.rows(table), dtype=np.intp)
            n = len(table)
            vectors = table.vectors[:n] if rows is None else table.vectors[rows]
            seqs = table.seqs[:n] if rows is None else table.seqs[rows]
            d = np.maximum(_squared_distances(vectors, q), 0.0)
            scores = 1.0 / (1.0 + d)
            keep = np.flatnonzero(scores >= min_score)
            best = keep[np.lexsort((seqs[keep], d[keep]))[:limit]]
            return table.hits_json((int(i) if rows is None else int(rows[i]), float(scores[i])) for i in best)

        return str(self._read(work))

    def search_text(self, query: str, filter: str, limit: int) -> str:
        _u32(limit, "limit")
        f = _Filter.parse(_plain_text(filter))
        _plain_text(query)

        def work(table: _Table) -> str:
            if limit == 0:
                return "[]"
            allowed = None if f.ids is None else set(f.ids)
            hits = []
            for id, score in table.text.score(query).items():
                row = table.by_id[id]
                if (allowed is None or id in allowed) and f.matches(table.records[row]):
                    hits.append((row, score))
            hits.sort(key=lambda h: (-h[1], int(table.seqs[h[0]])))
            return table.hits_json(hits[:limit])

        return str(self._read(work))

    def get(self, id: str) -> str | None:
        _plain_text(id)

        def work(table: _Table) -> str | None:
            row = table.by_id.get(id)
            return None if row is None else table.record_json(row)

        found: str | None = self._read(work)
        return found

    def list(self, scope_prefix: str | None, limit: int, offset: int) -> str:
        _u32(limit, "limit")
        _u32(offset, "offset")
        f = _Filter.of_scope(None if scope_prefix is None else _plain_text(scope_prefix))

        def work(table: _Table) -> str:
            rows = f.rows(table)
            rows.sort(key=lambda row: (_total_order(table.records[row].created_ts), int(table.seqs[row])), reverse=True)
            return "[" + ",".join(table.record_json(row) for row in rows[offset : offset + limit]) + "]"

        return str(self._read(work))

    def scope_info(self, scope: str) -> str:
        prefix = _plain_text(scope).rstrip("/")
        child_prefix = prefix + "/"

        def work(table: _Table) -> str:
            count = 0
            categories: set[str] = set()
            children: set[str] = set()
            ends: list[tuple[tuple[float, float], int, int]] = []
            for row, r in enumerate(table.records):
                if prefix and not _in_scope(r.scope, prefix):
                    continue
                count += 1
                categories.update(r.categories)
                if r.scope.startswith(child_prefix):
                    first = r.scope[len(child_prefix) :].split("/", 1)[0]
                    if first:
                        children.add(child_prefix + first)
                ends.append((_total_order(r.created_ts), int(table.seqs[row]), row))
            oldest = table.records[min(ends)[2]].created_at if ends else None
            newest = table.records[max(ends)[2]].created_at if ends else None
            return _dumps(
                {
                    "record_count": count,
                    "categories": sorted(categories),
                    "oldest": oldest,
                    "newest": newest,
                    "child_scopes": sorted(children),
                }
            )

        return str(self._read(work))

    def list_scopes(self, parent: str) -> str:
        prefix = _plain_text(parent).rstrip("/") + "/"

        def work(table: _Table) -> str:
            children = set()
            for r in table.records:
                if r.scope.startswith(prefix):
                    first = r.scope[len(prefix) :].split("/", 1)[0]
                    if first:
                        children.add(prefix + first)
            return _dumps(sorted(children))

        return str(self._read(work))

    def list_categories(self, scope_prefix: str | None) -> str:
        f = _Filter.of_scope(None if scope_prefix is None else _plain_text(scope_prefix))

        def work(table: _Table) -> str:
            counts: Counter[str] = Counter()
            for r in table.records:
                if f.matches(r):
                    counts.update(set(r.categories))
            return _dumps({c: counts[c] for c in sorted(counts)})

        return str(self._read(work))

    def count(self, scope_prefix: str | None) -> int:
        f = _Filter.of_scope(None if scope_prefix is None else _plain_text(scope_prefix))

        def work(table: _Table) -> int:
            return len(table) if f.is_empty() else sum(1 for r in table.records if f.matches(r))

        return int(self._read(work))

    def refresh(self) -> bool:
        loaded = self._version
        self._run(False, self._sync)
        return self._version != loaded

    def dimension(self) -> int | None:
        try:
            dim: int | None = self._read(lambda table: table.dim)
        except (MemoryStoreError, CoreTimeout):
            # The last known value, as the core answers when it cannot reload.
            dim = self._table.dim
        return dim

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
            self._file_lock.close()


# --------------------------------------------------------------------------- one index per file and backend


@dataclass
class _Shared:
    index: MemoryIndex
    refs: int = 0


_shared_lock = threading.Lock()
_shared: dict[tuple[str, Path], _Shared] = {}


def open_index(backend: str, database: Path) -> MemoryIndex:
    """The process's index of ``database`` on ``backend``, opened on first
    use; pair every call with :func:`release_index`."""
    key = (backend, database)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            index: MemoryIndex
            if backend == "wasm":
                index = WasmMemoryIndex(database)
            elif backend == "python":
                index = PythonMemoryIndex(database)
            else:
                raise ValueError(f"backend must be 'wasm' or 'python', not {backend!r}")
            entry = _shared[key] = _Shared(index)
        entry.refs += 1
        return entry.index


def release_index(backend: str, database: Path) -> None:
    """Closes the index when its last user releases it."""
    with _shared_lock:
        entry = _shared.get((backend, database))
        if entry is None:
            return
        entry.refs -= 1
        if entry.refs <= 0:
            del _shared[(backend, database)]
            entry.index.close()
