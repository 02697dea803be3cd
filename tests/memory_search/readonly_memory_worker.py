"""Reads memory stores in a directory this process cannot write:
``python readonly_memory_worker.py <mode> <backend> <dir> [<mount point>]``.
With a mount point (root, in a mount namespace of its own: ``unshare
--mount``) it first binds ``<dir>`` read-only there and works through it;
without one ``<dir>`` is expected not to be writable by this process.

``report`` prints one JSON report of every read, write and open tried on
the stores the test wrote there. ``follow`` opens ``<dir>/store`` and
answers ``read`` (one read of everything), ``loop N`` (N reads as fast as
it can) and ``quit`` on stdin, one JSON line each, while the test writes to
the store through a writable path. The test imports this module for
:func:`records` and :func:`reads`, so that it compares like with like.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crewai.memory.types import MemoryRecord

from fast_crewai import FastCrewAIError
from fast_crewai.demo.offline import HashEmbedder
from fast_crewai.memory_search._storage import AcceleratedMemoryStorage

EMBED = HashEmbedder(dims=16)


def records(prefix: str, count: int) -> list[MemoryRecord]:
    """``count`` records with ids ``<prefix>-<i>``, the same in every process."""
    texts = [f"{prefix} note {i} about the {('launch', 'review', 'budget')[i % 3]}" for i in range(count)]
    return [
        MemoryRecord(
            id=f"{prefix}-{i}",
            content=text,
            scope=("/crew/a", "/crew/b", "/other")[i % 3],
            categories=[("plan", "risk")[i % 2]],
            metadata={"n": i, "kind": prefix},
            importance=0.25 + 0.5 * (i % 2),
            embedding=vector,
        )
        for i, (text, vector) in enumerate(zip(texts, EMBED(texts), strict=True))
    ]


def reads(store: AcceleratedMemoryStorage) -> dict[str, Any]:
    """Every read of the store, as JSON values."""
    query = EMBED(["the launch"])[0]

    def dump(record: MemoryRecord) -> dict[str, Any]:
        # model_dump leaves the embedding out.
        return {**record.model_dump(mode="json"), "embedding": record.embedding}

    def hits(found: list[tuple[MemoryRecord, float]]) -> list[Any]:
        return [[dump(record), score] for record, score in found]

    got = store.get_record("base-1")
    return {
        "search": hits(store.search(query, limit=5)),
        "search filtered": hits(
            store.search(query, scope_prefix="/crew", categories=["plan"], metadata_filter={"kind": "base"})
        ),
        "search text": hits(store.search_text("review budget", limit=4)),
        "get": None if got is None else dump(got),
        "get missing": store.get_record("missing"),
        "list": [r.id for r in store.list_records()],
        "list page": [r.id for r in store.list_records("/crew", limit=2, offset=1)],
        "scope info": store.get_scope_info("/crew").model_dump(mode="json"),
        "scopes": store.list_scopes("/"),
        "categories": store.list_categories(),
        "count": store.count(),
        "count scope": store.count("/crew/b"),
        "dimension": store.dimension,
    }


def outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except FastCrewAIError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # the report names whatever else happened
        return f"unexpected {type(exc).__name__}: {exc}"
    return "ok"


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` and a digest of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def writes(store: AcceleratedMemoryStorage) -> dict[str, tuple[str, Callable[[], object]]]:
    """Every write of the store (and of its index, where the core refuses
    it itself, before parsing the arguments), with the call the refusal
    names."""
    new = records("new", 1)
    index = store._index
    return {
        "save": ("save", lambda: store.save(new)),
        "update": ("save", lambda: store.update(new[0])),
        "delete ids": ("delete", lambda: store.delete(record_ids=["base-1"])),
        "delete scope": ("delete", lambda: store.delete(scope_prefix="/crew")),
        "delete all": ("delete", lambda: store.delete()),
        "reset": ("reset", lambda: store.reset()),
        "reset scope": ("reset", lambda: store.reset("/crew/a")),
        "asave": ("save", lambda: asyncio.run(store.asave(new))),
        "adelete": ("delete", lambda: asyncio.run(store.adelete(record_ids=["base-1"]))),
        "index touch": ("touch", lambda: index.touch('["base-1"]', "2030-01-01T00:00:00")),
        "index save": ("save", lambda: index.save("not JSON at all")),
        "index delete": ("delete", lambda: index.delete("{not a filter")),
    }


def recall(store: AcceleratedMemoryStorage) -> list[str]:
    """What CrewAI's ``Memory.recall`` finds in the store, both depths."""
    from crewai import Memory

    from fast_crewai.demo.scripted_llm import ScriptedLLM

    memory = Memory(llm=ScriptedLLM(), embedder=EMBED, storage=store)
    found = [m.record.id for m in memory.recall("the launch", limit=3, depth="shallow")]
    found += [m.record.id for m in memory.recall("the launch", limit=3)]
    return found


def report(target: Path) -> dict[str, Any]:
    before = snapshot(target)
    result: dict[str, Any] = {"media": outcome(lambda: (target / "probe").write_text(""))}
    store = AcceleratedMemoryStorage(target / "store")
    result["read only"] = store.read_only
    result["reads"] = reads(store)
    result["writes"] = {name: [verb, outcome(action)] for name, (verb, action) in writes(store).items()}
    result["touch"] = outcome(lambda: store.touch_records(["base-1", "base-2"]))
    result["recall"] = recall(store)
    result["reads after"] = reads(store)
    store.close()
    with AcceleratedMemoryStorage(target / "store", read_only=True) as asked:
        result["asked reads"] = reads(asked)
    for name in ("empty", "absent", "version 1"):
        result[f"open {name}"] = outcome(lambda name=name: AcceleratedMemoryStorage(target / name).close())
    result["files unchanged"] = snapshot(target) == before
    return result


def follow(store: AcceleratedMemoryStorage) -> None:
    say({"read only": store.read_only, "count": store.count()})
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "read":
            say({"count": store.count(), "ids": sorted(r.id for r in store.list_records(limit=10_000))})
        elif command == "loop":
            query = EMBED(["the launch"])[0]
            counts = []
            for _ in range(int(rest[0])):
                counts.append(store.count())
                store.search(query, limit=3)
            say({"counts": counts})
        else:
            return


def say(value: object) -> None:
    print(json.dumps(value), flush=True)


def main() -> None:
    mode, backend, directory = sys.argv[1:4]
    target = Path(directory)
    if len(sys.argv) == 5:
        target = Path(sys.argv[4])
        subprocess.run(["mount", "--bind", directory, str(target)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
    from fast_crewai.runtime import backend as _backend

    _backend.override(backend)
    if mode == "report":
        say(report(target))
    else:
        # Without a read-only mount the store is asked to be read-only.
        with AcceleratedMemoryStorage(target / "store", read_only=len(sys.argv) == 4) as store:
            follow(store)


if __name__ == "__main__":
    main()
