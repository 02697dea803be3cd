"""Processes the lifecycle tests start: ``python lifecycle_workers.py <role>
<backend> <directory> <count>``. Each prints one JSON line; a hang is caught
by the test's timeout, so it cannot hang the suite."""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
from pathlib import Path

from fast_crewai.memory_search._storage import AcceleratedMemoryStorage
from fast_crewai.runtime import backend, reaper
from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle() -> None:
    """What a long-running service reaches between requests: the collector
    has run and the queued releases are done."""
    gc.collect()
    assert reaper.settle()


def cycles(root: Path, count: int, fresh: bool) -> dict[str, int]:
    """Stores dropped inside reference cycles, so the collector (made to run
    very often) finalizes them in the middle of other stores' core calls."""
    AcceleratedMemoryStorage(path=str(root / "warm-up")).close()
    settle()
    before = open_fds()
    gc.set_threshold(10, 2, 2)
    for i in range(count):
        store = AcceleratedMemoryStorage(path=str(root / (f"fresh-{i}" if fresh else f"shared-{i % 4}")))
        store.cycle = store  # type: ignore[attr-defined]
        store.count()
        del store
    gc.set_threshold(700, 10, 10)
    settle()
    return {"before": before, "after": open_fds(), "pending": reaper.pending()}


def threads(root: Path, count: int) -> dict[str, int]:
    """Several threads opening and dropping stores and SQLite wrappers in
    their own directories while the collector runs."""
    AcceleratedMemoryStorage(path=str(root / "warm-up")).close()
    settle()
    before = open_fds()
    gc.set_threshold(10, 2, 2)
    errors: list[str] = []

    def work(worker: int) -> None:
        try:
            for i in range(count):
                directory = root / f"t{worker}-{i % 3}"
                directory.mkdir(exist_ok=True)
                store = AcceleratedMemoryStorage(path=str(directory / "memory"))
                store.cycle = store  # type: ignore[attr-defined]
                store.count()
                db = AcceleratedSQLiteWrapper(directory / "data.db")
                db.execute("CREATE TABLE IF NOT EXISTS t(x)")
                db.execute("INSERT INTO t VALUES (?)", [i])
                db.cycle = db  # type: ignore[attr-defined]
                del store, db
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    gc.set_threshold(700, 10, 10)
    settle()
    instances = backend.runtime().leased() if backend.active() == "wasm" else 0
    return {"before": before, "after": open_fds(), "errors": len(errors), "first_error": errors[0] if errors else "",
            "instances": instances}  # fmt: skip


if __name__ == "__main__":
    role, name, directory, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    backend.override(name)
    if role == "threads":
        result: dict[str, object] = dict(threads(directory, count))
    else:
        result = dict(cycles(directory, count, fresh=role == "fresh"))
    print(json.dumps(result), flush=True)
