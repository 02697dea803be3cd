"""Fixtures for the task-concurrency tests: the ``tasks`` patches on or off,
and no asynchronous task a test started still running when the next begins."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from fast_crewai.runtime import patches
from fast_crewai.tasks import pool_status


@pytest.fixture
def tasks_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every switch on, as ``import fast_crewai.shim`` leaves it."""
    for name in ("FAST_CREWAI_ACCELERATION", "FAST_CREWAI_TASKS"):
        monkeypatch.delenv(name, raising=False)
    report = patches.enable_acceleration()
    assert report["components"]["tasks"]["missing"] == {}
    yield
    patches.disable_acceleration()


@pytest.fixture
def stock() -> None:
    """CrewAI as it ships: nothing patched."""
    patches.disable_acceleration()


def _still_running(threads: list[threading.Thread]) -> list[str]:
    running = [thread.name for thread in threads if thread.is_alive()]
    status = pool_status()
    if status["created"] and (status["busy"] or status["queued"]):
        running.append(f"host pool ({status['busy']} busy, {status['queued']} queued)")
    return running


@pytest.fixture(autouse=True)
def _no_task_outlives_the_test() -> Iterator[None]:
    """Waits, after each test, for the asynchronous tasks it started. When
    one of a crew's asynchronous tasks fails, ``Crew._process_async_tasks``
    raises without waiting for the others: stock CrewAI's threads
    (``Task.execute_async`` starts ``Thread(target=ctx.run)``, hence the
    name) or the host pool's jobs go on emitting events into the next test,
    whose handlers record them with parents emitted before it began."""
    before = set(threading.enumerate())
    yield
    threads = [t for t in set(threading.enumerate()) - before if t.name.endswith("(run)")]
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    while _still_running(threads) and time.monotonic() < deadline:
        time.sleep(0.02)
    running = _still_running(threads)
    assert not running, f"still running 60 s after the test: {running}"
