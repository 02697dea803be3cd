"""The contract both SQLite backends implement: value and parameter
rules, the wire codec of the core's results, path checks, and the
connection protocol the wrapper drives.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .._errors import (
    MisuseError,
    NotFoundError,
    PathNotAllowedError,
)
from ..message_serde._contract import MAX_DOCUMENT_BYTES

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
REFUSED = (
    "not authorized: ATTACH, DETACH, VACUUM INTO and setting journal_mode, locking_mode or a "
    "store directory would escape the host's locks and the granted directory"
)
NOT_DML = "execute-many runs statements that change the database"
WRITE_IN_QUERY = "query runs only statements that do not write; use execute"
TOO_BIG = "an integer parameter does not fit in 64 bits"
#: The longest text or blob, and row, a connection stores or reads
#: (``SQLITE_LIMIT_LENGTH``, the core's ``MAX_VALUE_BYTES``).
MAX_VALUE_BYTES = 64 << 20
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
    # The common case first, without the abstract base classes' checks.
    if isinstance(params, (tuple, list)) and set(map(type, params)) <= _PLAIN:
        return params
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


def _decode(data: bytes) -> Any:
    """The core's result document, from its UTF-8 bytes: orjson reads them
    as they are (given a str it would encode it back to UTF-8)."""
    if _orjson is None:
        return _DECODER.decode(data.decode("utf-8"))
    doc = _orjson.loads(data)
    # Inside a JSON string a quote is escaped, so this finds only blob and infinity objects.
    if b'{"$' in data:
        doc["rows"] = [[_special_object(v) if type(v) is dict else v for v in row] for row in doc["rows"]]
    return doc


_DECODER = json.JSONDecoder(object_hook=_special_object)


def from_wire(data: bytes) -> ExecuteResult:
    """The core's result document (UTF-8) as an :class:`ExecuteResult`."""
    doc = _decode(data)
    return ExecuteResult(
        columns=tuple(doc["columns"]),
        rows=[tuple(row) for row in doc["rows"]],
        changes=doc["changes"],
        last_insert_rowid=doc["last-insert-rowid"],
    )


def value_too_large(size: int) -> str:
    return f"a text or blob parameter of {size} bytes is larger than the limit of {MAX_VALUE_BYTES} bytes"


def parameters_too_large(size: int, many: bool) -> str:
    what = "parameter sets" if many else "parameters"
    return f"{what}: the document is {size} bytes, more than the limit of {MAX_DOCUMENT_BYTES} bytes"


def result_too_large() -> str:
    return (
        f"the result would be more than {MAX_DOCUMENT_BYTES} bytes of JSON, the most one call returns: "
        "read it in parts (LIMIT and OFFSET, substr())"
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


def in_wal_mode(path: Path) -> bool:
    """Whether the file's header says WAL mode (bytes 18 and 19 are 2)."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header[18:20] == b"\x02\x02"


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

    def moved(self) -> bool:
        """Whether the file changed since this connection's last call, as
        far as the connection cannot see for itself."""
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
