"""The store's file format is written once (``schema.sql`` and
``constants.json`` in ``fast_crewai/memory_search/``) and both backends lay
files out by it: read back with stdlib ``sqlite3``, a file either backend
wrote has the same tables, page size and file-level pragmas."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fast_crewai.memory_search import _contract
from fast_crewai.memory_search._contract import MemoryIndex
from fast_crewai.memory_search._core import WasmMemoryIndex
from fast_crewai.memory_search._reference import PythonMemoryIndex

RECORDS = json.dumps(
    [
        {"id": "a", "content": "alpha", "scope": "/s", "created_at": "t1", "created_ts": 1.0, "embedding": "AACAPw=="},
        {"id": "b", "content": "beta", "created_at": "t2", "created_ts": 2.0, "metadata": {"k": [1, 2.5]}},
    ]
)
FILE_PRAGMAS = ("page_size", "auto_vacuum", "encoding", "user_version", "application_id", "journal_mode")


def layout(database: Path) -> dict[str, Any]:
    """What a file holds besides its rows, as stdlib ``sqlite3`` reads it."""
    conn = sqlite3.connect(database)
    try:
        return {
            "schema": conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name").fetchall(),
            "pragmas": {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in FILE_PRAGMAS},
            "store_meta": conn.execute("SELECT key, value FROM store_meta ORDER BY key").fetchall(),
            "rows": conn.execute("SELECT * FROM memories ORDER BY seq").fetchall(),
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
        }
    finally:
        conn.close()


def written_by(kind: type[WasmMemoryIndex] | type[PythonMemoryIndex], database: Path) -> dict[str, Any]:
    index: MemoryIndex = kind(database)
    try:
        index.save(RECORDS)
    finally:
        index.close()
    return layout(database)


def test_both_backends_write_the_same_file_layout(tmp_path: Path) -> None:
    core = written_by(WasmMemoryIndex, tmp_path / "core.db")
    reference = written_by(PythonMemoryIndex, tmp_path / "reference.db")
    assert core == reference
    assert core["integrity"] == [("ok",)]
    assert core["pragmas"]["page_size"] == _contract.PAGE_SIZE == 32768
    assert core["pragmas"]["journal_mode"] == _contract.JOURNAL_MODE.lower()
    # Every table is one the shared schema file creates, as it is written there.
    statements = [sql for kind, _, _, sql in core["schema"] if kind == "table"]
    assert [name for kind, name, _, _ in core["schema"] if kind == "table"] == [
        "memories",
        "memory_changes",
        "store_meta",
    ]
    for sql in statements:
        assert sql.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1) in _contract.SCHEMA
    # Both log the write alike: the dimension set (None), then each record,
    # with the change counter the write found.
    logs = []
    for name in ("core.db", "reference.db"):
        conn = sqlite3.connect(tmp_path / name)
        try:
            logs.append(conn.execute("SELECT seq, counter, id FROM memory_changes ORDER BY seq").fetchall())
        finally:
            conn.close()
    assert logs[0] == logs[1]
    assert [id for _, _, id in logs[0]] == [None, "a", "b"]
    assert len({counter for _, counter, _ in logs[0]}) == 1


@pytest.mark.parametrize("opener", [WasmMemoryIndex, PythonMemoryIndex])
def test_each_backend_opens_the_others_file_without_changing_its_layout(
    tmp_path: Path, opener: type[WasmMemoryIndex] | type[PythonMemoryIndex]
) -> None:
    other = PythonMemoryIndex if opener is WasmMemoryIndex else WasmMemoryIndex
    database = tmp_path / "memory.db"
    before = written_by(other, database)
    index = opener(database)
    try:
        assert index.count(None) == 2
    finally:
        index.close()
    assert layout(database) == before


def test_the_reference_connection_uses_the_shared_pragmas(tmp_path: Path) -> None:
    index = PythonMemoryIndex(tmp_path / "memory.db")
    try:
        conn = index._conn
        # synchronous and cache_size belong to the connection, not the file.
        assert (
            conn.execute("PRAGMA synchronous").fetchone()[0]
            == {"OFF": 0, "NORMAL": 1, "FULL": 2}[_contract.SYNCHRONOUS]
        )
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == _contract.CACHE_SIZE
    finally:
        index.close()
