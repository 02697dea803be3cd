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


def main() -> None:
    role, path, backend, *args = sys.argv[1:]
    index = open_index(backend, Path(path))
    if role == "writer":
        writer(index, args[0], int(args[1]), int(args[2]))
    elif role == "crash":
        crash(index, int(args[0]), int(args[1]))
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
