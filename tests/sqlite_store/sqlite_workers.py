"""Processes the SQLite fault tests start: ``python sqlite_workers.py <role>
<database> <backend> [arguments]``. Each prints one line per milestone and
flushes it, so the test can act at a known point."""

from __future__ import annotations

import os
import sys
import time

from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper

SCHEMA = "CREATE TABLE IF NOT EXISTS rows(worker INTEGER, txn INTEGER, item INTEGER, payload BLOB)"
ROWS_PER_TRANSACTION = 5


def say(line: str) -> None:
    print(line, flush=True)


def writer(db: AcceleratedSQLiteWrapper, worker: int, transactions: int) -> None:
    """Commits ``transactions`` transactions of ``ROWS_PER_TRANSACTION`` rows."""
    for txn in range(transactions):
        with db.transaction():
            db.executemany(
                "INSERT INTO rows(worker, txn, item) VALUES (?, ?, ?)",
                [(worker, txn, item) for item in range(ROWS_PER_TRANSACTION)],
            )
    say("done")


def hold(db: AcceleratedSQLiteWrapper, seconds: float) -> None:
    """Holds a write transaction for ``seconds``, then commits one row."""
    with db.transaction():
        db.execute("INSERT INTO rows(worker, txn, item) VALUES (-1, 0, 0)")
        say("locked")
        time.sleep(seconds)
    say("committed")


def crash(db: AcceleratedSQLiteWrapper, committed: int) -> None:
    """Commits ``committed`` transactions, waits for a line on stdin, then
    writes far more than the page cache holds inside one more transaction (so
    SQLite spills into the database file, behind a journal) and waits there
    to be killed."""
    for txn in range(committed):
        with db.transaction():
            db.executemany(
                "INSERT INTO rows(worker, txn, item, payload) VALUES (0, ?, ?, ?)",
                [(txn, item, os.urandom(64)) for item in range(ROWS_PER_TRANSACTION)],
            )
        say(f"committed {txn}")
    sys.stdin.readline()  # the test reads the committed rows first
    with db.transaction():
        db.execute("UPDATE rows SET payload = zeroblob(4096)")
        db.executemany(
            "INSERT INTO rows(worker, txn, item, payload) VALUES (0, ?, ?, ?)",
            [(committed, item, os.urandom(8192)) for item in range(1500)],
        )
        say("inside")
        time.sleep(120)


def main() -> None:
    role, path, backend, *args = sys.argv[1:]
    with AcceleratedSQLiteWrapper(path, backend=backend, timeout=60) as db:
        db.execute(SCHEMA)
        if role == "writer":
            writer(db, int(args[0]), int(args[1]))
        elif role == "hold":
            hold(db, float(args[0]))
        elif role == "crash":
            crash(db, int(args[0]))
        else:
            raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
