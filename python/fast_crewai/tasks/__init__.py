"""Task concurrency on one bounded host thread pool.

With the ``tasks`` switch on (see :mod:`fast_crewai.tasks._patch`),
``Crew.kickoff_for_each`` runs its crew copies concurrently,
``kickoff_for_each_async`` and ``akickoff_for_each`` are no longer capped by
asyncio's default executor, tasks with ``async_execution=True`` run on the
pool, and concurrent invocations of one agent or one tool are kept apart.
"""

from __future__ import annotations

from typing import Any

from . import _invocations, _pool
from ._pool import DEFAULT_MAX_WORKERS, HostPool, PoolFuture, host_pool


def pool_status() -> dict[str, Any]:
    """What :func:`fast_crewai.status` shows for the component: the pool
    (``created`` false until first use; ``max_workers``, ``threads``,
    ``busy``, ``queued``, ``submitted``, ``completed``, ``ran_by_waiter``,
    ``ran_inline``, ``shut_down``) and the invocation leases (``leased``,
    ``agent_twins``, ``tool_copies``). Never creates the pool, never raises."""
    return {**_pool.pool_status(), **_invocations.lease_status()}


__all__ = ["DEFAULT_MAX_WORKERS", "HostPool", "PoolFuture", "host_pool", "pool_status"]
