"""Task concurrency on one bounded host thread pool.

With the ``tasks`` switch on (see :mod:`fast_crewai.tasks._patch`),
``Crew.kickoff_for_each`` runs its crew copies concurrently,
``kickoff_for_each_async`` and ``akickoff_for_each`` are no longer capped by
asyncio's default executor, tasks with ``async_execution=True`` run on the
pool, and concurrent invocations of one agent or one tool are kept apart.
"""

from __future__ import annotations

from ._pool import DEFAULT_MAX_WORKERS, HostPool, PoolFuture, configured_max_workers, host_pool, pool_status

__all__ = ["DEFAULT_MAX_WORKERS", "HostPool", "PoolFuture", "configured_max_workers", "host_pool", "pool_status"]
