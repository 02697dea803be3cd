"""The contract of the core's ``memory-search`` (``wit/memory-search.wit``)
as a string-in/string-out Python interface, which both indexes implement:
the core's (:mod:`._core`) and the pure-Python reference
(:mod:`._reference`: stdlib ``sqlite3`` and numpy, the same file schema,
bit-identical distances and the same BM25 arithmetic, so both return the
same JSON).

Records, filters and results are JSON text; see the WIT file for their
shape. Errors: ``invalid-input`` is :class:`InvalidRecordError`,
``dimension-mismatch`` :class:`DimensionMismatchError`, ``capacity``
:class:`StoreCapacityError`, ``storage`` :class:`StorageFailure`,
``record-too-large`` :class:`RecordTooLargeError` and ``result-too-large``
:class:`ResultTooLargeError`. A string holding a lone surrogate is invalid
input on both backends.

Processes are serialised by :class:`~fast_crewai.runtime.filelock.FileLock`
(shared for reads, exclusive for writes and for the first read after a
crashed writer, whose journal that read rolls back). CrewAI is not imported
here, so worker processes start fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from .._errors import (
    InvalidRecordError,
    StorageFailure,
)
from ..runtime.filelock import FileLock, LockTimeout

INTERFACE = "fast-crewai:core/memory-search@0.1.0"
#: Seconds a call waits for another process's hold on the store's file lock.
LOCK_TIMEOUT = 30.0
U32_MAX = (1 << 32) - 1


def _package_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


# What both backends must agree on is written once, in files beside this
# module that the core embeds at compile time (core-wasm/src/memory_search/
# constants.rs): the tables (schema.sql) and the constants (constants.json).
#: The statements creating the store's tables, run in the open's transaction.
SCHEMA = _package_text("schema.sql")
#: The migrations of older files: each brings a file whose ``schema_version``
#: is below its number up to it (idempotent; it sets the version itself).
MIGRATIONS = ((2, _package_text("migrate_2.sql")),)
_CONSTANTS: dict[str, Any] = json.loads(_package_text("constants.json"))
#: The ``schema_version`` this version writes and reads.
SCHEMA_VERSION = int(_CONSTANTS["schema_version"])
#: The journal mode, page size (of a new file), synchronous level, page cache
#: size (negative: KiB) and lock wait of every connection to a store.
JOURNAL_MODE = str(_CONSTANTS["journal_mode"])
PAGE_SIZE = int(_CONSTANTS["page_size"])
SYNCHRONOUS = str(_CONSTANTS["synchronous"])
CACHE_SIZE = int(_CONSTANTS["cache_size"])
#: Where temporary data (statement journals, sorts) goes: memory, as the core
#: has no temporary directory.
TEMP_STORE = str(_CONSTANTS["temp_store"])
#: How many rows the change log keeps (``schema.sql``).
CHANGE_LOG_ROWS = int(_CONSTANTS["change_log_rows"])
BUSY_TIMEOUT = int(_CONSTANTS["busy_timeout_ms"]) / 1000
#: BM25 parameters.
K1 = float(_CONSTANTS["bm25_k1"])
B = float(_CONSTANTS["bm25_b"])
#: The most vector data a store may hold (the core's limit: its 4 GiB linear
#: memory also holds the records, the text index and SQLite), counted at
#: ``BYTES_PER_ELEMENT`` per vector element: the float32 value and the core's
#: int8 copy of it.
MAX_VECTOR_BYTES = int(_CONSTANTS["max_vector_bytes"])
BYTES_PER_ELEMENT = int(_CONSTANTS["bytes_per_element"])
#: The most one record may take as the store returns it (JSON, the embedding
#: as hex): saves refuse larger ones, so every record saved can be read back.
MAX_RECORD_BYTES = int(_CONSTANTS["max_record_bytes"])
#: The most one call may return (UTF-8 bytes of its JSON): wasmtime refuses to
#: copy more than 128 MiB from the core to the host in one call.
MAX_RESULT_BYTES = int(_CONSTANTS["max_result_bytes"])
#: The pragmas every connection sets after choosing its journal mode.
PRAGMAS = (
    f"PRAGMA page_size={PAGE_SIZE}; PRAGMA synchronous={SYNCHRONOUS}; PRAGMA cache_size={CACHE_SIZE}; "
    f"PRAGMA temp_store={TEMP_STORE};"
)


class MemoryIndex(Protocol):
    """The ``store`` resource of ``memory-search``; see the WIT file."""

    path: Path

    def save(self, records: str) -> int: ...

    def save_packed(self, records: str, vectors: str) -> int: ...

    def search(self, query: str, filter: str, limit: int, min_score: float) -> str: ...

    def search_text(self, query: str, filter: str, limit: int) -> str: ...

    def search_hits(self, query: str, filter: str, limit: int, min_score: float) -> str: ...

    def search_text_hits(self, query: str, filter: str, limit: int) -> str: ...

    def records(self, ids: str) -> str: ...

    @property
    def epoch(self) -> int:
        """Changes when record versions may start over (the core's instance
        was replaced): the cache must then forget what it holds."""
        ...

    #: Records the host built from this index, for :meth:`search_hits`.
    record_cache: RecordCache

    def reading(self) -> AbstractContextManager[None]:
        """Holds the read lock across several calls, so that what one call
        answers (hits) is what the next reads (their records)."""
        ...

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

#: About how many bytes of built records one store's record cache holds; a
#: record over a sixteenth of that is not kept.
RECORD_CACHE_BYTES = 64 << 20


class RecordCache:
    """Records the host built, by id, each with the version it was built at
    (``search-hits`` in the WIT file): a search fetches only the records it
    lacks. Least recently used first out past ``capacity`` bytes, as the
    caller estimates each record's size. Used under the index's lock."""

    def __init__(self, capacity: int = RECORD_CACHE_BYTES) -> None:
        self.capacity = capacity
        self._entries: dict[str, tuple[int, Any, int]] = {}
        self._size = 0
        self._epoch: int | None = None

    def sync(self, epoch: int) -> None:
        """Forgets everything when the index's epoch moved."""
        if epoch != self._epoch:
            self.clear()
            self._epoch = epoch

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0

    def get(self, id: str, version: int) -> Any:
        """What was built for this version of the record, or None."""
        entry = self._entries.get(id)
        if entry is None or entry[0] != version:
            return None
        # Most recently used last.
        del self._entries[id]
        self._entries[id] = entry
        return entry[1]

    def put(self, id: str, version: int, value: Any, size: int) -> None:
        old = self._entries.pop(id, None)
        if old is not None:
            self._size -= old[2]
        if size > self.capacity // 16:
            return
        self._entries[id] = (version, value, size)
        self._size += size
        while self._size > self.capacity:
            oldest = next(iter(self._entries))
            self._size -= self._entries.pop(oldest)[2]

    def __len__(self) -> int:
        return len(self._entries)


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
        self.record_cache = RecordCache()

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
