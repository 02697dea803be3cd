"""Release work found by the garbage collector, done at a safe point.

The rule for this package: **no finalizer, ``__del__`` or weakref callback
takes a lock or calls into the core.** The collector runs them at any
allocation, on whatever thread allocated, possibly while that thread holds
one of our locks or is inside a wasm call on the very instance the finalizer
would touch: taking the lock deadlocks (a non-reentrant lock) or re-enters
the instance mid-call (a reentrant one). So a finalizer only calls
:func:`defer`, which appends to a deque (atomic under the GIL, no lock, no
callback), and the work runs later with no lock held:

* by :func:`drain`, which every store and wrapper constructor calls before
  it takes any lock, so a program that keeps opening stores never piles up
  released ones;
* by a daemon thread that drains every :data:`INTERVAL` seconds, started by
  the first constructor (never by a finalizer);
* at interpreter exit.

``close()`` does not go through here: it detaches its finalizer and releases
synchronously, in the caller's thread.

In a process forked from one where the thread ran, the thread is gone: the
fork hook below forgets it (the next constructor starts one) and gives the
locks fresh. Releases queued in the parent run in the child too, on what the
child copied, where closing something opened before the fork forgets it
(:mod:`.forks`).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import forks

logger = logging.getLogger("fast_crewai")

#: Seconds between the reaper thread's looks at the queue.
INTERVAL = 0.25

_pending: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
# Releases taken off the queue and not finished yet. Guarded by its own lock,
# held only to count (never while a release runs, never by a finalizer).
_running = 0
_running_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _thread, _start_lock, _running, _running_lock
    _thread = None
    _start_lock = threading.Lock()
    # A release a parent thread was running does not go on here.
    _running = 0
    _running_lock = threading.Lock()


forks.in_child(_after_fork_in_child)


def defer(work: Callable[..., object], *args: Any) -> None:
    """Queues ``work(*args)``; the only thing a finalizer may call."""
    _pending.append((work, args))


def drain() -> None:
    """Runs every queued release now. Call only where no lock of this
    package is held by the calling thread."""
    global _running
    while True:
        with _running_lock:
            try:
                work, args = _pending.popleft()
            except IndexError:
                return
            _running += 1
        try:
            work(*args)
        except Exception:  # a failed release must not break the caller
            logger.debug("fast-crewai: deferred release %r failed", work, exc_info=True)
        finally:
            with _running_lock:
                _running -= 1


def pending() -> int:
    """How many releases wait or run now (for tests and status)."""
    with _running_lock:
        return len(_pending) + _running


def settle(timeout: float = 30.0) -> bool:
    """Drains, then waits until releases another thread took off the queue
    have finished too; False if some still run after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        drain()
        if not pending():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def start() -> None:
    """Drains, and makes sure the reaper thread runs. Constructors call it
    before taking any lock."""
    global _thread
    drain()
    if _thread is not None:
        return
    with _start_lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="fast-crewai-reaper", daemon=True)
            _thread.start()


def _run() -> None:
    while True:
        time.sleep(INTERVAL)
        if _pending:
            drain()


atexit.register(drain)
