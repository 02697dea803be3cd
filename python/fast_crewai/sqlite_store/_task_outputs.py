"""CrewAI's task-outputs store (what ``Crew.replay`` reads) on
:class:`~fast_crewai.sqlite_store._wrapper.AcceleratedSQLiteWrapper`.

A drop-in for
``crewai.memory.storage.kickoff_task_outputs_storage.KickoffTaskOutputsSQLiteStorage``:
the same file (``<db_storage_path()>/latest_kickoff_task_outputs.db``), the
same table and schema text, the same JSON (``CrewJSONEncoder``), the same
methods, return values, log messages and ``DatabaseOperationError`` s, and
the same CrewAI named lock around every write, so that stock CrewAI and this
store can take turns on one file in either order. Two differences: the file
is left in rollback-journal mode (the core cannot use WAL; stock CrewAI
switches it back when it next opens it), and ``update`` accepts only the
table's column names as keywords, because column names cannot be bound
parameters (stock interpolates them; an unknown name fails there too, with
the same message).

While the program has replaced ``sqlite3.connect`` (CrewAI's own tests do,
to count the store's connections or to fail one; instrumentation such as
OpenTelemetry's does, to trace them), each call runs stock CrewAI's method
instead, through that ``connect``: the replacement sees what it would see
without fast-crewai. The first such call after each replacement logs a
warning, so the switch is never silent.
"""

from __future__ import annotations

import _sqlite3
import functools
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import crewai_core.paths
from crewai.memory.storage import kickoff_task_outputs_storage as _stock_module
from crewai.utilities.crew_json_encoder import CrewJSONEncoder
from crewai.utilities.errors import DatabaseError, DatabaseOperationError
from crewai_core.lock_store import lock as store_lock

from .._errors import CoreTrap, SQLiteError
from ..runtime import forks

if TYPE_CHECKING:
    from crewai.task import Task

    from ._wrapper import AcceleratedSQLiteWrapper

# Stock's logger: its warnings and errors keep going where they went.
logger = logging.getLogger("crewai.memory.storage.kickoff_task_outputs_storage")
_own_logger = logging.getLogger("fast_crewai")

# Stock CrewAI's class, taken before the patch can rebind its name (the patch
# rebinds it to the class below, which does not exist yet). Its methods use
# only ``db_path`` and ``_lock_name``, which this store sets the same way.
_STOCK: Any = _stock_module.KickoffTaskOutputsSQLiteStorage
# The C function itself: ``sqlite3.connect`` until someone replaces it, even
# if that happened before this module was imported.
_SQLITE_CONNECT = _sqlite3.connect
# The replacement last warned about (a reference, not an id: ids are reused).
_warned_connect: object = None

P = ParamSpec("P")
R = TypeVar("R")

TABLE = "latest_kickoff_task_outputs"
FILE_NAME = "latest_kickoff_task_outputs.db"
_COLUMN_DEFS = (
    "task_id TEXT PRIMARY KEY",
    "task_key TEXT",
    "expected_output TEXT",
    "output JSON",
    "task_index INTEGER",
    "inputs JSON",
    "was_replayed BOOLEAN",
    "timestamp DATETIME DEFAULT CURRENT_TIMESTAMP",
)
COLUMNS = tuple(definition.split()[0] for definition in _COLUMN_DEFS)
# Stock CrewAI's statement, whitespace included: sqlite_schema keeps the
# text, so the file looks the same whichever of the two created it.
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (\n" + ",\n".join(" " * 28 + d for d in _COLUMN_DEFS) + "\n" + " " * 24 + ")"
)
# Stock CrewAI's sqlite3 timeout.
TIMEOUT = 30.0


def _stock_while_connect_replaced(method: Callable[P, R]) -> Callable[P, R]:
    """Runs stock CrewAI's method of the same name instead of ``method``
    while ``sqlite3.connect`` is not SQLite's own (see the module docstring)."""
    name = method.__name__

    @functools.wraps(method)
    def dispatch(*args: P.args, **kwargs: P.kwargs) -> R:
        global _warned_connect
        connect = sqlite3.connect
        if connect is _SQLITE_CONNECT:
            return method(*args, **kwargs)
        if _warned_connect is not connect:
            _warned_connect = connect
            _own_logger.warning(
                "sqlite3.connect is replaced (by %s.%s): CrewAI's task-outputs store at %s runs CrewAI's "
                "own code through it, not the core, while it stays replaced",
                getattr(connect, "__module__", "?"),
                getattr(connect, "__qualname__", type(connect).__name__),
                getattr(args[0], "db_path", "?"),
            )
        result: R = getattr(_STOCK, name)(*args, **kwargs)
        return result

    return dispatch


# The connections kept per file, most recently used last: (path, backend)
# -> (the file's device and inode, the connection). A connection dropped
# from here is closed when its last user lets it go (its finalizer queues
# the close), so a thread still using it is never cut off.
_connections: OrderedDict[tuple[str, str], tuple[tuple[int, int], AcceleratedSQLiteWrapper]] = OrderedDict()
_connections_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # The parent's connections are the parent's (see runtime.forks): the
    # child opens its own. Kept, never closed here.
    global _connections, _connections_lock
    forks.keep(_connections)
    _connections = OrderedDict()
    _connections_lock = threading.Lock()


forks.in_child(_after_fork_in_child)
# Files whose connections stay open at once (a process normally has one).
KEPT_CONNECTIONS = 4


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _connection(path: str) -> AcceleratedSQLiteWrapper:
    """The kept connection to ``path``, opened (and the file created) when
    there is none or the path now names another file."""
    # Imported here, not at the top: the shim applies this patch at import
    # time, and the wrapper's modules are only needed once a crew stores
    # its first output.
    from ..runtime import backend as _backend
    from ._wrapper import AcceleratedSQLiteWrapper

    key = (path, _backend.active())
    with _connections_lock:
        kept = _connections.get(key)
        if kept is not None and kept[0] == _identity(path):
            _connections.move_to_end(key)
            return kept[1]
        _connections.pop(key, None)
    connection = AcceleratedSQLiteWrapper(path, timeout=TIMEOUT)
    identity = _identity(path)
    if identity is not None:
        with _connections_lock:
            _connections[key] = (identity, connection)
            while len(_connections) > KEPT_CONNECTIONS:
                _connections.popitem(last=False)
    return connection


class KickoffTaskOutputsStorage:
    """Stores the latest kickoff's task outputs; see the module docstring."""

    def __init__(self, db_path: str | None = None) -> None:
        if db_path is None:
            db_path = str(Path(crewai_core.paths.db_storage_path()) / FILE_NAME)
        self.db_path = db_path
        # The name stock CrewAI locks, so that writers of both kinds exclude each other.
        self._lock_name = f"sqlite:{os.path.realpath(self.db_path)}"
        self._initialize_db()

    def _open(self) -> AbstractContextManager[AcceleratedSQLiteWrapper]:
        # A connection kept for the file, not one per operation as stock
        # opens: opening costs the core ~2 ms of file reads (each a WASI
        # hand-off), stdlib ~0.1 ms. Kept only while the path names the
        # same file, so a file deleted or replaced between operations is
        # picked up, never written through a stale handle.
        return nullcontext(_connection(self.db_path))

    @staticmethod
    def _failed(template: str, error: Exception) -> DatabaseOperationError:
        message = DatabaseError.format_error(template, error)
        logger.error(message)
        return DatabaseOperationError(message, error)

    @staticmethod
    def _columns(db: AcceleratedSQLiteWrapper) -> set[str]:
        return {row[1] for row in db.query(f"PRAGMA table_info({TABLE})")}

    @_stock_while_connect_replaced
    def _initialize_db(self) -> None:
        """Creates the table, and adds ``task_key`` to a table from before it
        existed."""
        try:
            # Every crew (each copy too) makes a handler, and the table is
            # nearly always there: one read without CrewAI's named lock, for
            # which concurrent crews queue. Stock's statements change
            # nothing then either.
            with self._open() as db:
                if "task_key" in self._columns(db):
                    return
            with store_lock(self._lock_name), self._open() as db, db.transaction():
                db.execute(CREATE_TABLE)
                if "task_key" not in self._columns(db):
                    db.execute(f"ALTER TABLE {TABLE} ADD COLUMN task_key TEXT")
        except (SQLiteError, CoreTrap) as e:
            raise self._failed(DatabaseError.INIT_ERROR, e) from e

    @_stock_while_connect_replaced
    def add(
        self,
        task: Task,
        output: dict[str, Any],
        task_index: int,
        was_replayed: bool = False,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Adds (or replaces) the record of ``task``."""
        inputs = inputs or {}
        try:
            # Encoded before taking the lock other crews queue for.
            row = (
                str(task.id),
                task.key,
                task.expected_output,
                json.dumps(output, cls=CrewJSONEncoder),
                task_index,
                json.dumps(inputs, cls=CrewJSONEncoder),
                was_replayed,
            )
            with store_lock(self._lock_name), self._open() as db:
                db.execute(
                    f"INSERT OR REPLACE INTO {TABLE}"
                    " (task_id, task_key, expected_output, output, task_index, inputs, was_replayed)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
        except (SQLiteError, CoreTrap) as e:
            raise self._failed(DatabaseError.SAVE_ERROR, e) from e

    @_stock_while_connect_replaced
    def update(self, task_index: int, **kwargs: Any) -> None:
        """Updates the record at ``task_index``; dict values are stored as
        JSON."""
        try:
            unknown = next((key for key in kwargs if key not in COLUMNS), None)
            if unknown is not None:
                # What SQLite answers stock CrewAI for the same call.
                raise SQLiteError(f"no such column: {unknown}")
            assignments = ", ".join(f"{key} = ?" for key in kwargs)
            values = [json.dumps(v, cls=CrewJSONEncoder) if isinstance(v, dict) else v for v in kwargs.values()]
            with store_lock(self._lock_name), self._open() as db:
                result = db.execute(f"UPDATE {TABLE} SET {assignments} WHERE task_index = ?", (*values, task_index))
            if result.changes == 0:
                logger.warning(f"No row found with task_index {task_index}. No update performed.")
        except (SQLiteError, CoreTrap) as e:
            raise self._failed(DatabaseError.UPDATE_ERROR, e) from e

    @_stock_while_connect_replaced
    def load(self) -> list[dict[str, Any]]:
        """Every record, ordered by ``task_index``."""
        try:
            with self._open() as db:
                rows = db.query(
                    "SELECT task_id, task_key, expected_output, output, task_index, inputs, was_replayed, timestamp"
                    f" FROM {TABLE} ORDER BY task_index"
                )
        except (SQLiteError, CoreTrap) as e:
            raise self._failed(DatabaseError.LOAD_ERROR, e) from e
        return [
            {
                "task_id": row[0],
                "task_key": row[1],
                "expected_output": row[2],
                "output": json.loads(row[3]),
                "task_index": row[4],
                "inputs": json.loads(row[5]),
                "was_replayed": row[6],
                "timestamp": row[7],
            }
            for row in rows
        ]

    @_stock_while_connect_replaced
    def delete_all(self) -> None:
        """Deletes every record."""
        try:
            with store_lock(self._lock_name), self._open() as db:
                db.execute(f"DELETE FROM {TABLE}")
        except (SQLiteError, CoreTrap) as e:
            raise self._failed(DatabaseError.DELETE_ERROR, e) from e
