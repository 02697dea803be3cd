"""The exceptions fast-crewai raises: one root, one subclass per case."""

from __future__ import annotations


class FastCrewAIError(Exception):
    """The root of every error fast-crewai raises on purpose."""


class CoreUnavailable(FastCrewAIError):
    """The WebAssembly core could not be loaded (missing artifact, no
    wasmtime, an incompatible platform); the message says why."""


class ConfigurationError(FastCrewAIError, ValueError):
    """A ``FAST_CREWAI_*`` setting holds a value fast-crewai cannot use; the
    message names the variable, the value and what is accepted."""


class CoreTrap(FastCrewAIError):
    """The core trapped. Its instance was discarded; the next call gets a
    fresh one. Data on disk is left as the last committed transaction."""


class CoreTimeout(CoreTrap):
    """A call ran past its deadline (``FAST_CREWAI_CALL_TIMEOUT`` seconds)
    and was interrupted."""


class SerdeError(FastCrewAIError, ValueError):
    """A message document was rejected.

    ``kind`` is ``"invalid-json"`` or ``"invalid-message"``; ``field`` names
    the offending field as a path such as ``[3].metadata`` and ``position``
    is the offset in code points, when known.
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
    """A write was attempted through a read-only connection."""


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


class StoreCapacityError(MemoryStoreError):
    """The store would no longer fit in the core's 4 GiB linear memory."""


class StorageFailure(MemoryStoreError):
    """SQLite failed underneath a memory store."""


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


class NotImplementedInCore(FastCrewAIError, NotImplementedError):
    """The core declares this call but this version does not implement it."""
