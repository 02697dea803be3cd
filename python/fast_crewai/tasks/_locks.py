"""Threads of one process queue in memory for CrewAI's named locks.

CrewAI's ``crewai_core.lock_store.lock(name)`` is a ``portalocker`` file
lock in the temp directory, taken for example around every operation of the
task-outputs store (each kickoff resets it and logs each task to it). A
thread that finds it held sleeps and retries every 0.25 s, so concurrent
crews in one process lose a quarter second per collision: measured here,
12 concurrent crews of two 250 ms LLM calls took 2.9 s, 1.2 s with the
queue below.

Through CrewAI's own seam (``set_lock_backend``), threads now first queue on
an in-process lock per name (a release wakes the next waiter at once), and
only the thread at the head takes the file lock, which keeps excluding other
processes exactly as before: same file, same ``portalocker`` lock. A backend
the application set is kept, behind the in-process queue. With Redis locks
configured (``REDIS_URL``) the patch leaves CrewAI's locks as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..runtime import forks

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _after_fork_in_child() -> None:
    # A lock a thread of the parent held at the fork stays held here, by no
    # thread: a fresh queue. The file locks behind it exclude the parent.
    global _locks, _locks_guard
    _locks = {}
    _locks_guard = threading.Lock()


forks.in_child(_after_fork_in_child)


def _named(name: str) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(name)
        if lock is None:
            lock = _locks[name] = threading.Lock()
        return lock


@contextlib.contextmanager
def file_lock(name: str, *, timeout: float) -> Iterator[None]:
    """The file lock ``crewai_core.lock_store.lock`` takes without Redis or
    a custom backend: same path, same ``portalocker`` lock."""
    import portalocker
    import portalocker.exceptions

    channel = f"crewai:{hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()}"
    path = os.path.join(tempfile.gettempdir(), f"{channel}.lock")
    held = portalocker.Lock(path, timeout=timeout)
    try:
        held.acquire()
    except portalocker.exceptions.BaseLockException as exc:
        raise portalocker.exceptions.LockException(
            f"Failed to acquire lock '{name}' at {path} (timeout={timeout}s). "
            "This commonly occurs in multi-process environments. "
        ) from exc
    try:
        yield
    finally:
        held.release()  # type: ignore[no-untyped-call]


def queued(inner: Callable[..., Any]) -> Callable[..., Any]:
    """A lock backend: the in-process queue for ``name``, then ``inner``."""

    @contextlib.contextmanager
    def backend(name: str, *, timeout: float = 120) -> Iterator[None]:
        import portalocker.exceptions

        started = time.monotonic()
        lock = _named(name)
        if not lock.acquire(timeout=timeout):
            raise portalocker.exceptions.LockException(
                f"Failed to acquire lock '{name}' (timeout={timeout}s): held by another thread of this process"
            )
        try:
            remaining = max(0.0, timeout - (time.monotonic() - started))
            with inner(name, timeout=remaining):
                yield
        finally:
            lock.release()

    return backend
