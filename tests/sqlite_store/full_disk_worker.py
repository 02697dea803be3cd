"""Fills the disk under a database: ``python full_disk_worker.py <backend>
<directory>``, as root in a mount namespace of its own. It mounts a small
disk on the directory, inserts blobs through one wrapper until an insert
fails, fills what room is left, tries every kind of write, frees the room,
writes again through the same wrapper, and prints one JSON report of what
happened."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from full_disk import files, fill, free, mount_small_disk, raised, room

from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper

#: The size of each blob inserted until the disk is full.
BLOB = 60_000
INSERT = "INSERT INTO blobs(tag, body) VALUES (?, ?)"


def on_file(database: Path) -> dict[str, Any]:
    """The file as stdlib sqlite3 reads it (read-only: it writes nothing)."""
    conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
            "rows": conn.execute("SELECT tag, length(body) FROM blobs ORDER BY id").fetchall(),
        }
    finally:
        conn.close()


def blob(tag: str, size: int = BLOB) -> tuple[str, bytes]:
    return tag, tag.encode()[:1] * size


def writes(db: AcceleratedSQLiteWrapper, label: str) -> dict[str, Any]:
    """One of each kind of write, each tagged with ``label``."""

    def transaction() -> None:
        with db.transaction():
            db.execute(INSERT, blob(f"{label} transaction small", 10))
            db.execute(INSERT, blob(f"{label} transaction"))

    return {
        "execute": raised(lambda: db.execute(INSERT, blob(f"{label} execute"))),
        "executemany": raised(lambda: db.executemany(INSERT, [blob(f"{label} many {i}", BLOB // 4) for i in range(4)])),
        "transaction": raised(transaction),
        "small": raised(lambda: db.execute(INSERT, blob(f"{label} small", 10))),
    }


def rewrite_everything(db: AcceleratedSQLiteWrapper) -> None:
    """A transaction whose journal outgrows the room: every row rewritten
    in place, through a page cache so small that SQLite writes changed
    pages to the file (after their originals to the journal) long before
    the journal is full. The cache stays small."""
    db.execute("PRAGMA cache_size=8")
    with db.transaction():
        db.execute("UPDATE blobs SET body = zeroblob(length(body))")


def state(db: AcceleratedSQLiteWrapper, database: Path) -> dict[str, Any]:
    """The rows as the wrapper reads them, and the file as stdlib does."""
    return {
        "rows": db.query("SELECT tag, length(body) FROM blobs ORDER BY id"),
        "file": on_file(database),
        "files": files(database.parent),
    }


def report(directory: Path, backend: str) -> dict[str, Any]:
    taken = mount_small_disk(directory)
    database = directory / "db" / "t.db"
    database.parent.mkdir()
    db = AcceleratedSQLiteWrapper(database, backend=backend)
    db.execute("CREATE TABLE blobs(id INTEGER PRIMARY KEY, tag TEXT NOT NULL, body BLOB NOT NULL)")
    inserted: list[str] = []
    result: dict[str, Any] = {}
    for n in range(1000):
        failed = raised(lambda n=n: db.execute(INSERT, blob(f"row {n}")))
        if failed is not None:
            result["insert"] = failed
            break
        inserted.append(f"row {n}")
    result["inserted"] = inserted
    result["after the failed insert"] = state(db, database)
    taken.append(fill(directory))
    result["room when full"] = room(directory)
    result["full"] = writes(db, "full")
    result["while full"] = state(db, database)
    free(taken)
    result["room again"] = room(directory)
    result["spilled"] = raised(lambda: rewrite_everything(db))
    # Before the wrapper's next call, which would roll a journal back.
    result["files after the spilled transaction"] = files(database.parent)
    db.execute("PRAGMA cache_size=-2000")
    result["after the spilled transaction"] = state(db, database)
    result["writes with room again"] = writes(db, "again")
    result["with room again"] = state(db, database)
    db.close()
    result["closed"] = {"file": on_file(database), "files": files(database.parent)}
    with AcceleratedSQLiteWrapper(database, backend=backend) as reopened:
        result["reopened"] = state(reopened, database)
    return result


def main() -> None:
    backend, directory = sys.argv[1:3]
    print(json.dumps(report(Path(directory), backend)))


if __name__ == "__main__":
    main()
