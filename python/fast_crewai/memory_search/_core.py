"""The ``memory-search`` contract served by the core: one ``store``
resource in the instance granted the database's directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import (
    CoreTrap,
    DimensionMismatchError,
    DiskFullError,
    InvalidRecordError,
    MemoryStoreError,
    RecordTooLargeError,
    ResultTooLargeError,
    StorageFailure,
    StoreCapacityError,
)
from ..runtime import backend as _backend
from ..runtime.filelock import ChangeCounter
from ..runtime.settings import memory_limit_bytes

if TYPE_CHECKING:
    from ..runtime._wasm import Instance

from ._contract import INTERFACE, _Guarded, _surrogate_error, _u32, refused_write

_CORE_ERRORS: dict[str, type[MemoryStoreError]] = {
    "invalid-input": InvalidRecordError,
    "capacity": StoreCapacityError,
    "storage": StorageFailure,
    "disk-full": DiskFullError,
    "record-too-large": RecordTooLargeError,
    "result-too-large": ResultTooLargeError,
}


def _check_batch_size(characters: int) -> None:
    """The text is copied into the core, then parsed into a few times its
    size there; past a quarter of the core's memory limit that can never
    fit, and copying it in would trap."""
    limit = memory_limit_bytes()
    if characters > limit // 4:
        raise StoreCapacityError(
            f"a batch of {characters} characters cannot fit in the core's memory "
            f"(FAST_CREWAI_MEMORY_LIMIT_MB={limit >> 20}); save fewer records at a time"
        )


class WasmMemoryIndex(_Guarded):
    """The contract served by the core: one ``store`` resource in the
    instance granted the database's directory."""

    def __init__(self, path: Path, read_only_reason: str | None = None) -> None:
        from ..runtime._wasm import Resource, guest_path

        super().__init__(path, read_only_reason)
        grant = path.parent.resolve()
        if not grant.is_dir():
            raise StorageFailure(f"unable to open {path}: the directory {path.parent} does not exist")
        self._closed = False
        self._instance = _backend.runtime().lease(grant)
        self._guest = guest_path(grant, grant / path.name)
        self._store = Resource(self._instance, INTERFACE, "store", self._open)
        self._counter = ChangeCounter(path)
        # The change counter as this store last left the file: when it moved,
        # another process committed and the index must be refreshed. The open
        # below loads the file as it is then or later, so nothing committed
        # before it needs a refresh.
        self._seen = self._counter.read()
        try:
            # Open now, so that a bad file fails here (a writable open writes
            # the schema, so it takes the exclusive lock).
            self._call(read_only_reason is None, "dimension")
        except BaseException:
            self.close()
            raise

    def _open(self, instance: Instance) -> Any:
        read_only = self.read_only_reason is not None
        return self._checked(instance.call(INTERFACE, "[static]store.open", self._guest, read_only))

    def _checked(self, value: Any) -> Any:
        from ..runtime._wasm import error_of, field

        err = error_of(value)
        if err is None:
            return value
        if err.tag == "dimension-mismatch":
            raise DimensionMismatchError(field(err.payload, "stored"), field(err.payload, "given"))
        if err.tag == "read-only":
            raise self._read_only_error(str(err.payload))
        raise _CORE_ERRORS.get(err.tag, StorageFailure)(str(err.payload))

    def _call(self, write: bool, method: str, *args: Any) -> Any:
        """One call under the file lock. A write (or a refresh) brings the
        index up to date itself; on a read-only store the core refuses it
        (a refresh only reads), so it takes the shared lock."""
        exclusive = write and self.read_only_reason is None
        try:
            with self._file_lock.hold(exclusive):
                try:
                    if not write:
                        self._refresh_if_changed()
                    value = self._checked(self._store.call(method, *args))
                    # Not after a failed write, which may have failed before
                    # bringing the index up to date.
                    if write:
                        self._seen = self._counter.read()
                    return value
                except UnicodeEncodeError:
                    raise _surrogate_error() from None
                except CoreTrap:
                    if exclusive:
                        # Reopen while the exclusive lock is held, so that the
                        # interrupted transaction's journal is rolled back now.
                        with suppress(Exception):  # the trap is what gets reported
                            self._store.call("dimension")
                    raise
        except OSError as exc:
            raise self._lock_error(exc) from None

    def _refresh_if_changed(self) -> None:
        """Has the core reload when another process committed. Reads are
        served from the core's index alone, so with the counter unmoved the
        file is not read, and a journal a crashed writer left (which the next
        reader of the file rolls back) waits for the next write or refresh:
        a commit writes page 1, which holds the counter, first."""
        if self._counter.read() == self._seen:
            return
        if self._journal.exists():
            # The refresh rolls the journal back, which is a write (a
            # read-only store refuses to).
            with self._file_lock.hold(True):
                self._checked(self._store.call("refresh"))
        else:
            self._checked(self._store.call("refresh"))
        self._seen = self._counter.read()

    @contextmanager
    def reading(self) -> Iterator[None]:
        # The shared lock alone: each call inside checks the counter itself.
        held = self._file_lock.hold(False)
        try:
            held.__enter__()
        except OSError as exc:
            raise self._lock_error(exc) from None
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    @property
    def epoch(self) -> int:
        # A new instance of the core numbers record versions from scratch.
        return self._instance.generation

    def search_hits(self, query: str, filter: str, limit: int, min_score: float) -> str:
        return str(self._call(False, "search-hits", query, filter, _u32(limit, "limit"), float(min_score)))

    def search_text_hits(self, query: str, filter: str, limit: int) -> str:
        return str(self._call(False, "search-text-hits", query, filter, _u32(limit, "limit")))

    def records(self, ids: str) -> str:
        return str(self._call(False, "records", ids))

    def _check_save(self, characters: int) -> None:
        # The core refuses a save on a read-only store before reading it;
        # said here first, the refusal does not depend on the batch's size.
        if self.read_only_reason is not None:
            raise self._read_only_error(refused_write("save"))
        _check_batch_size(characters)

    def save(self, records: str) -> int:
        self._check_save(len(records))
        return int(self._call(True, "save", records))

    def save_packed(self, records: str, vectors: str) -> int:
        self._check_save(len(records) + len(vectors))
        return int(self._call(True, "save-packed", records, vectors))

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
        if self._closed:
            return
        self._closed = True
        try:
            self._store.close()
        finally:
            self._counter.close()
            self._file_lock.close()
            self._instance.runtime.release(self._instance)
