"""Nothing lost under concurrency and faults: threads, processes, a busy
lock, SIGKILL mid-transaction and a trap inside the core, on both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from process_helpers import integrity

import fast_crewai
from fast_crewai import BusyError, CoreTimeout, CoreTrap
from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper

WORKERS = Path(__file__).with_name("sqlite_workers.py")
SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)
ROWS_PER_TRANSACTION = 5
# A query that runs for minutes unless interrupted.
ENDLESS = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT count(*) FROM c"


def start(role: str, path: Path, backend: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, str(WORKERS), role, str(path), backend, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def expect(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdout is not None
    got = process.stdout.readline().strip()
    assert got == line, f"worker said {got!r}, expected {line!r} (exit {process.poll()})"


def test_threads_writing_through_one_wrapper_lose_nothing(backend: str, tmp_path: Path) -> None:
    with AcceleratedSQLiteWrapper(tmp_path / "t.db", backend=backend) as db:
        db.execute("CREATE TABLE rows(thread INTEGER, n INTEGER, PRIMARY KEY (thread, n))")
        errors: list[BaseException] = []

        def work(thread: int) -> None:
            try:
                for n in range(0, 60, 3):
                    db.execute("INSERT INTO rows VALUES (?, ?)", (thread, n))
                    with db.transaction():
                        db.execute("INSERT INTO rows VALUES (?, ?)", (thread, n + 1))
                        assert db.query("SELECT count(*) FROM rows WHERE thread = ? AND n = ?", (thread, n + 1)) == [
                            (1,)
                        ]
                    db.executemany("INSERT INTO rows VALUES (?, ?)", [(thread, n + 2)])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert db.query("SELECT thread, count(*), min(n), max(n) FROM rows GROUP BY thread") == [
            (i, 60, 0, 59) for i in range(8)
        ]
    assert integrity(tmp_path / "t.db") == [("ok",)]


def test_two_processes_on_one_file_never_corrupt_it(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "shared.db"
    transactions = 40
    children.extend(start("writer", path, backend, worker, transactions) for worker in (1, 2))
    for process in children:
        expect(process, "done")
        assert process.wait(timeout=60) == 0
    assert integrity(path) == [("ok",)]
    with AcceleratedSQLiteWrapper(path, backend=backend) as db:
        assert db.query("SELECT worker, count(*), count(DISTINCT txn) FROM rows GROUP BY worker") == [
            (1, transactions * ROWS_PER_TRANSACTION, transactions),
            (2, transactions * ROWS_PER_TRANSACTION, transactions),
        ]


def test_a_writer_waits_for_the_lock_then_gets_busy(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "busy.db"
    impatient = AcceleratedSQLiteWrapper(path, backend=backend, timeout=0.2)
    patient = AcceleratedSQLiteWrapper(path, backend=backend, timeout=60)
    impatient.execute("CREATE TABLE rows(worker INTEGER, txn INTEGER, item INTEGER, payload BLOB)")
    holder = start("hold", path, backend, 2)
    children.append(holder)
    expect(holder, "locked")
    with impatient:
        with pytest.raises(BusyError):
            impatient.execute("INSERT INTO rows(worker) VALUES (1)")
        with pytest.raises(BusyError):
            impatient.query("SELECT count(*) FROM rows")
    with patient:
        # Blocks until the holder commits, so its row is there when this one goes in.
        patient.execute("INSERT INTO rows(worker) VALUES (2)")
        expect(holder, "committed")
        assert patient.query("SELECT worker FROM rows ORDER BY rowid") == [(-1,), (2,)]


def test_sigkill_mid_transaction_keeps_every_commit_and_nothing_else(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "killed.db"
    committed = 3
    expected = [(txn, ROWS_PER_TRANSACTION, ROWS_PER_TRANSACTION * 64) for txn in range(committed)]
    grouped = "SELECT txn, count(*), sum(length(payload)) FROM rows GROUP BY txn"
    # A reader that was already open, with pages cached, and one opened afterwards.
    with AcceleratedSQLiteWrapper(path, backend=backend) as early:
        early.execute("CREATE TABLE rows(worker INTEGER, txn INTEGER, item INTEGER, payload BLOB)")
        victim = start("crash", path, backend, committed)
        children.append(victim)
        for txn in range(committed):
            expect(victim, f"committed {txn}")
        assert early.query(grouped) == expected
        assert early.query(grouped) == expected  # now served from the pages it keeps
        assert victim.stdin is not None
        victim.stdin.write("go\n")
        victim.stdin.flush()
        expect(victim, "inside")
        journal = Path(f"{path}-journal")
        assert journal.stat().st_size > 0  # the killed transaction had spilled into the file
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        assert journal.exists()  # a hot journal, for the next reader to roll back
        assert early.query(grouped) == expected
    assert not journal.exists()
    with AcceleratedSQLiteWrapper(path, backend=backend) as late:
        assert late.query(grouped) == expected
    assert integrity(path) == [("ok",)]


def test_a_trap_during_a_transaction_leaves_the_file_consistent(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "trap.db"
    with AcceleratedSQLiteWrapper(path, backend=backend) as db:
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB)")
        db.executemany("INSERT INTO t VALUES (?, randomblob(100))", [(i,) for i in range(10)])
        with pytest.raises(CoreTimeout), db.transaction():
            db.execute("UPDATE t SET payload = zeroblob(5000)")
            # Far more than the page cache: the file is being rewritten behind a journal.
            db.executemany("INSERT INTO t VALUES (?, randomblob(8000))", [(i,) for i in range(100, 1500)])
            monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "0.05")
            try:
                db.query(ENDLESS)
            finally:
                monkeypatch.delenv("FAST_CREWAI_CALL_TIMEOUT")
        assert db.query("SELECT count(*), sum(length(payload)) FROM t") == [(10, 1000)]
        db.execute("INSERT INTO t VALUES (10, x'00')")
        assert db.query("SELECT count(*) FROM t") == [(11,)]
    assert integrity(path) == [("ok",)]
    assert not Path(f"{path}-journal").exists()


def test_after_a_trap_the_rest_of_the_block_cannot_commit(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AcceleratedSQLiteWrapper(tmp_path / "lost.db", backend=backend) as db:
        db.execute("CREATE TABLE t(x)")
        with pytest.raises(CoreTrap), db.transaction():
            db.execute("INSERT INTO t VALUES (1)")
            monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "0.05")
            with pytest.raises(CoreTimeout):
                db.query(ENDLESS)
            monkeypatch.delenv("FAST_CREWAI_CALL_TIMEOUT")
            # The transaction is gone; this must not run on its own in autocommit.
            with pytest.raises(CoreTrap):
                db.execute("INSERT INTO t VALUES (2)")
        assert db.query("SELECT count(*) FROM t") == [(0,)]
        db.execute("INSERT INTO t VALUES (3)")
        assert db.query("SELECT x FROM t") == [(3,)]


def test_a_trap_outside_a_transaction_loses_only_that_call(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AcceleratedSQLiteWrapper(tmp_path / "one.db", backend=backend) as db:
        db.execute("CREATE TABLE t(x)")
        db.execute("INSERT INTO t VALUES (1)")
        monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "0.05")
        with pytest.raises(CoreTimeout):
            db.execute(f"INSERT INTO t {ENDLESS}")
        monkeypatch.delenv("FAST_CREWAI_CALL_TIMEOUT")
        assert db.query("SELECT x FROM t") == [(1,)]
