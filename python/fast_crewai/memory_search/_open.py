"""One index per database file and backend serves the whole process."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ._contract import MemoryIndex


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
            # Each backend's modules are imported by its first store only
            # (the reference's numpy costs a core user ~20 ms for nothing).
            if backend == "wasm":
                from ._core import WasmMemoryIndex

                index = WasmMemoryIndex(database)
            elif backend == "python":
                from ._reference import PythonMemoryIndex

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
