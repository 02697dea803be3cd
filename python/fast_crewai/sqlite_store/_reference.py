"""The pure-Python reference of ``sqlite-store``: stdlib ``sqlite3`` with
the core's refusals, limits and error mapping.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import (
    BusyError,
    ConstraintError,
    CoreTimeout,
    CorruptError,
    DiskFullError,
    MisuseError,
    NotFoundError,
    ReadOnlyError,
    SQLiteError,
    TooLargeError,
)
from ..runtime import forks
from ..runtime.settings import call_timeout
from ._contract import (
    MAX_VALUE_BYTES,
    NOT_DML,
    REFUSED,
    TOO_BIG,
    TRANSACTION_CONTROL,
    WRITE_IN_QUERY,
    ExecuteResult,
    Mode,
    Params,
    _surrogate_error,
)
from ._reference_sizes import check_parameters, check_result

# SQLite's result codes, which the sqlite3 module names only from Python 3.11
# (before that its errors carry no code, and map by class alone).
SQLITE_ERROR, SQLITE_INTERRUPT, SQLITE_AUTH = 1, 9, 23
SQLITE_LIMIT_LENGTH = 0
_SQLITE_CODES: dict[int, type[SQLiteError]] = {
    18: TooLargeError,  # SQLITE_TOOBIG
    19: ConstraintError,  # SQLITE_CONSTRAINT
    5: BusyError,  # SQLITE_BUSY
    6: BusyError,  # SQLITE_LOCKED
    8: ReadOnlyError,  # SQLITE_READONLY
    11: CorruptError,  # SQLITE_CORRUPT
    13: DiskFullError,  # SQLITE_FULL
    26: CorruptError,  # SQLITE_NOTADB
    14: NotFoundError,  # SQLITE_CANTOPEN
    12: NotFoundError,  # SQLITE_NOTFOUND
    21: MisuseError,  # SQLITE_MISUSE
    25: MisuseError,  # SQLITE_RANGE
}


def _translate(exc: sqlite3.Error) -> SQLiteError:
    """A stdlib error as the class the core's error variant maps to."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        # stdlib's own checks: parameter counts, several statements, types.
        if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.InterfaceError)):
            return MisuseError(str(exc))
        return SQLiteError(str(exc))
    if code & 0xFF == SQLITE_AUTH:
        return MisuseError(REFUSED)
    if code == SQLITE_ERROR:
        # SQLite's "SQL logic error": bad SQL, no such table.
        return MisuseError(str(exc))
    return _SQLITE_CODES.get(code & 0xFF, SQLiteError)(str(exc))


_LOCKED_PRAGMAS = ("journal_mode", "locking_mode", "temp_store_directory", "data_store_directory")


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    # The core's authorizer, action for action. ATTACH names no file (None)
    # when a bound parameter or an expression gives it; '' is the private
    # temporary database plain VACUUM attaches.
    if action == sqlite3.SQLITE_ATTACH:
        return sqlite3.SQLITE_OK if arg1 == "" else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_DETACH:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg2 is not None and (arg1 or "").lower() in _LOCKED_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _lossy_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Statement:
    names: tuple[str, ...]
    read_only: bool


# Opcodes that make sqlite3_stmt_readonly false (besides a write Transaction).
_WRITING_OPCODES = frozenset({"Checkpoint", "Vacuum", "JournalMode"})
_EXPLAIN = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*EXPLAIN\b", re.IGNORECASE | re.DOTALL)


def _check_names(names: tuple[str, ...], params: Mapping[str, Any]) -> None:
    known = set(names)
    for key in params:
        if key not in known:
            raise MisuseError(f"unknown parameter {key}: the statement has no such parameter")


class _NameRecorder(dict[str, Any]):
    """Binding through a dict subclass makes stdlib ask for each parameter
    by name (without its sigil), which is how the reference learns them."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.names.append(key)
        return None


class PythonConnection:
    """The reference: stdlib ``sqlite3`` behaving as the core does."""

    _STATEMENT_CACHE = 256

    def __init__(self, path: Path, mode: Mode, timeout: float) -> None:
        self._uri = f"{path.as_uri()}?mode={ {'create': 'rwc', 'read-write': 'rw', 'read-only': 'ro'}[mode] }"
        self._mode = mode
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._born = forks.generation
        self._deadline = math.inf
        self._statements: dict[str, _Statement] = {}

    @property
    def stale(self) -> bool:
        return self._conn is None

    def pinned(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def open(self) -> None:
        self._run(lambda conn: None)

    def moved(self) -> bool:
        # SQLite checks the file itself at every transaction, natively.
        return False

    def revalidate(self, journal_exists: bool) -> None:
        pass

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._uri, uri=True, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # What the core's open_connection does, in the same order.
            # Python 3.10's sqlite3 cannot set limits: there only parameters
            # are checked against MAX_VALUE_BYTES, not values SQL computes.
            setlimit = getattr(conn, "setlimit", None)
            if setlimit is not None:
                setlimit(SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
            (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
            if journal.lower() == "wal" and self._mode != "read-only":
                conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except BaseException:
            conn.close()
            raise
        conn.set_authorizer(_authorize)
        conn.set_progress_handler(self._past_deadline, 1000)
        return conn

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def _run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        timeout = call_timeout()
        try:
            if self._conn is None:
                self._conn = self._connect()
            self._deadline = time.monotonic() + timeout
            try:
                return work(self._conn)
            finally:
                self._deadline = math.inf
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == SQLITE_INTERRUPT:
                # The core discards its instance on a timeout: drop the connection likewise.
                self.close()
                raise CoreTimeout(f"a SQLite call ran longer than {timeout:g}s and was interrupted") from None
            self._clear_error()
            raise _translate(exc) from None
        except OverflowError:
            self._clear_error()
            raise MisuseError(TOO_BIG) from None
        except UnicodeEncodeError:
            self._clear_error()
            raise _surrogate_error() from None

    def _clear_error(self) -> None:
        # stdlib 3.11 reports a failed bind on a cached statement as the
        # connection's last SQLite error, which may be a stale one: a call
        # that succeeds resets it.
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.execute("SELECT 1")

    def _describe(self, conn: sqlite3.Connection, sql: str, params: Params) -> _Statement:
        """What the core learns from the prepared statement and stdlib does
        not tell: its parameter names and ``sqlite3_stmt_readonly``. Both
        come from compiling it under EXPLAIN, which binds but runs nothing."""
        known = self._statements.get(sql)
        if known is not None:
            return known
        explain = _EXPLAIN.match(sql) is not None
        recorder = _NameRecorder()
        try:
            program = conn.execute(
                sql if explain else f"EXPLAIN {sql}", recorder if isinstance(params, Mapping) else params
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "incomplete input" not in str(exc):
                raise
            program = []  # only comments or whitespace
        # sqlite3_stmt_readonly, as vdbeaux.c's resolveP2Values decides it.
        writes = any((op == "Transaction" and p2 != 0) or op in _WRITING_OPCODES for _, op, _, p2, *_ in program)
        known = _Statement(names=tuple(recorder.names), read_only=explain or not writes)
        if len(self._statements) >= self._STATEMENT_CACHE:
            self._statements.clear()
        self._statements[sql] = known
        return known

    def execute(self, sql: str, params: Params, read_only: bool) -> ExecuteResult:
        check_parameters([params], many=False)

        def work(conn: sqlite3.Connection) -> ExecuteResult:
            if isinstance(params, Mapping) or read_only:
                statement = self._describe(conn, sql, params)
                if read_only and not statement.read_only:
                    raise ReadOnlyError(WRITE_IN_QUERY)
                if isinstance(params, Mapping):
                    _check_names(statement.names, params)
            return self._guarded(conn, lambda: self._statement(conn, sql, params))

        result: ExecuteResult = self._run(work)
        return result

    @staticmethod
    def _guarded(conn: sqlite3.Connection, run: Callable[[], ExecuteResult]) -> ExecuteResult:
        """The core's rule: a statement may not open or close a transaction."""
        before = conn.in_transaction
        try:
            result = run()
        except BaseException:
            if not before and conn.in_transaction:
                conn.execute("ROLLBACK")
                raise MisuseError(TRANSACTION_CONTROL) from None
            raise
        if before != conn.in_transaction:
            if not before:
                conn.execute("ROLLBACK")
            raise MisuseError(TRANSACTION_CONTROL)
        return result

    def _statement(self, conn: sqlite3.Connection, sql: str, params: Params) -> ExecuteResult:
        total = conn.total_changes
        try:
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall()
        except sqlite3.OperationalError as exc:
            # Invalid UTF-8 in the file: read again, with replacements as the
            # core does. Only a statement that does not write can run twice
            # (one with RETURNING keeps stdlib's error).
            if not str(exc).startswith("Could not decode to UTF-8") or not self._describe(conn, sql, params).read_only:
                raise
            conn.text_factory = _lossy_text
            try:
                cursor = conn.execute(sql, params)
                rows = cursor.fetchall()
            finally:
                conn.text_factory = str
        changed = conn.total_changes != total
        result = ExecuteResult(
            columns=tuple(d[0] for d in cursor.description or ()),
            rows=rows,
            changes=max(cursor.rowcount, 0) if changed else 0,
            last_insert_rowid=cursor.lastrowid or 0,
        )
        check_result(result)
        return result

    def executemany(self, sql: str, param_sets: Sequence[Params]) -> int:
        check_parameters(param_sets, many=True)

        def work(conn: sqlite3.Connection) -> int:
            for params in param_sets:
                if isinstance(params, Mapping):
                    _check_names(self._describe(conn, sql, params).names, params)
            own = not conn.in_transaction
            conn.execute("BEGIN IMMEDIATE" if own else "SAVEPOINT execute_many")
            try:
                cursor = conn.executemany(sql, param_sets)
                if cursor.description is not None:
                    raise MisuseError(NOT_DML)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK" if own else "ROLLBACK TO execute_many")
                    if not own:
                        conn.execute("RELEASE execute_many")
                raise
            conn.execute("COMMIT" if own else "RELEASE execute_many")
            return max(cursor.rowcount, 0)

        try:
            changed: int = self._run(work)
        except MisuseError as exc:
            if "can only execute DML" in str(exc):
                raise MisuseError(NOT_DML) from None
            raise
        return changed

    def control(self, sql: str) -> None:
        # Not executescript: it commits an open transaction first.
        self._run(lambda conn: conn.execute(sql))

    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction

    def close(self) -> None:
        if self._conn is not None:
            if self._born != forks.generation:
                # The parent's connection, maybe inside its transaction:
                # closing it here would roll that back.
                forks.keep(self._conn, self._statements)
            else:
                self._conn.close()
            self._conn = None
