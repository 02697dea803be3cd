"""AcceleratedMemoryStorage: every StorageBackend method, search_text,
persistence and the shim's storage factory, on both backends."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from crewai import Memory
from crewai.memory.storage import factory
from crewai.memory.storage.backend import StorageBackend
from crewai.memory.types import MemoryRecord, ScopeInfo

from fast_crewai.demo.offline import HashEmbedder
from fast_crewai.demo.scripted_llm import ScriptedLLM
from fast_crewai.memory_search import _open
from fast_crewai.memory_search import _patch as _memory_shim
from fast_crewai.memory_search._open import open_index, release_index
from fast_crewai.memory_search._storage import DATABASE_NAME, AcceleratedMemoryStorage, ReopeningMemoryStorage
from fast_crewai.runtime import patches as _shim
from fast_crewai.runtime.patches import PatchTargetMissing

T0 = datetime(2026, 1, 1, 12, 0, 0)


def rec(
    id: str,
    vector: list[float] | None,
    scope: str = "/",
    categories: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    minutes: int = 0,
    content: str | None = None,
) -> MemoryRecord:
    moment = T0 + timedelta(minutes=minutes)
    return MemoryRecord(
        id=id,
        content=content if content is not None else f"memory {id}",
        scope=scope,
        categories=categories or [],
        metadata=metadata or {},
        importance=0.25 + minutes / 1000,
        created_at=moment,
        last_accessed=moment,
        embedding=vector,
        source="tester",
        private=minutes % 2 == 1,
    )


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[AcceleratedMemoryStorage]:
    with AcceleratedMemoryStorage(tmp_path / "memory") as storage:
        assert storage.backend == backend
        yield storage


@pytest.fixture
def filled(store: AcceleratedMemoryStorage) -> AcceleratedMemoryStorage:
    store.save(
        [
            rec("a1", [1.0, 0.0, 0.0], "/crew/alpha", ["fact"], {"topic": "x", "n": 1}, minutes=1),
            rec("a2", [0.9, 0.1, 0.0], "/crew/alpha/deep", ["fact", "plan"], {"topic": "y"}, minutes=2),
            rec("b1", [0.0, 1.0, 0.0], "/crew/beta", ["plan"], {"topic": "x", "n": 2}, minutes=3),
            rec("b2", [0.0, 0.9, 0.3], "/crew/beta", [], {}, minutes=4),
            rec("r1", [0.0, 0.0, 1.0], "/", ["root"], {"topic": "x"}, minutes=5),
            rec("n1", None, "/crew/alpha", ["fact"], {}, minutes=6),
        ]
    )
    return store


def ids(hits: list[tuple[MemoryRecord, float]]) -> list[str]:
    return [record.id for record, _ in hits]


def test_it_satisfies_the_protocol(store: AcceleratedMemoryStorage) -> None:
    assert isinstance(store, StorageBackend)
    assert hasattr(store, "touch_records") and hasattr(store, "close")


def test_default_path_follows_crewai_storage_dir(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    with AcceleratedMemoryStorage() as storage:
        assert storage.path == tmp_path / "memory"
        assert storage.database == (tmp_path / "memory" / DATABASE_NAME).resolve()
        storage.save([rec("x", [1.0])])
    assert (tmp_path / "memory" / DATABASE_NAME).is_file()


def test_a_lancedb_store_left_in_the_directory_is_pointed_out(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "memories.lance").mkdir()
    with AcceleratedMemoryStorage(tmp_path):
        pass
    assert "fast-crewai migrate-memory" in caplog.text
    caplog.clear()
    with AcceleratedMemoryStorage(tmp_path):
        pass
    assert caplog.text == ""


def test_save_and_get_record_round_trip_every_field(filled: AcceleratedMemoryStorage) -> None:
    got = filled.get_record("a2")
    assert got is not None
    assert got.model_dump() == rec("a2", None, "/crew/alpha/deep", ["fact", "plan"], {"topic": "y"}, 2).model_dump()
    assert got.embedding == pytest.approx([0.9, 0.1, 0.0], abs=1e-7)
    no_vector = filled.get_record("n1")
    assert no_vector is not None and no_vector.embedding is None
    assert filled.get_record("missing") is None


def test_records_read_back_are_ordinary_models(filled: AcceleratedMemoryStorage) -> None:
    """Records come back without pydantic's validation: they must still
    behave as model_construct'd (and validated) ones do."""
    (got, _), *_ = filled.search([0.9, 0.1, 0.0], limit=1)
    built = MemoryRecord.model_construct(**{name: getattr(got, name) for name in MemoryRecord.model_fields})
    assert got == built and got.__dict__ == built.__dict__
    assert got.__pydantic_fields_set__ == built.__pydantic_fields_set__
    # (model_dump leaves the embedding out: CrewAI excludes it.)
    assert MemoryRecord.model_validate({**got.model_dump(), "embedding": got.embedding}) == got
    assert got.model_dump_json() == built.model_dump_json()
    changed = got.model_copy(update={"content": "changed"})
    assert changed.content == "changed" and got.content != "changed"
    got.importance = 0.25
    assert got.importance == 0.25 and built.importance != 0.25


def test_aware_datetimes_keep_their_offset(store: AcceleratedMemoryStorage) -> None:
    moment = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    record = MemoryRecord(id="tz", content="c", created_at=moment, last_accessed=moment, embedding=[1.0])
    store.save([record])
    got = store.get_record("tz")
    assert got is not None and got.created_at == moment and got.created_at.utcoffset() == timedelta(hours=2)


def test_search_ranks_by_squared_l2_score(filled: AcceleratedMemoryStorage) -> None:
    hits = filled.search([1.0, 0.0, 0.0], limit=3)
    assert ids(hits) == ["a1", "a2", "n1"]
    # 1 / (1 + squared distance), as LanceDBStorage scores.
    assert [score for _, score in hits] == pytest.approx([1.0, 1 / (1 + 0.02), 1 / (1 + 1.0)])
    assert filled.search([1.0, 0.0, 0.0], limit=0) == []
    assert ids(filled.search([1.0, 0.0, 0.0], limit=10, min_score=0.6)) == ["a1", "a2"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"scope_prefix": "/crew/alpha"}, ["a1", "a2", "n1"]),
        ({"scope_prefix": "crew/alpha/"}, ["a1", "a2", "n1"]),
        ({"scope_prefix": "/"}, ["a1", "a2", "n1", "b2", "b1", "r1"]),
        ({"categories": ["plan"]}, ["a2", "b1"]),
        ({"categories": []}, ["a1", "a2", "n1", "b2", "b1", "r1"]),
        ({"metadata_filter": {"topic": "x"}}, ["a1", "b1", "r1"]),
        ({"metadata_filter": {"topic": "x", "n": 2}}, ["b1"]),
        ({"metadata_filter": {"n": 1.0}}, ["a1"]),
        ({"scope_prefix": "/crew", "categories": ["fact"], "metadata_filter": {"topic": "y"}}, ["a2"]),
    ],
)
def test_search_filters(filled: AcceleratedMemoryStorage, kwargs: dict[str, Any], expected: list[str]) -> None:
    assert ids(filled.search([1.0, 0.0, 0.0], limit=10, **kwargs)) == expected


def test_search_text_is_bm25_over_content(store: AcceleratedMemoryStorage) -> None:
    store.save(
        [
            rec("p", [1.0], "/docs", content="Acme Robotics is headquartered in Lyon, France."),
            rec("q", [1.0], "/docs", content="Borealis Foods ships frozen food across Lyon and Oslo."),
            rec("r", [1.0], "/other", content="Lyon"),
        ]
    )
    hits = store.search_text("headquartered LYON", scope_prefix="/docs")
    assert ids(hits) == ["p", "q"]
    assert hits[0][1] > hits[1][1] > 0
    assert ids(store.search_text("lyon", limit=1)) == ["r"]
    assert store.search_text("absent words") == []
    assert store.search_text("lyon", limit=0) == []


@pytest.mark.parametrize("query", ["lyon", "frozen lyon", "Oslo robotics food", "été café", "x42 zeta", "nothing"])
def test_search_text_ranks_like_bm25s(store: AcceleratedMemoryStorage, query: str) -> None:
    """Scores against an independent BM25 (bm25s, Lucene's variant, same k1
    and b) on the same corpus and tokens. Lucene has dropped BM25's constant
    (k1 + 1) factor, which changes no ranking: ours is (k1 + 1) times it."""
    import random

    import bm25s

    rng = random.Random(7)
    vocabulary = ["lyon", "oslo", "acme", "robotics", "frozen", "food", "ships", "across", "été", "café", "x42"]
    vocabulary += ["zeta", "alpha", "beta", "gamma"]
    contents = []
    for _ in range(300):
        words = rng.choices(vocabulary, weights=range(len(vocabulary), 0, -1), k=rng.randint(1, 12))
        cased = [w.upper() if rng.random() < 0.2 else w.capitalize() if rng.random() < 0.2 else w for w in words]
        contents.append(rng.choice([" ", ", ", "-", "; "]).join(cased) + rng.choice(["", ".", "!"]))
    store.save([rec(f"d{i}", None, content=text) for i, text in enumerate(contents)])

    def tokens(text: str) -> list[str]:
        # Maximal runs of letters and digits, lowercased: the store's rule.
        return re.findall(r"[^\W_]+", text.lower())

    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    reference.index([tokens(text) for text in contents], show_progress=False)
    expected = {f"d{i}": 2.2 * float(score) for i, score in enumerate(reference.get_scores(tokens(query)))}
    hits = store.search_text(query, limit=50)
    matching = sorted((score for score in expected.values() if score > 0), reverse=True)
    assert len(hits) == min(50, len(matching))
    for record, score in hits:
        assert score == pytest.approx(expected[record.id], rel=1e-6)  # bm25s scores in float32
    assert [score for _, score in hits] == pytest.approx(matching[: len(hits)], rel=1e-6)


def test_delete_by_each_criterion(filled: AcceleratedMemoryStorage) -> None:
    assert filled.delete(record_ids=["a1", "missing"]) == 1
    assert filled.delete(categories=["plan"], scope_prefix="/crew/beta") == 1
    assert filled.delete(metadata_filter={"topic": "x"}) == 1  # r1; a1 and b1 are gone
    assert filled.delete(older_than=T0 + timedelta(minutes=4)) == 1  # a2
    assert filled.delete(record_ids=[]) == 0
    assert sorted(r.id for r in filled.list_records()) == ["b2", "n1"]
    assert filled.delete() == 2
    assert filled.count() == 0


def test_delete_older_than_accepts_aware_datetimes(filled: AcceleratedMemoryStorage) -> None:
    cutoff = (T0 + timedelta(minutes=3)).replace(tzinfo=timezone.utc).astimezone(timezone(timedelta(hours=-5)))
    assert filled.delete(older_than=cutoff) == 2
    assert filled.get_record("b1") is not None


def test_update_replaces_the_record_and_moves_it_last_among_ties(filled: AcceleratedMemoryStorage) -> None:
    record = filled.get_record("b1")
    assert record is not None
    filled.update(record.model_copy(update={"content": "changed", "embedding": [0.0, 0.9, 0.3]}))
    assert filled.count() == 6
    got = filled.get_record("b1")
    assert got is not None and got.content == "changed"
    # b1 and b2 now tie; the earlier write ranks first.
    assert ids(filled.search([0.0, 0.9, 0.3], limit=2)) == ["b2", "b1"]


def test_list_records_newest_first_with_paging(filled: AcceleratedMemoryStorage) -> None:
    assert [r.id for r in filled.list_records()] == ["n1", "r1", "b2", "b1", "a2", "a1"]
    assert [r.id for r in filled.list_records(limit=2, offset=1)] == ["r1", "b2"]
    assert [r.id for r in filled.list_records("/crew/alpha")] == ["n1", "a2", "a1"]
    assert filled.list_records(limit=0) == []
    assert filled.list_records(offset=-1) == []


def test_scope_info_scopes_and_categories(filled: AcceleratedMemoryStorage) -> None:
    info = filled.get_scope_info("/crew/")
    assert info == ScopeInfo(
        path="/crew",
        record_count=5,
        categories=["fact", "plan"],
        oldest_record=T0 + timedelta(minutes=1),
        newest_record=T0 + timedelta(minutes=6),
        child_scopes=["/crew/alpha", "/crew/beta"],
    )
    assert filled.get_scope_info("/").record_count == 6
    assert filled.get_scope_info("/").child_scopes == ["/crew"]
    assert filled.get_scope_info("/nowhere") == ScopeInfo(path="/nowhere")
    assert filled.list_scopes() == ["/crew"]
    assert filled.list_scopes("/crew") == ["/crew/alpha", "/crew/beta"]
    assert filled.list_scopes("/crew/alpha") == ["/crew/alpha/deep"]
    assert filled.list_categories() == {"fact": 3, "plan": 2, "root": 1}
    assert filled.list_categories("/crew/alpha") == {"fact": 3, "plan": 1}


def test_count_and_reset(filled: AcceleratedMemoryStorage) -> None:
    assert filled.count() == 6
    assert filled.count("/crew") == 5
    assert filled.count("crew/alpha") == 3
    filled.reset("/crew/alpha")
    assert filled.count() == 3
    assert filled.dimension == 3
    filled.reset()
    assert filled.count() == 0
    # A full reset forgets the dimension, as dropping LanceDB's table does.
    assert filled.dimension is None
    filled.save([rec("new", [1.0, 2.0])])
    assert filled.dimension == 2


def test_touch_records_sets_last_accessed_to_now(filled: AcceleratedMemoryStorage) -> None:
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    filled.touch_records(["a1", "missing"])
    filled.touch_records([])
    touched, untouched = filled.get_record("a1"), filled.get_record("a2")
    assert touched is not None and untouched is not None
    assert touched.last_accessed >= before and touched.last_accessed.tzinfo is None
    assert untouched.last_accessed == T0 + timedelta(minutes=2)


def test_async_twins(filled: AcceleratedMemoryStorage) -> None:
    async def run() -> tuple[list[str], int]:
        await filled.asave([rec("z", [0.5, 0.5, 0.0], minutes=9)])
        hits = await filled.asearch([0.5, 0.5, 0.0], limit=1)
        return ids(hits), await filled.adelete(record_ids=["z", "a1"])

    assert asyncio.run(run()) == (["z"], 2)


def test_closed_store_refuses_calls_and_close_is_idempotent(store: AcceleratedMemoryStorage) -> None:
    store.close()
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.count()


def test_storages_of_one_directory_share_one_index(backend: str, tmp_path: Path) -> None:
    first = AcceleratedMemoryStorage(tmp_path)
    second = AcceleratedMemoryStorage(tmp_path)
    assert first._index is second._index
    first.save([rec("x", [1.0])])
    first.close()
    assert second.count() == 1
    second.close()
    reopened = AcceleratedMemoryStorage(tmp_path)
    assert reopened._index is not second._index and reopened.count() == 1
    reopened.close()


@pytest.mark.parametrize("reader", ["wasm", "python"])
def test_persists_across_reopen_and_backends(backend: str, reader: str, tmp_path: Path) -> None:
    with AcceleratedMemoryStorage(tmp_path) as writer:
        writer.save([rec(f"r{i}", [float(i), 1.0], f"/s/{i % 3}", [f"c{i % 2}"], minutes=i) for i in range(30)])
        writer.delete(record_ids=["r5"])
        writer.touch_records(["r7"])
        expected = [(r.model_dump(), s) for r, s in writer.search([3.0, 1.0], limit=5)]
        listed = [r.model_dump() for r in writer.list_records()]
    with AcceleratedMemoryStorage(tmp_path, backend=reader) as again:
        assert again.count() == 29 and again.dimension == 2
        assert [(r.model_dump(), s) for r, s in again.search([3.0, 1.0], limit=5)] == expected
        assert [r.model_dump() for r in again.list_records()] == listed
    conn = sqlite3.connect(tmp_path / DATABASE_NAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT value FROM store_meta WHERE key = 'dimension'").fetchone() == (2,)
    finally:
        conn.close()


def test_the_index_contract_is_usable_directly(backend: str, tmp_path: Path) -> None:
    index = open_index(backend, tmp_path / "direct.db")
    try:
        record = {"id": "x", "content": "hello", "created_at": "2026-01-01T00:00:00", "created_ts": 1.0}
        assert index.save(json.dumps([record])) == 1
        stored = index.get("x")
        assert stored is not None
        assert json.loads(stored) == {
            **record,
            "scope": "/",
            "categories": [],
            "metadata": {},
            "importance": 0.5,
            "last_accessed": "2026-01-01T00:00:00",
            "source": None,
            "private": False,
            "embedding": None,
        }
        assert index.dimension() is None
        assert json.loads(index.search_text("HELLO", "{}", 5))[0][0]["id"] == "x"
    finally:
        release_index(index)


# --------------------------------------------------------------------------- the shim's storage factory


@pytest.fixture
def clean_factory() -> Iterator[None]:
    original = factory._factory
    factory.set_memory_storage_factory(None)
    yield
    factory.set_memory_storage_factory(original)


def memory_storage(**kwargs: Any) -> object:
    memory = Memory(llm=ScriptedLLM(), embedder=HashEmbedder(), **kwargs)
    storage = memory._storage
    memory.close()
    return storage


@pytest.mark.parametrize(
    ("spec", "ours"),
    [("lancedb", True), ("qdrant-edge", False)],
)
def test_factory_takes_the_lancedb_specs(backend: str, clean_factory: None, spec: str, ours: bool) -> None:
    undo = _memory_shim._apply()
    try:
        storage = factory.resolve_memory_storage(spec)
        assert isinstance(storage, AcceleratedMemoryStorage) is ours
        if isinstance(storage, AcceleratedMemoryStorage):
            assert storage.backend == backend
            storage.close()
    finally:
        undo()
    assert factory._factory is None


def test_factory_takes_a_path_spec_and_memory_uses_it(backend: str, clean_factory: None, tmp_path: Path) -> None:
    undo = _memory_shim._apply()
    try:
        storage = memory_storage(storage=str(tmp_path / "custom"))
        assert isinstance(storage, AcceleratedMemoryStorage)
        assert storage.path == tmp_path / "custom"
    finally:
        undo()


def test_a_memory_stays_usable_after_close_as_with_lancedb(backend: str, clean_factory: None, tmp_path: Path) -> None:
    # Memory.close() closes its storage; CrewAI keeps the Memory usable after
    # it (late saves run synchronously) and LanceDB, with no close(), keeps
    # answering: the factory's store opens again on its next call.
    undo = _memory_shim._apply()
    try:
        memory = Memory(llm=ScriptedLLM(), embedder=HashEmbedder(), storage=str(tmp_path / "db"))
        storage = memory._storage
        assert isinstance(storage, ReopeningMemoryStorage)
        memory.remember_many(["The launch is on Monday."], scope="/test", categories=["plan"], importance=0.9)
        key = (storage.backend, storage.database, False)
        memory.close()
        assert key not in _open._shared, "close() left the index open"
        assert storage.count() == 1
        memory.remember_many(["The review is on Friday."], scope="/test", categories=["plan"], importance=0.9)
        memory.drain_writes()
        assert storage.count() == 2
        memory.close()
        assert key not in _open._shared
        with AcceleratedMemoryStorage(tmp_path / "db") as reader:
            assert reader.count() == 2
    finally:
        undo()


def test_factory_defers_to_an_application_factory(clean_factory: None, tmp_path: Path) -> None:
    mine = AcceleratedMemoryStorage(tmp_path, backend="python")

    def application(spec: str) -> AcceleratedMemoryStorage | None:
        return mine if spec == "lancedb" else None

    factory.set_memory_storage_factory(application)
    undo = _memory_shim._apply()
    try:
        assert factory.resolve_memory_storage("lancedb") is mine
        other = factory.resolve_memory_storage(str(tmp_path / "elsewhere"))
        assert isinstance(other, AcceleratedMemoryStorage) and other is not mine
        other.close()
    finally:
        undo()
        mine.close()
    assert factory._factory is application


def test_factory_patch_reports_a_missing_setter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(factory, "set_memory_storage_factory")
    with pytest.raises(PatchTargetMissing):
        _memory_shim._apply()


def test_the_patch_is_registered_for_the_memory_component() -> None:
    patch = next(p for p in _shim._registry if p.name == "memory.storage_factory")
    assert patch.component == "memory"
