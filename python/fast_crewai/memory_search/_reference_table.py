"""The Python reference's in-memory index: rows, vectors, the BM25 text
index and the exact distance kernel (bit-identical to the core's).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import regex

from .._errors import (
    RecordTooLargeError,
    ResultTooLargeError,
    StoreCapacityError,
)
from ._contract import BYTES_PER_ELEMENT, K1, MAX_RECORD_BYTES, MAX_RESULT_BYTES, MAX_VECTOR_BYTES, B, _dumps
from ._reference_input import (
    Vector,
    _Record,
)

_TOKEN = regex.compile(r"[\p{Alphabetic}\p{N}]+")
# Record versions (see ``search-hits`` in the WIT file): one counter for
# every table of the process, so a version is never given twice.
_versions = itertools.count(1)


def _tokens(text: str) -> list[str]:
    """Maximal runs of alphanumeric characters, lowercased: Rust's
    ``char::is_alphanumeric`` and ``str::to_lowercase``, as in the core."""
    return [token.lower() for token in _TOKEN.findall(text)]


class _TextIndex:
    """BM25 postings keyed by record id."""

    def __init__(self) -> None:
        self.postings: dict[str, dict[str, int]] = {}
        self.lengths: dict[str, int] = {}
        self.terms: dict[str, tuple[str, ...]] = {}
        self.total = 0

    def add(self, id: str, content: str) -> None:
        tokens = _tokens(content)
        counts = Counter(tokens)
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[id] = tf
        self.terms[id] = tuple(counts)
        self.lengths[id] = len(tokens)
        self.total += len(tokens)

    def remove(self, id: str) -> None:
        for term in self.terms.pop(id):
            docs = self.postings[term]
            del docs[id]
            if not docs:
                del self.postings[term]
        self.total -= self.lengths.pop(id)

    def score(self, query: str) -> dict[str, float]:
        """BM25 of every document holding a query token; each query token
        counts once per occurrence, statistics are the whole store's."""
        n = len(self.lengths)
        if n == 0 or self.total == 0:
            return {}
        avgdl = self.total / n
        scores: dict[str, float] = {}
        for term in _tokens(query):
            docs = self.postings.get(term)
            if docs is None:
                continue
            df = len(docs)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for id, tf in docs.items():
                dl = self.lengths[id]
                # The core's expression, term for term, so the doubles agree.
                part = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * dl / avgdl))
                scores[id] = scores.get(id, 0.0) + part
        return scores


class _Table:
    """The in-memory copy of a store: records by row, their vectors in one
    row-major float32 buffer, insertion sequence numbers, the text index."""

    def __init__(self, dim: int | None) -> None:
        self.dim = dim
        self.records: list[_Record] = []
        self.by_id: dict[str, int] = {}
        self.vectors: Vector = np.zeros((0, dim or 0), dtype="<f4")
        self.seqs: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        # Each row's record version: new at every write of the record.
        self.versions: list[int] = []
        self.text = _TextIndex()
        # Ids whose vector holds NaN or an infinity (only a file written by
        # another tool has one): never a vector-search hit, as in the core.
        self.unusable: set[str] = set()

    def __len__(self) -> int:
        return len(self.records)

    def check_capacity(self, rows: int, dim: int | None) -> None:
        if dim is not None and rows * dim * BYTES_PER_ELEMENT > MAX_VECTOR_BYTES:
            raise StoreCapacityError(
                f"{rows} vectors of dimension {dim} need {rows * dim * BYTES_PER_ELEMENT} bytes, over the store's "
                f"limit of {MAX_VECTOR_BYTES}"
            )

    def _grow(self, rows: int) -> None:
        if rows <= len(self.seqs):
            return
        capacity = max(rows, len(self.seqs) * 3 // 2, 16)
        vectors = np.zeros((capacity, self.dim or 0), dtype="<f4")
        vectors[: len(self.records)] = self.vectors[: len(self.records)]
        seqs = np.zeros(capacity, dtype=np.int64)
        seqs[: len(self.records)] = self.seqs[: len(self.records)]
        self.vectors, self.seqs = vectors, seqs

    def set_dim(self, dim: int) -> None:
        """Fixes the dimension of a store that had none: existing rows get
        zero vectors."""
        self.dim = dim
        self.vectors = np.zeros((len(self.seqs), dim), dtype="<f4")

    def upsert(self, record: _Record, embedding: Vector | None, seq: int) -> None:
        row = self.by_id.get(record.id)
        if row is None:
            row = len(self.records)
            self._grow(row + 1)
            self.records.append(record)
            self.versions.append(next(_versions))
            self.by_id[record.id] = row
        else:
            self.text.remove(record.id)
            self.records[row] = record
            self.versions[row] = next(_versions)
        if self.dim is not None:
            self.vectors[row] = 0.0 if embedding is None else embedding
        self.unusable.discard(record.id)
        if embedding is not None and not np.isfinite(embedding).all():
            self.unusable.add(record.id)
        self.seqs[row] = seq
        self.text.add(record.id, record.content)

    def remove_rows(self, rows: list[int]) -> None:
        # Highest first: the row moved into a hole is never one still to go.
        for row in sorted(rows, reverse=True):
            last = len(self.records) - 1
            removed = self.records[row]
            if row != last:
                moved = self.records[row] = self.records[last]
                self.by_id[moved.id] = row
                self.vectors[row] = self.vectors[last]
                self.seqs[row] = self.seqs[last]
                self.versions[row] = self.versions[last]
            self.records.pop()
            self.versions.pop()
            del self.by_id[removed.id]
            self.unusable.discard(removed.id)
            self.text.remove(removed.id)

    def touched(self, row: int, at: str) -> None:
        """Sets ``last_accessed`` of ``row``, a new version of its record."""
        self.records[row].last_accessed = at
        self.versions[row] = next(_versions)

    def usable(self, rows: npt.NDArray[np.intp] | None) -> npt.NDArray[np.bool_] | None:
        """Which of ``rows`` (all when None) have a usable vector; None when
        every row has."""
        if not self.unusable:
            return None
        ok = np.ones(len(self.records), dtype=bool)
        ok[[self.by_id[id] for id in self.unusable]] = False
        return ok if rows is None else ok[rows]

    def embedding(self, row: int) -> str | None:
        if not self.records[row].has_embedding:
            return None
        vector: Vector = self.vectors[row]  # already little-endian float32
        return vector.tobytes().hex()

    def record_json(self, row: int) -> str:
        return _record_json(self.records[row], self.embedding(row))

    def rows_json(self, rows: Iterable[int]) -> str:
        return _bounded_array(self.record_json(row) for row in rows)

    def hits_json(self, hits: Iterable[tuple[int, float]]) -> str:
        return _bounded_array(f"[{self.record_json(row)},{float(score)!r}]" for row, score in hits)

    def hit_ids_json(self, hits: Iterable[tuple[int, float]]) -> str:
        """``[[id, version, score], ...]``."""
        return _bounded_array(
            f"[{_dumps(self.records[row].id)},{self.versions[row]},{float(score)!r}]" for row, score in hits
        )

    def versioned_json(self, rows: Iterable[int | None]) -> str:
        """``[[version, record] | null, ...]``."""
        return _bounded_array(
            "null" if row is None else f"[{self.versions[row]},{self.record_json(row)}]" for row in rows
        )


def _record_json(r: _Record, embedding: str | None) -> str:
    """The record as the store returns it (the core's codec writes the same
    text)."""
    return _dumps(
        {
            "id": r.id,
            "content": r.content,
            "scope": r.scope,
            "categories": r.categories,
            "metadata": r.metadata,
            "importance": r.importance,
            "created_at": r.created_at,
            "created_ts": r.created_ts,
            "last_accessed": r.last_accessed,
            "source": r.source,
            "private": r.private,
            "embedding": embedding,
        }
    )


def _check_record_size(r: _Record, dim: int | None, what: str) -> None:
    """Refuses a record larger than ``MAX_RECORD_BYTES`` as the store would
    return it, with an embedding of ``dim`` elements (None: none)."""
    size = len(_record_json(r, None).encode()) - len("null") + (len("null") if dim is None else 8 * dim + 2)
    if size > MAX_RECORD_BYTES:
        raise RecordTooLargeError(
            f"{what} is {size} bytes as the store returns it (JSON, the embedding as hex), "
            f"over the limit of {MAX_RECORD_BYTES}"
        )


def _result_too_large() -> ResultTooLargeError:
    return ResultTooLargeError(
        f"the result would be over {MAX_RESULT_BYTES} bytes, the most one call may return; ask for fewer records"
    )


def _bounded(text: str) -> str:
    """``text``, unless its UTF-8 form is over ``MAX_RESULT_BYTES``."""
    if len(text) * 4 > MAX_RESULT_BYTES and len(text.encode()) > MAX_RESULT_BYTES:
        raise _result_too_large()
    return text


def _bounded_array(items: Iterable[str]) -> str:
    """The JSON array of ``items``, given up as soon as it must outgrow
    ``MAX_RESULT_BYTES`` (so a huge result is never built whole)."""
    parts: list[str] = []
    size = len("[]") - len(",")
    for item in items:
        size += len(item.encode()) + len(",")
        if size > MAX_RESULT_BYTES:
            raise _result_too_large()
        parts.append(item)
    return "[" + ",".join(parts) + "]"


_BLOCK = 16
_CHUNK_ROWS = 4096


def _squared_distances(vectors: Vector, q: Vector) -> npt.NDArray[np.float64]:
    """The core's kernel, bit for bit: ``(q - x)^2`` summed in float32 into 16
    lanes (element ``i`` into lane ``i % 16``, whole blocks of 16 only), the
    lanes then added in float64 in lane order, then the leftover elements'
    squared float64 differences. Same operations, same order, same doubles."""
    rows, dim = vectors.shape
    whole = dim - dim % _BLOCK
    blocks = whole // _BLOCK
    q_blocks = q[:whole].reshape(blocks, _BLOCK)
    out = np.empty(rows, dtype=np.float64)
    for start in range(0, rows, _CHUNK_ROWS):
        chunk = vectors[start : start + _CHUNK_ROWS]
        m = len(chunk)
        diff = q_blocks - chunk[:, :whole].reshape(m, blocks, _BLOCK)
        np.multiply(diff, diff, out=diff)
        lanes = np.zeros((m, _BLOCK), dtype=np.float32)
        # Sequential float32 accumulation per lane, as the SIMD loop does
        # (numpy's own reductions may sum pairwise).
        for k in range(blocks):
            lanes += diff[:, k, :]
        total = np.zeros(m, dtype=np.float64)
        for j in range(_BLOCK):
            total += lanes[:, j]
        for i in range(whole, dim):
            d = float(q[i]) - chunk[:, i].astype(np.float64)
            total += d * d
        out[start : start + m] = total
    return out


def _total_order(x: float) -> tuple[float, float]:
    """A sort key ordering floats as Rust's ``total_cmp`` does (-0.0 < 0.0)."""
    return (x, math.copysign(1.0, x))
