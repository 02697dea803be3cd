"""The pure-Python reference of ``memory-search``: the same SQLite file as
the core (stdlib ``sqlite3``), the same in-memory index and the same JSON
results.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import (
    CoreTimeout,
    DimensionMismatchError,
    DiskFullError,
    InvalidRecordError,
    MemoryStoreError,
    StorageFailure,
    StoreCapacityError,
)
from ..runtime.filelock import ChangeCounter
from ..runtime.settings import call_timeout
from ._contract import (
    BUSY_TIMEOUT,
    CHANGE_LOG_ROWS,
    CONNECTION_PRAGMAS,
    HOT_JOURNAL,
    JOURNAL_MODE,
    MIGRATIONS,
    PRAGMAS,
    SCHEMA,
    SCHEMA_VERSION,
    SQLITE_FULL,
    SQLITE_READONLY,
    SQLITE_READONLY_ROLLBACK,
    TABLES,
    U32_MAX,
    _dumps,
    _Guarded,
    _surrogate_error,
    _u32,
    needs_migration,
    needs_tables,
    refused_write,
)
from ._reference_input import (
    Vector,
    _decode_vector,
    _Filter,
    _in_scope,
    _parse_json,
    _parse_records,
    _plain_text,
    _Record,
    _rooted_prefix,
)
from ._reference_table import _bounded, _check_record_size, _squared_distances, _Table, _total_order

_COLUMNS = (
    "id, content, scope, categories, metadata, importance, created_at, created_ts, last_accessed, source, private, "
    "embedding"
)
_SQLITE_INTERRUPT = 9


def _corrupt(what: str) -> StorageFailure:
    return StorageFailure(f"corrupt memory store: {what}")


class PythonMemoryIndex(_Guarded):
    """The reference implementation of ``memory-search``: the same file
    schema, the same results, in stdlib ``sqlite3`` and numpy."""

    def __init__(self, path: Path, read_only_reason: str | None = None) -> None:
        super().__init__(path, read_only_reason)
        self._mutex = threading.RLock()
        self._deadline = math.inf
        self._table = _Table(None)
        # The file's change counter, for the change log.
        self._header = ChangeCounter(path)
        # PRAGMA data_version when the table was loaded; None forces a load.
        self._version: int | None = None
        writable = read_only_reason is None
        target = str(path) if writable else f"{path.absolute().as_uri()}?mode=ro"
        try:
            self._conn = sqlite3.connect(
                target, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False, uri=not writable
            )
        except sqlite3.Error as exc:
            raise StorageFailure(str(exc)) from None
        self._conn.set_progress_handler(self._past_deadline, 1000)
        try:
            self._run(writable, self._initialise)
        except BaseException:
            self._conn.close()
            raise

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def _initialise(self, conn: sqlite3.Connection) -> None:
        # What the core's open does, in the same order.
        if self.read_only_reason is not None:
            conn.executescript(CONNECTION_PRAGMAS)
            self._check_readable(conn)
            self._sync(conn)
            return
        (mode,) = conn.execute(f"PRAGMA journal_mode={JOURNAL_MODE}").fetchone()
        if str(mode).lower() not in (JOURNAL_MODE.lower(), "memory"):
            raise StorageFailure(f"could not switch the journal to {JOURNAL_MODE} mode (it is {mode})")
        conn.executescript(PRAGMAS)
        conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
        self._migrate(conn)
        self._sync(conn)

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int:
        """The file's schema_version; refuses a newer one."""
        (version,) = conn.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone() or (None,)
        if not isinstance(version, int):
            raise _corrupt("schema_version")
        if version > SCHEMA_VERSION:
            raise StorageFailure(
                f"the memory store was written by a newer fast-crewai (schema version {version}; "
                f"this one reads up to {SCHEMA_VERSION})"
            )
        return version

    def _check_readable(self, conn: sqlite3.Connection) -> None:
        """The core's check_readable: what a read-only open needs, since it
        cannot create tables or migrate."""
        present = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        if missing := [table for table in TABLES if table not in present]:
            raise self._read_only_error(needs_tables(missing))
        # A file of version 1 may lack the key: schema.sql adds it.
        has_version = conn.execute("SELECT 1 FROM store_meta WHERE key = 'schema_version'").fetchone()
        version = self._schema_version(conn) if has_version else 1
        if version < SCHEMA_VERSION:
            raise self._read_only_error(needs_migration(version))

    @classmethod
    def _migrate(cls, conn: sqlite3.Connection) -> None:
        """The core's migrate (see its persist.rs), step for step."""
        version = cls._schema_version(conn)
        for to, sql in MIGRATIONS:
            if version < to:
                conn.executescript(f"BEGIN IMMEDIATE;{sql}COMMIT;")

    def _run(self, write: bool, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Runs ``work`` under the locks and the call deadline; a failed call
        rolls back and leaves the in-memory table as it was."""
        with self._mutex, self._hold(write):
            timeout = call_timeout()
            self._deadline = time.monotonic() + timeout
            try:
                return work(self._conn)
            except BaseException as exc:
                self._deadline = math.inf
                if self._conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    code = getattr(exc, "sqlite_errorcode", None) or 0
                    if code == _SQLITE_INTERRUPT:
                        raise CoreTimeout(
                            f"a memory store call ran longer than {timeout:g}s and was interrupted"
                        ) from None
                    if code == SQLITE_READONLY_ROLLBACK:
                        raise self._read_only_error(HOT_JOURNAL) from None
                    if code & 0xFF == SQLITE_READONLY:
                        # A write SQLite itself refused: the file, its
                        # directory or its journal cannot be written.
                        raise self._read_only_error(str(exc)) from None
                    if code & 0xFF == SQLITE_FULL:
                        raise DiskFullError(str(exc)) from None
                    raise StorageFailure(str(exc)) from None
                if isinstance(exc, UnicodeEncodeError):
                    raise _surrogate_error() from None
                if isinstance(exc, MemoryError):
                    # Perhaps after COMMIT, with the table half updated: the
                    # next call reloads it from the file.
                    self._version = None
                    raise StoreCapacityError("out of memory in the memory store") from None
                raise
            finally:
                self._deadline = math.inf

    # -------------------------------------------------------------- loading

    def _sync(self, conn: sqlite3.Connection) -> None:
        """Reloads the table when another connection committed since its load."""
        if self._data_version(conn) == self._version:
            return
        conn.execute("BEGIN")
        self._reload(conn)
        conn.execute("COMMIT")

    @staticmethod
    def _data_version(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def _reload(self, conn: sqlite3.Connection) -> None:
        self._version = None
        self._table = _Table(None)
        self._table = self._load(conn)
        self._version = self._data_version(conn)

    def _load(self, conn: sqlite3.Connection) -> _Table:
        stored = conn.execute("SELECT value FROM store_meta WHERE key = 'dimension'").fetchone()
        dim: int | None = None
        if stored is not None:
            if not isinstance(stored[0], int) or not 0 < stored[0] <= U32_MAX:
                raise _corrupt(f"dimension {stored[0]}")
            dim = stored[0]
        (rows,) = conn.execute("SELECT COUNT(*) FROM memories").fetchone()
        table = _Table(dim)
        table.check_capacity(rows, dim)
        table._grow(rows)
        for row in conn.execute(f"SELECT seq, {_COLUMNS} FROM memories ORDER BY seq"):
            seq, id, content, scope, categories_text, metadata_text, importance, created_at, created_ts = row[:9]
            accessed, source, private, blob = row[9:]
            try:
                categories = json.loads(categories_text)
                metadata = json.loads(metadata_text)
            except (TypeError, ValueError):
                raise _corrupt(f"categories or metadata of {id!r}") from None
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise _corrupt(f"categories of {id!r}")
            if not isinstance(metadata, dict):
                raise _corrupt(f"metadata of {id!r}")
            embedding: Vector | None = None
            if blob is not None:
                if not isinstance(blob, bytes) or not blob or len(blob) % 4:
                    raise _corrupt(f"embedding of {id!r}")
                if table.dim is None:
                    # Only a file written by something else lacks the key.
                    table.check_capacity(rows, len(blob) // 4)
                    table.set_dim(len(blob) // 4)
                if len(blob) // 4 != table.dim:
                    raise _corrupt(f"embedding length of {id!r}")
                embedding = np.frombuffer(blob, dtype="<f4")
            if id in table.by_id:
                raise _corrupt(f"duplicate id {id!r}")
            record = _Record(
                id=id,
                content=content,
                scope=scope,
                categories=categories,
                metadata=metadata,
                importance=float(importance),
                created_at=created_at,
                created_ts=float(created_ts),
                last_accessed=accessed,
                source=source,
                private=bool(private),
                has_embedding=embedding is not None,
            )
            table.upsert(record, embedding, seq)
        return table

    def _log(self, conn: sqlite3.Connection, changed: list[str | None]) -> None:
        """The core's persist::log_changes: this write's changed ids (None:
        the dimension, or everything) with the change counter the write
        found, then the log trimmed to its last CHANGE_LOG_ROWS rows."""
        counter = int.from_bytes(self._header.read() or bytes(4), "big")
        conn.executemany("INSERT INTO memory_changes (counter, id) VALUES (?, ?)", [(counter, id) for id in changed])
        conn.execute(
            "DELETE FROM memory_changes WHERE seq <= (SELECT MAX(seq) FROM memory_changes) - ?", (CHANGE_LOG_ROWS,)
        )

    def _begin_write(self, conn: sqlite3.Connection) -> _Table:
        """Starts a write transaction with the table brought up to date."""
        conn.execute("BEGIN IMMEDIATE")
        if self._data_version(conn) != self._version:
            self._reload(conn)
        return self._table

    def _read(self, work: Callable[[_Table], Any]) -> Any:
        def run(conn: sqlite3.Connection) -> Any:
            self._sync(conn)
            return work(self._table)

        return self._run(False, run)

    # -------------------------------------------------------------- writes

    def _writable(self, what: str) -> None:
        """The core's refusal of a write on a store open read-only: after
        the arguments crossed (valid UTF-8), before they are parsed."""
        if self.read_only_reason is not None:
            raise self._read_only_error(refused_write(what))

    def save(self, records: str) -> int:
        text = _plain_text(records)
        self._writable("save")
        return self._save(_parse_records(text))

    def save_packed(self, records: str, vectors: str) -> int:
        text, block = _plain_text(records), _plain_text(vectors)
        self._writable("save")
        return self._save(_parse_records(text, block))

    def _save(self, batch: list[tuple[_Record, Vector | None]]) -> int:
        if not batch:
            return 0
        for i, (r, e) in enumerate(batch):
            _check_record_size(r, None if e is None else len(e), f"records[{i}]")

        def work(conn: sqlite3.Connection) -> int:
            table = self._begin_write(conn)
            # Every embedding must have the store's dimension, or, in a store
            # without one yet, that of the batch's first embedding.
            expected = table.dim
            for _, e in batch:
                if e is None:
                    continue
                if expected is None:
                    expected = len(e)
                elif len(e) != expected:
                    raise DimensionMismatchError(expected, len(e))
            new_dim = expected if table.dim is None else None
            fresh = {r.id for r, _ in batch if r.id not in table.by_id}
            table.check_capacity(len(table) + len(fresh), table.dim or new_dim)
            if new_dim is not None:
                conn.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('dimension', ?)", (new_dim,))
            seqs = []
            for r, e in batch:
                cursor = conn.execute(
                    f"INSERT OR REPLACE INTO memories ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.id,
                        r.content,
                        r.scope,
                        _dumps(r.categories),
                        _dumps(r.metadata),
                        r.importance,
                        r.created_at,
                        r.created_ts,
                        r.last_accessed,
                        r.source,
                        int(r.private),
                        None if e is None else e.tobytes(),
                    ),
                )
                seqs.append(cursor.lastrowid)
            # A new dimension is logged as a change of everything.
            self._log(conn, [None] * (new_dim is not None) + [r.id for r, _ in batch])
            conn.execute("COMMIT")
            if new_dim is not None:
                table.set_dim(new_dim)
            for (r, e), seq in zip(batch, seqs, strict=True):
                table.upsert(r, e, int(seq or 0))
            return len(batch)

        return int(self._run(True, work))

    def _delete_where(self, f: _Filter, forget_dim: bool) -> int:
        def work(conn: sqlite3.Connection) -> int:
            table = self._begin_write(conn)
            if f.is_empty():
                count = len(table)
                conn.execute("DELETE FROM memories")
                if forget_dim:
                    conn.execute("DELETE FROM store_meta WHERE key = 'dimension'")
                self._log(conn, [None])
                conn.execute("COMMIT")
                self._table = _Table(None if forget_dim else table.dim)
                return count
            rows = f.rows(table)
            if not rows:
                conn.execute("ROLLBACK")
                return 0
            conn.executemany("DELETE FROM memories WHERE seq = ?", [(int(table.seqs[row]),) for row in rows])
            self._log(conn, [table.records[row].id for row in rows])
            conn.execute("COMMIT")
            table.remove_rows(rows)
            return len(rows)

        return int(self._run(True, work))

    def delete(self, filter: str) -> int:
        text = _plain_text(filter)
        self._writable("delete")
        return self._delete_where(_Filter.parse(text), forget_dim=False)

    def reset(self, scope_prefix: str | None) -> None:
        prefix = None if scope_prefix is None else _plain_text(scope_prefix)
        self._writable("reset")
        f = _Filter.of_scope(prefix)
        self._delete_where(f, forget_dim=f.is_empty())

    def touch(self, ids: str, at: str) -> int:
        text = _plain_text(ids)
        _plain_text(at)
        self._writable("touch")
        parsed = _parse_json(text, "ids")
        if not isinstance(parsed, list) or not all(isinstance(i, str) for i in parsed):
            raise InvalidRecordError("ids must be a JSON array of strings")

        def work(conn: sqlite3.Connection) -> int:
            table = self._begin_write(conn)
            rows = sorted({table.by_id[i] for i in parsed if i in table.by_id})
            if not rows:
                conn.execute("ROLLBACK")
                return 0
            for row in rows:
                touched = dataclasses.replace(table.records[row], last_accessed=at)
                dim = table.dim if touched.has_embedding else None
                _check_record_size(touched, dim, f"record {json.dumps(touched.id, ensure_ascii=False)}")
            conn.executemany(
                "UPDATE memories SET last_accessed = ? WHERE seq = ?", [(at, int(table.seqs[row])) for row in rows]
            )
            self._log(conn, [table.records[row].id for row in rows])
            conn.execute("COMMIT")
            for row in rows:
                table.touched(row, at)
            return len(rows)

        return int(self._run(True, work))

    # -------------------------------------------------------------- reads

    def search(self, query: str, filter: str, limit: int, min_score: float) -> str:
        return str(self._read(self._vector_hits(query, filter, limit, min_score, _Table.hits_json)))

    def search_hits(self, query: str, filter: str, limit: int, min_score: float) -> str:
        return str(self._read(self._vector_hits(query, filter, limit, min_score, _Table.hit_ids_json)))

    @staticmethod
    def _vector_hits(
        query: str, filter: str, limit: int, min_score: float, write: Callable[[_Table, list[tuple[int, float]]], str]
    ) -> Callable[[_Table], str]:
        """The exact top-``limit`` vector search, its hits written by ``write``."""
        _u32(limit, "limit")
        if math.isnan(min_score):
            raise InvalidRecordError("min-score is NaN")
        q = _decode_vector(_plain_text(query), "query")
        f = _Filter.parse(_plain_text(filter))

        def work(table: _Table) -> str:
            if table.dim is None:
                return write(table, [])
            if len(q) != table.dim:
                raise DimensionMismatchError(table.dim, len(q))
            if limit == 0 or not len(table) or min_score > 1.0:
                return write(table, [])
            rows = None if f.is_empty() else np.asarray(f.rows(table), dtype=np.intp)
            n = len(table)
            vectors = table.vectors[:n] if rows is None else table.vectors[rows]
            seqs = table.seqs[:n] if rows is None else table.seqs[rows]
            d = np.maximum(_squared_distances(vectors, q), 0.0)
            scores = 1.0 / (1.0 + d)
            passing = scores >= min_score
            usable = table.usable(rows)
            keep = np.flatnonzero(passing if usable is None else passing & usable)
            best = keep[np.lexsort((seqs[keep], d[keep]))[:limit]]
            return write(table, [(int(i) if rows is None else int(rows[i]), float(scores[i])) for i in best])

        return work

    def search_text(self, query: str, filter: str, limit: int) -> str:
        return str(self._read(self._text_hits(query, filter, limit, _Table.hits_json)))

    def search_text_hits(self, query: str, filter: str, limit: int) -> str:
        return str(self._read(self._text_hits(query, filter, limit, _Table.hit_ids_json)))

    @staticmethod
    def _text_hits(
        query: str, filter: str, limit: int, write: Callable[[_Table, list[tuple[int, float]]], str]
    ) -> Callable[[_Table], str]:
        """The BM25 top-``limit``, its hits written by ``write``."""
        _u32(limit, "limit")
        f = _Filter.parse(_plain_text(filter))
        _plain_text(query)

        def work(table: _Table) -> str:
            if limit == 0:
                return write(table, [])
            allowed = None if f.ids is None else set(f.ids)
            hits = []
            for id, score in table.text.score(query).items():
                row = table.by_id[id]
                if (allowed is None or id in allowed) and f.matches(table.records[row]):
                    hits.append((row, score))
            hits.sort(key=lambda h: (-h[1], int(table.seqs[h[0]])))
            return write(table, hits[:limit])

        return work

    def records(self, ids: str) -> str:
        parsed = _parse_json(_plain_text(ids), "ids")
        if not isinstance(parsed, list) or not all(isinstance(i, str) for i in parsed):
            raise InvalidRecordError("ids must be a JSON array of strings")
        return str(self._read(lambda table: table.versioned_json(table.by_id.get(id) for id in parsed)))

    @property
    def epoch(self) -> int:
        # Versions come from one process-wide counter and are never reused.
        return 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        # The order every call takes them in (see _run).
        with self._mutex, self._hold(False):
            yield

    def get(self, id: str) -> str | None:
        _plain_text(id)

        def work(table: _Table) -> str | None:
            row = table.by_id.get(id)
            return None if row is None else _bounded(table.record_json(row))

        found: str | None = self._read(work)
        return found

    def list(self, scope_prefix: str | None, limit: int, offset: int) -> str:
        _u32(limit, "limit")
        _u32(offset, "offset")
        f = _Filter.of_scope(None if scope_prefix is None else _plain_text(scope_prefix))

        def work(table: _Table) -> str:
            rows = f.rows(table)
            rows.sort(key=lambda row: (_total_order(table.records[row].created_ts), int(table.seqs[row])), reverse=True)
            return table.rows_json(rows[offset : offset + limit])

        return str(self._read(work))

    def scope_info(self, scope: str) -> str:
        prefix = _rooted_prefix(_plain_text(scope))
        child_prefix = prefix + "/"

        def work(table: _Table) -> str:
            count = 0
            categories: set[str] = set()
            children: set[str] = set()
            ends: list[tuple[tuple[float, float], int, int]] = []
            for row, r in enumerate(table.records):
                if prefix and not _in_scope(r.scope, prefix):
                    continue
                count += 1
                categories.update(r.categories)
                if r.scope.startswith(child_prefix):
                    first = r.scope[len(child_prefix) :].split("/", 1)[0]
                    if first:
                        children.add(child_prefix + first)
                ends.append((_total_order(r.created_ts), int(table.seqs[row]), row))
            oldest = table.records[min(ends)[2]].created_at if ends else None
            newest = table.records[max(ends)[2]].created_at if ends else None
            return _bounded(
                _dumps(
                    {
                        "record_count": count,
                        "categories": sorted(categories),
                        "oldest": oldest,
                        "newest": newest,
                        "child_scopes": sorted(children),
                    }
                )
            )

        return str(self._read(work))

    def list_scopes(self, parent: str) -> str:
        prefix = _rooted_prefix(_plain_text(parent)) + "/"

        def work(table: _Table) -> str:
            children = set()
            for r in table.records:
                if r.scope.startswith(prefix):
                    first = r.scope[len(prefix) :].split("/", 1)[0]
                    if first:
                        children.add(prefix + first)
            return _bounded(_dumps(sorted(children)))

        return str(self._read(work))

    def list_categories(self, scope_prefix: str | None) -> str:
        f = _Filter.of_scope(None if scope_prefix is None else _plain_text(scope_prefix))

        def work(table: _Table) -> str:
            counts: Counter[str] = Counter()
            for r in table.records:
                if f.matches(r):
                    counts.update(set(r.categories))
            return _bounded(_dumps({c: counts[c] for c in sorted(counts)}))

        return str(self._read(work))

    def count(self, scope_prefix: str | None) -> int:
        f = _Filter.of_scope(None if scope_prefix is None else _plain_text(scope_prefix))

        def work(table: _Table) -> int:
            return len(table) if f.is_empty() else sum(1 for r in table.records if f.matches(r))

        return int(self._read(work))

    def refresh(self) -> bool:
        loaded = self._version
        self._run(False, self._sync)
        return self._version != loaded

    def dimension(self) -> int | None:
        try:
            dim: int | None = self._read(lambda table: table.dim)
        except (MemoryStoreError, CoreTimeout):
            # The last known value, as the core answers when it cannot reload.
            dim = self._table.dim
        return dim

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
            # After the connection: closing a descriptor on the file drops
            # the POSIX locks this process holds on it.
            self._header.close()
            self._file_lock.close()
