"""Safe to leave on: stores and wrappers dropped anywhere, by anyone, never
hang the process and give back every file descriptor and instance.

The workers run in subprocesses with a timeout, so a deadlock fails the test
(naming it) instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fast_crewai

WORKERS = Path(__file__).with_name("lifecycle_workers.py")
SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)


def run_worker(role: str, backend: str, directory: Path, count: int, timeout: float = 240) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": SRC}
    try:
        done = subprocess.run(
            [sys.executable, str(WORKERS), role, backend, str(directory), str(count)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{role} on {backend}: the process hung for {timeout:g}s (a finalizer deadlock?)")
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_stores_collected_in_cycles_never_deadlock_and_free_their_files(backend: str, tmp_path: Path) -> None:
    result = run_worker("fresh", backend, tmp_path, 300)
    assert result["after"] == result["before"], result
    assert result["pending"] == 0


def test_ten_thousand_stores_opened_and_dropped_leave_the_fd_count_unchanged(backend: str, tmp_path: Path) -> None:
    result = run_worker("shared", backend, tmp_path, 10_000)
    assert result["after"] == result["before"], result


def test_threads_churning_stores_and_wrappers_with_the_collector_running(backend: str, tmp_path: Path) -> None:
    result = run_worker("threads", backend, tmp_path, 150)
    assert result["errors"] == 0, result["first_error"]
    assert result["after"] == result["before"], result
    assert result["instances"] == 0, result


def test_a_finalizer_only_queues_its_release(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector's thread never runs release work itself: it is queued
    and done at the next safe point (here, the next store's constructor)."""
    import gc

    from fast_crewai.memory_search._open import _shared
    from fast_crewai.memory_search._storage import AcceleratedMemoryStorage
    from fast_crewai.runtime import reaper

    store = AcceleratedMemoryStorage(path=str(tmp_path / "dropped"))
    key = (backend, store.database, False)
    store.cycle = store  # type: ignore[attr-defined]
    drain = reaper.drain
    # Hold the reaper thread and the safe points off while the collector runs.
    monkeypatch.setattr(reaper, "drain", lambda: None)
    del store
    gc.collect()
    assert key in _shared, "the finalizer released the index itself"
    assert reaper.pending() >= 1
    monkeypatch.setattr(reaper, "drain", drain)
    AcceleratedMemoryStorage(path=str(tmp_path / "next")).close()
    assert key not in _shared


def test_close_releases_at_once_and_is_idempotent(backend: str, tmp_path: Path) -> None:
    from fast_crewai.memory_search._open import _shared
    from fast_crewai.memory_search._storage import AcceleratedMemoryStorage

    store = AcceleratedMemoryStorage(path=str(tmp_path / "closed"))
    key = (backend, store.database, False)
    assert key in _shared
    store.close()
    assert key not in _shared
    store.close()
    with pytest.raises(fast_crewai.MemoryStoreError, match="closed"):
        store.count()


def test_without_fcntl_a_store_refuses_to_open_rather_than_run_unlocked(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fast_crewai.memory_search._storage import AcceleratedMemoryStorage
    from fast_crewai.runtime import filelock
    from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper

    monkeypatch.setattr(filelock, "fcntl", None)
    with pytest.raises(fast_crewai.UnsupportedPlatformError, match=r"fcntl\.flock"):
        AcceleratedSQLiteWrapper(tmp_path / "data.db")
    with pytest.raises(fast_crewai.UnsupportedPlatformError, match=r"fcntl\.flock"):
        AcceleratedMemoryStorage(path=str(tmp_path / "memory"))
    assert not (tmp_path / "data.db").exists()
