"""``fast-crewai migrate-memory``: copies CrewAI's LanceDB memory store into
an :class:`~fast_crewai.memory_search._storage.AcceleratedMemoryStorage` store.

The source is only read (no ``LanceDBStorage`` is built: its constructor
indexes and compacts the table), and checked unchanged afterwards. The copy
is verified by count and by comparing a sample of records with the source.
LanceDB keeps every row saved under an id; the copy keeps the last one.
A zero vector is LanceDB's placeholder for "no embedding" and is copied as
none (it still ranks as a zero vector).
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from .._errors import MemoryStoreError, MigrationError
from ..runtime import backend as _backend
from ._contract import MemoryIndex
from ._open import open_index, release_index
from ._records import _parse_datetime, _timestamp, record_from_wire
from ._storage import DATABASE_NAME, default_directory

TABLE = "memories"
BATCH_ROWS = 500
SAMPLE = 100
_SCALAR_COLUMNS = (
    "id",
    "content",
    "scope",
    "categories_str",
    "metadata_str",
    "importance",
    "created_at",
    "last_accessed",
    "source",
    "private",
)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _wire_rows(batch: Any) -> Iterator[dict[str, Any]]:
    """The contract's record objects for one Arrow batch of LanceDB rows,
    read as ``LanceDBStorage._row_to_record`` reads them."""
    vectors = batch.column("vector")
    if vectors.null_count:
        raise MigrationError("the LanceDB table has rows without a vector, which LanceDBStorage never writes")
    matrix = vectors.flatten().to_numpy(zero_copy_only=False).astype("<f4").reshape(len(batch), -1)
    for row, vector in zip(batch.select(list(_SCALAR_COLUMNS)).to_pylist(), matrix, strict=True):
        created_at = _iso(row["created_at"])
        yield {
            "id": str(row["id"]),
            "content": str(row["content"]),
            "scope": str(row["scope"]),
            "categories": json.loads(row["categories_str"]) if row["categories_str"] else [],
            "metadata": json.loads(row["metadata_str"]) if row["metadata_str"] else {},
            "importance": float(row["importance"]),
            "created_at": created_at,
            "created_ts": _timestamp(_parse_datetime(created_at)),
            "last_accessed": _iso(row["last_accessed"]),
            "source": row["source"] or None,
            "private": bool(row["private"]),
            "embedding": base64.b64encode(vector.tobytes()).decode("ascii") if vector.any() else None,
        }


def _fingerprint(directory: Path) -> list[tuple[str, int, int]]:
    """Every file under ``directory`` (but ours) with its size and mtime."""
    found = []
    for root, _, files in os.walk(directory):
        for name in files:
            if name.startswith(DATABASE_NAME):
                continue
            path = Path(root) / name
            stat = path.stat()
            found.append((str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def _source_rows(table: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The last source row of each id, read again from LanceDB."""
    quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    rows: dict[str, dict[str, Any]] = {}
    for batch in table.search().where(f"id IN ({quoted})").to_batches(batch_size=BATCH_ROWS):
        for item in _wire_rows(batch):
            rows[item["id"]] = item
    return rows


def _differences(expected: dict[str, Any], stored: str | None) -> list[str]:
    if stored is None:
        return ["missing"]
    # The store returns embeddings as hex, not the base64 it is given.
    embedding = expected["embedding"]
    want = record_from_wire({**expected, "embedding": embedding and base64.b64decode(embedding).hex()})
    got = record_from_wire(json.loads(stored))
    return [name for name in want.model_fields if getattr(want, name) != getattr(got, name)]


def _copy(table: Any, index: MemoryIndex, source: Path, database: Path) -> dict[str, Any]:
    """Copies every row of ``table`` into ``index`` and verifies the copy."""
    count_before = index.count(None)
    source_rows = 0
    ids: dict[str, None] = {}
    already = 0
    for batch in table.search().to_batches(batch_size=BATCH_ROWS):
        items = list(_wire_rows(batch))
        source_rows += len(items)
        for item in items:
            if item["id"] not in ids:
                ids[item["id"]] = None
                if count_before and index.get(item["id"]) is not None:
                    already += 1
        try:
            index.save(json.dumps(items, ensure_ascii=False, separators=(",", ":")))
        except MemoryStoreError as exc:
            raise MigrationError(f"{database} refused records from {source}: {exc}") from exc
    count_after = index.count(None)
    expected_count = count_before + len(ids) - already
    if count_after != expected_count:
        raise MigrationError(f"{database} holds {count_after} records after the copy, expected {expected_count}")
    sample = random.Random(0).sample(list(ids), min(SAMPLE, len(ids)))
    for id, expected in _source_rows(table, sample).items():
        wrong = _differences(expected, index.get(id))
        if wrong:
            raise MigrationError(f"record {id!r} differs from the source in {', '.join(wrong)}")
    return {
        "source_rows": source_rows,
        "records": len(ids),
        "duplicate_rows": source_rows - len(ids),
        "dimension": index.dimension(),
        "count_before": count_before,
        "count_after": count_after,
        "sampled": len(sample),
    }


def migrate_memory(
    src: str | os.PathLike[str] | None = None,
    dst: str | os.PathLike[str] | None = None,
    *,
    backend: str | None = None,
) -> dict[str, Any]:
    """Copies the LanceDB memory store in directory ``src`` into our store in
    directory ``dst`` (both default to CrewAI's memory directory, where the
    two stores live side by side). Records already in ``dst`` stay; an id in
    both is overwritten by the source's. Returns a report; raises
    :class:`MigrationError` when it cannot run or the copy does not verify."""
    started = time.perf_counter()
    source = Path(src) if src is not None else default_directory()
    destination = Path(dst) if dst is not None else default_directory()
    try:
        import lancedb
    except ImportError as exc:
        raise MigrationError(f"reading a LanceDB store needs the lancedb package ({exc})") from None
    if not (source / f"{TABLE}.lance").is_dir():
        raise MigrationError(f"{source} holds no LanceDB memory table ({TABLE}.lance)")
    before = _fingerprint(source)
    try:
        table = lancedb.connect(str(source)).open_table(TABLE)
    except Exception as exc:  # lancedb raises many types for an unreadable table
        raise MigrationError(f"cannot read the LanceDB table in {source}: {exc}") from exc
    destination.mkdir(parents=True, exist_ok=True)
    database = destination.resolve() / DATABASE_NAME
    chosen = backend or _backend.active()
    try:
        index = open_index(chosen, database)
    except MemoryStoreError as exc:
        raise MigrationError(f"cannot open {database}: {exc}") from exc
    try:
        report = _copy(table, index, source, database)
    except MigrationError:
        raise
    except (MemoryStoreError, ValueError) as exc:  # ValueError: a source row LanceDBStorage could not read either
        raise MigrationError(f"copying {source} into {database} failed: {exc}") from exc
    finally:
        release_index(index)
    if _fingerprint(source) != before:
        raise MigrationError(f"the LanceDB files in {source} changed during the migration")
    return {
        "source": str(source),
        "destination": str(database),
        "backend": chosen,
        **report,
        "verified": True,
        "seconds": round(time.perf_counter() - started, 3),
    }
