"""Processes the memory fault tests start: ``python memory_workers.py <role>
<database> <backend> [arguments]``. They call the index contract directly
(``fast_crewai.memory_search`` does not import CrewAI, which takes seconds
to import) and print one line per milestone, flushed, so the test can act at
a known point."""

from __future__ import annotations

import base64
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from fast_crewai import CoreTrap, FastCrewAIError, StoreCapacityError
from fast_crewai.memory_search._contract import MemoryIndex
from fast_crewai.memory_search._open import open_index

DIM = 256
SMALL_BATCH = 5


def batch(prefix: str, count: int) -> str:
    """``count`` records with ids ``<prefix>-<i>``, the same in every process."""
    vectors = np.random.default_rng(zlib.crc32(prefix.encode())).normal(size=(count, DIM)).astype("<f4")
    return json.dumps(
        [
            {
                "id": f"{prefix}-{i}",
                "content": f"record {prefix} number {i}",
                "scope": f"/workers/{prefix.split('-')[0]}",
                "created_at": "2026-01-01T00:00:00",
                "created_ts": float(i),
                "embedding": base64.b64encode(vectors[i].tobytes()).decode("ascii"),
            }
            for i in range(count)
        ]
    )


def query() -> str:
    return base64.b64encode(np.ones(DIM, dtype="<f4").tobytes()).decode("ascii")


def say(line: str) -> None:
    print(line, flush=True)


def writer(index: MemoryIndex, name: str, batches: int, size: int) -> None:
    """Saves ``batches`` batches, reading between them (each read reloads
    what the other processes committed)."""
    for b in range(batches):
        index.save(batch(f"{name}-{b}", size))
        index.search(query(), "{}", 3, 0.0)
        index.count(None)
    say("done")


def crash(index: MemoryIndex, committed: int, big: int) -> None:
    """Commits ``committed`` small batches, times one save of ``big``
    records, then starts a second one and waits there to be killed."""
    for b in range(committed):
        index.save(batch(f"small-{b}", SMALL_BATCH))
        say(f"saved {b}")
    first = batch("big1", big)
    started = time.monotonic()
    index.save(first)
    say(f"timed {time.monotonic() - started}")
    second = batch("big2", big)
    say("inside")
    index.save(second)
    say("saved big")
    time.sleep(120)


def text_batch(b: int, size: int) -> str:
    """``size`` records of 2,000 words each, drawn from 50,000 distinct ones:
    mostly text and BM25 postings, little vector data."""
    return json.dumps(
        [
            {
                "id": f"t{b}-{j}",
                "content": " ".join(f"w{(b * 97 + j * 13 + k) % 50_000}" for k in range(2000)),
                "created_at": "2026-01-01T00:00:00",
                "created_ts": float(b),
                "categories": [f"c{j % 3}"],
                "embedding": base64.b64encode(np.full(8, j, dtype="<f4").tobytes()).decode("ascii"),
            }
            for j in range(size)
        ]
    )


def reads(index: MemoryIndex) -> None:
    """Every kind of read; a typed refusal of a huge one is fine, a trap is not."""
    vector = base64.b64encode(np.ones(8, dtype="<f4").tobytes()).decode("ascii")
    calls = {
        "search": lambda: index.search(vector, "{}", 5, 0.0),
        "search-1000": lambda: index.search(vector, "{}", 1000, 0.0),
        "search-text": lambda: index.search_text("w5 w7", "{}", 5),
        "search-text-all": lambda: index.search_text(" ".join(f"w{k}" for k in range(300)), "{}", 100_000),
        "list": lambda: index.list(None, 5, 0),
        "list-all": lambda: index.list(None, 100_000, 0),
        "get": lambda: index.get("t0-0"),
        "categories": lambda: index.list_categories(None),
        "scope-info": lambda: index.scope_info("/"),
    }
    for name, call in calls.items():
        try:
            result = call()
        except CoreTrap as exc:
            say(f"trap in {name}: {exc}")
            return
        except FastCrewAIError as exc:
            if name.endswith("-all"):
                continue
            say(f"{name} failed: {exc!r}")
            return
        if result is None or result == "[]":
            say(f"{name} found nothing")
            return
    say("reads ok")


def fill(index: MemoryIndex, size: int, most: int) -> None:
    """Saves text batches until the store is full, then reads."""
    saved = 0
    for b in range(most):
        try:
            index.save(text_batch(b, size))
        except StoreCapacityError:
            say(f"full {saved}")
            break
        saved += size
    else:
        say(f"not full after {saved}")
    say(f"count {index.count(None)}")
    reads(index)


def main() -> None:
    role, path, backend, *args = sys.argv[1:]
    try:
        index = open_index(backend, Path(path))
    except StoreCapacityError:
        say("too large to open")
        return
    if role == "writer":
        writer(index, args[0], int(args[1]), int(args[2]))
    elif role == "crash":
        crash(index, int(args[0]), int(args[1]))
    elif role == "fill":
        fill(index, int(args[0]), int(args[1]))
    elif role == "read":
        say(f"count {index.count(None)}")
        reads(index)
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
