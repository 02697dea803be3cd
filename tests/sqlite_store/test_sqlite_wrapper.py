"""AcceleratedSQLiteWrapper: values, parameters, errors, transactions, paths
and files shared with stdlib sqlite3, on both backends."""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fast_crewai import (
    ConstraintError,
    CorruptError,
    MisuseError,
    NotFoundError,
    PathNotAllowedError,
    ReadOnlyError,
    SQLiteError,
)
from fast_crewai.sqlite_store import _contract
from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper

ODD_TEXT = [
    "",
    "plain",
    "é ñ 中文 عربي עברית",
    "astral 😀 𝄞 𐍈",
    "combining e\u0301, zero\u200bwidth, bom \ufeff",
    "nul \x00 inside, controls \x01\x1f\x7f",
    'quotes " \\ / and {"$blob": "AA=="}',
    "line\nbreak\ttab\r\u2028\u2029",
]
VALUES: list[Any] = [
    0,
    -1,
    2**63 - 1,
    -(2**63),
    0.1,
    -0.0,
    1.0,
    1e300,
    5e-324,
    math.inf,
    -math.inf,
    None,
    b"",
    b"\x00\xff\x80 binary",
    *ODD_TEXT,
]


@pytest.fixture
def db(backend: str, tmp_path: Path) -> Iterator[AcceleratedSQLiteWrapper]:
    with AcceleratedSQLiteWrapper(tmp_path / "t.db", backend=backend) as wrapper:
        wrapper.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
        yield wrapper


def ident(value: Any) -> str:
    try:
        return ascii(value)[:40]
    except ValueError:  # an int too long for str()
        return type(value).__name__


def same(a: Any, b: Any) -> bool:
    """Equal with the same type; -0.0 keeps its sign."""
    if isinstance(a, float) and isinstance(b, float) and a == 0.0 == b:
        return math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("value", VALUES, ids=ident)
def test_values_keep_their_sql_type(db: AcceleratedSQLiteWrapper, value: Any) -> None:
    db.execute("INSERT INTO t(v) VALUES (?)", (value,))
    ((stored,),) = db.query("SELECT v FROM t")
    assert same(stored, value)
    ((echoed,),) = db.query("SELECT ?", [value])
    assert same(echoed, value)


def test_results_decode_the_same_without_orjson(db: AcceleratedSQLiteWrapper, monkeypatch: pytest.MonkeyPatch) -> None:
    db.executemany("INSERT INTO t(id, v) VALUES (?, ?)", list(enumerate(VALUES)))
    with_orjson = db.query("SELECT id, v FROM t ORDER BY id")
    monkeypatch.setattr(_contract, "_orjson", None)
    assert db.query("SELECT id, v FROM t ORDER BY id") == with_orjson
    assert all(same(row[1], value) for row, value in zip(with_orjson, VALUES, strict=True))


def test_other_parameter_types_are_normalised(db: AcceleratedSQLiteWrapper) -> None:
    row = db.query("SELECT ?, ?, ?, ?, ?", (True, bytearray(b"ab"), memoryview(b"cd"), math.nan, False))
    assert row == [(1, b"ab", b"cd", None, 0)]
    assert [type(v) for v in row[0]] == [int, bytes, bytes, type(None), int]


def test_huge_text_and_blob_round_trip(db: AcceleratedSQLiteWrapper) -> None:
    blob = os.urandom(12 * 1024 * 1024)
    text = "é😀x" * (3 * 1024 * 1024)
    db.execute("INSERT INTO t(id, v) VALUES (1, ?), (2, ?)", (blob, text))
    assert db.query("SELECT v FROM t ORDER BY id") == [(blob,), (text,)]


def test_invalid_utf8_in_the_file_reads_with_replacements(db: AcceleratedSQLiteWrapper) -> None:
    conn = sqlite3.connect(db.path)
    conn.execute("INSERT INTO t(v) VALUES (CAST(x'41ff42c3' AS TEXT))")
    conn.commit()
    conn.close()
    assert db.query("SELECT v FROM t") == [("A\ufffdB\ufffd",)]


def test_rows_as_tuples_or_dicts(db: AcceleratedSQLiteWrapper) -> None:
    db.executemany("INSERT INTO t(id, v) VALUES (?, ?)", [(1, "a"), (2, None)])
    assert db.query("SELECT id, v FROM t ORDER BY id") == [(1, "a"), (2, None)]
    assert db.query("SELECT id, v AS value FROM t ORDER BY id", as_dict=True) == [
        {"id": 1, "value": "a"},
        {"id": 2, "value": None},
    ]
    assert db.query("SELECT * FROM t WHERE id > 5") == []


def test_execute_reports_changes_rows_and_rowid(db: AcceleratedSQLiteWrapper) -> None:
    first = db.execute("INSERT INTO t(v) VALUES ('a'), ('b')")
    assert (first.changes, first.last_insert_rowid, first.columns, first.rows) == (2, 2, (), [])
    returning = db.execute("UPDATE t SET v = v || '!' RETURNING id, v")
    assert returning.changes == 2
    assert returning.columns == ("id", "v")
    assert sorted(returning.rows) == [(1, "a!"), (2, "b!")]
    # A statement that changes nothing reports 0, not the previous count.
    assert db.execute("SELECT count(*) FROM t").changes == 0
    assert db.execute("CREATE TABLE u(x)").changes == 0
    assert db.execute("DELETE FROM t WHERE id = 99").changes == 0
    assert db.execute("-- only a comment").rows == []


def test_named_parameters_with_or_without_sigil(db: AcceleratedSQLiteWrapper) -> None:
    assert db.query("SELECT :a, @b, $c", {"a": 1, ":b": 2, "$c": 3}) == [(1, 2, 3)]
    assert db.query("SELECT :a, :a", {"a": "x"}) == [("x", "x")]
    assert db.query("SELECT :a, :b", [1, 2]) == [(1, 2)]  # positional values bind by index


BAD_CALLS: list[tuple[str, Any]] = [
    ("SELECT ?", ()),
    ("SELECT ?", (1, 2)),
    ("SELECT ?, ?", [1]),
    ("SELECT :a", {"b": 1}),
    ("SELECT :a", {"a": 1, "b": 2}),
    ("SELECT :a", {"a": 1, ":a": 2}),
    ("SELECT ?", {"a": 1}),
    ("SELECT 1", (1,)),
    ("", (1,)),
    ("SELEC 1", ()),
    ("SELECT * FROM missing", ()),
    ("SELECT 1; SELECT 2", ()),
    ("SELECT ?", (2**63,)),
    ("SELECT ?", (-(2**63) - 1,)),
    ("SELECT ?", (10**5000,)),
    ("SELECT ?", ("lone \udc80 surrogate",)),
    ("SELECT '\ud800'", ()),
    ("SELECT ?", ([1],)),
    ("SELECT ?", ({"$blob": "AA=="},)),
    ("SELECT ?", (object(),)),
    ("SELECT ?", "x"),
    ("SELECT ?", 5),
    ("SELECT :a", {1: 2}),
    ("BEGIN", ()),
    ("SAVEPOINT s", ()),
    ("COMMIT", ()),
    ("ATTACH 'other.db' AS o", ()),
    ("VACUUM INTO 'copy.db'", ()),
    ("PRAGMA journal_mode=WAL", ()),
    ("PRAGMA locking_mode=EXCLUSIVE", ()),
]


@pytest.mark.parametrize(("sql", "params"), BAD_CALLS, ids=ident)
def test_misuse_is_a_typed_error_and_harmless(db: AcceleratedSQLiteWrapper, sql: str, params: Any) -> None:
    with pytest.raises(MisuseError):
        db.execute(sql, params)
    # The connection is still usable, outside any transaction, in rollback-journal mode.
    db.execute("INSERT INTO t(v) VALUES (1)")
    assert db.query("SELECT count(*) FROM t") == [(1,)]
    assert db.execute("PRAGMA journal_mode").rows == [("delete",)]


def test_misuse_never_leaves_a_transaction_open(db: AcceleratedSQLiteWrapper) -> None:
    with pytest.raises(MisuseError):
        db.query("BEGIN")
    # Were a transaction still open, another connection could not write now.
    other = sqlite3.connect(db.path, timeout=0)
    other.execute("INSERT INTO t(v) VALUES ('other')")
    other.commit()
    other.close()


READS = [
    "SELECT count(*) FROM t",
    "VALUES (1), (2)",
    "WITH x(n) AS (SELECT 1) SELECT n FROM x",
    "PRAGMA synchronous",
    "EXPLAIN INSERT INTO t(v) VALUES (1)",
    "  /* a comment */ explain query plan SELECT * FROM t",
]
WRITES = [
    "INSERT INTO t(v) VALUES (1)",
    "UPDATE t SET v = 1 WHERE 0",
    "DELETE FROM t",
    "CREATE TEMP TABLE scratch(x)",
    "PRAGMA user_version = 3",
    "PRAGMA journal_mode",  # SQLite counts even reading the journal mode as a write
    "ANALYZE",
    "VACUUM",
]


@pytest.mark.parametrize("sql", READS)
def test_query_runs_what_sqlite_calls_read_only(db: AcceleratedSQLiteWrapper, sql: str) -> None:
    assert isinstance(db.query(sql), list)


@pytest.mark.parametrize("sql", WRITES)
def test_query_refuses_what_would_write(db: AcceleratedSQLiteWrapper, sql: str) -> None:
    with pytest.raises(ReadOnlyError):
        db.query(sql)
    assert db.query("SELECT count(*) FROM t") == [(0,)]
    assert db.query("PRAGMA user_version") == [(0,)]


def test_plain_vacuum_and_reading_pragmas_are_allowed(db: AcceleratedSQLiteWrapper) -> None:
    db.execute("VACUUM")
    assert db.query("PRAGMA synchronous") == [(2,)]  # FULL
    assert db.query("PRAGMA foreign_keys") == [(1,)]


def test_typed_errors_for_sqlite_failures(db: AcceleratedSQLiteWrapper) -> None:
    db.execute("CREATE TABLE k(id TEXT PRIMARY KEY, n NOT NULL CHECK (n > 0))")
    db.execute("INSERT INTO k VALUES ('a', 1)")
    for sql, params in [("INSERT INTO k VALUES ('a', 2)", ()), ("INSERT INTO k VALUES ('b', ?)", (None,))]:
        with pytest.raises(ConstraintError):
            db.execute(sql, params)
    with pytest.raises(ConstraintError):
        db.execute("INSERT INTO k VALUES ('c', 0)")
    with pytest.raises(ReadOnlyError):
        db.query("INSERT INTO k VALUES ('d', 1) RETURNING id")
    assert db.query("SELECT id FROM k") == [("a",)]
    assert issubclass(ConstraintError, SQLiteError)


def test_read_only_mode_reads_and_refuses_writes(backend: str, db: AcceleratedSQLiteWrapper) -> None:
    db.execute("INSERT INTO t(v) VALUES ('x')")
    with AcceleratedSQLiteWrapper(db.path, mode="read-only", backend=backend) as reader:
        assert reader.query("SELECT v FROM t") == [("x",)]
        with pytest.raises(ReadOnlyError):
            reader.execute("INSERT INTO t(v) VALUES ('y')")


@pytest.mark.parametrize("mode", ["read-only", "read-write"])
def test_modes_without_create_need_the_file(backend: str, tmp_path: Path, mode: Any) -> None:
    with pytest.raises(NotFoundError):
        AcceleratedSQLiteWrapper(tmp_path / "missing.db", mode=mode, backend=backend)
    assert not (tmp_path / "missing.db").exists()


def test_a_file_that_is_not_a_database(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(CorruptError):
        AcceleratedSQLiteWrapper(path, backend=backend)


def test_closed_wrapper_refuses_calls(backend: str, tmp_path: Path) -> None:
    wrapper = AcceleratedSQLiteWrapper(tmp_path / "c.db", backend=backend)
    wrapper.close()
    wrapper.close()  # idempotent
    with pytest.raises(MisuseError):
        wrapper.query("SELECT 1")


# --------------------------------------------------------------------------- executemany and transactions


def test_executemany_is_all_or_nothing(db: AcceleratedSQLiteWrapper) -> None:
    assert db.executemany("INSERT INTO t(id, v) VALUES (?, ?)", ((i, f"v{i}") for i in range(100))) == 100
    with pytest.raises(ConstraintError):
        db.executemany("INSERT INTO t(id, v) VALUES (?, ?)", [(100, "new"), (5, "duplicate")])
    assert db.query("SELECT count(*), max(id) FROM t") == [(100, 99)]
    assert db.executemany("UPDATE t SET v = :v WHERE id < :n", [{"v": "a", "n": 10}, {"v": "b", "n": 5}]) == 15
    assert db.executemany("DELETE FROM t WHERE id = ?", []) == 0


@pytest.mark.parametrize("sql", ["SELECT ?", "", "BEGIN", "INSERT INTO t(v) VALUES (?) RETURNING id"])
def test_executemany_runs_only_writing_statements(db: AcceleratedSQLiteWrapper, sql: str) -> None:
    with pytest.raises(MisuseError):
        db.executemany(sql, [(1,)])
    assert db.query("SELECT count(*) FROM t") == [(0,)]


def test_transaction_commits_or_rolls_back(db: AcceleratedSQLiteWrapper) -> None:
    with db.transaction():
        db.execute("INSERT INTO t(id) VALUES (1)")
        db.executemany("INSERT INTO t(id) VALUES (?)", [(2,), (3,)])
    with pytest.raises(ZeroDivisionError), db.transaction():
        db.execute("INSERT INTO t(id) VALUES (4)")
        _ = 1 / 0
    assert db.query("SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,)]


def test_nested_transactions_are_savepoints(db: AcceleratedSQLiteWrapper) -> None:
    with db.transaction():
        db.execute("INSERT INTO t(id) VALUES (1)")
        with pytest.raises(KeyError), db.transaction():
            db.execute("INSERT INTO t(id) VALUES (2)")
            raise KeyError("inner")
        with db.transaction():
            db.execute("INSERT INTO t(id) VALUES (3)")
        with pytest.raises(ConstraintError):
            db.executemany("INSERT INTO t(id) VALUES (?)", [(4,), (1,)])
    assert db.query("SELECT id FROM t ORDER BY id") == [(1,), (3,)]


def test_a_transaction_sqlite_rolled_back_cannot_commit(db: AcceleratedSQLiteWrapper) -> None:
    db.execute("INSERT INTO t(id) VALUES (1)")
    with pytest.raises(MisuseError), db.transaction():
        db.execute("INSERT INTO t(id) VALUES (2)")
        with pytest.raises(ConstraintError):
            db.execute("INSERT OR ROLLBACK INTO t(id) VALUES (1)")
        # SQLite ended the transaction: nothing more may run in this block, not even in autocommit.
        db.execute("INSERT INTO t(id) VALUES (3)")
    assert db.query("SELECT id FROM t") == [(1,)]
    with db.transaction():  # the next transaction is a fresh one
        db.execute("INSERT INTO t(id) VALUES (4)")
    assert db.query("SELECT id FROM t ORDER BY id") == [(1,), (4,)]


def test_transaction_control_inside_a_transaction_is_refused(db: AcceleratedSQLiteWrapper) -> None:
    with db.transaction():
        db.execute("INSERT INTO t(id) VALUES (1)")
        with pytest.raises(MisuseError):
            db.execute("ROLLBACK TO nothing")
        db.execute("INSERT INTO t(id) VALUES (2)")
    assert db.query("SELECT count(*) FROM t") == [(2,)]


def test_foreign_keys_are_enforced(db: AcceleratedSQLiteWrapper) -> None:
    db.execute("CREATE TABLE child(id INTEGER PRIMARY KEY, parent REFERENCES t(id))")
    with pytest.raises(ConstraintError):
        db.execute("INSERT INTO child(parent) VALUES (42)")


# --------------------------------------------------------------------------- paths


def test_dotdot_is_refused(backend: str, tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    for path in [f"{tmp_path}/inner/../x.db", f"{tmp_path}/inner/..", "../x.db"]:
        with pytest.raises(PathNotAllowedError):
            AcceleratedSQLiteWrapper(path, backend=backend)
    assert not (tmp_path / "x.db").exists()


def test_a_symlink_leaving_the_directory_is_refused(backend: str, tmp_path: Path) -> None:
    granted, outside = tmp_path / "granted", tmp_path / "outside"
    granted.mkdir()
    outside.mkdir()
    secret = outside / "secret.db"
    sqlite3.connect(secret).close()
    (granted / "link.db").symlink_to(secret)
    (granted / "dangling.db").symlink_to(outside / "new.db")
    (granted / "relative.db").symlink_to("../outside/secret.db")
    for name in ["link.db", "dangling.db", "relative.db"]:
        with pytest.raises(PathNotAllowedError):
            AcceleratedSQLiteWrapper(granted / name, backend=backend)
    assert not (outside / "new.db").exists()


def test_a_symlink_inside_the_directory_is_followed(backend: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias.db").symlink_to(tmp_path / "sub" / "real.db")
    with AcceleratedSQLiteWrapper(tmp_path / "alias.db", backend=backend) as db:
        db.execute("CREATE TABLE t(x)")
        assert db.path == tmp_path.resolve() / "sub" / "real.db"
    assert (tmp_path / "sub" / "real.db").is_file()


def test_a_symlinked_directory_is_the_grant(backend: str, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    with AcceleratedSQLiteWrapper(tmp_path / "via" / "d.db", backend=backend) as db:
        db.execute("CREATE TABLE t(x)")
    assert (tmp_path / "real" / "d.db").is_file()


def test_relative_paths_start_at_the_working_directory(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with AcceleratedSQLiteWrapper("rel.db", backend=backend) as db:
        db.execute("CREATE TABLE t(x)")
    assert (tmp_path / "rel.db").is_file()


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_no_in_memory_databases(backend: str, path: str) -> None:
    with pytest.raises(MisuseError):
        AcceleratedSQLiteWrapper(path, backend=backend)


def test_a_missing_directory(backend: str, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        AcceleratedSQLiteWrapper(tmp_path / "nope" / "d.db", backend=backend)


# --------------------------------------------------------------------------- files shared with stdlib sqlite3


def test_stdlib_reads_what_the_wrapper_wrote(db: AcceleratedSQLiteWrapper) -> None:
    db.executemany("INSERT INTO t(id, v) VALUES (?, ?)", list(enumerate(VALUES)))
    conn = sqlite3.connect(db.path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    rows = conn.execute("SELECT v FROM t ORDER BY id").fetchall()
    conn.close()
    assert all(same(row[0], value) for row, value in zip(rows, VALUES, strict=True))


def test_the_wrapper_reads_what_stdlib_wrote(backend: str, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    conn.executemany("INSERT INTO t(id, v) VALUES (?, ?)", list(enumerate(VALUES)))
    conn.commit()
    conn.close()
    with AcceleratedSQLiteWrapper(tmp_path / "s.db", backend=backend) as db:
        rows = db.query("SELECT v FROM t ORDER BY id")
    assert all(same(row[0], value) for row, value in zip(rows, VALUES, strict=True))


def test_a_reader_sees_every_commit_of_other_connections(backend: str, db: AcceleratedSQLiteWrapper) -> None:
    with AcceleratedSQLiteWrapper(db.path, backend=backend) as other:
        for n in range(1, 11):
            # Reading twice lets the core keep its page cache between calls.
            assert db.query("SELECT count(*) FROM t") == [(n - 1,)]
            assert db.query("SELECT count(*) FROM t") == [(n - 1,)]
            if n % 2:
                other.execute("INSERT INTO t(v) VALUES (?)", (n,))
            else:
                conn = sqlite3.connect(db.path)
                conn.execute("INSERT INTO t(v) VALUES (?)", (n,))
                conn.commit()
                conn.close()
            assert db.query("SELECT max(v) FROM t") == [(n,)]
            # and the other way round: the writer sees what the reader wrote.
            db.execute("UPDATE t SET v = v WHERE id = 1")
            assert other.query("SELECT count(*) FROM t") == [(n,)]


def test_a_file_switched_to_wal_while_a_wrapper_is_open_is_read_and_switched_back(backend: str, tmp_path: Path) -> None:
    """Stock CrewAI opens its stores in WAL mode: a wrapper kept open across
    such an open reads what it wrote, and leaves WAL mode again."""
    path = tmp_path / "w.db"
    with AcceleratedSQLiteWrapper(path, backend=backend) as db:
        db.execute("CREATE TABLE t(x)")
        db.execute("INSERT INTO t VALUES (1)")
        assert db.query("SELECT sum(x) FROM t") == [(1,)]
        stock = sqlite3.connect(path)
        assert stock.execute("PRAGMA journal_mode=WAL").fetchall() == [("wal",)]
        stock.execute("INSERT INTO t VALUES (2)")
        stock.commit()
        stock.close()
        assert db.query("SELECT sum(x) FROM t") == [(3,)]
        db.execute("INSERT INTO t VALUES (4)")
        assert db.query("SELECT sum(x) FROM t") == [(7,)]
        if backend == "wasm":
            assert db.execute("PRAGMA journal_mode").rows == [("delete",)]
    check = sqlite3.connect(path)
    assert check.execute("SELECT sum(x) FROM t").fetchall() == [(7,)]
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    check.close()


def test_a_database_left_in_wal_mode_is_read_whole_and_switched_back(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t(x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500)])
    conn.commit()
    # Still open: the rows live only in the -wal file.
    assert Path(f"{path}-wal").stat().st_size > 0
    conn.close()
    # Closed normally it checkpointed; write again and keep the frames by copying the files while open.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500, 700)])
    conn.commit()
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal"):
        (copy / f"w.db{suffix}").write_bytes(Path(f"{path}{suffix}").read_bytes())
    conn.close()
    for target in (path, copy / "w.db"):
        with AcceleratedSQLiteWrapper(target, backend=backend) as db:
            assert db.query("SELECT count(*), sum(x) FROM t") == [(700, sum(range(700)))]
            assert db.execute("PRAGMA journal_mode").rows == [("delete",)]
        check = sqlite3.connect(target)
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        check.close()
