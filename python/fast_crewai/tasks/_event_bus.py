"""CrewAI's event bus in a process forked after the bus ran.

``crewai_event_bus`` starts, at its first ``emit``, a thread pool for
synchronous handlers and a daemon thread running an asyncio loop for
asynchronous ones, and ``Crew.kickoff`` waits for the future of its
``CrewKickoffStartedEvent``. A child made by ``os.fork()`` after the parent
emitted has neither thread, yet the bus believes it runs (and the pool counts
an idle worker that is not there), so the child's first kickoff waits
forever, with or without fast-crewai. Measured here with CrewAI 1.15.30.

With this patch applied, the fork hook below gives the child's bus what its
first ``emit`` would: it forgets the parent's pool, loop and pending futures
(kept, never closed here: the loop's selector is shared with the parent), so
the next ``emit`` starts its own, and gives its locks fresh.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from ..runtime import forks
from ..runtime.patches import PatchTargetMissing

# The bus looked after while the patch is applied.
_bus: Any = None

_STATE = ("_executor_initialized", "_pending_futures", "_futures_lock", "_rwlock", "_instance_lock")


def _after_fork_in_child() -> None:
    bus = _bus
    if bus is None:
        return
    type(bus)._instance_lock = threading.RLock()
    bus._rwlock = type(bus._rwlock)()
    bus._futures_lock = threading.Lock()
    forks.keep(bus._pending_futures)
    bus._pending_futures = set()
    if bus._executor_initialized:
        forks.keep(bus._sync_executor, bus._loop, bus._loop_thread)
        bus._executor_initialized = False


forks.in_child(_after_fork_in_child)


def apply() -> Callable[[], None]:
    global _bus
    try:
        bus = importlib.import_module("crewai.events.event_bus").crewai_event_bus
    except (ImportError, AttributeError) as exc:
        raise PatchTargetMissing(f"crewai.events.event_bus.crewai_event_bus cannot be loaded ({exc})") from exc
    absent = [name for name in _STATE if not hasattr(bus, name)]
    if absent:
        raise PatchTargetMissing(f"crewai_event_bus has no {', '.join(absent)}")
    _bus = bus

    def undo() -> None:
        global _bus
        _bus = None

    return undo
