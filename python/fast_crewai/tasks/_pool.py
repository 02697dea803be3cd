"""The process's one bounded host thread pool for CrewAI's concurrency.

CrewAI's concurrent work (crews of ``kickoff_for_each``, tasks with
``async_execution=True``, the thread-bound steps of ``akickoff_for_each``)
spends nearly all of its time waiting for an LLM to answer, so threads, not
cores, bound how many runs are in flight. One pool serves all of it, sized by
``FAST_CREWAI_MAX_WORKERS``.

The default, ``DEFAULT_MAX_WORKERS`` (32), does not follow the core count:
a crew run does milliseconds of CPU work per LLM call that takes hundreds of
milliseconds to seconds, so even two cores keep dozens of calls in flight,
while a bound of a few dozen keeps open connections and provider rate limits
in a sane range (``concurrent.futures`` and asyncio default to
``min(32, cpu + 4)``, six threads on a two-core machine).

Three properties the rest of the package relies on:

- every job runs in a copy of its submitter's ``contextvars`` context, as
  ``asyncio.to_thread`` does: CrewAI scopes events, stream chunks, the
  current crew and task through context variables;
- a thread that waits on a :class:`PoolFuture` whose job has not started yet
  runs that job itself ("caller runs"), so work that waits on other pool work
  (a crew on the pool waiting for its asynchronous tasks) cannot deadlock a
  saturated pool;
- no finalizer or weakref callback is involved, and the pool's lock is
  re-entrant, so code the cyclic garbage collector runs while a thread holds
  it (a ``__del__`` calling :func:`pool_status`) cannot deadlock.

Threads start on demand up to the bound and live until the pool shuts down,
at interpreter exit (queued jobs are cancelled, running ones finish). After
that, work submitted runs in the submitting thread.

A process forked from one that used the pool has none of its threads: there
the next :func:`host_pool` makes a new pool (the parent's is dropped, never
joined), with counts from zero.
"""

from __future__ import annotations

import atexit
import collections
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from .._errors import ConfigurationError
from ..runtime import forks
from ..runtime.settings import DEFAULT_MAX_WORKERS, max_workers

T = TypeVar("T")

__all__ = [
    "DEFAULT_MAX_WORKERS",
    "HostPool",
    "PoolFuture",
    "host_pool",
    "in_pool_worker",
    "pool_status",
    "shutdown_pool",
]


class _Job:
    __slots__ = ("args", "context", "fn", "future", "kwargs")

    def __init__(self, future: PoolFuture[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = contextvars.copy_context()

    def run(self) -> None:
        future = self.future
        # Claimed: nobody needs to look for it in the queue any more.
        future._pool = None
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            # Drop references (the context holds the submitter's variables).
            self.fn = self.args = self.kwargs = self.context = None  # type: ignore[assignment]


class PoolFuture(Future[T]):
    """A future of :class:`HostPool` work; waiting on it before its job has
    started runs the job in the waiting thread."""

    def __init__(self, pool: HostPool) -> None:
        super().__init__()
        self._pool: HostPool | None = pool

    def _run_if_queued(self) -> None:
        pool = self._pool
        if pool is not None:
            pool._run_queued(self)

    def result(self, timeout: float | None = None) -> T:
        self._run_if_queued()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._run_if_queued()
        return super().exception(timeout)


class HostPool:
    """A bounded thread pool; see the module's documentation."""

    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)
        self._queue: collections.deque[_Job] = collections.deque()
        self._jobs: dict[int, _Job] = {}  # id(future) -> its queued job
        self._threads: list[threading.Thread] = []
        self._worker_idents: set[int] = set()
        self._idle = 0
        self._busy = 0
        self._shutdown = False
        self._counts = {"submitted": 0, "completed": 0, "ran_by_waiter": 0, "ran_inline": 0}

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> PoolFuture[T]:
        """Runs ``fn(*args, **kwargs)`` on the pool in a copy of the caller's
        context; after shutdown, in the calling thread."""
        future: PoolFuture[T] = PoolFuture(self)
        job = _Job(future, fn, args, kwargs)
        with self._lock:
            if not self._shutdown:
                self._counts["submitted"] += 1
                self._queue.append(job)
                self._jobs[id(future)] = job
                # Idle workers each take one job; start a thread for the rest.
                if len(self._queue) > self._idle and len(self._threads) < self.max_workers:
                    self._start_thread()
                self._work.notify()
                return future
            self._counts["ran_inline"] += 1
        future._pool = None
        job.run()
        return future

    def in_worker(self) -> bool:
        """Whether the calling thread is one of this pool's workers."""
        return threading.get_ident() in self._worker_idents

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._worker, name=f"fast-crewai-task-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _take(self, future: PoolFuture[Any]) -> _Job | None:
        with self._lock:
            job = self._jobs.pop(id(future), None)
            if job is not None:
                self._queue.remove(job)
                self._counts["ran_by_waiter"] += 1
            return job

    def _run_queued(self, future: PoolFuture[Any]) -> None:
        job = self._take(future)
        if job is not None:
            job.run()
            with self._lock:
                self._counts["completed"] += 1

    def _worker(self) -> None:
        with self._lock:
            self._worker_idents.add(threading.get_ident())
        while True:
            with self._lock:
                while not self._queue and not self._shutdown:
                    self._idle += 1
                    self._work.wait()
                    self._idle -= 1
                if not self._queue:
                    return
                job = self._queue.popleft()
                del self._jobs[id(job.future)]
                self._busy += 1
            job.run()
            with self._lock:
                self._busy -= 1
                self._counts["completed"] += 1

    def shutdown(self, wait: bool = True) -> None:
        """Stops taking work: queued jobs are cancelled, running ones finish
        (joined when ``wait``)."""
        with self._lock:
            self._shutdown = True
            cancelled = list(self._queue)
            self._queue.clear()
            self._jobs.clear()
            self._work.notify_all()
            threads = list(self._threads)
        for job in cancelled:
            job.future.cancel()
        if wait:
            current = threading.current_thread()
            for thread in threads:
                if thread is not current:
                    thread.join()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "max_workers": self.max_workers,
                "threads": len(self._threads),
                "busy": self._busy,
                "queued": len(self._queue),
                "shut_down": self._shutdown,
                **self._counts,
            }


_pool: HostPool | None = None
_pool_lock = threading.RLock()
_exiting = False


def host_pool() -> HostPool:
    """The process's pool, created on first use with
    ``FAST_CREWAI_MAX_WORKERS`` threads at most."""
    global _pool
    pool = _pool
    if pool is not None and not pool._shutdown:
        return pool
    with _pool_lock:
        if _pool is None or (_pool._shutdown and not _exiting):
            _pool = HostPool(max_workers())
        return _pool


def shutdown_pool(wait: bool = True) -> None:
    """Shuts the pool down; the next :func:`host_pool` creates a new one
    (except at interpreter exit)."""
    with _pool_lock:
        pool = _pool
    if pool is not None:
        pool.shutdown(wait=wait)


def in_pool_worker() -> bool:
    """Whether the calling thread is a worker of the current pool."""
    pool = _pool
    return pool is not None and pool.in_worker()


def pool_status() -> dict[str, Any]:
    """The pool's size, load and counts; never creates it."""
    with _pool_lock:
        pool = _pool
    if pool is not None:
        return {"created": True, **pool.status()}
    try:
        return {"created": False, "max_workers": max_workers()}
    except ConfigurationError as exc:  # status reports, never fails
        return {"created": False, "error": str(exc)}


def _after_fork_in_child() -> None:
    # The parent's pool counts idle workers whose threads do not exist here:
    # a job submitted to it would wait for them forever.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.RLock()


forks.in_child(_after_fork_in_child)


def _at_exit() -> None:
    global _exiting
    with _pool_lock:
        _exiting = True
    shutdown_pool(wait=True)


atexit.register(_at_exit)
