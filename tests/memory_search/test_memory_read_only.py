"""Memory stores on read-only media, and opened read-only on purpose, on
both backends: every read answers what the writable store answers, every
write raises :class:`ReadOnlyStoreError` and leaves the file as it was,
CrewAI's recall works, and a writer in another process is seen at the
reader's next call."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import readonly_memory_worker as worker
from process_helpers import AS_ROOT, WORKER_PATH, in_own_mount_namespace, integrity, run_worker
from test_memory_hardening import write_version_1_file

from fast_crewai import InvalidRecordError, ReadOnlyStoreError, StorageFailure
from fast_crewai.memory_search._contract import HOT_JOURNAL
from fast_crewai.memory_search._core import WasmMemoryIndex
from fast_crewai.memory_search._reference import PythonMemoryIndex
from fast_crewai.memory_search._storage import DATABASE_NAME, AcceleratedMemoryStorage
from fast_crewai.runtime import filelock

WORKER = Path(worker.__file__)


def write_store(directory: Path, count: int = 12) -> dict[str, Any]:
    """A store of ``count`` base records; returns every read of it."""
    with AcceleratedMemoryStorage(directory) as store:
        store.save(worker.records("base", count))
        store.touch_records(["base-0"])
        return worker.reads(store)


def rows(database: Path) -> list[tuple[Any, ...]]:
    """The records as stdlib sqlite3 reads them, and the file's check."""
    conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, content, scope, last_accessed FROM memories ORDER BY seq").fetchall()
    finally:
        conn.close()


def worker_command(mode: str, backend: str, source: Path, mount: Path) -> list[str]:
    """As root: in a mount namespace of its own, through a read-only bind
    of ``source`` at ``mount`` (real EROFS). Otherwise ``source`` itself,
    which the caller makes unwritable or the worker opens read-only."""
    command = [sys.executable, str(WORKER), mode, backend, str(source)]
    if not AS_ROOT:
        return command
    mount.mkdir()
    return in_own_mount_namespace([*command, str(mount)], "mount a read-only directory")


@pytest.fixture
def source(backend: str, tmp_path: Path) -> Iterator[Path]:
    """A directory holding a store, written by this process."""
    directory = tmp_path / "source"
    (directory / "store").mkdir(parents=True)
    yield directory
    directory.chmod(0o755)


# --------------------------------------------------------------------------- read-only media


def test_a_store_on_read_only_media_reads_and_refuses_every_write(backend: str, source: Path) -> None:
    expected = write_store(source / "store")
    (source / "empty").mkdir()
    (source / "version 1").mkdir()
    write_version_1_file(source / "version 1" / DATABASE_NAME)
    database = source / "store" / DATABASE_NAME
    before = rows(database)
    command = worker_command("report", backend, source, source.parent / "mount")
    if not AS_ROOT:
        source.chmod(0o555)
    try:
        report = run_worker(command)
    finally:
        source.chmod(0o755)

    seen = source.parent / "mount" if AS_ROOT else source
    why = "its directory is on a read-only file system" if AS_ROOT else "this process may not write to its directory"
    assert report["media"].startswith("unexpected OSError: [Errno 30]" if AS_ROOT else "unexpected PermissionError")
    assert report["read only"] is True
    assert report["reads"] == expected
    assert report["reads after"] == expected
    assert report["asked reads"] == expected
    db = seen / "store" / DATABASE_NAME
    assert len(report["writes"]) == 12
    for name, (verb, got) in report["writes"].items():
        assert got == f"ReadOnlyStoreError: {db}: {verb} would write to a store opened read-only ({why})", name
    assert report["touch"] == "ok"
    assert len(report["recall"]) == 6 and all(id.startswith("base-") for id in report["recall"])
    assert report["open empty"] == (
        f"ReadOnlyStoreError: {seen / 'empty' / DATABASE_NAME}: the file does not exist, "
        f"and a store opened read-only does not create it ({why})"
    )
    assert report["open absent"].startswith(f"ReadOnlyStoreError: {seen / 'absent'} does not exist and cannot be")
    assert report["open version 1"] == (
        f"ReadOnlyStoreError: {seen / 'version 1' / DATABASE_NAME}: the file has schema version 1, older than "
        f"this version's 2; open it writable once to migrate it before reading it read-only ({why})"
    )
    assert report["files unchanged"] is True
    # Nothing was written: not a record, not last_accessed, no file beside it.
    assert rows(database) == before
    assert integrity(database) == [("ok",)]
    assert sorted(p.name for p in source.iterdir()) == ["empty", "store", "version 1"]
    assert sorted(p.name for p in (source / "empty").iterdir()) == []


def test_a_read_only_reader_sees_a_writer_in_another_process(
    backend: str, source: Path, children: list[subprocess.Popen[str]]
) -> None:
    write_store(source / "store")
    command = worker_command("follow", backend, source, source.parent / "mount")
    env = {**os.environ, "PYTHONPATH": WORKER_PATH}
    reader = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    children.append(reader)
    assert reader.stdin is not None and reader.stdout is not None

    def ask(command: str) -> Any:
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write(command + "\n")
        reader.stdin.flush()
        return json.loads(reader.stdout.readline())

    assert json.loads(reader.stdout.readline()) == {"read only": True, "count": 12}
    with AcceleratedMemoryStorage(source / "store") as writer:
        assert not writer.read_only
        for round in range(3):
            writer.save(worker.records(f"round{round}", 4))
            writer.delete(record_ids=[f"base-{round}"])
            got = ask("read")
            assert got["count"] == 12 + 3 * (round + 1)
            assert got["ids"] == sorted(r.id for r in writer.list_records(limit=10_000))
        # Reads while the writer commits: each sees a whole commit.
        reader.stdin.write("loop 300\n")
        reader.stdin.flush()
        for batch in range(10):
            writer.save(worker.records(f"busy{batch}", 5))
        counts = json.loads(reader.stdout.readline())["counts"]
        assert all((count - 21) % 5 == 0 and 21 <= count <= 71 for count in counts), counts
        assert counts == sorted(counts)
        assert ask("read")["count"] == 71
    reader.stdin.write("quit\n")
    reader.stdin.flush()
    assert reader.wait(timeout=60) == 0
    assert integrity(source / "store" / DATABASE_NAME) == [("ok",)]


# --------------------------------------------------------------------------- read-only on request


def test_read_only_on_request_in_a_writable_directory(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = write_store(tmp_path)
    database = tmp_path / DATABASE_NAME
    before = rows(database)
    with AcceleratedMemoryStorage(tmp_path, read_only=True) as reader:
        assert reader.read_only
        assert worker.reads(reader) == expected
        for verb, action in worker.writes(reader).values():
            # What caught StorageFailure before catches this too.
            with pytest.raises(StorageFailure) as caught:
                action()
            assert type(caught.value) is ReadOnlyStoreError
            assert str(caught.value) == (
                f"{database}: {verb} would write to a store opened read-only (opened with read_only=True)"
            )
        reader.touch_records(["base-1"])
        assert worker.recall(reader)
        # Refused as read-only whatever the batch's size (on the core, a
        # batch past the core's memory would be refused for that first).
        monkeypatch.setenv("FAST_CREWAI_MEMORY_LIMIT_MB", "16")
        huge = worker.records("huge", 1)
        huge[0].content = "x" * (5 << 20)
        with pytest.raises(ReadOnlyStoreError, match="save would write to a store opened read-only"):
            reader.save(huge)
        monkeypatch.delenv("FAST_CREWAI_MEMORY_LIMIT_MB")
        # A writer in this process too: the reader sees its commits.
        with AcceleratedMemoryStorage(tmp_path) as writer:
            assert not writer.read_only
            writer.save(worker.records("late", 2))
            assert reader.count() == 14
            assert reader.get_record("late-1") is not None
            writer.delete(record_ids=["late-0", "late-1"])
        assert worker.reads(reader) == expected
    assert rows(database) == before
    assert integrity(database) == [("ok",)]


def test_a_missing_store_is_not_created_read_only(backend: str, tmp_path: Path) -> None:
    with pytest.raises(ReadOnlyStoreError, match="does not exist, and a store opened read-only does not create it"):
        AcceleratedMemoryStorage(tmp_path / "nowhere", read_only=True)
    with pytest.raises(ReadOnlyStoreError, match="does not exist, and a store opened read-only does not create it"):
        AcceleratedMemoryStorage(tmp_path, read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_the_stores_tables_is_refused_read_only(backend: str, tmp_path: Path) -> None:
    (tmp_path / DATABASE_NAME).write_bytes(b"")
    with pytest.raises(ReadOnlyStoreError, match="no table memories, store_meta, memory_changes"):
        AcceleratedMemoryStorage(tmp_path, read_only=True)
    assert (tmp_path / DATABASE_NAME).stat().st_size == 0


def test_an_older_schema_must_be_opened_writable_once(backend: str, tmp_path: Path) -> None:
    database = tmp_path / DATABASE_NAME
    write_version_1_file(database)
    before = database.read_bytes()
    with pytest.raises(ReadOnlyStoreError, match="schema version 1, older than this version's 2; open it writable"):
        AcceleratedMemoryStorage(tmp_path, read_only=True)
    assert database.read_bytes() == before
    AcceleratedMemoryStorage(tmp_path).close()
    with AcceleratedMemoryStorage(tmp_path, read_only=True) as reader:
        assert sorted(r.scope for r in reader.list_records()) == ["/", "/crew/a", "/crew/b"]


def test_a_crashed_writers_journal_is_refused_read_only(backend: str, tmp_path: Path) -> None:
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    crashed.mkdir()
    write_store(live)
    # The file and journal as a writer left them when it died mid-write: the
    # update spills past the page cache, so the journal is synced and valid.
    conn = sqlite3.connect(live / DATABASE_NAME, isolation_level=None)
    conn.executescript("PRAGMA cache_size=10; BEGIN IMMEDIATE; UPDATE memories SET content = hex(randomblob(100000));")
    for name in (DATABASE_NAME, f"{DATABASE_NAME}-journal"):
        shutil.copyfile(live / name, crashed / name)
    conn.execute("ROLLBACK")
    conn.close()
    before = {p.name: p.read_bytes() for p in crashed.iterdir()}
    with pytest.raises(ReadOnlyStoreError, match=HOT_JOURNAL.split(";")[0]):
        AcceleratedMemoryStorage(crashed, read_only=True)
    assert {p.name: p.read_bytes() for p in crashed.iterdir() if p.suffix != ".lock"} == before
    # A writable open rolls it back; then it reads read-only.
    AcceleratedMemoryStorage(crashed).close()
    with AcceleratedMemoryStorage(crashed, read_only=True) as reader:
        assert reader.count() == 12
        assert all("randomblob" not in r.content and len(r.content) < 100 for r in reader.list_records())


def test_a_lock_file_that_cannot_be_written_says_to_open_read_only(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory this process may write, with a lock file it may not (say
    another user's): a writable open cannot lock, a read-only one can."""
    write_store(tmp_path)
    real_open = os.open

    def refuse_writing_the_lock(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith(".lock") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(filelock.os, "open", refuse_writing_the_lock)
    with pytest.raises(ReadOnlyStoreError, match=r"\.lock cannot be opened for writing \(Permission denied\): open"):
        AcceleratedMemoryStorage(tmp_path)
    with AcceleratedMemoryStorage(tmp_path, read_only=True) as reader:
        assert reader.count() == 12


def test_a_refused_write_does_not_hide_another_writers_commit(backend: str, tmp_path: Path) -> None:
    """A write refused before it brought the index up to date (read-only, or
    bad input) must not count as having seen the file: the next read still
    picks up what another connection committed in between."""
    database = tmp_path / DATABASE_NAME
    index_class = WasmMemoryIndex if backend == "wasm" else PythonMemoryIndex
    writer = index_class(database)
    readers = [index_class(database), index_class(database, "opened with read_only=True")]
    try:
        for n, reader in enumerate(readers):
            assert reader.count(None) == n
            writer.save(json.dumps([{"id": f"r{n}", "content": "x", "created_at": "t", "created_ts": 1.0}]))
            with pytest.raises(InvalidRecordError if reader.read_only_reason is None else ReadOnlyStoreError):
                reader.save("not JSON")
            assert reader.count(None) == n + 1
    finally:
        for index in (writer, *readers):
            index.close()
