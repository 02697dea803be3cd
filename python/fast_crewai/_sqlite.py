"""SQLite files through the core, or through stdlib ``sqlite3`` with the same
semantics.

:class:`AcceleratedSQLiteWrapper` is one connection to one database file:

* ``execute(sql, params)`` runs one statement of any kind and returns an
  :class:`ExecuteResult` (its rows, if any, and ``changes``: the rows this
  statement inserted, updated or deleted, not counting triggers; 0 for
  statements that change nothing).
* ``executemany(sql, seq_of_params)`` runs one writing statement per
  parameter set, all or nothing, and returns the rows changed in total.
* ``query(sql, params, as_dict=False)`` runs one statement that does not
  write and returns its rows as tuples or dicts. "Does not write" is
  SQLite's ``sqlite3_stmt_readonly`` (so ``PRAGMA journal_mode``, even
  read, counts as a write); anything else raises :class:`ReadOnlyError`
  before it runs. EXPLAIN of any statement is allowed.
* ``transaction()`` is BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the
  block raises; nested blocks are savepoints.

Values keep their SQL types both ways: ``int`` (64-bit), ``float``
(infinities included; a NaN parameter is stored as NULL, as SQLite does),
``str``, ``bytes`` (``bytearray`` and ``memoryview`` are accepted) and
``None``; ``bool`` is stored as 0/1. Anything else, an integer outside 64
bits and a string with a lone surrogate are refused with
:class:`MisuseError`. Text that is not valid UTF-8 in the file reads back
with U+FFFD replacements. Parameters are a sequence (bound by position) or a
mapping (bound by name; a key may carry its ``:``/``@``/``$`` sigil or not);
every parameter needs a value and every value a parameter. They are always
bound, never interpolated.

Which files: the grant is the directory holding the database, as the path
names it (made absolute from the working directory; symbolic links among
the directories are followed: that directory is the caller's choice). The
path may not contain ``..``, and if its last component is a symbolic link
it must lead to a file inside that directory (or a subdirectory of it);
otherwise :class:`PathNotAllowedError`. In the core the directory is the
only one its WebAssembly instance can reach at all.

Locks: the core's SQLite has no file locks, so every call holds
:class:`~fast_crewai._filelock.FileLock` on ``<database>.lock``: shared for
``query`` (exclusive when a journal is present, since that reader rolls a
crashed writer's journal back), exclusive for everything else and for a
whole ``transaction()``. Opening a wrapper takes the shared lock, so it
waits for a writer in another process too. A caller that cannot get the
lock within ``timeout`` seconds raises :class:`BusyError`. Between reads
the core keeps SQLite's page cache; before each call the host compares the
file's change counter (which every commit bumps, whoever makes it) with
the one the connection left and has the core re-read the file when it
moved. Statements that would outlive or bypass that lock are
refused with :class:`MisuseError`: BEGIN/COMMIT/SAVEPOINT/... (use
``transaction()``), ATTACH, VACUUM INTO and setting ``journal_mode`` or
``locking_mode``. A database another SQLite left in WAL mode is switched
back to a rollback journal when opened for writing; ``synchronous=FULL``
and ``foreign_keys=ON`` always.

Faults: a call running past ``FAST_CREWAI_CALL_TIMEOUT`` seconds is
interrupted and raises :class:`CoreTimeout` on both backends; like any core
trap it discards the connection, so an open transaction is rolled back
(statements after it in the same ``transaction()`` block raise
:class:`CoreTrap`) and the next call reopens. A statement error that made
SQLite roll the whole transaction back (``INSERT OR ROLLBACK``, I/O errors)
likewise ends the block's transaction: later statements in it raise
:class:`MisuseError`. The file stays at its last committed state.

Not covered: other programs writing the same file at the same moment
through SQLite's own POSIX locks (stock CrewAI, the ``sqlite3`` shell) do
not see the core's host lock, and the core does not see theirs; taking
turns is safe. Closing a core connection closes file descriptors on the
database, which, POSIX being POSIX, drops the locks a stdlib connection in
the same process holds on it at that moment.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from . import _backend
from ._errors import (
    BusyError,
    ConstraintError,
    CoreTimeout,
    CoreTrap,
    CorruptError,
    MisuseError,
    NotFoundError,
    PathNotAllowedError,
    ReadOnlyError,
    SQLiteError,
)
from ._filelock import ChangeCounter, FileLock, LockTimeout

_orjson: Any
try:
    # Optional: parses the core's result documents about twice as fast.
    import orjson as _orjson
except ImportError:
    _orjson = None

Mode = Literal["create", "read-write", "read-only"]
MODES: tuple[Mode, ...] = ("create", "read-write", "read-only")
Value = int | float | str | bytes | None
Params = Sequence[Any] | Mapping[str, Any]
INTERFACE = "fast-crewai:core/sqlite-store@0.1.0"

# The same texts as the core's, so that both backends say the same thing.
TRANSACTION_CONTROL = (
    "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) belongs to the host's transaction()"
)
REFUSED = "not authorized: ATTACH, VACUUM INTO and changing journal_mode or locking_mode would escape the host's locks"
NOT_DML = "execute-many runs statements that change the database"
WRITE_IN_QUERY = "query runs only statements that do not write; use execute"
TOO_BIG = "an integer parameter does not fit in 64 bits"
_INT64 = 1 << 63
_PLAIN = frozenset({str, int, float, bytes, bool, type(None)})


@dataclass(frozen=True)
class ExecuteResult:
    """What one statement produced."""

    columns: tuple[str, ...]
    rows: list[tuple[Value, ...]]
    #: Rows this statement inserted, updated or deleted (not by triggers).
    changes: int
    #: SQLite's ``last_insert_rowid()`` after the statement.
    last_insert_rowid: int


# --------------------------------------------------------------------------- parameters


def _value(value: Any, where: object) -> Value:
    """A parameter of a type outside the plain ones, made plain or refused."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise MisuseError(
        f"parameter {where}: a {type(value).__name__} cannot be stored; use int, float, str, bytes or None"
    )


def normalize_params(params: Params) -> Sequence[Value] | dict[str, Value]:
    """Checks parameters and returns them with plain Python types; named
    keys lose their sigil. Plain values pass without a copy."""
    if isinstance(params, Mapping):
        named: dict[str, Value] = {}
        for key, value in params.items():
            if not isinstance(key, str):
                raise MisuseError(f"parameter names must be strings, not {type(key).__name__}")
            name = key[1:] if key[:1] in (":", "@", "$") and len(key) > 1 else key
            if name in named:
                raise MisuseError(f"parameter {name} is given twice")
            named[name] = value if type(value) in _PLAIN else _value(value, name)
        return named
    if isinstance(params, (str, bytes, bytearray)) or not isinstance(params, Sequence):
        raise MisuseError(f"parameters must be a sequence or a mapping, not {type(params).__name__}")
    if set(map(type, params)) <= _PLAIN:
        return params
    return [v if type(v) in _PLAIN else _value(v, i) for i, v in enumerate(params, 1)]


def _wire_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        # SQLite stores a NaN parameter as NULL; JSON has no infinities.
        return None if math.isnan(value) else {"$real": "inf" if value > 0 else "-inf"}
    if type(value) is int and not -_INT64 <= value < _INT64:
        raise MisuseError(TOO_BIG)
    if isinstance(value, bytes):
        return {"$blob": base64.b64encode(value).decode("ascii")}
    return value


def _wire_special(params: Any) -> Any:
    if isinstance(params, dict):
        return {k: _wire_value(v) for k, v in params.items()}
    return [_wire_value(v) for v in params]


def _blob(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$blob": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not a SQL value")


# Built once: json.dumps and json.loads with options build a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_blob)


def to_wire(params: Any, many: bool = False) -> str:
    """Normalised parameters (or a list of them) as the core's JSON."""
    try:
        return _ENCODER.encode(params)
    except ValueError:
        # Rare values (NaN, infinities, integers too long for JSON) take the slow path.
        return _ENCODER.encode([_wire_special(p) for p in params] if many else _wire_special(params))


def _special_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$blob" in obj:
            return base64.b64decode(obj["$blob"])
        if "$real" in obj:
            return math.inf if obj["$real"] == "inf" else -math.inf
    return obj


def _decode(text: str) -> Any:
    if _orjson is None:
        return _DECODER.decode(text)
    doc = _orjson.loads(text)
    # Inside a JSON string a quote is escaped, so this finds only blob and infinity objects.
    if '{"$' in text:
        doc["rows"] = [[_special_object(v) if type(v) is dict else v for v in row] for row in doc["rows"]]
    return doc


_DECODER = json.JSONDecoder(object_hook=_special_object)


def from_wire(text: str) -> ExecuteResult:
    """The core's result document as an :class:`ExecuteResult`."""
    doc = _decode(text)
    return ExecuteResult(
        columns=tuple(doc["columns"]),
        rows=[tuple(row) for row in doc["rows"]],
        changes=doc["changes"],
        last_insert_rowid=doc["last-insert-rowid"],
    )


def _surrogate_error() -> MisuseError:
    return MisuseError("text is not valid Unicode: it holds a lone surrogate")


# --------------------------------------------------------------------------- paths


def resolve_database_path(db_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The granted directory and the database file inside it, both
    resolved; see the module docstring for what is allowed."""
    raw = os.fspath(db_path)
    if raw in ("", ":memory:"):
        raise MisuseError("a database file path is required: in-memory and temporary databases are not supported")
    given = Path(raw)
    if ".." in given.parts:
        raise PathNotAllowedError(f"{raw}: '..' is not allowed in a database path")
    absolute = Path(os.path.abspath(given))
    grant = absolute.parent.resolve()
    if not grant.is_dir():
        raise NotFoundError(f"{raw}: the directory {absolute.parent} does not exist")
    target = grant / absolute.name
    if target.is_symlink():
        resolved = target.resolve()
        if not resolved.is_relative_to(grant):
            raise PathNotAllowedError(f"{raw}: the symbolic link leads to {resolved}, outside {grant}")
        target = resolved
    return grant, target


# --------------------------------------------------------------------------- connections


class _Connection(Protocol):
    """One backend's connection; calls arrive serialised and locked."""

    @property
    def stale(self) -> bool:
        """The connection must be (re)opened before its next use."""
        ...

    def pinned(self) -> AbstractContextManager[Any]:
        """Holds what keeps :attr:`stale` true or false until released."""
        ...

    def open(self) -> None:
        """Opens the connection now if it is stale."""
        ...

    def revalidate(self, journal_exists: bool) -> None:
        """Makes the connection notice what other connections did to the file
        since its last call (outside transactions, under the file lock)."""
        ...

    def execute(self, sql: str, params: Params, read_only: bool) -> ExecuteResult: ...

    def executemany(self, sql: str, param_sets: Sequence[Params]) -> int: ...

    def control(self, sql: str) -> None:
        """Runs one of the host's own transaction-control statements."""
        ...

    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


# SQLite's result codes, which the sqlite3 module names only from Python 3.11
# (before that its errors carry no code, and map by class alone).
SQLITE_ERROR, SQLITE_INTERRUPT, SQLITE_AUTH = 1, 9, 23
_SQLITE_CODES: dict[int, type[SQLiteError]] = {
    19: ConstraintError,  # SQLITE_CONSTRAINT
    5: BusyError,  # SQLITE_BUSY
    6: BusyError,  # SQLITE_LOCKED
    8: ReadOnlyError,  # SQLITE_READONLY
    11: CorruptError,  # SQLITE_CORRUPT
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


_LOCKED_PRAGMAS = ("journal_mode", "locking_mode")


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    # The core's authorizer, action for action.
    if action == sqlite3.SQLITE_ATTACH and arg1:
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
    for key in params:
        if key not in names:
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
        self._deadline = math.inf
        self._statements: dict[str, _Statement] = {}

    @property
    def stale(self) -> bool:
        return self._conn is None

    def pinned(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def open(self) -> None:
        self._run(lambda conn: None)

    def revalidate(self, journal_exists: bool) -> None:
        # SQLite checks the file itself at every transaction, natively.
        pass

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._uri, uri=True, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # What the core's open_connection does, in the same order.
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
        timeout = _backend.call_timeout()
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
        return ExecuteResult(
            columns=tuple(d[0] for d in cursor.description or ()),
            rows=rows,
            changes=max(cursor.rowcount, 0) if changed else 0,
            last_insert_rowid=cursor.lastrowid or 0,
        )

    def executemany(self, sql: str, param_sets: Sequence[Params]) -> int:
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
            self._conn.close()
            self._conn = None


class WasmConnection:
    """A connection resource of the core's ``sqlite-store``."""

    def __init__(self, grant: Path, path: Path, mode: Mode) -> None:
        from ._runtime import Resource, guest_path

        self._instance = _backend.runtime().granted(grant)
        assert self._instance.grant is not None
        self._guest = guest_path(self._instance.grant, path)
        self._mode = mode
        self._path = path
        self._counter = ChangeCounter(path)
        # The change counter as this connection last left the file.
        self._seen = b""
        self._opened_generation = -1
        self._resource = Resource(self._instance, INTERFACE, "connection", self._open)

    def _open(self, instance: Any) -> Any:
        handle = instance.call(INTERFACE, "[static]connection.open", self._guest, self._mode)
        self._check(handle)
        self._opened_generation = instance.generation
        self._seen = self._counter.read()
        return handle

    @staticmethod
    def _check(value: Any) -> Any:
        from ._runtime import error_of

        err = error_of(value)
        if err is not None:
            raise _CORE_ERRORS.get(err.tag, SQLiteError)(str(err.payload))
        return value

    @property
    def stale(self) -> bool:
        return self._opened_generation != self._instance.generation

    def pinned(self) -> AbstractContextManager[Any]:
        return self._instance.lock

    def open(self) -> None:
        # Any call on a stale resource reopens it.
        self._resource.call("in-transaction")

    def revalidate(self, journal_exists: bool) -> None:
        if not self.stale and (journal_exists or self._counter.read() != self._seen):
            self._call("refresh")

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return self._check(self._resource.call(method, *args))
        except UnicodeEncodeError:
            raise _surrogate_error() from None
        finally:
            self._seen = self._counter.read()

    def execute(self, sql: str, params: Params, read_only: bool) -> ExecuteResult:
        return from_wire(self._call("query" if read_only else "execute", sql, to_wire(params)))

    def executemany(self, sql: str, param_sets: Sequence[Params]) -> int:
        changed: int = self._call("execute-many", sql, to_wire(param_sets, many=True))
        return changed

    def control(self, sql: str) -> None:
        self._call("execute-script", sql)

    def in_transaction(self) -> bool:
        return bool(self._resource.call("in-transaction"))

    def close(self) -> None:
        self._resource.close()
        self._counter.close()


_CORE_ERRORS: dict[str, type[SQLiteError]] = {
    "constraint": ConstraintError,
    "busy": BusyError,
    "read-only": ReadOnlyError,
    "corrupt": CorruptError,
    "not-found": NotFoundError,
    "misuse": MisuseError,
}


# --------------------------------------------------------------------------- the wrapper


class AcceleratedSQLiteWrapper:
    """One connection to one SQLite file; see the module docstring.

    Thread-safe: calls from several threads are serialised, and a
    ``transaction()`` keeps other threads out until it ends.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        mode: Mode = "create",
        timeout: float = 5.0,
        backend: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise MisuseError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        grant, self.path = resolve_database_path(db_path)
        self.backend = backend or _backend.active()
        self.mode = mode
        self._lock = FileLock(self.path, timeout)
        self._journal = Path(f"{self.path}-journal")
        self._mutex = threading.RLock()
        self._depth = 0
        # Why the current transaction can no longer commit, once it cannot.
        self._broken: SQLiteError | CoreTrap | None = None
        self._conn: _Connection | None
        if self.backend == "wasm":
            self._conn = WasmConnection(grant, self.path, mode)
        elif self.backend == "python":
            self._conn = PythonConnection(self.path, mode, timeout)
        else:
            raise MisuseError(f"backend must be 'wasm' or 'python', not {self.backend!r}")
        self._finalizer = weakref.finalize(self, _close_quietly, self._conn, self._lock)
        try:
            # Open now, so that a bad path or file fails here.
            with self._locked(write=False) as conn:
                conn.open()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ locking

    def _connection(self) -> _Connection:
        if self._conn is None:
            raise MisuseError(f"{self.path.name}: the connection is closed")
        return self._conn

    @contextmanager
    def _locked(self, write: bool) -> Iterator[_Connection]:
        with self._mutex:
            conn = self._connection()
            with ExitStack() as stack:
                try:
                    stack.enter_context(self._lock.hold(write))
                    if not write and self._reading_may_write(conn):
                        stack.close()
                        stack.enter_context(self._lock.hold(True))
                except LockTimeout as exc:
                    raise BusyError(str(exc)) from None
                yield conn

    def _reading_may_write(self, conn: _Connection) -> bool:
        """Whether a read must take the exclusive lock: the next reader rolls
        back a hot journal a crashed writer left, and opening leaves WAL mode."""
        if self._journal.exists():
            return True
        if not conn.stale:
            return False
        try:
            with self.path.open("rb") as file:
                header = file.read(20)
        except OSError:
            return False
        # Bytes 18 and 19 of the header are 2 in WAL mode.
        return header[18:20] == b"\x02\x02"

    def _call(self, write: bool, work: Callable[[_Connection], Any]) -> Any:
        with self._locked(write) as conn, conn.pinned():
            if self._depth:
                if self._broken is not None:
                    raise _again(self._broken)
                if conn.stale:
                    self._broken = CoreTrap(
                        "the core trapped during this transaction, which was rolled back; leave the transaction() block"
                    )
                    raise _again(self._broken)
            else:
                conn.revalidate(self._journal.exists())
            try:
                return work(conn)
            except SQLiteError as exc:
                if self._depth and not conn.in_transaction():
                    self._broken = MisuseError(f"the transaction was rolled back by an earlier error: {exc}")
                raise
            except CoreTrap:
                if self._depth:
                    self._broken = CoreTrap("the core trapped during this transaction, which was rolled back")
                elif write:
                    _reopen_quietly(conn)
                raise

    # ------------------------------------------------------------------ API

    def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """Runs one statement of any kind; see :class:`ExecuteResult`."""
        bound = normalize_params(params)
        result: ExecuteResult = self._call(True, lambda conn: conn.execute(sql, bound, False))
        return result

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """Runs one writing statement per parameter set, all or nothing;
        returns the rows changed in total."""
        sets = [normalize_params(p) for p in seq_of_params]
        changed: int = self._call(True, lambda conn: conn.executemany(sql, sets))
        return changed

    def query(self, sql: str, params: Params = (), *, as_dict: bool = False) -> list[Any]:
        """The rows of one statement that does not write, as tuples or, with
        ``as_dict``, as dicts keyed by column name (a later column of the
        same name wins)."""
        bound = normalize_params(params)
        result: ExecuteResult = self._call(False, lambda conn: conn.execute(sql, bound, True))
        if as_dict:
            return [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        return result.rows

    @contextmanager
    def transaction(self) -> Iterator[AcceleratedSQLiteWrapper]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises. Holds
        the exclusive file lock throughout. Nested blocks are savepoints."""
        with self._locked(write=True):
            depth = self._depth
            savepoint = f"fast_crewai_{depth}"
            if depth == 0:
                self._broken = None
            self._call(True, lambda conn: conn.control("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}"))
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                self._end(depth, savepoint, commit=False)
                raise
            self._depth -= 1
            self._end(depth, savepoint, commit=True)

    def _end(self, depth: int, savepoint: str, commit: bool) -> None:
        conn = self._connection()
        with conn.pinned():
            broken = self._broken
            if depth == 0:
                self._broken = None
            if broken is not None:
                if conn.stale:
                    _reopen_quietly(conn)
                elif depth == 0 and conn.in_transaction():
                    conn.control("ROLLBACK")
                if commit:
                    raise _again(broken)
                return
            if commit:
                try:
                    conn.control("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
                    return
                except (SQLiteError, CoreTrap):
                    if depth == 0 and not conn.stale and conn.in_transaction():
                        conn.control("ROLLBACK")
                    elif depth:
                        self._broken = MisuseError("a savepoint could not be released")
                    raise
            if depth == 0:
                conn.control("ROLLBACK")
            else:
                conn.control(f"ROLLBACK TO {savepoint}")
                conn.control(f"RELEASE {savepoint}")

    def close(self) -> None:
        """Closes the connection; later calls raise :class:`MisuseError`."""
        with self._mutex:
            if self._depth:
                raise MisuseError("close() inside transaction(): leave the block first")
            self._finalizer()
            self._conn = None

    def __enter__(self) -> AcceleratedSQLiteWrapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _again(error: SQLiteError | CoreTrap) -> SQLiteError | CoreTrap:
    """A fresh exception of the same class and message, to raise again."""
    return type(error)(str(error))


def _reopen_quietly(conn: _Connection) -> None:
    """After a trap, reopen while the exclusive lock is still held, so that
    the crashed transaction's journal is rolled back now."""
    with suppress(Exception):  # the caller raises the original failure
        conn.open()


def _close_quietly(conn: _Connection, lock: FileLock) -> None:
    try:
        conn.close()
    finally:
        lock.close()
