"""Fills the disk under a memory store: ``python full_disk_memory_worker.py
<backend> <directory>``, as root in a mount namespace of its own. It mounts
a small disk on the directory, saves batches to a store there until a save
fails, fills what room is left, tries every write, frees the room, writes
again through the same store, and prints one JSON report of what happened.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import readonly_memory_worker as memory
from crewai.memory.types import MemoryRecord
from full_disk import files, fill, free, mount_small_disk, raised, room

from fast_crewai.memory_search._storage import AcceleratedMemoryStorage

#: Records per batch, and the text added to each: a batch takes about 100 KB.
BATCH, TEXT = 5, 20_000


def batch(prefix: str, filler: str = "x") -> list[MemoryRecord]:
    records = memory.records(prefix, BATCH)
    for record in records:
        record.content += " " + filler * TEXT
    return records


def on_file(database: Path) -> dict[str, Any]:
    """The file as stdlib sqlite3 reads it (read-only: it writes nothing)."""
    conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
            "ids": [id for (id,) in conn.execute("SELECT id FROM memories ORDER BY id")],
        }
    finally:
        conn.close()


def state(store: AcceleratedMemoryStorage) -> dict[str, Any]:
    """The store as its index answers, and the file as stdlib reads it."""
    return {
        "count": store.count(),
        "ids": sorted(r.id for r in store.list_records(limit=10_000)),
        "file": on_file(store.database),
        "files": files(store.path),
    }


def report(directory: Path) -> dict[str, Any]:
    taken = mount_small_disk(directory)
    store = AcceleratedMemoryStorage(directory / "store")
    store.save(memory.records("base", 12))
    saved = [f"base-{i}" for i in range(12)]
    result: dict[str, Any] = {}
    for batches in range(1000):
        records = batch(f"b{batches}")
        failed = raised(lambda records=records: store.save(records))
        if failed is not None:
            result["save"] = failed
            result["failed batch seen"] = [r.id for r in records if store.get_record(r.id) is not None]
            break
        saved += [r.id for r in records]
    result["saved"] = sorted(saved)
    result["after the failed save"] = state(store)
    result["reads after the failed save"] = memory.reads(store)
    taken.append(fill(directory))
    result["room when full"] = room(directory)
    result["full"] = {
        "touch": raised(lambda: store.touch_records(["base-1", "base-2"])),
        "delete": raised(lambda: store.delete(record_ids=["base-3"])),
        "delete scope": raised(lambda: store.delete(scope_prefix="/crew")),
        "small save": raised(lambda: store.save(memory.records("small", 1))),
        "update": raised(lambda: store.update(batch("base")[0])),
        "reset": raised(lambda: store.reset()),
    }
    result["while full"] = state(store)
    result["reads while full"] = memory.reads(store)
    free(taken)
    result["room"] = room(directory)
    # One save replacing every batch: its journal (the pages it changes)
    # outgrows the room.
    result["rewrite"] = raised(lambda: store.save([r for n in range(batches) for r in batch(f"b{n}", "y")]))
    # Before the store's next call.
    result["files after the rewrite"] = files(store.path)
    result["after the rewrite"] = state(store)
    result["reads after the rewrite"] = memory.reads(store)
    result["room again"] = {
        "save": raised(lambda: store.save(batch("again"))),
        "touch": raised(lambda: store.touch_records(["base-1"])),
        "delete": raised(lambda: store.delete(record_ids=["base-3"])),
    }
    result["with room again"] = state(store)
    store.close()
    result["closed"] = {"file": on_file(store.database), "files": files(store.path)}
    with AcceleratedMemoryStorage(directory / "store") as reopened:
        result["reopened"] = state(reopened)
    return result


def main() -> None:
    backend, directory = sys.argv[1:3]
    from fast_crewai.runtime import backend as _backend

    _backend.override(backend)
    memory.say(report(Path(directory)))


if __name__ == "__main__":
    main()
