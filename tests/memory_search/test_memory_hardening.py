"""Bad input and odd files, on both backends: scopes without a leading
``/``, embeddings another tool wrote as NaN, records and results too large
to cross the boundary, running out of the core's memory, and arguments of
the wrong type."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from crewai.memory.types import MemoryRecord
from process_helpers import integrity

import fast_crewai
from fast_crewai import InvalidRecordError, RecordTooLargeError, ResultTooLargeError
from fast_crewai.memory_search._contract import MAX_RECORD_BYTES, MAX_RESULT_BYTES, SCHEMA
from fast_crewai.memory_search._storage import DATABASE_NAME, AcceleratedMemoryStorage


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[AcceleratedMemoryStorage]:
    with AcceleratedMemoryStorage(tmp_path) as storage:
        yield storage


def rec(id: str, vector: list[float] | None = None, **fields: Any) -> MemoryRecord:
    return MemoryRecord(id=id, content=fields.pop("content", f"content of {id}"), embedding=vector, **fields)


def ids(hits: list[tuple[MemoryRecord, float]]) -> list[str]:
    return [record.id for record, _ in hits]


# --------------------------------------------------------------------------- scopes


def test_scopes_without_a_leading_slash_are_rooted_at_save(store: AcceleratedMemoryStorage) -> None:
    store.save([rec("ab", [1.0], scope="a/b"), rec("a", [2.0], scope="/a"), rec("x", [3.0], scope="x")])
    got = store.get_record("ab")
    assert got is not None and got.scope == "/a/b"
    for prefix in ("a", "/a", "a/", "/a/"):
        assert sorted(ids(store.search([1.0], scope_prefix=prefix))) == ["a", "ab"]
        assert store.count(prefix) == 2
        assert sorted(r.id for r in store.list_records(prefix)) == ["a", "ab"]
    assert ids(store.search_text("content", scope_prefix="a/b")) == ["ab"]
    assert store.list_scopes("a") == ["/a/b"]
    assert store.list_scopes("/") == ["/a", "/x"]
    assert store.get_scope_info("a").record_count == 2
    assert store.delete(scope_prefix="a/b") == 1
    store.reset("x")
    assert [r.id for r in store.list_records()] == ["a"]


def write_version_1_file(database: Path) -> None:
    """A store as version 1 left it: schema_version 1, scopes as given."""
    conn = sqlite3.connect(database)
    try:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO memories (id, content, scope, categories, metadata, importance, created_at, created_ts, "
            "last_accessed, private) VALUES (?, 'c', ?, '[]', '{}', 0.5, '2026-01-01T00:00:00', ?, "
            "'2026-01-01T00:00:00', 0)",
            [("old", "crew/a", 1.0), ("rooted", "/crew/b", 2.0), ("empty", "", 3.0)],
        )
        conn.commit()
    finally:
        conn.close()


def test_opening_a_version_1_store_roots_its_scopes(backend: str, tmp_path: Path) -> None:
    write_version_1_file(tmp_path / DATABASE_NAME)
    with AcceleratedMemoryStorage(tmp_path) as store:
        assert sorted(r.id for r in store.list_records("crew")) == ["old", "rooted"]
        assert store.list_scopes("/") == ["/crew"]
        assert store.delete(scope_prefix="/crew/a") == 1
    conn = sqlite3.connect(tmp_path / DATABASE_NAME)
    try:
        assert conn.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone() == (2,)
        assert conn.execute("SELECT id, scope FROM memories ORDER BY seq").fetchall() == [
            ("rooted", "/crew/b"),
            ("empty", "/"),
        ]
    finally:
        conn.close()


# --------------------------------------------------------------------------- NaN vectors written by another tool


def write_unusable_rows(database: Path, dim: int) -> None:
    """Rows with a NaN or infinite vector element, as another tool might
    write them (saves refuse such vectors)."""
    conn = sqlite3.connect(database)
    try:
        for id, bad in (("nan", math.nan), ("inf", math.inf), ("neg", -math.inf)):
            vector = np.full(dim, 0.5, dtype="<f4")
            vector[dim // 2] = bad
            conn.execute(
                "INSERT INTO memories (id, content, scope, categories, metadata, importance, created_at, created_ts, "
                "last_accessed, private, embedding) VALUES (?, 'odd row', '/', '[]', '{}', 0.5, "
                "'2026-01-01T00:00:00', 0.0, '2026-01-01T00:00:00', 0, ?)",
                (id, vector.tobytes()),
            )
        conn.commit()
    finally:
        conn.close()


# 3 dimensions: the core's exact scan; 300 x 64: its int8 pre-scan first.
@pytest.mark.parametrize(("rows", "dim"), [(5, 3), (300, 64)])
def test_vectors_with_nan_or_infinity_are_never_hits(store: AcceleratedMemoryStorage, rows: int, dim: int) -> None:
    store.save([rec(f"r{i}", [float((i + j) % 7) for j in range(dim)]) for i in range(rows)])
    write_unusable_rows(store.database, dim)
    query = [0.5] * dim
    for min_score in (-1.0, 0.0):
        found = ids(store.search(query, limit=rows + 10, min_score=min_score))
        assert len(found) == rows and all(id.startswith("r") for id in found)
    # Everything else sees them as ordinary records, vector as stored.
    assert store.count() == rows + 3
    assert ids(store.search_text("odd")) == ["nan", "inf", "neg"]
    got = store.get_record("nan")
    assert got is not None and got.embedding is not None and math.isnan(got.embedding[dim // 2])
    store.update(rec("nan", query))
    assert ids(store.search(query, limit=1)) == ["nan"]


# --------------------------------------------------------------------------- records and results too large


def test_a_record_too_large_to_read_back_is_refused_at_save(store: AcceleratedMemoryStorage) -> None:
    # Fixed times: a record's size depends on how its timestamps print.
    moment = datetime(2026, 1, 1, 12, 30, 45, 123456)

    def rec(id: str, vector: list[float], content: str = "") -> MemoryRecord:
        return MemoryRecord(id=id, content=content, embedding=vector, created_at=moment, last_accessed=moment)

    store.save([rec("x", [1.0, 2.0], content="")])
    found = store._index.get("x")
    assert found is not None
    base = len(found.encode())
    content = "a" * (MAX_RECORD_BYTES - base)
    store.save([rec("x", [1.0, 2.0], content=content)])
    found = store._index.get("x")
    assert found is not None and len(found.encode()) == MAX_RECORD_BYTES
    got = store.get_record("x")
    assert got is not None and got.content == content
    # One byte more (here a two-byte character) is refused; the batch saves nothing.
    for bigger in (content + "a", content[1:] + "é"):
        with pytest.raises(RecordTooLargeError, match=r"records\[1\]"):
            store.save([rec("y", [1.0, 2.0]), rec("x", [1.0, 2.0], content=bigger)])
        assert store.count() == 1
    # What the issue saw: a 140 MB record saved, then unreadable. Now refused:
    # at 100 MB as a record too large, at 140 MB already as a batch larger
    # than any JSON document the index reads (127 MiB).
    with pytest.raises(RecordTooLargeError):
        store.save([rec("huge", [1.0, 2.0], content="z" * 100_000_000)])
    with pytest.raises(InvalidRecordError, match="more than the limit"):
        store.save([rec("huge", [1.0, 2.0], content="z" * 140_000_000)])
    assert store.count() == 1


def test_a_result_too_large_to_return_is_refused(store: AcceleratedMemoryStorage) -> None:
    # Eight records just under the record limit: seven fit in one result,
    # eight do not.
    # (Few, long words: the reference tokenises in Python.)
    content = "word " + "w" * (MAX_RECORD_BYTES - 400)
    for i in range(8):
        store.save([rec(f"r{i}", [float(i)], content=content)])
    assert len(store.list_records(limit=7)) == 7
    assert len(store.search_text("word", limit=7)) == 7
    for call in (
        lambda: store.list_records(limit=8),
        lambda: store.search_text("word", limit=8),
        lambda: store.search([1.0], limit=8),
    ):
        with pytest.raises(ResultTooLargeError):
            call()
    assert store.delete(record_ids=["r0"]) == 1
    assert len(store.search([1.0], limit=8)) == 7


def test_a_stored_record_too_large_to_return_is_an_error_not_a_trap(backend: str, tmp_path: Path) -> None:
    """A file another tool (or an older version) wrote with a record larger
    than one call may return: reads that would return it raise, the rest of
    the store works, and it can be deleted."""
    with AcceleratedMemoryStorage(tmp_path) as store:
        store.save([rec("small", [1.0])])
        conn = sqlite3.connect(store.database)
        try:
            conn.execute(
                "INSERT INTO memories (id, content, scope, categories, metadata, importance, created_at, created_ts, "
                "last_accessed, private, embedding) VALUES ('big', ?, '/', '[]', '{}', 0.5, '2026-01-01T00:00:00', "
                "0.0, '2026-01-01T00:00:00', 0, ?)",
                ("needle " + "y" * MAX_RESULT_BYTES, np.array([1.0], dtype="<f4").tobytes()),
            )
            conn.commit()
        finally:
            conn.close()
        for call in (
            lambda: store.get_record("big"),
            lambda: store.list_records(),
            lambda: store.search_text("needle"),
            lambda: store.search([1.0]),
        ):
            with pytest.raises(ResultTooLargeError):
                call()
        assert store.count() == 2
        got = store.get_record("small")
        assert got is not None and got.content == "content of small"
        assert store.delete(record_ids=["big"]) == 1
        assert ids(store.search([1.0])) == ["small"]


# --------------------------------------------------------------------------- the core's memory limit

WORKERS = Path(__file__).with_name("memory_workers.py")
SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)


def worker(*args: object, limit_mb: int) -> list[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "FAST_CREWAI_MEMORY_LIMIT_MB": str(limit_mb)}
    done = subprocess.run(
        [sys.executable, str(WORKERS), *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_text_filling_the_cores_memory_is_a_capacity_error_and_the_store_stays_readable(tmp_path: Path) -> None:
    """Core only: FAST_CREWAI_MEMORY_LIMIT_MB caps the core's linear memory;
    the Python reference has none. Text and BM25 postings (8 floats of
    vector per record) fill 256 MiB: the save that would not fit raises
    StoreCapacityError having written nothing, and every read then works,
    in that process and after reopening in another; opened under a lower
    limit, it fails with StoreCapacityError."""
    database = tmp_path / DATABASE_NAME
    lines = worker("fill", database, "wasm", 20, 1000, limit_mb=256)
    assert lines[0].startswith("full "), lines
    saved = int(lines[0].split()[1])
    assert saved > 1000
    assert lines[1:] == [f"count {saved}", "reads ok"]
    assert worker("read", database, "wasm", limit_mb=256) == [f"count {saved}", "reads ok"]
    # Under a lower limit it does not fit at all: a typed error, not a trap.
    assert worker("read", database, "wasm", limit_mb=96) == ["too large to open"]
    assert integrity(database) == [("ok",)]


# --------------------------------------------------------------------------- argument types


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def test_numpy_numbers_are_accepted(store: AcceleratedMemoryStorage) -> None:
    store.save([rec(f"r{i}", [float(i), 1.0]) for i in range(5)])
    assert len(store.search(np.array([1.0, 1.0]), limit=np.int64(3), min_score=np.float32(0.1))) == 3
    assert len(store.search_text("content", limit=np.int32(2))) == 2
    assert len(store.list_records(limit=np.uint8(4), offset=np.int64(1))) == 4
    assert store.delete(record_ids=("r0", "r1")) == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.get_record(None), "record_id must be a string, not NoneType"),
        (lambda s: s.get_record(5), "record_id must be a string"),
        (lambda s: s.search([1.0], scope_prefix=5), "scope_prefix"),
        (lambda s: s.search([1.0], limit="3"), "limit must be an integer"),
        (lambda s: s.search([1.0], limit=3.0), "limit must be an integer"),
        (lambda s: s.search([1.0], limit=True), "limit must be an integer"),
        (lambda s: s.search([1.0], min_score="0.5"), "min_score must be a number"),
        (lambda s: s.search([1.0], categories="fact"), "categories"),
        (lambda s: s.search([1.0], categories=[1]), "categories must be a string"),
        (lambda s: s.search([1.0], metadata_filter=[("k", 1)]), "metadata_filter"),
        (lambda s: s.search(None), "embedding"),
        (lambda s: s.search("1.0"), "embedding"),
        (lambda s: s.search_text(None), "query must be a string"),
        (lambda s: s.search_text(b"bytes"), "query must be a string"),
        (lambda s: s.list_records(scope_prefix=5), "scope_prefix"),
        (lambda s: s.list_records(limit=None), "limit must be an integer"),
        (lambda s: s.count(5), "scope_prefix"),
        (lambda s: s.list_categories(["/a"]), "scope_prefix"),
        (lambda s: s.reset(5), "scope_prefix"),
        (lambda s: s.get_scope_info(None), "scope must be a string"),
        (lambda s: s.list_scopes(5), "parent must be a string"),
        (lambda s: s.delete(record_ids="r1"), "record_ids"),
        (lambda s: s.delete(older_than="yesterday"), "older_than"),
        (lambda s: s.delete(scope_prefix=b"/a"), "scope_prefix"),
        (lambda s: s.touch_records("r1"), "record_ids must be a list"),
        (lambda s: s.save(rec("r1", [1.0])), "records must be a list"),
        (lambda s: s.save([{"id": "r1"}]), "every record must be a MemoryRecord"),
    ],
)
def test_arguments_of_the_wrong_type_are_typed_errors(store: AcceleratedMemoryStorage, call: Any, message: str) -> None:
    store.save([rec("r1", [1.0])])
    with pytest.raises(InvalidRecordError, match=message):
        call(store)
    assert store.count() == 1


@pytest.mark.parametrize("depth", [300, 10_000])
def test_deeply_nested_metadata_is_a_typed_error(store: AcceleratedMemoryStorage, depth: int) -> None:
    """300 levels: Python encodes it, the index refuses it (256 at most);
    10,000: past Python's own recursion limit, refused before the index."""
    with pytest.raises(InvalidRecordError, match="nest"):
        store.save([rec("deep", [1.0], metadata=nested(depth))])
    with pytest.raises(InvalidRecordError, match="nest"):
        store.search([1.0], metadata_filter=nested(depth))
    with pytest.raises(InvalidRecordError, match="nest"):
        store.delete(metadata_filter=nested(depth))
    assert store.count() == 0
