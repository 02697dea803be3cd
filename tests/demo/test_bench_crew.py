"""The crew benchmark's two sides run the same crew on the stores they claim."""

from __future__ import annotations

from pathlib import Path

from fast_crewai.bench import crew as _bench_crew


def test_each_side_runs_the_same_crew_on_its_own_store(tmp_path: Path) -> None:
    # _spawn raises when a side's memory used another store than expected
    # (LanceDBStorage stock, AcceleratedMemoryStorage with the shim).
    stock = _bench_crew._spawn("stock", tmp_path)
    shim = _bench_crew._spawn("shim", tmp_path)
    assert len(stock) == len(shim) == _bench_crew.KICKOFFS_PER_PROCESS
    for sample in stock + shim:
        assert 0 < sample["kickoff_s"] <= sample["total_s"]
        assert sample["cpu_s"] > 0
    # The scripted LLM answers the same calls whichever store serves memory.
    assert [s["llm_calls"] for s in stock] == [s["llm_calls"] for s in shim]
    # The stores' clock runs on the shim's side only (summed over threads,
    # so background saves may make it exceed the wall time).
    assert all(s["in_stores_s"] == 0 for s in stock)
    assert all(s["in_stores_s"] > 0 for s in shim)
