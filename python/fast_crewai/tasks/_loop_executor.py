"""The default executor of the event loops ``akickoff_for_each`` copies run on.

Each copy of a patched ``Crew.akickoff_for_each`` runs on an event loop of
its own in a host-pool thread, and CrewAI hands that loop's default executor
its blocking steps (``asyncio.to_thread``: the LLM call, every synchronous
flow method). A loop makes its default executor on first use and joins it
when it closes, so every copy used to start and join threads of its own, a
dozen or more per run. In an interleaved A/B of the ``tasks`` benchmark's
``akickoff_for_each`` call (a one-off, not a benchmark kept in the repo),
sharing one executor across those loops took ~10% off the process CPU per
run and ~4% off the wall time.

The executor is a ``ThreadPoolExecutor`` (asyncio accepts no other kind) that
ignores ``shutdown`` from the loops that close around it; its threads start
on demand and are joined by ``concurrent.futures`` at interpreter exit, like
any default executor's. Its bound is asyncio's own per-loop bound,
``min(32, cpu + 4)``, times the host pool's, one loop per pool thread at
most: work blocked in one loop's steps can hold no more threads than it
could of its own executor before it leaves another loop short. A child
process made by ``os.fork`` makes a new one.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ..runtime import forks
from ..runtime.settings import max_workers


class _SharedLoopExecutor(ThreadPoolExecutor):
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # Called by every loop that closes (asyncio.run's end); the executor
        # serves the next loop.
        return None


_executor: _SharedLoopExecutor | None = None
_lock = threading.Lock()


def loop_executor() -> ThreadPoolExecutor:
    """The process's shared default executor for the copies' loops."""
    global _executor
    executor = _executor
    if executor is not None:
        return executor
    with _lock:
        if _executor is None:
            per_loop = min(32, (os.cpu_count() or 1) + 4)
            _executor = _SharedLoopExecutor(per_loop * max_workers(), thread_name_prefix="fast-crewai-step")
        return _executor


def _forget_in_child() -> None:
    # The parent's threads do not exist in a forked child: its executor
    # would queue work for them forever.
    global _executor, _lock
    _executor = None
    _lock = threading.Lock()


forks.in_child(_forget_in_child)
