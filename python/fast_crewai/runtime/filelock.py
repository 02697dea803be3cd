"""Cross-process locks the host takes on behalf of the core.

Inside WebAssembly SQLite has no file locks (WASI has none), so the core
opens databases with the ``unix-none`` VFS and the host serialises
processes here: ``flock`` on a sidecar file ``<database>.lock``, shared for
reads and exclusive for writes. The kernel drops a killed process's lock,
so a ``kill -9`` never leaves a database locked.

The sidecar is opened without following a symbolic link (``O_NOFOLLOW``)
and must be a regular file, so a planted link cannot make the host create
or lock a file elsewhere. A reader on read-only media, or in a directory it
may not write, cannot create the sidecar: it locks an existing one opened
read-only, and reads without one while there is none (nothing can write
through such a directory; a writer through another, writable mount creates
it at its first call, and readers use it from their next).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads are still serialised
    fcntl = None  # type: ignore[assignment]


class LockTimeout(TimeoutError):
    """The lock stayed held by another process past the timeout."""


class LockFileRefused(OSError):
    """The sidecar is a symbolic link or not a regular file; it is never
    followed or used."""


# Why a sidecar could not be created where the database is only read.
_CANNOT_CREATE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class FileLock:
    """A reader/writer lock shared by every process that opens ``path``.

    Re-entrant within one thread: a write lock held covers nested reads and
    writes, which lets a transaction span several calls. ``read_only`` is
    for a holder that never writes: it may lock a sidecar it cannot create
    or write (see the module docstring). Opening the sidecar raises
    :class:`LockFileRefused` or the ``OSError`` that stopped it.
    """

    def __init__(self, database: Path, timeout: float = 5.0, *, read_only: bool = False) -> None:
        self.path = Path(str(database) + ".lock")
        self.timeout = timeout
        self.read_only = read_only
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0
        self._exclusive = False

    def _open(self) -> int | None:
        if self._fd is None:
            flags = os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | flags, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._refused() from None
                if not self.read_only or exc.errno not in _CANNOT_CREATE:
                    raise
                try:
                    fd = os.open(self.path, os.O_RDONLY | flags)
                except FileNotFoundError:
                    return None
                except OSError as again:
                    if again.errno == errno.ELOOP:
                        raise self._refused() from None
                    raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise self._refused()
            self._fd = fd
        return self._fd

    def _refused(self) -> LockFileRefused:
        return LockFileRefused(
            errno.ELOOP, "the lock file is a symbolic link or not a regular file; it is never followed", str(self.path)
        )

    def _flock(self, exclusive: bool) -> None:
        if fcntl is None:
            return
        fd = self._open()
        if fd is None:
            return
        op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, op)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{self.path.name}: another process held the database lock for more than {self.timeout:g}s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        """Holds the lock (shared or exclusive) for the block."""
        with self._thread_lock:
            outermost = self._depth == 0
            upgrade = not outermost and exclusive and not self._exclusive
            if outermost or upgrade:
                self._flock(exclusive)
                previous = self._exclusive
                self._exclusive = exclusive
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if outermost:
                    if fcntl is not None and self._fd is not None:
                        fcntl.flock(self._fd, fcntl.LOCK_UN)
                    self._exclusive = False
                elif upgrade:
                    # Back to the shared lock the outer block asked for.
                    if fcntl is not None and self._fd is not None:
                        fcntl.flock(self._fd, fcntl.LOCK_SH)
                    self._exclusive = previous

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class ChangeCounter:
    """The file change counter in a SQLite header (bytes 24-27), which every
    commit in rollback-journal mode bumps, whoever makes it. Read natively it
    costs microseconds; the core would need several WASI calls to check."""

    def __init__(self, database: Path) -> None:
        self.path = database
        self._fd: int | None = None

    def read(self) -> bytes:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return b""
        return os.pread(self._fd, 4, 24)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
