"""Searches name their hits by id and version and fetch only the records the
host has not built yet: what they return is what the full search returns,
the caller's to change, and never a record older than the store's."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from crewai.memory.types import MemoryRecord

from fast_crewai.memory_search._contract import RecordCache
from fast_crewai.memory_search._core import WasmMemoryIndex
from fast_crewai.memory_search._records import _pack_vector, record_from_wire
from fast_crewai.memory_search._storage import AcceleratedMemoryStorage

T0 = datetime(2026, 1, 1, 12, 0, 0)


def rec(id: str, vector: list[float], metadata: dict[str, Any] | None = None, content: str = "") -> MemoryRecord:
    return MemoryRecord(
        id=id,
        content=content or f"memory {id} shared",
        scope="/crew/a",
        categories=["c", id],
        metadata=metadata if metadata is not None else {"n": 1, "nested": {"k": [1, 2]}},
        importance=0.5,
        created_at=T0,
        last_accessed=T0,
        embedding=vector,
        source="tester",
        private=False,
    )


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[AcceleratedMemoryStorage]:
    with AcceleratedMemoryStorage(tmp_path / "memory") as storage:
        storage.save([rec(f"r{i}", [float(i), 1.0, -float(i) / 3]) for i in range(12)])
        yield storage


def full_search(store: AcceleratedMemoryStorage, query: list[float], limit: int) -> list[tuple[MemoryRecord, float]]:
    """What the one-call search returns, records and all."""
    text = store._index.search(_pack_vector(query), "{}", limit, 0.0)
    return [(record_from_wire(item), score) for item, score in json.loads(text)]


def dumped(hits: list[tuple[MemoryRecord, float]]) -> list[tuple[dict[str, Any], float]]:
    return [(record.model_dump(), score) for record, score in hits]


def test_a_search_returns_what_the_full_search_returns_cold_and_warm(store: AcceleratedMemoryStorage) -> None:
    for query, limit in (([3.0, 1.0, -1.0], 5), ([0.0, 0.0, 0.0], 12), ([9.0, 0.5, 1.0], 3)):
        expected = dumped(full_search(store, query, limit))
        assert dumped(store.search(query, limit=limit)) == expected
        assert dumped(store.search(query, limit=limit)) == expected
    text = [(r.model_dump(), s) for r, s in store.search_text("shared", limit=4)]
    full = json.loads(store._index.search_text("shared", "{}", 4))
    assert text == [(record_from_wire(item).model_dump(), score) for item, score in full]


def test_only_records_not_built_yet_are_fetched(
    store: AcceleratedMemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = store._index
    asked: list[list[str]] = []
    fetch = index.records

    def records(ids: str) -> str:
        asked.append(json.loads(ids))
        return fetch(ids)

    monkeypatch.setattr(index, "records", records)
    store.search([3.0, 1.0, -1.0], limit=4)
    store.search([3.0, 1.0, -1.0], limit=4)
    store.search([3.0, 1.0, -1.0], limit=6)
    assert [len(ids) for ids in asked] == [4, 2]


def test_records_handed_out_are_the_callers_to_change(store: AcceleratedMemoryStorage) -> None:
    first = store.search([2.0, 1.0, -0.5], limit=3)
    expected = dumped(first)
    for record, _ in first:
        assert record.embedding is not None
        record.embedding.append(99.0)
        record.embedding[0] = -1.0
        record.categories.append("mine")
        record.metadata["n"] = 2
        record.metadata["nested"]["k"].append(3)
        record.content = "changed"
    again = store.search([2.0, 1.0, -0.5], limit=3)
    assert dumped(again) == expected
    # Two hits of two searches are two objects, equal but not shared.
    for (a, _), (b, _) in zip(again, store.search([2.0, 1.0, -0.5], limit=3), strict=True):
        assert a == b and a is not b and a.embedding is not b.embedding and a.metadata is not b.metadata


def test_a_touched_or_saved_record_is_fetched_anew(store: AcceleratedMemoryStorage) -> None:
    query = [5.0, 1.0, -5.0 / 3]
    (hit, _), *_ = store.search(query, limit=1)
    assert hit.id == "r5" and hit.last_accessed == T0
    store.touch_records(["r5"])
    (hit, _), *_ = store.search(query, limit=1)
    assert hit.last_accessed > T0
    store.save([rec("r5", [5.0, 1.0, -5.0 / 3], content="new words")])
    (hit, _), *_ = store.search(query, limit=1)
    assert hit.content == "new words" and hit.last_accessed == T0
    assert dumped(store.search(query, limit=4)) == dumped(full_search(store, query, 4))


def test_another_writer_or_a_new_core_never_leaves_a_stale_record(
    backend: str, store: AcceleratedMemoryStorage
) -> None:
    query = [7.0, 1.0, -7.0 / 3]
    before = store.search(query, limit=3)
    assert [r.id for r, _ in before] == ["r7", "r6", "r8"]
    if backend == "wasm":
        # The core is replaced (as after a trap): the new one numbers record
        # versions from scratch, so the versions cached before mean nothing.
        index = store._index
        assert isinstance(index, WasmMemoryIndex)
        index._instance.discard()
    # Another program changes a record in place: same rowid, same position.
    conn = sqlite3.connect(store.database)
    with conn:
        conn.execute("UPDATE memories SET content = 'rewritten' WHERE id = 'r6'")
    conn.close()
    after = store.search(query, limit=3)
    assert [r.content for r, _ in after] == ["memory r7 shared", "rewritten", "memory r8 shared"]


def test_the_cache_keeps_the_most_recently_used_records_within_its_size() -> None:
    cache = RecordCache(capacity=16 * 100)
    cache.sync(1)
    for i in range(20):
        cache.put(f"r{i}", i, f"value {i}", 10)
    assert len(cache) == 20
    cache.put("big", 1, "too big for a sixteenth", 101)
    assert cache.get("big", 1) is None
    for i in range(20, 200):
        cache.put(f"r{i}", i, f"value {i}", 10)
        assert cache.get("r0", 0) == "value 0"  # used, so kept
    assert cache.get("r1", 1) is None
    assert cache.get("r0", 1) is None  # another version
    assert len(cache) == 160
    cache.sync(1)
    cache.sync(1)
    assert len(cache) == 160
    cache.sync(2)
    assert len(cache) == 0


def test_the_core_applies_another_writers_commit_alone_and_keeps_the_rest_built(tmp_path: Path) -> None:
    """After another connection's commit the core reads only the records it
    wrote (the file's change log names them): the others keep their versions,
    so the records the host built for them stay good."""
    from fast_crewai.memory_search._open import open_index, release_index
    from fast_crewai.runtime import backend as _backend

    _backend.runtime()
    database = tmp_path / "memory.db"
    index = open_index("wasm", database)
    other = WasmMemoryIndex(database)
    try:
        items = [{"id": f"r{i}", "content": "x", "created_at": "t", "created_ts": 1.0} for i in range(50)]
        other.save(json.dumps(items))
        query = ["r3", "r4", "r5"]
        before = json.loads(index.records(json.dumps(query)))
        other.save(json.dumps([{"id": "r4", "content": "changed", "created_at": "t", "created_ts": 1.0}]))
        other.delete(json.dumps({"ids": ["r5"]}))
        after = json.loads(index.records(json.dumps(query)))
        assert after[0] == before[0]
        assert after[1][0] != before[1][0] and after[1][1]["content"] == "changed"
        assert after[2] is None
    finally:
        other.close()
        release_index(index)
