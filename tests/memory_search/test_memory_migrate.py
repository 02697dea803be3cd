"""``migrate_memory``: a LanceDB memory store copied into ours, verified,
with the source left byte for byte as it was."""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from crewai.memory.storage.lancedb_storage import LanceDBStorage
from crewai.memory.types import MemoryRecord

from fast_crewai import MemoryStoreError
from fast_crewai.memory_search._migrate import migrate_memory
from fast_crewai.memory_search._storage import DATABASE_NAME, AcceleratedMemoryStorage

T0 = datetime(2026, 5, 1, 10, 0, 0)


def records() -> list[MemoryRecord]:
    return [
        MemoryRecord(
            id=f"r{i}",
            content=f"fact number {i} ünïcode 😀",
            scope=f"/crew/agent-{i % 3}",
            categories=[f"c{i % 2}"],
            metadata={"i": i, "nested": {"even": i % 2 == 0}},
            importance=i / 40,
            created_at=T0 + timedelta(minutes=i),
            last_accessed=T0 + timedelta(minutes=i, seconds=1),
            embedding=[float(i), 1.0, -0.5, 0.25],
            source="agent" if i % 2 else None,
            private=i % 4 == 0,
        )
        for i in range(30)
    ]


def digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith(DATABASE_NAME)
    }


@pytest.fixture
def lance_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "memory"
    lance = LanceDBStorage(directory, compact_every=0)
    lance.save(records())
    lance.save([MemoryRecord(id="bare", content="no embedding", created_at=T0, last_accessed=T0)])
    # LanceDB keeps both rows of a re-saved id; the copy keeps the last.
    lance.save([records()[3].model_copy(update={"content": "second version"})])
    return directory


def test_migration_copies_and_verifies(backend: str, lance_dir: Path, tmp_path: Path) -> None:
    before = digest(lance_dir)
    report = migrate_memory(lance_dir, tmp_path / "ours")
    assert digest(lance_dir) == before
    assert report["backend"] == backend and report["verified"]
    assert (report["source_rows"], report["records"], report["duplicate_rows"]) == (32, 31, 1)
    assert (report["count_before"], report["count_after"], report["dimension"]) == (0, 31, 4)
    assert report["sampled"] == 31
    lance = LanceDBStorage(lance_dir, compact_every=0)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        for record in records()[:3]:
            mine, theirs = ours.get_record(record.id), lance.get_record(record.id)
            assert mine is not None and theirs is not None
            assert mine.model_dump() == theirs.model_dump() and mine.embedding == theirs.embedding
        second = ours.get_record("r3")
        assert second is not None and second.content == "second version"
        bare = ours.get_record("bare")
        assert bare is not None and bare.embedding is None
        query = [7.2, 1.0, -0.5, 0.25]
        assert [r.id for r, _ in ours.search(query, limit=5)] == [r.id for r, _ in lance.search(query, limit=5)]


def test_default_paths_put_the_stores_side_by_side(
    backend: str, lance_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(lance_dir.parent))
    first = migrate_memory()
    assert first["destination"] == str((lance_dir / DATABASE_NAME).resolve())
    # Running it again rewrites the same records.
    again = migrate_memory()
    assert (again["count_before"], again["count_after"]) == (31, 31)


def test_records_already_in_the_destination_stay(backend: str, lance_dir: Path, tmp_path: Path) -> None:
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        ours.save([MemoryRecord(id="mine", content="kept", embedding=[0.0, 0.0, 0.0, 1.0])])
        ours.save([records()[0].model_copy(update={"content": "overwritten by the source"})])
    report = migrate_memory(lance_dir, tmp_path / "ours")
    assert (report["count_before"], report["count_after"]) == (2, 32)
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        mine, first = ours.get_record("mine"), ours.get_record("r0")
        assert mine is not None and first is not None and first.content == records()[0].content


def test_a_dimension_clash_is_a_migration_error(backend: str, lance_dir: Path, tmp_path: Path) -> None:
    with AcceleratedMemoryStorage(tmp_path / "ours") as ours:
        ours.save([MemoryRecord(id="mine", content="2-d", embedding=[0.0, 1.0])])
    with pytest.raises(MemoryStoreError, match="refused"):
        migrate_memory(lance_dir, tmp_path / "ours")


def test_no_lancedb_table_is_a_migration_error(tmp_path: Path) -> None:
    with pytest.raises(MemoryStoreError, match="no LanceDB memory table"):
        migrate_memory(tmp_path, tmp_path / "ours")


def test_without_lancedb_installed_it_says_so(lance_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lancedb", None)
    with pytest.raises(MemoryStoreError, match="lancedb package"):
        migrate_memory(lance_dir, tmp_path / "ours")
