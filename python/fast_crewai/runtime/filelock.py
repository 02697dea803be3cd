"""Cross-process locks the host takes on behalf of the core.

Inside WebAssembly SQLite has no file locks (WASI has none), so the core
opens databases with a VFS over ``unix-none`` and the host serialises
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

A lock made before ``os.fork()`` is refused in the child: its descriptor's
open file description, which holds the ``flock``, is shared with the parent,
so the child taking or dropping it would take or drop the parent's lock.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from pathlib import Path

from .._errors import UnsupportedPlatformError
from . import forks

try:
    import fcntl
except ImportError:  # Windows: refused in FileLock, never silently unlocked
    fcntl = None  # type: ignore[assignment]


class LockTimeout(TimeoutError):
    """The lock stayed held by another process past the timeout."""


class LockFileRefused(OSError):
    """The sidecar is a symbolic link or not a regular file; it is never
    followed or used."""


#: Why a file could not be created or written: read-only media, no permission.
CANNOT_WRITE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def why_unwritable(database: Path) -> str | None:
    """Why this process cannot write ``database``, or None when it can.
    SQLite creates its journal, and the host the lock sidecar, in the
    file's directory, so that must be writable, and so must the file when
    it exists. Root may write where permissions say otherwise, but not on
    read-only media."""
    directory = database.parent
    try:
        read_only_media = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        # A missing directory: opening the store says what is wrong.
        return None
    if read_only_media:
        return "its directory is on a read-only file system"
    effective = os.access in os.supports_effective_ids
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=effective):
        return "this process may not write to its directory"
    if database.exists() and not os.access(database, os.W_OK, effective_ids=effective):
        return "this process may not write to the file"
    return None


class FileLock:
    """A reader/writer lock shared by every process that opens ``path``.

    Re-entrant within one thread: a write lock held covers nested reads and
    writes, which lets a transaction span several calls. ``read_only`` is
    for a holder that never writes: it may lock a sidecar it cannot create
    or write (see the module docstring). Opening the sidecar raises
    :class:`LockFileRefused` or the ``OSError`` that stopped it.
    """

    def __init__(self, database: Path, timeout: float = 5.0, *, read_only: bool = False) -> None:
        if fcntl is None:
            raise UnsupportedPlatformError(
                "fast-crewai's stores need fcntl.flock to keep processes from corrupting a database file, "
                "and this platform has none: use CrewAI's own stores (FAST_CREWAI_MEMORY=0, FAST_CREWAI_DATABASE=0)"
            )
        self.path = Path(str(database) + ".lock")
        self.timeout = timeout
        self.read_only = read_only
        self._thread_lock = threading.RLock()
        self._born = forks.generation
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
                if not self.read_only or exc.errno not in CANNOT_WRITE:
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

    def hold(self, exclusive: bool) -> _Held:
        """Holds the lock (shared or exclusive) for a ``with`` block; raises
        :class:`~fast_crewai.OpenedBeforeFork` in a process forked after the
        lock was made."""
        if self._born != forks.generation:
            database = self.path.name.removesuffix(".lock")
            raise forks.opened_before_fork(f"the store or connection on {database}")
        return _Held(self, exclusive)

    def close(self) -> None:
        if self._born != forks.generation:
            # The parent's: closing the child's descriptor leaves the lock,
            # held through the parent's, as it is; its thread lock may have
            # been held by a parent thread at the fork.
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
            return
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _Held:
    """One ``with`` block of :meth:`FileLock.hold`: a plain context manager
    rather than a generator, since every call into a store takes one."""

    __slots__ = ("exclusive", "lock", "outermost", "previous", "upgrade")

    def __init__(self, lock: FileLock, exclusive: bool) -> None:
        self.lock = lock
        self.exclusive = exclusive

    def __enter__(self) -> None:
        lock = self.lock
        lock._thread_lock.acquire()
        try:
            self.outermost = outermost = lock._depth == 0
            self.upgrade = upgrade = not outermost and self.exclusive and not lock._exclusive
            if outermost or upgrade:
                lock._flock(self.exclusive)
                self.previous = lock._exclusive
                lock._exclusive = self.exclusive
            lock._depth += 1
        except BaseException:
            lock._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        lock = self.lock
        try:
            lock._depth -= 1
            if self.outermost:
                if lock._fd is not None:
                    fcntl.flock(lock._fd, fcntl.LOCK_UN)
                lock._exclusive = False
            elif self.upgrade:
                # Back to the shared lock the outer block asked for.
                if lock._fd is not None:
                    fcntl.flock(lock._fd, fcntl.LOCK_SH)
                lock._exclusive = self.previous
        finally:
            lock._thread_lock.release()


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
