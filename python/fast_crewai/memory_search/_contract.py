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
``disk-full`` :class:`DiskFullError` (a :class:`StorageFailure`),
``record-too-large`` :class:`RecordTooLargeError`, ``result-too-large``
:class:`ResultTooLargeError` and ``read-only`` :class:`ReadOnlyStoreError`.
A string holding a lone surrogate is invalid input on both backends.

A store opens read-only when asked to or when this process cannot write
its file or directory (:func:`~fast_crewai.runtime.filelock.why_unwritable`):
SQLite opens the file read-only and nothing is written (no journal mode,
schema, migration or change log). It reads only a file that holds the
current schema; every write fails with :class:`ReadOnlyStoreError` before
its arguments are parsed (they must still be strings that can cross).

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
    ReadOnlyStoreError,
    StorageFailure,
)
from ..runtime.filelock import CANNOT_WRITE, FileLock, LockTimeout

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
#: The pragmas that only set up a connection, never write the file: all a
#: read-only connection sets.
CONNECTION_PRAGMAS = f"PRAGMA cache_size={CACHE_SIZE}; PRAGMA temp_store={TEMP_STORE};"
#: The pragmas every writable connection sets after choosing its journal mode.
PRAGMAS = f"PRAGMA page_size={PAGE_SIZE}; PRAGMA synchronous={SYNCHRONOUS}; {CONNECTION_PRAGMAS}"
#: The tables every store holds (``schema.sql``).
TABLES = ("memories", "store_meta", "memory_changes")


class MemoryIndex(Protocol):
    """The ``store`` resource of ``memory-search``; see the WIT file."""

    path: Path
    #: Why the store is open read-only (every write then raises
    #: :class:`ReadOnlyStoreError`), or None when it is writable.
    read_only_reason: str | None

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


# Why a store open read-only refuses a call or a file; the core says the same
# (its persist.rs and store.rs).
#: What a read-only open says of a crashed writer's journal.
HOT_JOURNAL = "a crashed writer left a journal that only a writable open can roll back; open the store writable once"
#: ``sqlite3_errcode``'s ``SQLITE_READONLY`` and ``SQLITE_READONLY_ROLLBACK``.
SQLITE_READONLY, SQLITE_READONLY_ROLLBACK = 8, 776
#: ``sqlite3_errcode``'s ``SQLITE_FULL``: the disk is full.
SQLITE_FULL = 13


def refused_write(what: str) -> str:
    return f"{what} would write to a store opened read-only"


def needs_tables(missing: list[str]) -> str:
    return (
        f"the file holds no memory store (no table {', '.join(missing)}), "
        "and a store opened read-only cannot create one"
    )


def needs_migration(version: int) -> str:
    return (
        f"the file has schema version {version}, older than this version's {SCHEMA_VERSION}; "
        "open it writable once to migrate it before reading it read-only"
    )


class _Guarded:
    """The cross-process lock around every call on one database file, and
    what a store open read-only shares on both backends.

    ``read_only_reason`` is why the store is open read-only (None: it is
    writable); the file must then exist, and the lock sidecar is locked
    read-only, or not at all where there is none and none can be made (see
    :class:`FileLock`)."""

    def __init__(self, path: Path, read_only_reason: str | None = None) -> None:
        _check_path(path)
        self.path = path
        self.read_only_reason = read_only_reason
        if read_only_reason is not None and not path.is_file():
            raise self._read_only_error("the file does not exist, and a store opened read-only does not create it")
        self._file_lock = FileLock(path, LOCK_TIMEOUT, read_only=read_only_reason is not None)
        self._journal = Path(f"{path}-journal")
        self.record_cache = RecordCache()

    def _read_only_error(self, detail: str) -> ReadOnlyStoreError:
        why = self.read_only_reason or "opened writable"
        return ReadOnlyStoreError(f"{self.path}: {detail} ({why})")

    def _lock_error(self, exc: OSError) -> Exception:
        """What to raise when taking the file lock failed with ``exc``."""
        if isinstance(exc, LockTimeout):
            return StorageFailure(str(exc))
        if exc.errno in CANNOT_WRITE and exc.filename == str(self._file_lock.path):
            # Writable as far as this process could tell, but the sidecar
            # cannot be opened for writing (an access rule, another user's
            # sidecar).
            return ReadOnlyStoreError(
                f"{self._file_lock.path} cannot be opened for writing ({exc.strerror}): "
                "open the store with read_only=True to read it"
            )
        return exc

    @contextmanager
    def _hold(self, write: bool) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                stack.enter_context(self._file_lock.hold(write))
                # A journal seen under the lock was left by a crashed writer;
                # the next reader rolls it back, which is a write.
                if not write and self._journal.exists():
                    stack.enter_context(self._file_lock.hold(True))
            except OSError as exc:
                raise self._lock_error(exc) from None
            yield
