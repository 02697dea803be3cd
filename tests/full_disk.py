"""What the full-disk workers share (they run as root in a mount namespace
of their own, see :func:`process_helpers.in_own_mount_namespace`): a small
file system of their own, filled up, and what a call raised."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

#: The size of the disk a worker fills, and of the room it sets aside
#: before filling it, to free afterwards.
SIZE, SPARE = "2m", 512 << 10
#: What :func:`raised` reports of the error a write meeting the full disk
#: raises, on either backend of either store.
DISK_FULL = {
    "class": "DiskFullError",
    "bases": [
        "object",
        "BaseException",
        "Exception",
        "FastCrewAIError",
        "MemoryStoreError",
        "StorageFailure",
        "SQLiteError",
        "DiskFullError",
    ],
    "message": "database or disk is full",
}


def mount_small_disk(directory: Path) -> list[Path]:
    """Mounts a fresh tmpfs of :data:`SIZE` on ``directory`` and sets
    :data:`SPARE` bytes of it aside in a file; returns that file, the first
    of those :func:`free` deletes to make room again."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(directory)], check=True)
    spare = directory / "spare"
    spare.write_bytes(bytes(SPARE))
    return [spare]


def fill(directory: Path) -> Path:
    """Writes a file in ``directory`` until the disk has no byte left;
    returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        for size in (1 << 16, 1 << 12, 1):
            block = bytes(size)
            try:
                while True:
                    os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


def free(taken: list[Path]) -> None:
    """Deletes the files that took the room."""
    for path in taken:
        path.unlink()


def room(directory: Path) -> int:
    """The bytes still free on ``directory``'s file system."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def raised(action: Callable[[], object]) -> dict[str, object] | None:
    """What ``action`` raised: its class, the classes it is an instance of
    (by name, root first) and its message; None when it returned."""
    try:
        action()
    except Exception as exc:  # the report names whatever happened
        return {
            "class": type(exc).__name__,
            "bases": [cls.__name__ for cls in reversed(type(exc).__mro__)],
            "message": str(exc),
        }
    return None


def files(directory: Path) -> list[str]:
    """The names in ``directory``, sorted."""
    return sorted(p.name for p in directory.iterdir())
