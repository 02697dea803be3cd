"""The host pool as an event loop's default executor, for the duration of a
``kickoff_for_each_async`` or ``akickoff_for_each`` call.

Both run their crews' blocking work through ``asyncio.to_thread`` (the whole
kickoff for the former; each agent-executor Flow step, LLM calls included,
for the latter), which uses the loop's default executor:
``min(32, cpu + 4)`` threads, six on two cores. While such a call runs, the
loop's default executor forwards to the host pool; afterwards the loop's
own executor is back. Other ``to_thread`` work on the same loop during the
call goes to the pool too.

Not installed when the loop runs on a pool worker (the loop would wait for
pool work from inside the pool), or when the loop does not expose its
default executor (uvloop); CrewAI's own behaviour applies then.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._pool import host_pool, in_pool_worker

_lock = threading.RLock()
# id(loop) -> [the executor ours replaced, ours, nesting depth]
_installed: dict[int, list[Any]] = {}


class PoolExecutor(ThreadPoolExecutor):
    """A default executor for a loop that hands its work to the host pool.

    ``set_default_executor`` accepts only ``ThreadPoolExecutor`` instances;
    this one never starts a thread of its own, and shutting it down (as
    ``asyncio.run`` does at the end) leaves the shared pool running.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="fast-crewai-unused")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return host_pool().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


@contextlib.contextmanager
def pool_as_default_executor(loop: asyncio.AbstractEventLoop) -> Iterator[bool]:
    """Makes the pool ``loop``'s default executor inside the block; yields
    whether it did."""
    key = id(loop)
    with _lock:
        entry = _installed.get(key)
        if entry is not None:
            entry[2] += 1
        elif not in_pool_worker() and hasattr(loop, "_default_executor"):
            ours = PoolExecutor()
            entry = _installed[key] = [getattr(loop, "_default_executor"), ours, 1]
            loop.set_default_executor(ours)
    if entry is None:
        yield False
        return
    try:
        yield True
    finally:
        with _lock:
            entry[2] -= 1
            if entry[2] == 0:
                del _installed[key]
                # An executor someone else set meanwhile stays.
                if getattr(loop, "_default_executor", None) is entry[1]:
                    setattr(loop, "_default_executor", entry[0])  # noqa: B010
