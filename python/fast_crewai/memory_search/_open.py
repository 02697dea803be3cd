"""One index per database file, backend and access serves the whole process."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..runtime import forks
from ..runtime.filelock import why_unwritable
from ._contract import MemoryIndex

#: Why a store asked to be read-only is.
ASKED = "opened with read_only=True"


@dataclass
class _Shared:
    index: MemoryIndex
    refs: int = 0


_shared_lock = threading.Lock()
_shared: dict[tuple[str, Path, bool], _Shared] = {}


def _after_fork_in_child() -> None:
    # The parent's indexes are the parent's (see runtime.forks): a store
    # opened in the child gets an index of its own. They are kept, never
    # closed here, and the stores holding them refuse calls.
    global _shared_lock, _shared
    forks.keep(_shared)
    _shared_lock = threading.Lock()
    _shared = {}


forks.in_child(_after_fork_in_child)


def open_index(backend: str, database: Path, read_only: bool = False) -> MemoryIndex:
    """The process's index of ``database`` on ``backend``, opened on first
    use; pair every call with :func:`release_index`. Opened read-only when
    ``read_only``, or when this process cannot write the file or its
    directory (read-only media, no permission: :func:`why_unwritable`)."""
    reason = ASKED if read_only else why_unwritable(database)
    key = (backend, database, reason is not None)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            index: MemoryIndex
            # Each backend's modules are imported by its first store only
            # (the reference's numpy costs a core user ~20 ms for nothing).
            if backend == "wasm":
                from ._core import WasmMemoryIndex

                index = WasmMemoryIndex(database, reason)
            elif backend == "python":
                from ._reference import PythonMemoryIndex

                index = PythonMemoryIndex(database, reason)
            else:
                raise ValueError(f"backend must be 'wasm' or 'python', not {backend!r}")
            entry = _shared[key] = _Shared(index)
        entry.refs += 1
        return entry.index


def release_index(index: MemoryIndex) -> None:
    """Closes the index when its last user releases it."""
    with _shared_lock:
        for key, entry in _shared.items():
            if entry.index is index:
                entry.refs -= 1
                if entry.refs <= 0:
                    del _shared[key]
                    entry.index.close()
                return
