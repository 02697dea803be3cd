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
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("fast_crewai")

#: Seconds between the reaper thread's looks at the queue.
INTERVAL = 0.25

_pending: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()


def defer(work: Callable[..., object], *args: Any) -> None:
    """Queues ``work(*args)``; the only thing a finalizer may call."""
    _pending.append((work, args))


def drain() -> None:
    """Runs every queued release now. Call only where no lock of this
    package is held by the calling thread."""
    while True:
        try:
            work, args = _pending.popleft()
        except IndexError:
            return
        try:
            work(*args)
        except Exception:  # a failed release must not break the caller
            logger.debug("fast-crewai: deferred release %r failed", work, exc_info=True)


def pending() -> int:
    """How many releases wait (for tests and status)."""
    return len(_pending)


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
