"""The host pool: bounded, lazy, context-preserving, deadlock-free when work
waits on work, safe under the cyclic garbage collector, clean at exit."""

from __future__ import annotations

import contextvars
import gc
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fast_crewai
from fast_crewai import ConfigurationError
from fast_crewai.tasks import _pool, pool_status
from fast_crewai.tasks._pool import HostPool

SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)
_where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="unset")


@pytest.fixture
def pool() -> Iterator[HostPool]:
    made = HostPool(4)
    yield made
    made.shutdown()


def test_results_and_errors_come_back_through_the_futures(pool: HostPool) -> None:
    futures = [pool.submit(lambda i=i: i * i) for i in range(20)]
    assert [f.result(timeout=10) for f in futures] == [i * i for i in range(20)]
    failing = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)


def test_at_most_max_workers_threads_run_at_once(pool: HostPool) -> None:
    running = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def job() -> None:
        with lock:
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])
        time.sleep(0.05)
        with lock:
            running["now"] -= 1

    futures = [pool.submit(job) for _ in range(16)]
    for future in futures:
        future.exception(timeout=30)
    status = pool.status()
    assert status["threads"] == 4
    # Waiting on a job not started yet runs it in the waiting thread (here the
    # test's), so one more than the bound may run.
    assert 4 <= running["peak"] <= 5


def test_jobs_run_in_a_copy_of_the_submitters_context(pool: HostPool) -> None:
    token = _where.set("submitter")
    try:
        seen = pool.submit(_where.get).result(timeout=10)
        changed = pool.submit(_where.set, "job").result(timeout=10)
    finally:
        _where.reset(token)
    assert seen == "submitter"
    assert changed is not None and _where.get() == "unset"  # the job's change stayed in its copy


def test_work_waiting_on_queued_work_never_deadlocks() -> None:
    # One worker: the outer job occupies it and waits on inner jobs that can
    # only run if the waiter runs them itself.
    single = HostPool(1)
    started = threading.Event()

    def outer() -> list[int]:
        started.set()
        return [single.submit(lambda i=i: i + 1).result(timeout=10) for i in range(3)]

    try:
        future = single.submit(outer)
        assert started.wait(timeout=10)
        assert future.result(timeout=10) == [1, 2, 3]
        assert single.status()["ran_by_waiter"] == 3
    finally:
        single.shutdown()


def test_shutdown_cancels_queued_jobs_and_later_work_runs_inline() -> None:
    single = HostPool(1)
    started, release = threading.Event(), threading.Event()

    def job() -> bool:
        started.set()
        return release.wait(10)

    running = single.submit(job)
    assert started.wait(10)
    queued = single.submit(lambda: "never")
    stopper = threading.Thread(target=single.shutdown)
    stopper.start()
    deadline = time.monotonic() + 10
    while not queued.cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queued.cancelled()
    release.set()
    stopper.join(timeout=10)
    assert not stopper.is_alive() and running.result() is True
    after = single.submit(threading.get_ident)
    assert after.done() and after.result() == threading.get_ident()
    assert single.status()["ran_inline"] == 1


def test_status_never_creates_the_pool_and_reports_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "_pool", None)
    monkeypatch.setenv("FAST_CREWAI_MAX_WORKERS", "7")
    assert pool_status()["created"] is False and pool_status()["max_workers"] == 7
    assert _pool._pool is None
    for bad in ("0", "-3", "2.5", "many"):
        monkeypatch.setenv("FAST_CREWAI_MAX_WORKERS", bad)
        assert "FAST_CREWAI_MAX_WORKERS" in pool_status()["error"]
        with pytest.raises(ConfigurationError, match="FAST_CREWAI_MAX_WORKERS"):
            _pool.host_pool()
    monkeypatch.delenv("FAST_CREWAI_MAX_WORKERS")
    assert pool_status()["max_workers"] == _pool.DEFAULT_MAX_WORKERS
    made = _pool.host_pool()
    try:
        assert made is _pool.host_pool() and pool_status()["created"] is True
    finally:
        made.shutdown()


def test_a_finalizer_run_while_the_pool_lock_is_held_does_not_deadlock(pool: HostPool) -> None:
    # The cyclic collector runs finalizers in whatever thread allocates,
    # which may be one inside the pool's lock; a finalizer that asks for the
    # status must not wait for that lock.
    reported: list[dict[str, object]] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            reported.append(pool.status())

    def collect_inside_the_lock() -> None:
        with pool._lock:
            Cycle()
            gc.collect()

    worker = threading.Thread(target=collect_inside_the_lock, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "deadlocked"
    assert reported and reported[0]["max_workers"] == 4


def test_the_process_pool_shuts_down_at_exit_while_work_runs() -> None:
    script = (
        "import atexit, time\n"
        "done = []\n"
        "def report():\n"
        "    from fast_crewai.tasks import pool_status\n"
        "    status = pool_status()\n"
        "    print('exit', done, status['shut_down'], status['busy'], status['queued'], flush=True)\n"
        # Registered before the pool's own handler, so it runs after it.
        "atexit.register(report)\n"
        "from fast_crewai.tasks import host_pool\n"
        "pool = host_pool()\n"
        "pool.submit(lambda: (time.sleep(0.3), done.append(1)))\n"
        "for _ in range(50):\n"
        "    pool.submit(time.sleep, 0.3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env={"PYTHONPATH": SRC}
    )
    assert result.returncode == 0, result.stderr
    # The pool's shutdown let the running jobs finish and cancelled the rest.
    assert result.stdout.strip() == "exit [1] True 0 0"
