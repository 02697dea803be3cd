"""The exceptions fast-crewai raises: one root, one subclass per case."""

from __future__ import annotations


class FastCrewAIError(Exception):
    """The root of every error fast-crewai raises on purpose."""


class CoreUnavailable(FastCrewAIError):
    """The WebAssembly core could not be loaded (missing artifact, no
    wasmtime, an incompatible platform); the message says why."""


class OpenedBeforeFork(CoreUnavailable):
    """A store, wrapper or connection opened before ``os.fork()`` was used in
    the child process. Its core instance, SQLite connection and lock file
    belong to the parent, which still uses them: open it again in the
    child. A :class:`CoreUnavailable`, since the core instance it holds is
    not this process's (a store on the pure-Python backend raises it too:
    its connection and lock are the parent's just the same)."""


class ConfigurationError(FastCrewAIError, ValueError):
    """A ``FAST_CREWAI_*`` setting holds a value fast-crewai cannot use; the
    message names the variable, the value and what is accepted."""


class UnsupportedPlatformError(FastCrewAIError):
    """This platform lacks what a store needs to be safe, such as
    ``fcntl.flock`` for the lock that keeps processes apart; nothing was
    opened."""


class CoreTrap(FastCrewAIError):
    """The core trapped. Its instance was discarded; the next call gets a
    fresh one. Data on disk is left as the last committed transaction."""


class CoreOutOfMemory(CoreTrap):
    """The core needed more linear memory than ``FAST_CREWAI_MEMORY_LIMIT_MB``
    (at most 4096, wasm32's ceiling) allows; the message says where."""


class CoreTimeout(CoreTrap):
    """A call ran past its deadline (``FAST_CREWAI_CALL_TIMEOUT`` seconds)
    and was interrupted."""


class SerdeError(FastCrewAIError, ValueError):
    """A message document was rejected.

    ``kind`` is ``"invalid-json"`` (not strict JSON, or not a ``str``),
    ``"invalid-message"`` (JSON, but not a message), ``"too-large"`` (a
    document past 127 MiB of UTF-8, either way, or an object with more than
    65,536 members) or ``"too-deep"`` (arrays and objects nested more than
    256 deep); ``field`` names the offending field as a path such as
    ``[3].metadata`` and ``position`` is the offset in code points, when
    known.
    """

    def __init__(self, kind: str, message: str, field: str | None = None, position: int | None = None) -> None:
        self.kind = kind
        self.field = field
        self.position = position
        where = []
        if field:
            where.append(f"field {field}")
        if position is not None:
            where.append(f"position {position}")
        suffix = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{kind}: {message}{suffix}")
        self.message = message


class SQLiteError(FastCrewAIError):
    """A SQLite operation failed; subclasses say how."""


class ConstraintError(SQLiteError):
    """A UNIQUE, NOT NULL, CHECK, FOREIGN KEY or PRIMARY KEY constraint failed."""


class BusyError(SQLiteError):
    """The database stayed locked by another connection or process past the
    timeout."""


class ReadOnlyError(SQLiteError):
    """A write was attempted through a read-only connection, or a file that
    would be written lies on read-only media."""


class TooLargeError(SQLiteError):
    """A value, a call's parameters or its result is past its limit: 64 MiB
    for a text, a blob or a row, 127 MiB for the JSON of one call's
    parameters or result (what the core can copy back in one call)."""


class CorruptError(SQLiteError):
    """The file is not a SQLite database or is damaged."""


class NotFoundError(SQLiteError):
    """The database file or its directory does not exist."""


class MisuseError(SQLiteError):
    """The API or SQL was used wrongly: bad SQL, wrong parameters, a closed
    connection."""


class PathNotAllowedError(SQLiteError):
    """The path lies outside the granted directory (``..``, symlinks)."""


class MemoryStoreError(FastCrewAIError):
    """A memory store operation failed; subclasses say how."""


class InvalidRecordError(MemoryStoreError, ValueError):
    """A record, embedding or filter is malformed (NaN in a vector, a bad
    type, a non-JSON metadata value)."""


class RecordTooLargeError(InvalidRecordError):
    """A record is larger, as the store returns it (JSON with the embedding
    as hex), than the most one record may be, so it could not be read back
    across the core's boundary; nothing was saved."""


class ResultTooLargeError(MemoryStoreError):
    """A read would return more than one call may carry across the core's
    boundary; ask for fewer records (a lower ``limit``)."""


class StoreCapacityError(MemoryStoreError):
    """The store would no longer fit in the core's 4 GiB linear memory."""


class StorageFailure(MemoryStoreError):
    """SQLite failed underneath a memory store."""


class ReadOnlyStoreError(StorageFailure):
    """A memory store open read-only was asked to write, or a file that can
    only be opened read-only cannot be read without writing; nothing was
    written. A store is read-only when opened with ``read_only=True`` or
    when this process cannot write its file or directory (read-only media,
    no write permission). Cannot be read without writing: a missing file
    (read-only stores never create one), a file without the store's tables,
    one of an older schema (open it writable once to migrate it) and one
    with a crashed writer's journal (a writable open rolls it back). The
    message names the file and why it is read-only."""


class DiskFullError(SQLiteError, StorageFailure):
    """The disk (or the file system) holding a database or a memory store
    is full (``SQLITE_FULL``). The write was rolled back (inside
    ``transaction()``, SQLite may have rolled back the rest of the
    transaction too; leaving the block rolls it back); what was committed
    before is intact, nothing half-written is visible and no journal is
    left. The same wrapper or store goes on reading, and writes again once
    there is room, without being reopened. Both the SQLite wrapper and
    memory stores raise it, so it is caught as an :class:`SQLiteError` and
    as a :class:`StorageFailure` too."""


class DimensionMismatchError(MemoryStoreError, ValueError):
    """A vector's dimension differs from the one the store holds.
    (:class:`~fast_crewai.memory_search._storage.AcceleratedMemoryStorage` raises CrewAI's
    own ``EmbeddingDimensionMismatchError`` instead.)"""

    def __init__(self, stored: int, given: int) -> None:
        self.stored = stored
        self.given = given
        super().__init__(f"the store holds {stored}-dimensional vectors, got {given}")


class MigrationError(MemoryStoreError):
    """A memory migration could not run or its copy did not verify; the
    source is left as it was."""


class ToolGuardError(FastCrewAIError, ValueError):
    """The tool guard could not do what was asked; subclasses say why.

    ``message`` says what is wrong and ``position`` is the offset in the
    input, in code points, when one applies.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        super().__init__(message if position is None else f"{message} (position {position})")


class UnreadableJSONError(ToolGuardError):
    """No JSON value could be read from the text, even with every repair."""


class InvalidSchemaError(ToolGuardError):
    """The JSON schema is not strict JSON or cannot be applied (a keyword of
    the wrong type, an unknown type name, a ``$ref`` that does not resolve or
    loops)."""
