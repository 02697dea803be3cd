"""The memory benchmark's baseline store and a tiny run of the whole suite."""

from __future__ import annotations

import pytest
from crewai.memory.types import MemoryRecord

from fast_crewai.bench import memory as _bench_memory
from fast_crewai.bench.memory import NumpyStore


def _record(rid: str, scope: str, category: str, vector: list[float]) -> MemoryRecord:
    return MemoryRecord(id=rid, content=rid, scope=scope, categories=[category], embedding=vector)


def test_numpy_store_scores_like_lancedb_and_filters_by_segment() -> None:
    store = NumpyStore()
    store.save(
        [
            _record("near", "/a/b", "x", [1.0, 0.0]),
            _record("child", "/a/b/c", "y", [0.0, 1.0]),
            _record("sibling", "/a/bc", "x", [0.9, 0.1]),
        ]
    )
    store.save([_record("far", "/z", "x", [-1.0, 0.0])])
    results = store.search([1.0, 0.0], limit=3)
    assert [r.id for r, _ in results] == ["near", "sibling", "child"]
    # CrewAI's score: 1 / (1 + squared L2 distance).
    assert [s for _, s in results] == pytest.approx([1.0, 1 / (1 + 0.01 + 0.01), 1 / 3])
    assert [r.id for r, _ in store.search([1.0, 0.0], scope_prefix="/a/b/")] == ["near", "child"]
    assert [r.id for r, _ in store.search([1.0, 0.0], scope_prefix="/a/b", categories=["y"])] == ["child"]
    assert [r.id for r, _ in store.search([1.0, 0.0], min_score=0.5)] == ["near", "sibling"]
    # Hits are built with their embeddings, as ours are.
    assert [r.embedding for r, _ in results] == [[1.0, 0.0], pytest.approx([0.9, 0.1]), [0.0, 1.0]]
    # Built anew by every search, as ours are, not handed out from storage.
    assert store.search([1.0, 0.0], limit=1)[0][0] is not store.search([1.0, 0.0], limit=1)[0][0]


def test_small_run_reports_every_store_and_exact_recall(monkeypatch: pytest.MonkeyPatch) -> None:
    # 64 dimensions and over 256 records: the core's int8 pre-scan runs, so
    # recall 1.0 checks that its bounds never drop a true neighbour.
    monkeypatch.setattr(_bench_memory, "QUICK_SIZES", [(1_500, 64)])
    monkeypatch.setattr(_bench_memory, "ROUNDS", 1)
    result = _bench_memory.run(quick=True)
    (point,) = result["points"]
    assert (point["n"], point["dims"]) == (1_500, 64)
    assert point["ours"]["recall_at_10"] == {"search": 1.0, "search_filtered": 1.0}
    # LanceDB's flat scan is exact too; with a category it filters after the
    # top 3 x limit, so it may miss some.
    assert point["lancedb"]["recall_at_10"]["search"] == 1.0
    for name in ("ours", "lancedb", "numpy"):
        assert point[name]["save_records_per_s"] > 0
        assert 0 < point[name]["search"]["p50_ms"] <= point[name]["search"]["p95_ms"]
        assert 0 < point[name]["save_one"]["p50_ms"] <= point[name]["save_one"]["p95_ms"]
    assert point["ours"]["reopen_ms"] > 0 and point["lancedb"]["reopen_ms"] > 0
    assert point["ours"]["lexical"]["p50_ms"] > 0
    assert point["ratios"]["search_lancedb_over_ours"] > 0
    assert point["ratios"]["save_one_lancedb_over_ours"] > 0
    recall = next(t for t in result["targets"] if t["name"].startswith("recall@10"))
    assert recall["verdict"] == "met"
