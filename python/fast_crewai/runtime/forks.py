"""What of this package survives ``os.fork()``.

A child made by ``os.fork()`` (multiprocessing's default start method on
Linux, Celery's prefork pool, ``gunicorn --preload``) starts with a copy of
the parent's memory and one thread: the one that forked. So in the child:

* wasmtime's WASI runs its I/O on a process-wide tokio runtime inside
  libwasmtime whose threads are gone: once the parent has loaded the core,
  any core call in the child that reaches a file can wait forever, on a new
  store too. The child therefore treats the core as unavailable
  (:mod:`.backend`).
* every store, wrapper and connection opened before the fork belongs to the
  parent, which keeps using it: its core instance, its SQLite connection and
  its lock file descriptor (``flock`` locks belong to the open file
  description, which parent and child now share, so a child locking or
  unlocking it would change the parent's lock). Using one in the child
  raises :class:`~fast_crewai.OpenedBeforeFork`; closing it forgets it
  (:func:`keep`): nothing of it is closed or freed in the child.
* threads (the epoch ticker, the reaper, the host pool's workers) are gone,
  and a lock another thread held at the fork stays held forever.

Each module resets its own state in an ``os.register_at_fork`` hook next to
that state (a fresh lock, a forgotten table, a thread to start again). The
hooks run in the child's only thread, before anything else runs there, so
they only rebind names: they take no lock.

Objects opened before the fork are told apart by :data:`generation`, which
the hook below bumps in every child: each records it when opened and
compares it with the current one before it touches anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .._errors import OpenedBeforeFork

#: How many forks separate this process from the one that imported this
#: module; bumped in each child.
generation = 0
# What the parent opened and the child forgot: referenced for good, so that
# the collector never closes it here (a SQLite connection the parent was
# writing through, closed here, would roll the parent's transaction back).
_kept: list[object] = []


def _bump() -> None:
    global generation
    generation += 1


def in_child(hook: Callable[[], None]) -> None:
    """Runs ``hook`` in every child ``os.fork()`` makes (where fork exists:
    not on Windows)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=hook)


in_child(_bump)


#: Why the core is unavailable in a process forked after its parent loaded it.
CORE_STARTED_IN_PARENT = (
    "this process was made by os.fork() after the core had started in its parent, and wasmtime's I/O runtime "
    "does not survive a fork; to use the core in a child process, open stores and make core calls only after "
    "forking, or start children with the 'spawn' or 'forkserver' start method"
)


def keep(*objects: object) -> None:
    """Forgets the parent's ``objects`` in this child without closing or
    freeing them."""
    _kept.extend(objects)


def opened_before_fork(what: str) -> OpenedBeforeFork:
    """The error for ``what`` (a store, a wrapper, a connection) used in a
    child process after being opened in its parent."""
    return OpenedBeforeFork(
        f"{what} was opened before os.fork() in the parent process, which still owns its core instance, "
        "connection and lock; it must be opened again in this process"
    )
