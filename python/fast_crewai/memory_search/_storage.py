"""CrewAI's memory store on the core: :class:`AcceleratedMemoryStorage`,
a CrewAI ``StorageBackend`` on one memory index (see
:mod:`fast_crewai.memory_search`: :class:`WasmMemoryIndex` on the core,
:class:`PythonMemoryIndex` the pure-Python reference), with
LanceDBStorage's defaults (a directory, by default
``$CREWAI_STORAGE_DIR/memory``) and score (``1 / (1 + squared L2)``).

Where it deliberately differs from ``LanceDBStorage``:

* Search is an exact top-k among the records matching *every* filter;
  LanceDB filters categories and metadata after fetching ``3 * limit``
  candidates, so it can return fewer (or other) records.
* Scope prefixes match by path segment (``/crew/a`` matches ``/crew/a`` and
  ``/crew/a/x``, not ``/crew/ab``). A scope or prefix without a leading ``/``
  gets one, in every method and when a record is saved (LanceDB adds it to
  prefixes in some methods only and stores scopes as given); opening a store
  written before this rule roots its scopes. ``delete`` with a scope no
  longer also deletes the records of the root scope ``/``.
* ``delete`` ANDs all the criteria it is given (LanceDB ignores some
  combinations), and ``delete(record_ids=[])`` deletes nothing (LanceDB
  deletes everything).
* ``count`` and the scope listings have no 50,000-row cap.
* Saving an existing id replaces the record (LanceDB keeps both rows).
* A record saved without an embedding comes back with ``embedding=None``
  (LanceDB returns its zero placeholder); it still ranks as a zero vector.
* Metadata filters compare JSON values: ``True`` does not equal ``1``.
* ``list_categories`` counts a category once per record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

from crewai.memory.storage.backend import EmbeddingDimensionMismatchError
from crewai.memory.types import MemoryRecord, ScopeInfo

from .._errors import DimensionMismatchError, MemoryStoreError, ReadOnlyStoreError
from ..runtime import backend as _backend
from ..runtime import forks, reaper
from ..runtime.filelock import CANNOT_WRITE
from ._contract import U32_MAX, MemoryIndex
from ._open import open_index, release_index
from ._records import (
    _Built,
    _collection,
    _filter,
    _integer,
    _optional_text,
    _pack_vector,
    _parse_datetime,
    _real,
    _text,
    _utc_now_iso,
    _wire,
    _wrong,
    record_from_wire,
    records_to_wire,
)

__all__ = ["AcceleratedMemoryStorage", "ReopeningMemoryStorage"]

logger = logging.getLogger("fast_crewai")

DATABASE_NAME = "fast_crewai_memory.db"


def default_directory() -> Path:
    """Where CrewAI's LanceDB store lives by default, and so ours."""
    storage_dir = os.environ.get("CREWAI_STORAGE_DIR")
    if storage_dir:
        return Path(storage_dir) / "memory"
    from crewai_core.paths import db_storage_path

    return Path(db_storage_path()) / "memory"


# --------------------------------------------------------------------------- the StorageBackend


class AcceleratedMemoryStorage:
    """A CrewAI ``StorageBackend`` on the core (or the Python reference):
    exact vector search, BM25 text search, one SQLite file in ``path``
    (a directory, by default ``$CREWAI_STORAGE_DIR/memory`` as for
    LanceDBStorage). See the module docstring for where it differs from
    LanceDBStorage. Thread-safe; usable as a context manager.

    With ``read_only=True``, or where this process cannot write the
    directory or the file (read-only media, no permission), it opens
    read-only (:attr:`read_only`) and never writes or creates a file: reads
    work and see other processes' commits; ``save``, ``update``, ``delete``
    and ``reset`` raise :class:`ReadOnlyStoreError`; ``touch_records`` does
    nothing, so ``Memory.recall`` works. The file must exist with this
    version's schema, else :class:`ReadOnlyStoreError` (see its docstring)."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, backend: str | None = None, read_only: bool = False
    ) -> None:
        self.path = Path(path) if path is not None else default_directory()
        if not read_only:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno not in CANNOT_WRITE:
                    raise
                raise ReadOnlyStoreError(
                    f"{self.path} does not exist and cannot be created ({exc.strerror}), so no memory store is there"
                ) from None
        self.database = self.path.resolve() / DATABASE_NAME
        if not self.database.exists() and (self.path / "memories.lance").is_dir():
            logger.warning(
                "%s holds a LanceDB memory store that this store does not read; "
                "`fast-crewai migrate-memory --from %s` copies it over",
                self.path,
                self.path,
            )
        self._backend_asked = backend
        self.backend = backend or _backend.active()
        self._read_only_asked = read_only
        reaper.start()
        self._open()

    # -------------------------------------------------------------- plumbing

    def _open(self) -> None:
        self._index = open_index(self.backend, self.database, self._read_only_asked)
        self._born = forks.generation
        # The collector may find this store while its thread holds the
        # index's lock or is inside the core: only queue the release.
        self._release = weakref.finalize(self, reaper.defer, release_index, self._index)

    def _live(self) -> MemoryIndex:
        if not self._release.alive:
            raise MemoryStoreError(f"the memory store {self.database} is closed")
        if self._born != forks.generation:
            raise forks.opened_before_fork(f"the memory store {self.database}")
        return self._index

    @staticmethod
    def _hits(index: MemoryIndex, text: str) -> list[tuple[MemoryRecord, float]]:
        """The records of the ``[id, version, score]`` hits in ``text``: those
        the index's record cache holds at that version, the others fetched in
        one call. Run inside ``index.reading()``, so that the records fetched
        are the ones ranked."""
        hits = json.loads(text)
        cache = index.record_cache
        cache.sync(index.epoch)
        built: dict[str, _Built] = {}
        missing: list[str] = []
        for id, version, _ in hits:
            found = cache.get(id, version)
            if found is None:
                missing.append(id)
            else:
                built[id] = found
        if missing:
            fetched = json.loads(index.records(_wire(missing, "the record ids")))
            # Should the core have been replaced in between, its versions
            # started over: forget the old ones.
            cache.sync(index.epoch)
            for id, entry in zip(missing, fetched, strict=True):
                if entry is not None:
                    version, item = entry
                    built[id] = entry_built = _Built(item)
                    cache.put(id, version, entry_built, entry_built.size)
        return [(built[id].record(), float(score)) for id, _, score in hits if id in built]

    @property
    def dimension(self) -> int | None:
        """The store's vector dimension, None until a vector is saved."""
        return self._live().dimension()

    @property
    def read_only(self) -> bool:
        """Whether the store is open read-only (asked for, or its file or
        directory cannot be written); see the class docstring."""
        return self._index.read_only_reason is not None

    def close(self) -> None:
        """Releases this storage's hold on the shared index now (idempotent)."""
        if self._release.detach() is not None:
            release_index(self._index)

    def __enter__(self) -> AcceleratedMemoryStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- StorageBackend

    def save(self, records: list[MemoryRecord]) -> None:
        records = _collection(records, "records")
        if not records:
            return
        for record in records:
            if not isinstance(record, MemoryRecord):
                raise _wrong("every record", "a MemoryRecord", record)
        text, vectors = records_to_wire(records)
        try:
            self._live().save_packed(text, vectors)
        except DimensionMismatchError as exc:
            raise EmbeddingDimensionMismatchError(exc.stored, exc.given) from None

    def update(self, record: MemoryRecord) -> None:
        """Replaces the record with ``record.id`` (or inserts it)."""
        self.save([record])

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        limit, min_score = _integer(limit, "limit"), _real(min_score, "min_score")
        if limit <= 0:
            return []
        flt = _filter(scope_prefix, categories, metadata_filter)
        query = _pack_vector(query_embedding)
        index = self._live()
        try:
            with index.reading():
                return self._hits(index, index.search_hits(query, flt, min(limit, U32_MAX), min_score))
        except DimensionMismatchError as exc:
            raise EmbeddingDimensionMismatchError(exc.stored, exc.given) from None

    def search_text(
        self,
        query: str,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
    ) -> list[tuple[MemoryRecord, float]]:
        """BM25 search of the records' content for the words of ``query``,
        best first, with the same filters as :meth:`search`."""
        query, limit = _text(query, "query"), _integer(limit, "limit")
        if limit <= 0:
            return []
        flt = _filter(scope_prefix, categories, metadata_filter)
        index = self._live()
        with index.reading():
            return self._hits(index, index.search_text_hits(query, flt, min(limit, U32_MAX)))

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Deletes the records matching every given criterion (all records
        when none is given); returns how many."""
        ids = None if record_ids is None else _collection(record_ids, "record_ids (or None)")
        if ids is not None and not ids:
            return 0
        return self._live().delete(_filter(scope_prefix, categories, metadata_filter, ids, older_than))

    def get_record(self, record_id: str) -> MemoryRecord | None:
        found = self._live().get(_text(record_id, "record_id"))
        return None if found is None else record_from_wire(json.loads(found))

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[MemoryRecord]:
        """Records under ``scope_prefix``, newest ``created_at`` first."""
        prefix = _optional_text(scope_prefix, "scope_prefix")
        limit, offset = _integer(limit, "limit"), _integer(offset, "offset")
        if limit <= 0 or offset < 0:
            return []
        text = self._live().list(prefix, min(limit, U32_MAX), min(offset, U32_MAX))
        return [record_from_wire(item) for item in json.loads(text)]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        path = _text(scope, "scope").rstrip("/") or "/"
        info = json.loads(self._live().scope_info(path))
        return ScopeInfo(
            path=path,
            record_count=info["record_count"],
            categories=info["categories"],
            oldest_record=None if info["oldest"] is None else _parse_datetime(info["oldest"]),
            newest_record=None if info["newest"] is None else _parse_datetime(info["newest"]),
            child_scopes=info["child_scopes"],
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        scopes: list[str] = json.loads(self._live().list_scopes(_text(parent, "parent")))
        return scopes

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        prefix = _optional_text(scope_prefix, "scope_prefix")
        counts: dict[str, int] = json.loads(self._live().list_categories(prefix))
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        return self._live().count(_optional_text(scope_prefix, "scope_prefix"))

    def reset(self, scope_prefix: str | None = None) -> None:
        """Deletes every record under ``scope_prefix``; with none (or ``/``)
        every record, and the stored dimension with them."""
        self._live().reset(_optional_text(scope_prefix, "scope_prefix"))

    def touch_records(self, record_ids: list[str]) -> None:
        """Sets ``last_accessed`` of these records to now (naive UTC); a
        read-only store skips this bookkeeping, which recall does."""
        ids = _collection(record_ids, "record_ids")
        index = self._live()
        if ids and index.read_only_reason is None:
            index.touch(_wire([str(i) for i in ids], "the record ids"), _utc_now_iso())

    async def asave(self, records: list[MemoryRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    async def asearch(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        return await asyncio.to_thread(
            self.search, query_embedding, scope_prefix, categories, metadata_filter, limit, min_score
        )

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        return await asyncio.to_thread(self.delete, scope_prefix, categories, record_ids, older_than, metadata_filter)


class ReopeningMemoryStorage(AcceleratedMemoryStorage):
    """The store the memory patch gives CrewAI's ``Memory``: closing it
    releases what it holds, and a later call opens it again.

    ``Memory.close()`` closes its storage (it drains saves, calls the
    storage's ``close`` if it has one, and stops its save thread), yet CrewAI
    keeps the ``Memory`` usable afterwards: a late save runs synchronously,
    and its LanceDB store, which has no ``close``, keeps answering. So here
    ``close()`` releases the shared index, its core instance and its file
    handles now, as :class:`AcceleratedMemoryStorage`'s does, and the next
    call opens them again, to be released by the next ``close()`` or by the
    collector. A store built directly still refuses calls once closed.

    Likewise in a process forked after it was opened (see
    :mod:`~fast_crewai.runtime.forks`), where the index it holds is the
    parent's: its next call opens its own, on the backend this process
    chooses (unless one was asked for), since the ``Memory`` holding it
    cannot be told to open it again."""

    def _live(self) -> MemoryIndex:
        if not self._release.alive or self._born != forks.generation:
            with _reopen_lock:
                if self._born != forks.generation:
                    # Forgotten, not released: the parent's index (kept by
                    # _open's fork hook).
                    self._release.detach()
                    self.backend = self._backend_asked or _backend.active()
                if not self._release.alive:
                    self._open()
        return self._index


# Taken only around a reopening's open_index (so before its _shared_lock),
# never by a finalizer. One for all stores: they reopen rarely.
_reopen_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _reopen_lock
    _reopen_lock = threading.Lock()


forks.in_child(_after_fork_in_child)
