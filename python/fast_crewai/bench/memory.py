"""Memory store benchmark: our store, CrewAI's ``LanceDBStorage`` and a
numpy float32 brute-force store, side by side in one run on identical
records and queries.

Every store gets the same seeded unit vectors and the same ``MemoryRecord``
objects (regenerated per store from the same seed, so no store pays for
another's copies). Measured per size: save throughput, top-10 search p50/p95
without and with a filter (scope prefix + category) as the best of
interleaved rounds, our lexical search p50, resident memory (psutil RSS
delta) and disk size, and at the largest size the reopen time (close, open a
new instance on the same path, first search returns). Our top-10 ids are
checked against numpy's (recall@10), and LanceDB's too.

Our store keeps the ``MemoryRecord`` fields it built, by record id and
version, and fetches from the core only the records it has not built (a
repeated recall, as CrewAI makes, hits the same records): ``search`` is timed
with that cache filled by the recall pass that precedes the timed rounds,
and ``search_uncached`` with it off, every hit fetched and built as on a
first search.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..demo.offline import offline_environment
from ..runtime import backend as _backend
from . import percentiles, ratio, timings

if TYPE_CHECKING:
    from crewai.memory.types import MemoryRecord

FULL_SIZES = [(1_000, 384), (1_000, 1536), (10_000, 384), (10_000, 1536), (100_000, 384), (100_000, 1536)]
QUICK_SIZES = [(1_000, 384), (10_000, 384)]
SEED = 20261123
# Records per save() call while filling a store: bulk throughput. A crew's
# Memory.remember() saves one record at a time; SINGLE_SAVES such saves are
# timed separately.
CHUNK = 1_000
SINGLE_SAVES = 20
TEAMS, AGENTS = 8, 5
CATEGORIES = ["finance", "legal", "product", "people", "ops", "research"]
# About 1/8 x 1/6 of the records match. "team_3" has no string-prefix
# sibling ("team_30"), so LanceDB's LIKE-prefix and our per-segment prefix
# select the same records.
FILTER: dict[str, Any] = {"scope_prefix": "/crew/team_3", "categories": ["legal"]}
VOCABULARY = [f"term{i}" for i in range(5_000)]
LEXICAL_QUERIES = ["term12 term345", "term7 term1999 term42", "term100"]
# LanceDB at 100k x 1536 scans 600 MB per query; above this estimate for its
# whole point we skip it there and say so.
LANCEDB_BUDGET_S = 240.0
ROUNDS = 3
_BASE_TIME = datetime(2026, 1, 1)

Vectors = npt.NDArray[np.float32]


class Store(Protocol):
    def save(self, records: list[MemoryRecord]) -> None: ...

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]: ...


StoreT = TypeVar("StoreT", bound=Store)


class NumpyStore:
    """The brute-force baseline: a float32 matrix and its squared norms,
    CrewAI's score ``1 / (1 + squared L2)``, ``argpartition`` for the top k.
    It does the work ours does and no more: a filtered search selects the
    matching rows first and scans only those, and every hit is built as a
    new ``MemoryRecord`` with its embedding, by the same builder ours uses."""

    def __init__(self) -> None:
        self._pending: list[Vectors] = []
        self._matrix: Vectors = np.zeros((0, 0), dtype=np.float32)
        self._norms: Vectors = np.zeros(0, dtype=np.float32)
        self._fields: list[dict[str, Any]] = []
        self._scopes: npt.NDArray[np.str_] = np.array([], dtype=str)
        self._category_masks: dict[str, npt.NDArray[np.bool_]] = {}

    def save(self, records: list[MemoryRecord]) -> None:
        self._pending.append(np.asarray([r.embedding for r in records], dtype=np.float32))
        self._fields += [r.model_dump() for r in records]

    def _flush(self) -> None:
        if not self._pending:
            return
        parts = [self._matrix, *self._pending] if len(self._matrix) else self._pending
        self._matrix = np.ascontiguousarray(np.vstack(parts))
        self._pending = []
        self._norms = np.einsum("ij,ij->i", self._matrix, self._matrix)
        self._scopes = np.array([f["scope"] for f in self._fields])
        self._category_masks = {
            c: np.array([c in f["categories"] for f in self._fields])
            for c in {c for f in self._fields for c in f["categories"]}
        }

    def _rows(
        self, scope_prefix: str | None, categories: list[str] | None, metadata_filter: dict[str, Any] | None
    ) -> npt.NDArray[np.intp] | None:
        """The rows every filter admits, or None for all rows."""
        if not (scope_prefix and scope_prefix.strip("/")) and not categories and not metadata_filter:
            return None
        mask = np.ones(len(self._fields), dtype=bool)
        if scope_prefix is not None and scope_prefix.strip("/"):
            prefix = scope_prefix.rstrip("/")
            mask &= (self._scopes == prefix) | np.char.startswith(self._scopes, prefix + "/")
        if categories:
            empty = np.zeros(len(self._fields), dtype=bool)
            mask &= np.logical_or.reduce([self._category_masks.get(c, empty) for c in categories])
        if metadata_filter:
            mask &= np.array([all(f["metadata"].get(k) == v for k, v in metadata_filter.items()) for f in self._fields])
        return np.flatnonzero(mask)

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        from ..memory_search._records import _build_record

        self._flush()
        query = np.asarray(query_embedding, dtype=np.float32)
        rows = self._rows(scope_prefix, categories, metadata_filter)
        matrix, norms = (self._matrix, self._norms) if rows is None else (self._matrix[rows], self._norms[rows])
        distances = norms - 2.0 * (matrix @ query) + float(query @ query)
        scores = 1.0 / (1.0 + np.maximum(distances, 0.0))
        candidates = np.flatnonzero(scores >= min_score)
        if len(candidates) > limit:
            candidates = candidates[np.argpartition(-scores[candidates], limit - 1)[:limit]]
        ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [
            (_build_record({**self._fields[row], "embedding": matrix[i].tolist()}), float(scores[i]))
            for i, row in ((i, i if rows is None else int(rows[i])) for i in ranked)
        ]


def _vectors(rng: np.random.Generator, count: int, dims: int) -> Vectors:
    vectors = rng.standard_normal((count, dims), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _chunks(n: int, dims: int, first: int = 0) -> Iterator[list[MemoryRecord]]:
    """The benchmark's records ``first`` to ``n``, ``CHUNK`` at a time,
    identical on every call."""
    from crewai.memory.types import MemoryRecord

    for start in range(first, n, CHUNK):
        rng = np.random.default_rng([SEED, dims, start])
        vectors = _vectors(rng, min(CHUNK, n - start), dims)
        words = rng.zipf(1.3, size=(len(vectors), 12)) % len(VOCABULARY)
        records = []
        for offset, vector in enumerate(vectors):
            i = start + offset
            created = _BASE_TIME + timedelta(seconds=i)
            # model_construct: the fields are known-good, and validating a
            # 1536-float list per record would dominate generating them.
            records.append(
                MemoryRecord.model_construct(
                    id=f"rec-{i:07d}",
                    content=" ".join(VOCABULARY[w] for w in words[offset]),
                    scope=f"/crew/team_{i % TEAMS}/agent_{i % AGENTS}",
                    categories=[CATEGORIES[i % len(CATEGORIES)]],
                    metadata={"batch": start // CHUNK},
                    importance=0.5,
                    created_at=created,
                    last_accessed=created,
                    embedding=vector.tolist(),
                    source=None,
                    private=False,
                )
            )
        yield records


def _queries(count: int, dims: int) -> list[list[float]]:
    queries: list[list[float]] = _vectors(np.random.default_rng([SEED, dims, 7]), count, dims).tolist()
    return queries


def _rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _blas() -> dict[str, Any]:
    """numpy's BLAS as built and, for OpenBLAS, the kernel it runs now."""
    info: dict[str, Any] = {
        "numpy": np.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
        info["blas_build"] = blas.get("openblas configuration")
    except (TypeError, KeyError):
        info["blas"] = "unknown"
    # The running kernel is only visible from the library itself (what
    # threadpoolctl reads); look for it among the loaded shared objects.
    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        libraries = set()
    for library in sorted(libraries):
        lib = ctypes.CDLL(library)
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
            corename = getattr(lib, f"{prefix}_get_corename{suffix}", None)
            threads = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if corename is not None and threads is not None:
                corename.restype = ctypes.c_char_p
                info["openblas_kernel"] = corename().decode()
                info["openblas_threads"] = int(threads())
                return info
    return info


def _top_ids(results: list[tuple[MemoryRecord, float]]) -> list[str]:
    return [record.id for record, _ in results]


def _recall(found: list[list[str]], truth: list[list[str]]) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return round(hits / max(1, sum(len(t) for t in truth)), 4)


def _answers(store: Store, queries: list[list[float]]) -> dict[str, list[list[str]]]:
    return {
        "search": [_top_ids(store.search(q, limit=10)) for q in queries],
        "search_filtered": [_top_ids(store.search(q, limit=10, **FILTER)) for q in queries],
    }


def _fill(make: Callable[[], StoreT], n: int, dims: int) -> tuple[StoreT, dict[str, Any]]:
    """A new store holding the benchmark's records, with its save throughput
    and how much resident memory it added."""
    before = _rss()
    store = make()
    spent = 0.0
    for records in _chunks(n, dims):
        start = time.perf_counter()
        store.save(records)
        spent += time.perf_counter() - start
    store.search(_queries(1, dims)[0], limit=10)  # a lazily built index counts too
    return store, {"save_records_per_s": round(n / spent), "rss_delta_mb": round((_rss() - before) / 2**20, 1)}


def _timed_rounds(
    stores: dict[str, Store], queries: list[list[float]], lexical: Callable[[], object]
) -> dict[str, dict[str, dict[str, float]]]:
    """Search p50/p95 per store, from the best of ``ROUNDS`` rounds that take
    turns between the stores, so a burst of other load on this 2-core
    machine slows one round of every store rather than all of one store."""
    jobs: dict[tuple[str, str], Callable[[], object]] = {}
    for name, store in stores.items():
        jobs[name, "search"] = _search_job(store, queries, {})
        jobs[name, "search_filtered"] = _search_job(store, queries, FILTER)
    jobs["ours", "lexical"] = lexical
    jobs["ours", "search_uncached"] = _uncached_search_job(stores["ours"], queries)
    best: dict[str, dict[str, dict[str, float]]] = {name: {} for name in stores}
    for _ in range(ROUNDS):
        for (name, kind), job in jobs.items():
            t = timings(job, len(queries))
            if kind not in best[name] or t["p50"] < best[name][kind]["p50"]:
                best[name][kind] = t
    return {name: {kind: _ms(t) for kind, t in kinds.items()} for name, kinds in best.items()}


def _uncached_search_job(store: Store, queries: list[list[float]]) -> Callable[[], object]:
    """Ours with its record cache off, as on a first search: every hit's
    record is fetched from the core and built (the warm-up calls empty the
    cache; nothing is added to it while the job runs)."""
    cache = store._index.record_cache  # type: ignore[attr-defined]
    search = _search_job(store, queries, {})

    def job() -> object:
        capacity, cache.capacity = cache.capacity, 0
        try:
            cache.clear()
            return search()
        finally:
            cache.capacity = capacity

    return job


def _search_job(store: Store, queries: list[list[float]], filters: dict[str, Any]) -> Callable[[], object]:
    """One top-10 search per call, cycling through ``queries``."""
    cycle = itertools.cycle(queries)
    return lambda: store.search(next(cycle), limit=10, **filters)


def _single_saves(stores: dict[str, Store], n: int, dims: int) -> dict[str, dict[str, float]]:
    """p50/p95 of saving one record into each filled store (the same new
    records in every store, taking turns)."""
    (records,) = _chunks(n + SINGLE_SAVES, dims, first=n)
    samples: dict[str, list[float]] = {name: [] for name in stores}
    for record in records:
        for name, store in stores.items():
            start = time.perf_counter()
            store.save([record])
            samples[name].append(time.perf_counter() - start)
    return {name: _ms(percentiles(times)) for name, times in samples.items()}


def _ms(t: dict[str, float]) -> dict[str, float]:
    return {"p50_ms": round(t["p50"] * 1e3, 3), "p95_ms": round(t["p95"] * 1e3, 3)}


def _first_search_ms(open_store: Callable[[], Store], query: list[float]) -> float:
    """Milliseconds from opening a store on existing data to its first answer."""
    gc.collect()
    start = time.perf_counter()
    open_store().search(query, limit=10)
    return round((time.perf_counter() - start) * 1e3, 1)


def _join_lancedb_compaction() -> None:
    # Opening a table and every 100th save start a background compaction;
    # left running, it takes a core from whatever is measured next.
    for thread in threading.enumerate():
        if thread.name == "lancedb-compact":
            thread.join()


def _bench_point(n: int, dims: int, workdir: Path, reopen: bool, skip_lancedb: str | None) -> dict[str, Any]:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from ..memory_search._storage import AcceleratedMemoryStorage

    queries = _queries(20 if n >= 100_000 else 50, dims)
    point: dict[str, Any] = {"n": n, "dims": dims, "queries": len(queries), "rounds": ROUNDS}
    ours_path, lance_path = workdir / "ours", workdir / "lancedb"
    numpy_store, point["numpy"] = _fill(NumpyStore, n, dims)
    ours, point["ours"] = _fill(lambda: AcceleratedMemoryStorage(ours_path), n, dims)
    stores: dict[str, Store] = {"ours": ours, "numpy": numpy_store}
    if skip_lancedb:
        point["lancedb"] = {"skipped": skip_lancedb}
    else:
        started = time.perf_counter()
        stores["lancedb"], point["lancedb"] = _fill(lambda: LanceDBStorage(path=lance_path), n, dims)
        _join_lancedb_compaction()
    truth = _answers(numpy_store, queries)
    for name in ("ours", "lancedb"):
        if name in stores:
            answers = _answers(stores[name], queries)
            point[name]["recall_at_10"] = {k: _recall(answers[k], truth[k]) for k in truth}
    lexical = itertools.cycle(LEXICAL_QUERIES)
    for name, kinds in _timed_rounds(stores, queries, lambda: ours.search_text(next(lexical), limit=10)).items():
        point[name].update(kinds)
    for name, times in _single_saves(stores, n, dims).items():
        point[name]["save_one"] = times
    _join_lancedb_compaction()
    ours.close()
    if reopen:
        point["ours"]["reopen_ms"] = _first_search_ms(lambda: AcceleratedMemoryStorage(ours_path), queries[0])
    point["ours"]["disk_mb"] = round(_disk_bytes(ours_path) / 2**20, 1)
    if "lancedb" in stores:
        # LanceDBStorage has no close(): the new instance opens beside the old
        # one, as a second Memory in the same process would.
        if reopen:
            point["lancedb"]["reopen_ms"] = _first_search_ms(lambda: LanceDBStorage(path=lance_path), queries[0])
        _join_lancedb_compaction()
        point["lancedb"]["disk_mb"] = round(_disk_bytes(lance_path) / 2**20, 1)
        point["lancedb"]["wall_s"] = round(time.perf_counter() - started, 1)
    return point


def run(quick: bool) -> dict[str, Any]:
    offline_environment()
    sizes = QUICK_SIZES if quick else FULL_SIZES
    blas = _blas()
    print(
        f"  numpy {blas['numpy']} BLAS {blas.get('blas')} kernel {blas.get('openblas_kernel', '?')}"
        f" threads {blas.get('openblas_threads', '?')}  OPENBLAS_CORETYPE={blas['OPENBLAS_CORETYPE'] or 'unset'}",
        flush=True,
    )
    print(
        f"  ours: {_backend.active()} backend.  Search times: best of {ROUNDS} interleaved rounds.  Memory: psutil RSS"
        " delta while filling a store (native and wasm memory included; LanceDB reads its files through the page"
        " cache, which RSS does not count)",
        flush=True,
    )
    points: list[dict[str, Any]] = []
    for n, dims in sizes:
        estimate = _estimate_lancedb_seconds(points, n, dims)
        skip = f"estimated {estimate:.0f} s > budget {LANCEDB_BUDGET_S:.0f} s" if estimate > LANCEDB_BUDGET_S else None
        workdir = Path(tempfile.mkdtemp(prefix="fast-crewai-bench-"))
        try:
            point = _bench_point(n, dims, workdir, reopen=n == sizes[-1][0], skip_lancedb=skip)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        point["ratios"] = _ratios(point)
        points.append(point)
        _print_point(point)
    targets = _targets(points)
    for t in targets:
        print(f"  target {t['name']}: {t['value']} (need {t['need']}) -> {t['verdict']}", flush=True)
    return {
        "blas": blas,
        "ours_backend": _backend.active(),
        "memory_measure": "psutil RSS delta",
        "search_measure": f"p50/p95 of the best of {ROUNDS} interleaved rounds",
        "filter": FILTER,
        "chunk": CHUNK,
        "points": points,
        "targets": targets,
    }


def _estimate_lancedb_seconds(points: list[dict[str, Any]], n: int, dims: int) -> float:
    """LanceDB's time for a point, scaled linearly from the largest measured
    point of the same dimension (0 when there is none: then just run it)."""
    measured = [p for p in points if p["dims"] == dims and "wall_s" in p["lancedb"]]
    if not measured:
        return 0.0
    last = max(measured, key=lambda p: p["n"])
    return float(last["lancedb"]["wall_s"]) * n / int(last["n"])


def _ratios(point: dict[str, Any]) -> dict[str, float]:
    ours, numpy_, lance = point["ours"], point["numpy"], point["lancedb"]
    out: dict[str, float] = {}
    for kind in ("search", "search_filtered"):
        out[f"{kind}_ours_over_numpy"] = ratio(ours[kind]["p50_ms"], numpy_[kind]["p50_ms"])
        if kind in lance:
            out[f"{kind}_lancedb_over_ours"] = ratio(lance[kind]["p50_ms"], ours[kind]["p50_ms"])
    out["search_uncached_ours_over_numpy"] = ratio(ours["search_uncached"]["p50_ms"], numpy_["search"]["p50_ms"])
    if "save_records_per_s" in lance:
        out["save_ours_over_lancedb"] = ratio(ours["save_records_per_s"], lance["save_records_per_s"])
        out["save_one_lancedb_over_ours"] = ratio(lance["save_one"]["p50_ms"], ours["save_one"]["p50_ms"])
    if "reopen_ms" in lance:
        out["reopen_lancedb_over_ours"] = ratio(lance["reopen_ms"], ours["reopen_ms"])
    return out


def _print_point(point: dict[str, Any]) -> None:
    print(f"  -- {point['n']:,} records x {point['dims']} dims ({point['queries']} queries)", flush=True)
    for name in ("ours", "lancedb", "numpy"):
        m = point[name]
        if "skipped" in m:
            print(f"     {name:<8} skipped: {m['skipped']}", flush=True)
            continue
        extra = ""
        if "recall_at_10" in m:
            extra += f"  recall@10 {m['recall_at_10']['search']}/{m['recall_at_10']['search_filtered']}"
        if "search_uncached" in m:
            extra += f"  search p50 without record cache {m['search_uncached']['p50_ms']} ms"
        if "lexical" in m:
            extra += f"  lexical p50 {m['lexical']['p50_ms']} ms"
        if "reopen_ms" in m:
            extra += f"  reopen {m['reopen_ms']} ms"
        if "disk_mb" in m:
            extra += f"  disk {m['disk_mb']} MB"
        print(
            f"     {name:<8} save {m['save_records_per_s']:>9,}/s  save one p50 {m['save_one']['p50_ms']:>7} ms"
            f"  search p50 {m['search']['p50_ms']:>8} ms"
            f" p95 {m['search']['p95_ms']:>8} ms  filtered p50 {m['search_filtered']['p50_ms']:>8} ms"
            f" p95 {m['search_filtered']['p95_ms']:>8} ms  rss +{m['rss_delta_mb']} MB{extra}",
            flush=True,
        )
    print("     ratios: " + "  ".join(f"{k} {v}x" for k, v in point["ratios"].items()), flush=True)


def _targets(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def at(n: int, dims: int) -> dict[str, Any] | None:
        return next((p for p in points if p["n"] == n and p["dims"] == dims), None)

    def verdict(point: dict[str, Any] | None, key: str, test: Callable[[float], bool]) -> tuple[Any, str]:
        if point is None:
            return None, "not measured in this run"
        if key not in point["ratios"]:
            return None, "not measured (LanceDB skipped)"
        value = point["ratios"][key]
        return value, "met" if test(value) else "NOT met"

    out = []
    for name, point, key, need, test in (
        ("10k x 1536 search vs LanceDB", at(10_000, 1536), "search_lancedb_over_ours", ">= 40x", lambda v: v >= 40),
        ("10k x 1536 search vs numpy", at(10_000, 1536), "search_ours_over_numpy", "<= 1.2x", lambda v: v <= 1.2),
        ("100k x 384 search vs LanceDB", at(100_000, 384), "search_lancedb_over_ours", ">= 10x", lambda v: v >= 10),
    ):
        value, result = verdict(point, key, test)
        out.append({"name": name, "value": value, "need": need, "verdict": result})
    saves = [p["ratios"]["save_ours_over_lancedb"] for p in points if "save_ours_over_lancedb" in p["ratios"]]
    out.append(
        {
            "name": "save throughput vs LanceDB (worst size)",
            "value": min(saves) if saves else None,
            "need": ">= 2x",
            "verdict": ("met" if min(saves) >= 2 else "NOT met") if saves else "not measured",
        }
    )
    recalls = [p["ours"]["recall_at_10"][k] for p in points for k in ("search", "search_filtered")]
    out.append(
        {
            "name": "recall@10 vs numpy (worst)",
            "value": min(recalls),
            "need": "1.0",
            "verdict": "met" if min(recalls) == 1.0 else "NOT met",
        }
    )
    return out
