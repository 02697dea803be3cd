"""The ``fast-crewai`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fast_crewai

SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": SRC, **env}
    return subprocess.run(
        [sys.executable, "-m", "fast_crewai", *args], capture_output=True, text=True, env=full_env, timeout=600
    )


@pytest.mark.parametrize("backend", ["wasm", "python"])
def test_status_json(backend: str) -> None:
    result = cli("status", "--json", "--enable", FAST_CREWAI_BACKEND=backend)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["core"]["backend"] == backend
    assert report["components"]["memory"]["active"] == ["memory.storage_factory"]
    assert report["components"]["memory"]["backend"] == backend
    assert report["components"]["database"]["backend"] == backend


def test_status_table_and_switches() -> None:
    result = cli("status", "--enable", FAST_CREWAI_MEMORY="0")
    assert result.returncode == 0, result.stderr
    memory_line = next(line for line in result.stdout.splitlines() if line.startswith("memory"))
    assert "off" in memory_line and "stock" in memory_line


def test_help_has_examples() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("status", "bench", "demo", "migrate-memory"):
        assert command in result.stdout


def test_bench_serde_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = cli("bench", "serde", "--quick", "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(out.read_text()) == report
    row = report["suites"]["serde"]["decode_batch_1000"]
    assert row["core_us"] > 0 and row["json_us"] > 0
    assert row["core_over_json"] == pytest.approx(row["core_us"] / row["json_us"], rel=0.01)


def test_unknown_bench_suite_is_an_error() -> None:
    result = cli("bench", "nonsense")
    assert result.returncode != 0
    assert "unknown suite" in result.stderr


def test_migrate_memory_without_a_source_fails_clearly(tmp_path: Path) -> None:
    result = cli("migrate-memory", "--from", str(tmp_path / "nothing"), "--to", str(tmp_path / "dst"))
    assert result.returncode == 1
    assert "migrate-memory:" in result.stderr
