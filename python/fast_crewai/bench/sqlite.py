"""SQLite through the wrapper, side by side with stdlib ``sqlite3`` on the same
workload and the same settings: rollback journal (``journal_mode=DELETE``),
``synchronous=FULL``, one connection per side, autocommit outside the
batches, each side on its own file in the same directory.

``core`` is the wrapper on the WebAssembly core, ``reference`` the wrapper
on its pure-Python backend (stdlib underneath plus the wrapper's checks,
locks and timeouts), ``stdlib`` plain ``sqlite3``. Times are per operation
(p50), measured workload by workload with every side in turn and the
cyclic garbage collector off; ratios are ours/stdlib time, so above 1 means
slower than stdlib. A shared machine adds noise: compare runs, not digits.
The wrapper holds a cross-process file lock around every call and the core
adds a boundary crossing with JSON in and out: expect small statements to
cost more than stdlib, and fsync-bound commits to cost about the same.
"""

from __future__ import annotations

import gc
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import CoreUnavailable
from ..runtime import backend as _backend
from ..sqlite_store._wrapper import AcceleratedSQLiteWrapper
from . import ratio, timings

SCHEMA = "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, score REAL)"
INSERT = "INSERT INTO items(name, score) VALUES (?, ?)"
POINT = "SELECT id, name, score FROM items WHERE id = ?"
SCAN = "SELECT id, name, score FROM items"
SCAN_ROWS = 10_000


@dataclass(frozen=True)
class _Side:
    """One side of the comparison: the four operations on one file."""

    insert: Callable[[tuple[Any, ...]], object]
    insert_many: Callable[[list[Any]], object]
    point: Callable[[int], object]
    scan: Callable[[], list[Any]]
    reset: Callable[[], object]
    close: Callable[[], object]


def _stdlib(path: Path) -> _Side:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(SCHEMA)

    def insert_many(rows: list[Any]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")

    return _Side(
        insert=lambda row: conn.execute(INSERT, row),
        insert_many=insert_many,
        point=lambda key: conn.execute(POINT, (key,)).fetchone(),
        scan=lambda: conn.execute(SCAN).fetchall(),
        reset=lambda: conn.execute("DELETE FROM items"),
        close=conn.close,
    )


def _wrapper(path: Path, backend: str) -> _Side:
    db = AcceleratedSQLiteWrapper(path, backend=backend)
    db.execute(SCHEMA)
    return _Side(
        insert=lambda row: db.execute(INSERT, row),
        insert_many=lambda rows: db.executemany(INSERT, rows),
        point=lambda key: db.query(POINT, (key,)),
        scan=lambda: db.query(SCAN),
        reset=lambda: db.execute("DELETE FROM items"),
        close=db.close,
    )


def _rows(count: int) -> list[tuple[str, float]]:
    return [(f"item {i} — naïve café", i / 7) for i in range(count)]


def _workloads(quick: bool) -> list[tuple[str, Callable[[_Side], float]]]:
    """(name, seconds per operation on a side) in the order they run; each
    leaves the table as the next expects."""
    singles = 30 if quick else 200
    batch = 2_000 if quick else 10_000
    row = ("one row", 0.5)
    rows = _rows(batch)

    def single_insert(side: _Side) -> float:
        return timings(lambda: side.insert(row), singles)["p50"]

    def batch_insert_row(side: _Side) -> float:
        side.reset()
        return timings(lambda: side.insert_many(rows), 3 if quick else 5, warmup=1)["p50"] / batch

    def point_select(side: _Side) -> float:
        side.reset()
        side.insert_many(_rows(SCAN_ROWS))
        keys = iter(range(10**9))
        return timings(lambda: side.point(next(keys) % SCAN_ROWS + 1), 300 if quick else 3000)["p50"]

    def scan_10k(side: _Side) -> float:
        assert len(side.scan()) == SCAN_ROWS
        return timings(side.scan, 5 if quick else 20, warmup=1)["p50"]

    return [(f.__name__, f) for f in (single_insert, batch_insert_row, point_select, scan_10k)]


def run(quick: bool) -> dict[str, Any]:
    makers: dict[str, Callable[[Path], _Side]] = {
        "stdlib": _stdlib,
        "reference": lambda path: _wrapper(path, "python"),
    }
    try:
        _backend.runtime()
        makers["core"] = lambda path: _wrapper(path, "wasm")
    except CoreUnavailable as exc:
        print(f"  core unavailable ({exc}); measuring the reference only", flush=True)
    measured: dict[str, dict[str, float]] = {name: {} for name in makers}
    with tempfile.TemporaryDirectory(prefix="fcw-bench-sqlite-") as tmp:
        sides = {name: make(Path(tmp) / f"{name}.db") for name, make in makers.items()}
        # Workload by workload, every side in turn, without the cyclic garbage
        # collector: background load and collections then hit all sides alike.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for workload, measure in _workloads(quick):
                for name, side in sides.items():
                    measured[name][workload] = measure(side)
        finally:
            if collecting:
                gc.enable()
            for side in sides.values():
                side.close()
    out: dict[str, Any] = {
        "settings": "journal_mode=DELETE, synchronous=FULL, autocommit per single insert, one transaction per batch",
    }
    units = {"single_insert": 1, "batch_insert_row": 1, "point_select": 1, "scan_10k": SCAN_ROWS}
    for workload, rows_per_op in units.items():
        entry: dict[str, Any] = {}
        for name, results in measured.items():
            seconds = results[workload]
            entry[f"{name}_us"] = round(seconds * 1e6, 2)
            entry[f"{name}_rows_per_s"] = round(rows_per_op / seconds)
        for name in ("core", "reference"):
            if name in measured:
                entry[f"{name}_over_stdlib"] = ratio(measured[name][workload], measured["stdlib"][workload])
        out[workload] = entry
        times = "  ".join(f"{n} {entry[f'{n}_us']} us ({entry[f'{n}_rows_per_s']} rows/s)" for n in measured)
        ratios = "  ".join(f"{n}/stdlib {entry[f'{n}_over_stdlib']}x" for n in ("core", "reference") if n in measured)
        print(f"  {workload:<18} {times}   {ratios}", flush=True)
    return out
