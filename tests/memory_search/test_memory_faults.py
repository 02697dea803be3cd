"""Nothing lost or corrupted under concurrency, faults and bad input, on
both backends: threads, processes, SIGKILL mid-save, traps inside the core,
wrong dimensions, non-finite numbers, huge and odd text."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import memory_workers
import pytest
from crewai.memory.storage.backend import EmbeddingDimensionMismatchError
from crewai.memory.types import MemoryRecord
from process_helpers import integrity

import fast_crewai
from fast_crewai import CoreTimeout, InvalidRecordError, StoreCapacityError
from fast_crewai.memory_search._open import open_index, release_index
from fast_crewai.memory_search._storage import DATABASE_NAME, AcceleratedMemoryStorage

WORKERS = Path(__file__).with_name("memory_workers.py")
SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)


def start(role: str, database: Path, backend: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, str(WORKERS), role, str(database), backend, *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def line_of(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[AcceleratedMemoryStorage]:
    with AcceleratedMemoryStorage(tmp_path) as storage:
        yield storage


def rec(id: str, vector: list[float] | None = None, **fields: Any) -> MemoryRecord:
    return MemoryRecord(id=id, content=fields.pop("content", f"content of {id}"), embedding=vector, **fields)


# --------------------------------------------------------------------------- concurrency


def test_threads_saving_and_searching_lose_nothing(store: AcceleratedMemoryStorage) -> None:
    savers, batches, per_batch = 8, 10, 10
    errors: list[BaseException] = []
    saving = threading.Event()
    saving.set()

    def save(worker: int) -> None:
        try:
            for b in range(batches):
                store.save([rec(f"{worker}-{b}-{i}", [float(worker), float(b), float(i)]) for i in range(per_batch)])
        except BaseException as exc:
            errors.append(exc)

    def search(worker: int) -> None:
        try:
            while saving.is_set():
                hits = store.search([float(worker), 1.0, 1.0], limit=5)
                assert len(hits) <= 5
                assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
                store.search_text("content", limit=3)
                store.count("/")
                store.touch_records([r.id for r, _ in hits])
        except BaseException as exc:
            errors.append(exc)

    searchers = [threading.Thread(target=search, args=(w,)) for w in range(8)]
    writers = [threading.Thread(target=save, args=(w,)) for w in range(savers)]
    for thread in searchers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    saving.clear()
    for thread in searchers:
        thread.join()
    assert errors == []
    assert store.count() == savers * batches * per_batch
    assert all(store.get_record(f"{w}-{batches - 1}-{per_batch - 1}") is not None for w in range(savers))


def test_processes_writing_one_store_lose_nothing(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    database = tmp_path / DATABASE_NAME
    batches, size = 6, 25
    children.extend(start("writer", database, backend, f"p{k}", batches, size) for k in range(2))
    index = open_index(backend, database)
    try:
        for b in range(batches):
            index.save(memory_workers.batch(f"parent-{b}", size))
            index.count(None)
        assert [line_of(child) for child in children] == ["done", "done"]
        assert index.count(None) == 3 * batches * size
        for name in ("parent", "p0", "p1"):
            assert index.count(f"/workers/{name}") == batches * size
            assert index.get(f"{name}-{batches - 1}-{size - 1}") is not None
    finally:
        release_index(index)
    assert integrity(database) == [("ok",)]


def test_sigkill_mid_save_keeps_every_returned_save(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    database = tmp_path / DATABASE_NAME
    committed, big = 4, 20_000
    child = start("crash", database, backend, committed, big)
    children.append(child)
    assert [line_of(child) for _ in range(committed)] == [f"saved {b}" for b in range(committed)]
    timed = line_of(child)
    assert timed.startswith("timed ")
    assert line_of(child) == "inside"
    # Most of the second save's time, by the first's: usually inside its
    # transaction (the Python reference parses first, so sometimes before).
    time.sleep(float(timed.split()[1]) * 0.7)
    child.kill()
    child.wait(timeout=30)
    assert child.stdout is not None
    finished = "saved big" in child.stdout.read()
    journal = Path(f"{database}-journal")
    # A journal whose header was synced marks pages the killed writer already
    # wrote into the database: the next reader must roll them back.
    hot = journal.exists() and journal.read_bytes()[:1] not in (b"", b"\0")
    before = committed * memory_workers.SMALL_BATCH + big
    index = open_index(backend, database)
    try:
        count = index.count(None)
        if finished:
            assert count == before + big
        elif hot:
            assert count == before
            assert not journal.exists()
        else:
            assert count in (before, before + big)
        assert index.count("/workers/small") == committed * memory_workers.SMALL_BATCH
        assert index.count("/workers/big1") == big
        assert index.count("/workers/big2") in (0, big)
        index.save(memory_workers.batch("after", 3))
        assert index.count(None) == count + 3
    finally:
        release_index(index)
    assert not journal.exists()
    assert integrity(database) == [("ok",)]


# --------------------------------------------------------------------------- traps


def big_batch(prefix: str, count: int, dim: int = 64) -> list[MemoryRecord]:
    moment = datetime(2026, 1, 1)
    return [
        MemoryRecord.model_construct(
            id=f"{prefix}{i}",
            content=f"text {i}",
            scope="/bulk",
            categories=[],
            metadata={},
            importance=0.5,
            created_at=moment,
            last_accessed=moment,
            embedding=[float(i % 7)] * dim,
            source=None,
            private=False,
        )
        for i in range(count)
    ]


def test_a_timeout_mid_save_leaves_the_store_consistent(
    store: AcceleratedMemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(big_batch("kept", 50))
    records = big_batch("lost", 20_000)
    monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "0.001")
    with pytest.raises(CoreTimeout):
        store.save(records)
    monkeypatch.delenv("FAST_CREWAI_CALL_TIMEOUT")
    assert store.count() == 50
    assert store.get_record("lost0") is None
    store.save(records[:10])
    assert store.count() == 60
    assert [r.id for r, _ in store.search([6.0] * 64, limit=2)] == ["kept6", "kept13"]
    assert not Path(f"{store.database}-journal").exists()
    assert integrity(store.database) == [("ok",)]


# 20,000 rows: a batch too large to copy into the core at all (refused by
# the host); 2,000: one that crosses but does not fit (refused by the core).
@pytest.mark.parametrize("rows", [20_000, 2_000])
def test_the_memory_cap_is_a_capacity_error_that_leaves_the_store_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    monkeypatch.setenv("FAST_CREWAI_MEMORY_LIMIT_MB", "48")
    with AcceleratedMemoryStorage(tmp_path, backend="wasm") as store:
        store.save(big_batch("kept", 100, dim=1024))
        with pytest.raises(StoreCapacityError):
            store.save(big_batch("big", rows, dim=1024))
        assert store.count() == 100
        store.save(big_batch("more", 10, dim=1024))
        assert store.count() == 110
    assert integrity(tmp_path / DATABASE_NAME) == [("ok",)]


# --------------------------------------------------------------------------- bad input


def test_a_dimension_change_raises_crewais_error(store: AcceleratedMemoryStorage) -> None:
    store.save([rec("three", [1.0, 2.0, 3.0])])
    for call in (
        lambda: store.save([rec("two", [1.0, 2.0])]),
        lambda: store.update(rec("three", [1.0, 2.0])),
        lambda: store.search([1.0, 2.0]),
    ):
        with pytest.raises(EmbeddingDimensionMismatchError) as caught:
            call()
        assert (caught.value.stored_dim, caught.value.new_dim) == (3, 2)
    assert store.count() == 1
    store.reset()
    with pytest.raises(EmbeddingDimensionMismatchError) as caught:
        store.save([rec("a", [1.0]), rec("b", None), rec("c", [1.0, 2.0])])
    assert (caught.value.stored_dim, caught.value.new_dim) == (1, 2)
    assert store.count() == 0 and store.dimension is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e39])
def test_non_finite_vectors_are_invalid(store: AcceleratedMemoryStorage, bad: float) -> None:
    store.save([rec("ok", [1.0, 2.0])])
    with pytest.raises(InvalidRecordError):
        store.save([rec("new", [1.0, 2.0]), rec("bad", [0.0, 0.0]).model_copy(update={"embedding": [1.0, bad]})])
    with pytest.raises(InvalidRecordError):
        store.search([bad, 1.0])
    assert store.count() == 1 and store.get_record("new") is None


@pytest.mark.parametrize("metadata", [{"x": math.nan}, {"x": object()}, {("tuple",): 1}, {"x": {1, 2}}])
def test_metadata_that_is_not_json_is_invalid(store: AcceleratedMemoryStorage, metadata: dict[Any, Any]) -> None:
    with pytest.raises(InvalidRecordError):
        store.save([rec("m", [1.0]).model_copy(update={"metadata": metadata})])
    with pytest.raises(InvalidRecordError):
        store.search([1.0], metadata_filter=metadata)
    assert store.count() == 0


def test_lone_surrogates_are_invalid_and_save_nothing(store: AcceleratedMemoryStorage) -> None:
    with pytest.raises(InvalidRecordError):
        store.save([rec("fine", [1.0]), rec("bad", [1.0], content="half \ud83d of an emoji")])
    with pytest.raises(InvalidRecordError):
        store.get_record("\udc00")
    assert store.count() == 0


def test_empty_and_huge_content(store: AcceleratedMemoryStorage) -> None:
    huge = ("lorem ipsum dolor sit amet " * 200_000) + "needle"
    assert len(huge) > 5_000_000
    store.save([rec("empty", [1.0], content=""), rec("huge", [2.0], content=huge)])
    empty, big = store.get_record("empty"), store.get_record("huge")
    assert empty is not None and empty.content == ""
    assert big is not None and big.content == huge
    assert [r.id for r, _ in store.search_text("NEEDLE")] == ["huge"]
    assert store.search_text("") == []


ODD = [
    "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀🧪",
    "combining e\u0301 a\u0308\u0301",
    "rtl שלום עולם مرحبا بالعالم \u202e",
    "nul a\x00b and controls \x01\x1f\x7f",
    'quotes " \\ \n\t and \u2028',
]


@pytest.mark.parametrize("text", ODD)
def test_odd_unicode_round_trips_everywhere(store: AcceleratedMemoryStorage, text: str) -> None:
    scope = "/odd/" + text.replace("/", "_")
    record = MemoryRecord(
        id=text,
        content=text,
        scope=scope,
        categories=[text, "plain"],
        metadata={text: [text, {"k": text}]},
        source=text,
        embedding=[1.0, 0.5],
    )
    store.save([record])
    got = store.get_record(text)
    assert got is not None and got.model_dump() == record.model_dump()
    assert [r.id for r, _ in store.search([1.0, 0.5], scope_prefix=scope, categories=[text])] == [text]
    assert [r.id for r, _ in store.search([1.0, 0.5], metadata_filter={text: [text, {"k": text}]})] == [text]
    assert store.list_scopes("/odd") == [scope]
    assert store.list_categories(scope) == {text: 1, "plain": 1}
    assert store.delete(record_ids=[text]) == 1


def test_unknown_ids(store: AcceleratedMemoryStorage) -> None:
    store.save([rec("known", [1.0])])
    assert store.get_record("unknown") is None
    assert store.delete(record_ids=["unknown"]) == 0
    store.touch_records(["unknown"])
    # Like LanceDBStorage.update, updating an unknown id inserts it.
    store.update(rec("unknown", [2.0]))
    assert store.count() == 2


def test_reads_see_what_another_process_committed(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    database = tmp_path / DATABASE_NAME
    index = open_index(backend, database)
    try:
        assert index.count(None) == 0
        assert index.search(memory_workers.query(), "{}", 3, 0.0) == "[]"
        child = start("writer", database, backend, "other", 2, 5)
        children.append(child)
        assert line_of(child) == "done"
        assert index.count(None) == 10
        assert index.get("other-1-4") is not None
        assert len(json.loads(index.search(memory_workers.query(), "{}", 3, 0.0))) == 3
        # Our own write after theirs keeps both.
        index.save(memory_workers.batch("mine-0", 2))
        assert index.count(None) == 12
    finally:
        release_index(index)
