"""``sqlite-store`` served by the core: one connection resource in an
instance of its own, granted the database's directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .._errors import (
    BusyError,
    ConstraintError,
    CorruptError,
    DiskFullError,
    MisuseError,
    NotFoundError,
    ReadOnlyError,
    SQLiteError,
    TooLargeError,
)
from ..runtime import backend as _backend
from ..runtime.filelock import ChangeCounter
from ._contract import INTERFACE, ExecuteResult, Mode, Params, _surrogate_error, from_wire, in_wal_mode, to_wire


class WasmConnection:
    """A connection resource of the core's ``sqlite-store``, alone in an
    instance of its own: a trap elsewhere (another connection's timeout, a
    memory store's) never rolls its transaction back."""

    def __init__(self, grant: Path, path: Path, mode: Mode) -> None:
        from ..runtime._wasm import Resource, guest_path

        try:
            self._instance = _backend.runtime().private(grant)
        except FileNotFoundError:
            raise NotFoundError(f"unable to open database file: the directory {grant} does not exist") from None
        self._closed = False
        assert self._instance.grant is not None
        self._guest = guest_path(self._instance.grant, path)
        self._mode = mode
        self._path = path
        self._counter = ChangeCounter(path)
        # The change counter as this connection last left the file.
        self._seen = b""
        self._opened_generation = -1
        self._resource = Resource(self._instance, INTERFACE, "connection", self._open)

    def _open(self, instance: Any) -> Any:
        handle = instance.call(INTERFACE, "[static]connection.open", self._guest, self._mode)
        self._check(handle)
        self._opened_generation = instance.generation
        self._seen = self._counter.read()
        return handle

    @staticmethod
    def _check(value: Any) -> Any:
        if value is None or type(value) in _PLAIN_RESULTS:
            return value
        from ..runtime._wasm import error_of

        err = error_of(value)
        if err is not None:
            raise _CORE_ERRORS.get(err.tag, SQLiteError)(str(err.payload))
        return value

    @property
    def stale(self) -> bool:
        return self._opened_generation != self._instance.generation

    def pinned(self) -> AbstractContextManager[Any]:
        return self._instance.lock

    def open(self) -> None:
        # Any call on a stale resource reopens it.
        self._resource.call("in-transaction")

    def moved(self) -> bool:
        return self._counter.read() != self._seen

    def revalidate(self, journal_exists: bool) -> None:
        if self.stale or not (journal_exists or self.moved()):
            return
        if in_wal_mode(self._path):
            # Another SQLite switched the file to WAL, which the core cannot
            # read: opening again leaves it (under the exclusive lock the
            # wrapper took, having seen the same header).
            self._resource.reopen()
        else:
            self._call("refresh")

    def _call(self, method: str, *args: Any, as_bytes: bool = False) -> Any:
        try:
            return self._check(self._resource.call(method, *args, as_bytes=as_bytes))
        except UnicodeEncodeError:
            raise _surrogate_error() from None
        finally:
            self._seen = self._counter.read()

    def execute(self, sql: str, params: Params, read_only: bool) -> ExecuteResult:
        if not read_only:
            return from_wire(self._call("execute", sql, to_wire(params), as_bytes=True))
        # A statement that does not write leaves the change counter as it
        # was (a crashed writer's journal is rolled back by revalidate's
        # refresh, before it), so it is not read again.
        try:
            return from_wire(self._check(self._resource.call("query", sql, to_wire(params), as_bytes=True)))
        except UnicodeEncodeError:
            raise _surrogate_error() from None

    def executemany(self, sql: str, param_sets: Sequence[Params]) -> int:
        changed: int = self._call("execute-many", sql, to_wire(param_sets, many=True))
        return changed

    def control(self, sql: str) -> None:
        self._call("execute-script", sql)

    def in_transaction(self) -> bool:
        return bool(self._resource.call("in-transaction"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._counter.close()
        finally:
            # The instance is this connection's alone: closing it frees the
            # connection with it, in one step and without a call into the core.
            self._instance.close()


# What a successful call returns; anything else may be an error value.
_PLAIN_RESULTS = frozenset({str, bytes, int, bool})

_CORE_ERRORS: dict[str, type[SQLiteError]] = {
    "constraint": ConstraintError,
    "busy": BusyError,
    "read-only": ReadOnlyError,
    "corrupt": CorruptError,
    "not-found": NotFoundError,
    "misuse": MisuseError,
    "too-large": TooLargeError,
    "disk-full": DiskFullError,
}
