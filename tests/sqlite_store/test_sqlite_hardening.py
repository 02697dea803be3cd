"""Issue 12's adversarial probes as tests, on both backends: ATTACH in any
form, one wrapper's trap and another's transaction, values and results too
large to cross the boundary, a symbolic link planted as the lock file,
read-only media."""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from process_helpers import AS_ROOT, in_own_mount_namespace, run_worker

from fast_crewai import CoreTimeout, MisuseError, PathNotAllowedError, TooLargeError
from fast_crewai.message_serde._contract import MAX_DOCUMENT_BYTES
from fast_crewai.sqlite_store._contract import (
    MAX_VALUE_BYTES,
    REFUSED,
    from_wire,
    parameters_too_large,
    result_too_large,
    value_too_large,
)
from fast_crewai.sqlite_store._core import WasmConnection
from fast_crewai.sqlite_store._reference_sizes import document_size
from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper

ENDLESS = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT count(*) FROM c"


def files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


# --------------------------------------------------------------------------- ATTACH


def test_attach_is_refused_whatever_names_the_file(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    granted, outside = tmp_path / "granted", tmp_path / "outside"
    granted.mkdir()
    (granted / "dir").mkdir()
    outside.mkdir()
    # The reference resolves relative names from the working directory.
    monkeypatch.chdir(outside)
    escape = str(outside / "escape.db")
    with AcceleratedSQLiteWrapper(granted / "main.db", backend=backend) as db:
        db.execute("CREATE TABLE t(x)")
        db.execute("INSERT INTO t VALUES (1)")
        before = files_under(granted)
        for sql, params in [
            ("ATTACH ? AS e", (escape,)),
            ("ATTACH ? AS e", (str(granted / "dir" / "x.db"),)),
            ("ATTACH :file AS e", {"file": escape}),
            ("ATTACH ('dir/' || 'x.db') AS e", ()),
            ("ATTACH (? || '.db') AS e", (escape[:-3],)),
            ("ATTACH 'dir/x.db' AS e", ()),
            ("ATTACH 'file:dir/x.db?mode=rwc' AS e", ()),
            ("VACUUM INTO ?", (escape,)),
            ("VACUUM INTO 'dir/copy.db'", ()),
            ("DETACH main", ()),
            ("PRAGMA temp_store_directory = 'dir'", ()),
        ]:
            with pytest.raises(MisuseError) as info:
                db.execute(sql, params)
            assert str(info.value) == REFUSED, sql
        assert files_under(granted) == before
        assert files_under(outside) == set()
        # A private temporary database reaches no file, and plain VACUUM attaches one.
        db.execute("ATTACH '' AS scratch")
        db.execute("VACUUM")
        assert db.query("SELECT x FROM t") == [(1,)]
    assert files_under(outside) == set()


# --------------------------------------------------------------------------- traps


def test_a_trap_in_one_wrapper_leaves_another_wrappers_transaction_alone(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        AcceleratedSQLiteWrapper(tmp_path / "a.db", backend=backend) as a,
        AcceleratedSQLiteWrapper(tmp_path / "b.db", backend=backend) as b,
    ):
        a.execute("CREATE TABLE t(x)")
        b.execute("CREATE TABLE t(x)")
        with a.transaction():
            a.execute("INSERT INTO t VALUES (1)")
            monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "0.05")
            with pytest.raises(CoreTimeout):
                b.query(ENDLESS)
            monkeypatch.delenv("FAST_CREWAI_CALL_TIMEOUT")
            a.execute("INSERT INTO t VALUES (2)")
        assert a.query("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        b.execute("INSERT INTO t VALUES (3)")
        assert b.query("SELECT x FROM t") == [(3,)]
    conn = sqlite3.connect(tmp_path / "a.db")
    try:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        conn.close()


# --------------------------------------------------------------------------- sizes


def test_values_past_the_limit_are_refused_at_write(backend: str, tmp_path: Path) -> None:
    with AcceleratedSQLiteWrapper(tmp_path / "big.db", backend=backend) as db:
        db.execute("CREATE TABLE t(v)")
        for value in ("x" * (MAX_VALUE_BYTES + 1), b"\0" * (MAX_VALUE_BYTES + 1)):
            with pytest.raises(TooLargeError) as info:
                db.execute("INSERT INTO t VALUES (?)", (value,))
            assert str(info.value) == value_too_large(MAX_VALUE_BYTES + 1)
        # UTF-8 bytes count, not characters.
        with pytest.raises(TooLargeError):
            db.executemany("INSERT INTO t VALUES (?)", [("é",), ("é" * (MAX_VALUE_BYTES // 2 + 1),)])
        # Values SQL computes, and a row holding the largest value, meet the same limit.
        for sql in ("INSERT INTO t VALUES (zeroblob(?))", "INSERT INTO t VALUES (randomblob(?))"):
            with pytest.raises(TooLargeError):
                db.execute(sql, (MAX_VALUE_BYTES,))
        assert db.query("SELECT count(*) FROM t") == [(0,)]
        largest = MAX_VALUE_BYTES - 16
        db.execute("INSERT INTO t VALUES (zeroblob(?))", (largest,))
        with pytest.raises(TooLargeError):
            db.execute("UPDATE t SET v = v || zeroblob(16)")
        # What was written reads back whole.
        ((blob,),) = db.query("SELECT v FROM t")
        assert blob == b"\0" * largest


def test_results_past_the_limit_are_a_typed_error_not_a_trap(backend: str, tmp_path: Path) -> None:
    blob = 60 << 20
    sql = "SELECT zeroblob(?), printf('%.*c', ?, 'x')"
    envelope = len(
        '{"columns":["zeroblob(?)","printf(\'%.*c\', ?, \'x\')"],'
        '"rows":[[{"$blob":""},""]],"changes":0,"last-insert-rowid":0}'
    )
    # The text that makes the core's result document exactly as large as one call returns.
    text = MAX_DOCUMENT_BYTES - envelope - 4 * math.ceil(blob / 3)
    with AcceleratedSQLiteWrapper(tmp_path / "result.db", backend=backend) as db:
        ((got_blob, got_text),) = db.query(sql, (blob, text))
        assert (len(got_blob), len(got_text)) == (blob, text)
        del got_blob, got_text
        with pytest.raises(TooLargeError) as info:
            db.query(sql, (blob, text + 1))
        assert str(info.value) == result_too_large()
        # Many rows, each small: refused before the core builds them all.
        rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
        with pytest.raises(TooLargeError):
            db.query(rows + "SELECT printf('%.*c', 1000000, 'x') FROM n")
        assert db.query(rows + "SELECT count(*) FROM n") == [(300,)]


def test_parameters_past_the_limit_are_a_typed_error(backend: str, tmp_path: Path) -> None:
    with AcceleratedSQLiteWrapper(tmp_path / "params.db", backend=backend) as db:
        # Each value is within its limit; their JSON together (base64 of the blob) is not.
        params = (b"\0" * (60 << 20), "x" * (50 << 20))
        wire = 2 + len('{"$blob":""}') + 4 * (60 << 20) // 3 + 1 + 2 + (50 << 20)
        with pytest.raises(TooLargeError) as info:
            db.execute("SELECT length(?), length(?)", params)
        assert str(info.value) == parameters_too_large(wire, many=False)
        with pytest.raises(TooLargeError):
            db.executemany("SELECT length(?)", [(params[0],), (params[1],)])
        assert db.query("SELECT length(?)", (params[1],)) == [(50 << 20,)]


# --------------------------------------------------------------------------- the lock file


def test_a_symlink_planted_as_the_lock_file_is_never_followed(backend: str, tmp_path: Path) -> None:
    granted, outside = tmp_path / "granted", tmp_path / "outside"
    granted.mkdir()
    outside.mkdir()
    (granted / "db.db.lock").symlink_to(outside / "planted")
    with pytest.raises(PathNotAllowedError, match="symbolic link"):
        AcceleratedSQLiteWrapper(granted / "db.db", backend=backend)
    assert files_under(outside) == set()
    # A link to an existing file is refused too: it would lock a file elsewhere.
    (outside / "planted").write_text("")
    with pytest.raises(PathNotAllowedError):
        AcceleratedSQLiteWrapper(granted / "db.db", backend=backend)
    (granted / "db.db.lock").unlink()
    os.mkfifo(granted / "db.db.lock")
    with pytest.raises(PathNotAllowedError, match="not a regular file"):
        AcceleratedSQLiteWrapper(granted / "db.db", backend=backend)


# --------------------------------------------------------------------------- read-only media


def test_read_only_media_are_read_with_writes_refused(tmp_path: Path) -> None:
    """Root ignores permissions, so for root the directory is bound
    read-only in a worker's own mount namespace (``unshare --mount``): real
    EROFS. Anyone else gets a directory without write permission (EACCES)."""
    source, mount = tmp_path / "source", tmp_path / "mount"
    source.mkdir()
    mount.mkdir()
    for name, keep_lock in (("locked.db", True), ("bare.db", False)):
        with AcceleratedSQLiteWrapper(source / name, backend="python") as db:
            db.execute("CREATE TABLE t(x)")
            db.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        if not keep_lock:
            (source / f"{name}.lock").unlink()
    command = [sys.executable, str(Path(__file__).with_name("readonly_worker.py")), str(source)]
    if AS_ROOT:
        command = in_own_mount_namespace([*command, str(mount)], "mount a read-only directory")
    else:
        source.chmod(0o555)
    try:
        report = run_worker(command)
    finally:
        source.chmod(0o755)
    assert report.pop("media").startswith("OSError: [Errno 30]" if AS_ROOT else "PermissionError: [Errno 13]")
    assert report.pop("files unchanged") is True
    expected: dict[str, object] = {}
    for name in ("bare.db", "locked.db"):
        for backend in ("wasm", "python"):
            expected[f"{name} {backend} rows"] = [[1], [2]]
            expected[f"{name} {backend} write"] = "ReadOnlyError"
            expected[f"{name} {backend} open read-write"] = "ReadOnlyError"
        expected[f"{name} stdlib rows"] = [[1], [2]]
    assert report == expected
    assert sorted(p.name for p in source.iterdir()) == ["bare.db", "locked.db", "locked.db.lock"]


# --------------------------------------------------------------------------- the reference's sizes


sql_values = (
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=40)
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.lists(sql_values, min_size=3, max_size=3), max_size=6), st.text(min_size=1, max_size=6))
def test_the_reference_computes_the_cores_document_size_exactly(rows: list[list[object]], column: str) -> None:
    """The reference refuses a result by the size the core's JSON would have:
    that size, computed from the values, is the core's document's length."""
    name = column.replace("\0", "")
    # SQLite compares column names case-insensitively in ASCII.
    assume(name.lower() not in ("b", "c"))
    directory = Path(tempfile.mkdtemp())
    try:
        conn = WasmConnection(directory, directory / "sizes.db", "create")
        quoted = '"' + name.replace('"', '""') + '"'
        conn.control(f"CREATE TABLE t({quoted}, b, c)")
        for row in rows:
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", row, False)
        raw = conn._call("query", "SELECT * FROM t ORDER BY rowid", "[]", as_bytes=True)
        assert document_size(from_wire(raw)) == len(raw)
        conn.close()
    finally:
        shutil.rmtree(directory)
