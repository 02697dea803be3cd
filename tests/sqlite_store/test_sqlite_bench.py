"""The SQLite benchmark runs end to end and reports every side."""

from __future__ import annotations

import pytest

from fast_crewai.bench import sqlite as _bench_sqlite


def test_quick_run_reports_each_workload_for_every_side(capsys: pytest.CaptureFixture[str]) -> None:
    results = _bench_sqlite.run(quick=True)
    printed = capsys.readouterr().out
    assert "synchronous=FULL" in results["settings"]
    for workload in ("single_insert", "batch_insert_row", "point_select", "scan_10k"):
        entry = results[workload]
        for side in ("stdlib", "reference", "core"):
            assert entry[f"{side}_us"] > 0
            assert entry[f"{side}_rows_per_s"] > 0
        assert entry["core_over_stdlib"] == pytest.approx(entry["core_us"] / entry["stdlib_us"], rel=0.01)
        assert workload in printed
