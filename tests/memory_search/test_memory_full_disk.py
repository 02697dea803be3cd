"""A memory store on a disk that fills up, on both backends: the write that
meets the full disk raises :class:`DiskFullError` (a
:class:`StorageFailure`), nothing saved before is lost, nothing of the
failed write is visible, the index agrees with the file, the same store
reads while the disk is full and writes again once there is room, and no
journal is left behind."""

from __future__ import annotations

import sys
from pathlib import Path

import full_disk_memory_worker as worker
from full_disk import DISK_FULL
from process_helpers import in_own_mount_namespace, run_worker

from fast_crewai.memory_search._storage import DATABASE_NAME


def test_a_full_disk_fails_the_write_with_a_typed_error_and_loses_nothing(backend: str, tmp_path: Path) -> None:
    command = [sys.executable, str(Path(worker.__file__)), backend, str(tmp_path)]
    report = run_worker(in_own_mount_namespace(command, "mount a small disk and fill it"))

    saved = report["saved"]
    # The store's own saves filled the disk, some way in.
    assert len(saved) > 12 + 5 * worker.BATCH
    assert report["save"] == DISK_FULL
    assert report["failed batch seen"] == []
    files = [DATABASE_NAME, f"{DATABASE_NAME}.lock"]
    whole = {"integrity": [["ok"]], "ids": saved}
    # The index (count, listing) and the file agree: the saves that returned.
    assert report["after the failed save"] == {"count": len(saved), "ids": saved, "file": whole, "files": files}

    assert report["room when full"] == 0
    writes = ["touch", "delete", "delete scope", "small save", "update", "reset"]
    assert report["full"] == dict.fromkeys(writes, DISK_FULL)
    assert report["while full"] == report["after the failed save"]
    # Every read answers as before: searches, gets, listings, scopes, counts.
    assert report["reads while full"] == report["reads after the failed save"]
    assert report["reads while full"]["get"]["id"] == "base-1"

    assert 0 < report["room"] < len(saved) * worker.TEXT
    assert report["rewrite"] == DISK_FULL
    assert report["files after the rewrite"] == files
    assert report["after the rewrite"] == report["while full"]
    assert report["reads after the rewrite"] == report["reads while full"]

    assert report["room again"] == {"save": None, "touch": None, "delete": None}
    after = sorted({*saved, *(f"again-{i}" for i in range(worker.BATCH))} - {"base-3"})
    expected = {"count": len(after), "ids": after, "file": {"integrity": [["ok"]], "ids": after}, "files": files}
    assert report["with room again"] == expected
    assert report["closed"] == {"file": expected["file"], "files": files}
    assert report["reopened"] == expected
