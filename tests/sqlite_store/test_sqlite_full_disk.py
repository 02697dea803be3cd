"""The SQLite wrapper on a disk that fills up, on both backends: the write
that meets the full disk raises :class:`DiskFullError` (an
:class:`SQLiteError`), whether ``execute``, ``executemany`` or a
``transaction()``; nothing committed before is lost, nothing of the failed
write is visible, the same wrapper reads while the disk is full and writes
again once there is room, and no journal is left behind."""

from __future__ import annotations

import sys
from pathlib import Path

import full_disk_worker as worker
from full_disk import DISK_FULL
from process_helpers import in_own_mount_namespace, run_worker


def test_a_full_disk_fails_each_write_with_a_typed_error_and_loses_nothing(backend: str, tmp_path: Path) -> None:
    command = [sys.executable, str(Path(worker.__file__)), backend, str(tmp_path)]
    report = run_worker(in_own_mount_namespace(command, "mount a small disk and fill it"))

    # The inserts filled the disk, some way in.
    assert len(report["inserted"]) > 10
    assert report["insert"] == DISK_FULL
    rows = [[tag, worker.BLOB] for tag in report["inserted"]]
    files = ["t.db", "t.db.lock"]
    # The file holds the inserts that returned, whole, and nothing else.
    before = {"rows": rows, "file": {"integrity": [["ok"]], "rows": rows}, "files": files}
    assert report["after the failed insert"] == before

    assert report["room when full"] == 0
    assert report["full"] == {
        "execute": DISK_FULL,
        "executemany": DISK_FULL,
        "transaction": DISK_FULL,
        "small": DISK_FULL,
    }
    assert report["while full"] == before

    # Room for part of a journal of every row: the transaction fails on the
    # way, after changed pages reached the file, and its journal restores
    # them.
    assert 0 < report["room again"] < worker.BLOB * len(report["inserted"])
    assert report["spilled"] == DISK_FULL
    assert report["files after the spilled transaction"] == files
    assert report["after the spilled transaction"] == before

    assert report["writes with room again"] == {
        "execute": None,
        "executemany": None,
        "transaction": None,
        "small": None,
    }
    quarter = worker.BLOB // 4
    rows += [["again execute", worker.BLOB], *(["again many " + str(i), quarter] for i in range(4))]
    rows += [["again transaction small", 10], ["again transaction", worker.BLOB], ["again small", 10]]
    after = {"rows": rows, "file": {"integrity": [["ok"]], "rows": rows}, "files": files}
    assert report["with room again"] == after
    assert report["closed"] == {"file": after["file"], "files": files}
    assert report["reopened"] == after
