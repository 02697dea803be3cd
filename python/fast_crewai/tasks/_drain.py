"""A crew's memory drain waits for its own saves, not other crews'.

CrewAI's ``Memory`` queues background saves on one single-worker pool and
``drain_writes`` (called by ``recall`` and at the end of every kickoff)
waits for every pending save, so concurrent crews sharing a memory (every
``kickoff_for_each`` copy shares its crew's) wait on each other's saves.
Each save is tagged with the crew whose kickoff submitted it (CrewAI's own
``crew_context``, carried in the context); a drain inside a crew's kickoff
waits for that crew's saves and for untagged ones.

What cannot be isolated: the saves of one ``Memory`` still run one after
another on its single worker in submission order (consolidation reads what
earlier saves wrote), so a crew's save can still queue behind another
crew's; the drain no longer waits for the other crew's later saves.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future
from typing import Any

_OWNER = "_fast_crewai_owner"


def current_crew() -> str | None:
    """The id of the crew whose kickoff the caller is in, if any."""
    from crewai.utilities.crew.crew_context import get_crew_context

    context = get_crew_context()
    return None if context is None else str(context.id)


def tag(future: Future[Any]) -> Future[Any]:
    """Marks a save's future with the submitting crew."""
    owner = current_crew()
    if owner is not None:
        # Futures from CrewAI's ThreadPoolExecutor take attributes; a future
        # that does not counts as untagged (always waited for).
        with contextlib.suppress(AttributeError):
            setattr(future, _OWNER, owner)
    return future


def drain_own_writes(memory: Any) -> bool:
    """Waits for the saves of the current crew (and untagged ones) on
    ``memory``; returns False, waiting for nothing, outside a crew."""
    owner = current_crew()
    if owner is None:
        return False
    with memory._pending_lock:
        pending = [f for f in memory._pending_saves if getattr(f, _OWNER, owner) == owner]
    # As CrewAI's drain_writes: wait without re-raising; save failures are
    # reported through MemorySaveFailedEvent.
    for future in pending:
        if not future.cancelled():
            future.exception()
    return True
