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
:class:`~fast_crewai.runtime.filelock.FileLock` on ``<database>.lock``: shared for
``query`` (exclusive when a journal is present, since that reader rolls a
crashed writer's journal back), exclusive for everything else and for a
whole ``transaction()``. Opening a wrapper takes the shared lock, so it
waits for a writer in another process too. A caller that cannot get the
lock within ``timeout`` seconds raises :class:`BusyError`. The lock file is
never followed as a symbolic link (:class:`PathNotAllowedError`). Between reads
the core keeps SQLite's page cache; before each call the host compares the
file's change counter (which every commit bumps, whoever makes it) with
the one the connection left and has the core re-read the file when it
moved. Statements that would outlive or bypass that lock, or reach a file
other than the database, are refused with :class:`MisuseError`:
BEGIN/COMMIT/SAVEPOINT/... (use ``transaction()``), ATTACH whatever names
the file (a literal, a bound parameter, an expression; only ``ATTACH ''``,
a private temporary database, is allowed), DETACH, VACUUM INTO and setting
``journal_mode``, ``locking_mode``, ``temp_store_directory`` or
``data_store_directory``. A database another SQLite left in WAL mode is
switched back to a rollback journal when opened for writing;
``synchronous=FULL`` and ``foreign_keys=ON`` always.

Read-only media: ``mode="read-only"`` works in a directory this process
cannot write (a read-only mount, no write permission): it locks an existing
``<database>.lock`` opened read-only, or reads without one while there is
none, and writes raise :class:`ReadOnlyError`. Any other mode there raises
:class:`ReadOnlyError` when the lock file cannot be created.

Limits: a text or blob value, and a whole row, is at most 64 MiB
(``SQLITE_LIMIT_LENGTH``), whether bound, computed by SQL (``zeroblob``,
``||``) or already in the file; the JSON of one call's parameters, and of
one call's result, is at most 127 MiB (a 64 MiB blob is 85.3 MiB of
base64), what the core can copy back in one call. Past them a call raises
:class:`TooLargeError` before anything is written, or, for a result,
instead of returning it, never a trap (a writing statement whose RETURNING
rows are too many has still run). Read large results in parts (LIMIT and
OFFSET, ``substr()``).

Faults: each wrapper's core connection lives in a WebAssembly instance of
its own, so a trap elsewhere never touches its transaction. A call running
past ``FAST_CREWAI_CALL_TIMEOUT`` seconds is interrupted and raises
:class:`CoreTimeout` on both backends; like any core trap it discards the
connection, so an open transaction is rolled back
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

import errno
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

from .._errors import (
    BusyError,
    CoreTrap,
    MisuseError,
    PathNotAllowedError,
    ReadOnlyError,
    SQLiteError,
)
from ..runtime import backend as _backend
from ..runtime import forks, reaper
from ..runtime.filelock import FileLock, LockFileRefused, LockTimeout
from ._contract import (
    MODES,
    ExecuteResult,
    Mode,
    Params,
    _Connection,
    in_wal_mode,
    normalize_params,
    resolve_database_path,
)

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
        reaper.start()
        self.mode = mode
        self._lock = FileLock(self.path, timeout, read_only=mode == "read-only")
        self._journal_path = f"{self.path}-journal"
        self._mutex = threading.RLock()
        self._born = forks.generation
        self._depth = 0
        # Why the current transaction can no longer commit, once it cannot.
        self._broken: SQLiteError | CoreTrap | None = None
        self._conn: _Connection | None
        # Each backend's module is imported by its first connection only.
        if self.backend == "wasm":
            from ._core import WasmConnection

            self._conn = WasmConnection(grant, self.path, mode)
        elif self.backend == "python":
            from ._reference import PythonConnection

            self._conn = PythonConnection(self.path, mode, timeout)
        else:
            raise MisuseError(f"backend must be 'wasm' or 'python', not {self.backend!r}")
        # The collector may find this wrapper while its thread is inside the
        # core on the same instance: only queue the close.
        self._finalizer = weakref.finalize(self, reaper.defer, _close_quietly, self._conn, self._lock)
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

    def _check_owned(self) -> None:
        # Before the mutex, which a thread of the parent may have held at a fork.
        if self._born != forks.generation:
            raise forks.opened_before_fork(f"the SQLite wrapper on {self.path.name}")

    @contextmanager
    def _locked(self, write: bool) -> Iterator[_Connection]:
        self._check_owned()
        with self._mutex:
            conn = self._connection()
            held, _ = self._acquire(conn, write)
            try:
                yield conn
            finally:
                held.__exit__(None, None, None)

    def _acquire(self, conn: _Connection, write: bool) -> tuple[AbstractContextManager[None], bool]:
        """Takes the file lock a call needs (see :meth:`_reading_may_write`);
        returns it, held, and whether a journal is present under it."""
        held = self._lock.hold(write)
        try:
            held.__enter__()
            journal = self._journal_exists()
            if not write and (journal or self._reading_may_write(conn)):
                held.__exit__(None, None, None)
                held = self._lock.hold(True)
                held.__enter__()
                journal = self._journal_exists()
        except LockTimeout as exc:
            raise BusyError(str(exc)) from None
        except LockFileRefused as exc:
            raise PathNotAllowedError(f"{exc.filename}: {exc.strerror}") from None
        except OSError as exc:
            raise _lock_file_error(self._lock, exc) from None
        return held, journal

    def _journal_exists(self) -> bool:
        # access() says it without raising (and building) an exception.
        return os.access(self._journal_path, os.F_OK)

    def _reading_may_write(self, conn: _Connection) -> bool:
        """Whether a read must take the exclusive lock even without a journal
        (the next reader rolls back a hot journal a crashed writer left, which
        the caller checks): opening, or another SQLite having switched the
        file to WAL since the last call, leaves WAL mode."""
        return (conn.stale or conn.moved()) and in_wal_mode(self.path)

    def _call(self, write: bool, work: Callable[[_Connection], Any]) -> Any:
        # _locked's work without its generator and exit stack: every
        # statement comes through here.
        self._check_owned()
        with self._mutex:
            conn = self._connection()
            held, journal = self._acquire(conn, write)
            try:
                with conn.pinned():
                    if self._depth:
                        if self._broken is not None:
                            raise _again(self._broken)
                        if conn.stale:
                            self._broken = CoreTrap(
                                "the core trapped during this transaction, which was rolled back; leave the "
                                "transaction() block"
                            )
                            raise _again(self._broken)
                    else:
                        conn.revalidate(journal)
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
            finally:
                held.__exit__(None, None, None)

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
        """Closes the connection; later calls raise :class:`MisuseError`.
        In a process forked after it was opened, forgets it instead (see
        :mod:`~fast_crewai.runtime.forks`), inside a transaction too."""
        if self._born != forks.generation:
            if self._finalizer.detach() is not None and self._conn is not None:
                _close_quietly(self._conn, self._lock)
            self._conn = None
            return
        with self._mutex:
            if self._depth:
                raise MisuseError("close() inside transaction(): leave the block first")
            if self._finalizer.detach() is not None and self._conn is not None:
                _close_quietly(self._conn, self._lock)
            self._conn = None

    def __enter__(self) -> AcceleratedSQLiteWrapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock_file_error(lock: FileLock, exc: OSError) -> SQLiteError:
    """Why the ``.lock`` sidecar could not be created, as a typed error."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyError(
            f"{lock.path.name} cannot be created ({exc.strerror}): the directory is read-only to this process; "
            "open the database with mode='read-only' to read it"
        )
    return SQLiteError(f"{lock.path.name} cannot be opened: {exc.strerror}")


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
