"""The SQLite benchmark compares like with like: every side runs the same
statements on a file with the same settings and ends with the same rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fast_crewai.bench import sqlite as _bench_sqlite


def _file_settings(path: Path) -> tuple[str, int]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0], conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["wasm", "python"])
def test_the_wrapper_side_does_the_work_of_the_stdlib_side(tmp_path: Path, backend: str) -> None:
    stdlib = _bench_sqlite._stdlib(tmp_path / "stdlib.db")
    ours = _bench_sqlite._wrapper(tmp_path / "ours.db", backend)
    try:
        rows = _bench_sqlite._rows(300)
        for side in (stdlib, ours):
            side.insert(rows[0])
            side.insert_many(rows[1:])
        assert [tuple(r) for r in ours.scan()] == [tuple(r) for r in stdlib.scan()]
        assert len(stdlib.scan()) == 300
        for key in (1, 150, 300):
            (row,) = ours.point(key)  # type: ignore[misc]
            assert tuple(row) == tuple(stdlib.point(key))  # type: ignore[arg-type]
        ours.reset()
        stdlib.reset()
        assert ours.scan() == [] and stdlib.scan() == []
    finally:
        stdlib.close()
        ours.close()
    assert _file_settings(tmp_path / "ours.db") == _file_settings(tmp_path / "stdlib.db")
    assert _file_settings(tmp_path / "ours.db")[0] == "delete"
