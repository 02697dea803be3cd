"""Parity with CrewAI's own LanceDBStorage on the same records and queries,
and the places where we deliberately differ (see ``fast_crewai.memory_search._storage``).

The data keeps LanceDB's quirks out of the parity checks: scopes that are
never a string prefix of a sibling, categories and metadata dense enough
that LanceDB's ``3 * limit`` candidates before its post-filter hold the
exact answer (asserted, not assumed), distinct distances and timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from crewai.memory.storage.lancedb_storage import LanceDBStorage
from crewai.memory.types import MemoryRecord

from fast_crewai.memory_search._storage import AcceleratedMemoryStorage

DIM = 32
T0 = datetime(2026, 2, 1, 8, 0, 0)
SCOPES = ["/crew/alpha", "/crew/alpha/notes", "/crew/beta", "/solo"]
RNG = np.random.default_rng(20261123)
VECTORS = RNG.normal(size=(240, DIM)).astype(np.float32)
QUERIES = RNG.normal(size=(8, DIM)).astype(np.float32)


def dataset() -> list[MemoryRecord]:
    return [
        MemoryRecord(
            id=f"m{i:03d}",
            content=f"memory number {i}",
            scope=SCOPES[i % len(SCOPES)],
            categories=["common" if i % 4 else "rare"] + (["third"] if i % 3 == 0 else []),
            metadata={"kind": i % 3, "tag": "t1" if i % 4 else "t0"},
            importance=(i % 10) / 10,
            created_at=T0 + timedelta(minutes=i),
            last_accessed=T0 + timedelta(minutes=i, seconds=30),
            embedding=VECTORS[i].tolist(),
            source="agent",
            private=i % 5 == 0,
        )
        for i in range(len(VECTORS))
    ]


@pytest.fixture(scope="module")
def lance(tmp_path_factory: pytest.TempPathFactory) -> LanceDBStorage:
    storage = LanceDBStorage(tmp_path_factory.mktemp("lance"), compact_every=0)
    storage.save(dataset())
    return storage


@pytest.fixture
def ours(backend: str, tmp_path: Path) -> Iterator[AcceleratedMemoryStorage]:
    with AcceleratedMemoryStorage(tmp_path / "ours") as storage:
        storage.save(dataset())
        yield storage


def brute_force(query: np.ndarray, keep: list[bool]) -> list[str]:
    distances = ((VECTORS.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1)
    return [f"m{i:03d}" for i in np.argsort(distances, kind="stable") if keep[i]]


def matches(record: MemoryRecord, categories: list[str] | None, metadata: dict[str, Any] | None) -> bool:
    if categories and not any(c in record.categories for c in categories):
        return False
    return not metadata or all(record.metadata.get(k) == v for k, v in metadata.items())


FILTERS: list[dict[str, Any]] = [
    {},
    {"scope_prefix": "/crew/alpha"},
    {"scope_prefix": "/crew"},
    {"categories": ["common"]},
    {"categories": ["rare", "third"]},
    {"metadata_filter": {"tag": "t1"}},
    {"scope_prefix": "/crew", "categories": ["common"]},
    {"min_score": 0.025},
]


@pytest.mark.parametrize("kwargs", FILTERS, ids=lambda k: ",".join(k) or "none")
@pytest.mark.parametrize("limit", [5, 10])
def test_search_matches_lancedb(
    lance: LanceDBStorage, ours: AcceleratedMemoryStorage, kwargs: dict[str, Any], limit: int
) -> None:
    records = dataset()
    keep = [
        matches(r, kwargs.get("categories"), kwargs.get("metadata_filter"))
        and r.scope.startswith(kwargs.get("scope_prefix", ""))
        for r in records
    ]
    for query in QUERIES:
        if kwargs.get("categories") or kwargs.get("metadata_filter"):
            # LanceDB post-filters its 3 * limit nearest (in scope): the data
            # must put the exact answer among them for the two to agree.
            in_scope = [r.scope.startswith(kwargs.get("scope_prefix", "")) for r in records]
            assert set(brute_force(query, keep)[:limit]) <= set(brute_force(query, in_scope)[: 3 * limit])
        theirs = lance.search(query.tolist(), limit=limit, **kwargs)
        mine = ours.search(query.tolist(), limit=limit, **kwargs)
        assert [r.id for r, _ in mine] == [r.id for r, _ in theirs]
        assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], abs=1e-4)
        if "min_score" not in kwargs:
            assert [r.id for r, _ in mine] == brute_force(query, keep)[:limit]


def test_records_read_back_like_lancedb(lance: LanceDBStorage, ours: AcceleratedMemoryStorage) -> None:
    for id in ["m000", "m001", "m137"]:
        theirs, mine = lance.get_record(id), ours.get_record(id)
        assert theirs is not None and mine is not None
        assert mine.model_dump() == theirs.model_dump()
        assert mine.embedding == theirs.embedding
    assert lance.get_record("nope") is ours.get_record("nope") is None
    for scope, limit, offset in [(None, 20, 0), (None, 7, 100), ("/crew/alpha", 10, 3), ("/solo", 500, 0)]:
        theirs_list = lance.list_records(scope, limit=limit, offset=offset)
        assert [r.model_dump() for r in ours.list_records(scope, limit, offset)] == [
            r.model_dump() for r in theirs_list
        ]


@pytest.mark.parametrize("scope", ["/", "/crew", "/crew/alpha", "/solo", "/nothing"])
def test_scope_listings_match_lancedb(lance: LanceDBStorage, ours: AcceleratedMemoryStorage, scope: str) -> None:
    assert ours.get_scope_info(scope) == lance.get_scope_info(scope)
    assert ours.list_scopes(scope) == lance.list_scopes(scope)
    assert ours.list_categories(None if scope == "/" else scope) == lance.list_categories(
        None if scope == "/" else scope
    )
    assert ours.count(scope) == lance.count(scope)


def test_writes_match_lancedb(backend: str, tmp_path: Path) -> None:
    lance = LanceDBStorage(tmp_path / "lance", compact_every=0)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        for store in (lance, ours):
            store.save(dataset())
        steps: list[tuple[str, dict[str, Any]]] = [
            ("delete", {"record_ids": ["m001", "m002", "missing"]}),
            ("delete", {"older_than": T0 + timedelta(minutes=20)}),
            ("delete", {"categories": ["third"], "scope_prefix": "/crew/beta"}),
            ("delete", {"metadata_filter": {"kind": 1, "tag": "t0"}}),
            ("reset", {"scope_prefix": "/crew/alpha/notes"}),
        ]
        for name, kwargs in steps:
            assert getattr(ours, name)(**kwargs) == getattr(lance, name)(**kwargs)
            assert ours.count() == lance.count()
            assert [r.id for r in ours.list_records(limit=1000)] == [r.id for r in lance.list_records(limit=1000)]
        updated = dataset()[100].model_copy(update={"content": "rewritten", "embedding": QUERIES[0].tolist()})
        for store in (lance, ours):
            store.update(updated)
        mine = ours.search(QUERIES[0].tolist(), limit=3)
        theirs = lance.search(QUERIES[0].tolist(), limit=3)
        assert [r.id for r, _ in mine] == [r.id for r, _ in theirs] and mine[0][0].content == "rewritten"
        assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], abs=1e-4)
        for store in (lance, ours):
            store.reset()
        assert ours.count() == lance.count() == 0


# --------------------------------------------------------------------------- where we are deliberately better


def test_filtered_top_k_is_exact_where_lancedb_post_filter_misses(backend: str, tmp_path: Path) -> None:
    query = [1.0, 0.0, 0.0]
    near = [MemoryRecord(id=f"near{i}", content="n", embedding=[1.0, i / 100, 0.0]) for i in range(40)]
    needles = [
        MemoryRecord(id=f"needle{i}", content="x", categories=["needle"], embedding=[0.0, 0.0, 1.0 + i])
        for i in range(5)
    ]
    lance = LanceDBStorage(tmp_path / "lance", compact_every=0)
    lance.save(near + needles)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        ours.save(near + needles)
        # LanceDB looks at the 15 nearest, none of which is a needle.
        assert lance.search(query, categories=["needle"], limit=5) == []
        assert [r.id for r, _ in ours.search(query, categories=["needle"], limit=5)] == [f"needle{i}" for i in range(5)]


def test_scope_prefixes_match_by_path_segment(backend: str, tmp_path: Path) -> None:
    records = [
        MemoryRecord(id="one", content="c", scope="/crew/agent_1", embedding=[1.0, 0.0]),
        MemoryRecord(id="one-deep", content="c", scope="/crew/agent_1/task", embedding=[1.0, 0.1]),
        MemoryRecord(id="ten", content="c", scope="/crew/agent_10", embedding=[1.0, 0.0]),
        MemoryRecord(id="root", content="c", scope="/", embedding=[0.0, 1.0]),
    ]
    lance = LanceDBStorage(tmp_path / "lance", compact_every=0)
    lance.save(records)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        ours.save(records)
        # LanceDB's LIKE '/crew/agent_1%' also takes agent_10.
        assert sorted(r.id for r, _ in lance.search([1.0, 0.0], scope_prefix="/crew/agent_1")) == [
            "one",
            "one-deep",
            "ten",
        ]
        assert sorted(r.id for r, _ in ours.search([1.0, 0.0], scope_prefix="/crew/agent_1")) == ["one", "one-deep"]
        assert ours.count("/crew/agent_1") == 2 and lance.count("/crew/agent_1") == 3
        # LanceDB's scoped delete also deletes the root scope's records.
        assert lance.delete(scope_prefix="/crew/agent_1") == 4
        assert ours.delete(scope_prefix="/crew/agent_1") == 2
        assert sorted(r.id for r in ours.list_records()) == ["root", "ten"]


def test_saving_an_existing_id_replaces_it(backend: str, tmp_path: Path) -> None:
    first = MemoryRecord(id="same", content="first", embedding=[1.0])
    second = first.model_copy(update={"content": "second"})
    lance = LanceDBStorage(tmp_path / "lance", compact_every=0)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        for store in (lance, ours):
            store.save([first])
            store.save([second])
        assert lance.count() == 2
        assert ours.count() == 1
        record = ours.get_record("same")
        assert record is not None and record.content == "second"


def test_an_empty_id_list_deletes_nothing(backend: str, tmp_path: Path) -> None:
    records = [MemoryRecord(id=f"r{i}", content="c", embedding=[1.0]) for i in range(3)]
    lance = LanceDBStorage(tmp_path / "lance", compact_every=0)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        for store in (lance, ours):
            store.save(records)
        assert lance.delete(record_ids=[]) == 3
        assert ours.delete(record_ids=[]) == 0
        assert ours.count() == 3


def test_a_record_without_embedding_reads_back_without_one(backend: str, tmp_path: Path) -> None:
    records = [MemoryRecord(id="v", content="c", embedding=[0.0, 3.0]), MemoryRecord(id="none", content="c")]
    lance = LanceDBStorage(tmp_path / "lance", compact_every=0)
    lance.save(records)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        ours.save(records)
        theirs, mine = lance.get_record("none"), ours.get_record("none")
        assert theirs is not None and theirs.embedding == [0.0, 0.0]
        assert mine is not None and mine.embedding is None
        # Both still rank it as the zero vector.
        assert [(r.id, s) for r, s in ours.search([0.0, 1.0])] == [(r.id, s) for r, s in lance.search([0.0, 1.0])]


@pytest.fixture(scope="module")
def past_the_cap() -> list[MemoryRecord]:
    moment = datetime(2026, 1, 1)
    return [
        MemoryRecord.model_construct(
            id=f"r{i}",
            content="c",
            scope="/big",
            categories=[],
            metadata={},
            importance=0.5,
            created_at=moment,
            last_accessed=moment,
            embedding=[float(i), 1.0],
            source=None,
            private=False,
        )
        for i in range(50_001)
    ]


def test_lancedb_scoped_count_stops_at_50k(tmp_path: Path, past_the_cap: list[MemoryRecord]) -> None:
    lance = LanceDBStorage(tmp_path, compact_every=0)
    lance.save(past_the_cap)
    assert lance.count() == 50_001
    assert lance.count("/big") == 50_000


def test_scoped_count_has_no_cap(backend: str, tmp_path: Path, past_the_cap: list[MemoryRecord]) -> None:
    with AcceleratedMemoryStorage(tmp_path) as ours:
        ours.save(past_the_cap)
        assert ours.count("/big") == ours.get_scope_info("/big").record_count == 50_001
