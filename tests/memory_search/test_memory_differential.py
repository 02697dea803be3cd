"""The core's memory-search against the Python reference: random sequences
of calls on two fresh stores give the same JSON (scores within 1e-6, the
same order) and the same errors, and each can read the other's file."""

from __future__ import annotations

import base64
import itertools
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fast_crewai.memory_search._contract import MemoryIndex
from fast_crewai.memory_search._core import WasmMemoryIndex
from fast_crewai.memory_search._reference import PythonMemoryIndex

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_names = itertools.count()

# Characters Python 3.11's Unicode 14 tables know; the core's tables are
# newer, and later additions may tokenise or lowercase differently.
CHARS = st.characters(blacklist_categories=("Cs", "Cn"))
WORDS = [
    "cat", "Cat", "CAT", "dog", "the", "a", "ΟΔΟΣ", "οδος", "Straße", "İstanbul", "東京", "naïve", "e\u0301",
    "Ⓐb", "नमस्ते", "مَرْحَبًا", "שָׁלוֹם", "42", "Ⅻ", "x²", "😀", "a\x00b", "x_y", "𝔘𝔫𝔦", "ǅ", "ﬃ",
]  # fmt: skip
CONTENT = st.one_of(st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join), st.text(CHARS, max_size=12))
IDS = st.sampled_from(["a", "b", "c", "d", "e", "f", "ü", "x y"])
SCOPES = st.sampled_from(["/", "/a", "/a/b", "/a/b/c", "/ab", "/x", "/a/", "a", "", "//"])
CATEGORIES = st.lists(st.sampled_from(["c1", "c2", "c3", "é"]), max_size=3)
JSON_VALUES = st.sampled_from([1, 1.0, True, False, 0, "1", None, [1, 2], {"z": 1}, {"z": 1.0}, 2.5, -0.0, 10**20])
METADATA = st.dictionaries(st.sampled_from(["k", "m", "n"]), JSON_VALUES, max_size=3)
TIMES = st.one_of(st.sampled_from([0.0, -0.0, 1.0, 1.5, 1e9]), st.floats(-1e10, 1e10))
ELEMENTS = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0]), st.floats(-8, 8, width=32))
TEXT = st.text(CHARS, max_size=6)


def packed(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")


def vectors(dim: int) -> st.SearchStrategy[str]:
    # Mostly the store's dimension; sometimes another, for the errors.
    size = st.one_of(st.just(dim), st.just(dim), st.just(dim), st.sampled_from([dim + 1, 0]))
    return size.flatmap(lambda n: st.lists(ELEMENTS, min_size=n, max_size=n)).map(packed)


def records(dim: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": IDS, "content": CONTENT, "created_at": TEXT, "created_ts": TIMES},
        optional={
            "scope": st.none() | SCOPES,
            "categories": st.none() | CATEGORIES,
            "metadata": st.none() | METADATA,
            "importance": st.none() | st.floats(0, 1),
            "last_accessed": st.none() | TEXT,
            "source": st.none() | TEXT,
            "private": st.none() | st.booleans(),
            "embedding": st.none() | st.just("") | vectors(dim),
        },
    )


FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "scope_prefix": st.none() | SCOPES,
        "categories": st.none() | CATEGORIES,
        "metadata": st.none() | METADATA,
        "ids": st.none() | st.lists(IDS, max_size=3),
        "older_than": st.none() | TIMES,
    },
).map(json.dumps)
PREFIXES = st.none() | SCOPES
LIMITS = st.integers(0, 8)


def packed_batch(items: list[dict[str, Any]], skew: int) -> tuple[str, str]:
    """``save-packed``'s arguments for a batch of ``save`` records: each
    base64 embedding moved into one block, replaced by its count of values
    (``skew`` added to the last count, to miscount the block)."""
    block = b""
    counted = []
    for item in items:
        item = dict(item)
        if isinstance(item.get("embedding"), str):
            raw = base64.b64decode(item["embedding"])
            block += raw
            item["embedding"] = len(raw) // 4
        counted.append(item)
    for item in reversed(counted):
        if isinstance(item.get("embedding"), int) and skew:
            item["embedding"] += skew
            break
    return json.dumps(counted), base64.b64encode(block).decode("ascii")


def operations(dim: int) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.one_of(
        st.tuples(st.just("save"), st.lists(records(dim), max_size=6).map(json.dumps)),
        st.builds(
            lambda items, skew: ("save_packed", *packed_batch(items, skew)),
            st.lists(records(dim), max_size=6),
            st.sampled_from([0, 0, 0, 1, -1]),
        ),
        st.tuples(st.just("search"), vectors(dim), FILTERS, LIMITS, st.sampled_from([0.0, 0.3, -1.0, 1.0, 1.5])),
        st.tuples(st.just("search_text"), CONTENT, FILTERS, LIMITS),
        st.tuples(st.just("search_hits"), vectors(dim), FILTERS, LIMITS, st.sampled_from([0.0, 0.3, -1.0, 1.0, 1.5])),
        st.tuples(st.just("search_text_hits"), CONTENT, FILTERS, LIMITS),
        st.tuples(st.just("records"), st.lists(IDS, max_size=4).map(json.dumps)),
        st.tuples(st.just("delete"), FILTERS),
        st.tuples(st.just("get"), IDS),
        st.tuples(st.just("list"), PREFIXES, LIMITS, LIMITS),
        st.tuples(st.just("scope_info"), SCOPES),
        st.tuples(st.just("list_scopes"), SCOPES),
        st.tuples(st.just("list_categories"), PREFIXES),
        st.tuples(st.just("count"), PREFIXES),
        st.tuples(st.just("reset"), PREFIXES),
        st.tuples(st.just("touch"), st.lists(IDS, max_size=3).map(json.dumps), TEXT),
        st.tuples(st.just("dimension")),
    )


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("differential")


def outcome(index: MemoryIndex, name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", getattr(index, name)(*args)
    except Exception as exc:
        return "error", type(exc).__name__


def assert_same(name: str, core: tuple[str, Any], reference: tuple[str, Any]) -> None:
    if name in ("search", "search_text") and core[0] == reference[0] == "ok":
        ours, theirs = json.loads(core[1]), json.loads(reference[1])
        assert [r for r, _ in ours] == [r for r, _ in theirs]
        for (_, a), (_, b) in zip(ours, theirs, strict=True):
            assert math.isclose(a, b, rel_tol=0, abs_tol=1e-6)
    elif name in ("search_hits", "search_text_hits") and core[0] == reference[0] == "ok":
        # Versions are each backend's own numbering; ids and scores agree.
        ours, theirs = json.loads(core[1]), json.loads(reference[1])
        assert [id for id, _, _ in ours] == [id for id, _, _ in theirs]
        for (_, _, a), (_, _, b) in zip(ours, theirs, strict=True):
            assert math.isclose(a, b, rel_tol=0, abs_tol=1e-6)
    elif name == "records" and core[0] == reference[0] == "ok":
        unversioned = [[None if e is None else e[1] for e in json.loads(r[1])] for r in (core, reference)]
        assert unversioned[0] == unversioned[1]
    else:
        assert core == reference


def assert_hits_name_their_records(index: MemoryIndex, hits: str) -> None:
    """What ``records`` answers for the ids a search named carries the
    versions the search gave, and the records the full search returns."""
    triples = json.loads(hits)
    fetched = json.loads(index.records(json.dumps([id for id, _, _ in triples])))
    assert [e[0] for e in fetched] == [version for _, version, _ in triples]
    assert [e[1]["id"] for e in fetched] == [id for id, _, _ in triples]


@contextmanager
def fresh(directory: Path) -> Iterator[tuple[WasmMemoryIndex, PythonMemoryIndex]]:
    """A new store on each backend, closed afterwards."""
    n = next(_names)
    core, reference = WasmMemoryIndex(directory / f"core{n}.db"), PythonMemoryIndex(directory / f"reference{n}.db")
    try:
        yield core, reference
    finally:
        core.close()
        reference.close()


@SETTINGS
@given(data=st.data(), dim=st.sampled_from([1, 3, 16, 17, 35]))
def test_random_calls_agree(directory: Path, data: st.DataObject, dim: int) -> None:
    with fresh(directory) as (core, reference):
        for op in data.draw(st.lists(operations(dim), min_size=1, max_size=12)):
            name, args = op[0], op[1:]
            results = outcome(core, name, args), outcome(reference, name, args)
            assert_same(name, *results)
            if name.endswith("_hits") and results[0][0] == "ok":
                for index, (_, hits) in zip((core, reference), results, strict=True):
                    assert_hits_name_their_records(index, hits)
        # Each backend reads the other's file to the same records.
        listing = (None, 1000, 0)
        crossed = PythonMemoryIndex(core.path), WasmMemoryIndex(reference.path)
        try:
            assert crossed[0].list(*listing) == core.list(*listing)
            assert crossed[1].list(*listing) == reference.list(*listing)
            assert crossed[0].dimension() == core.dimension()
        finally:
            for index in crossed:
                index.close()


def vector_item(i: int, vector: Any, **fields: Any) -> dict[str, Any]:
    """Record ``r{i}`` with this vector and little else."""
    embedding = packed(list(vector))
    return {"id": f"r{i}", "content": "x", "created_at": "t", "created_ts": float(i), "embedding": embedding, **fields}


def test_ties_and_near_ties_rank_identically(directory: Path) -> None:
    """Bit-identical distances: vectors whose float32 distances differ in the
    last bits rank the same way on both backends."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=64).astype("<f4")
    items = []
    for i in range(300):
        vector = base.copy()
        vector[i % 64] = np.nextafter(vector[i % 64], np.float32(np.inf) if i % 2 else np.float32(-np.inf))
        if i % 5 == 0:
            vector = base.copy()
        items.append(vector_item(i, vector))
    with fresh(directory) as (core, reference):
        for index in (core, reference):
            index.save(json.dumps(items))
        query = packed(list(base + np.float32(1e-3)))
        assert core.search(query, "{}", 300, 0.0) == reference.search(query, "{}", 300, 0.0)


@pytest.mark.parametrize("dim", [100, 384])
def test_stores_past_the_int8_prescan_threshold_rank_identically(directory: Path, dim: int) -> None:
    """From 256 rows the core bounds distances with an int8 scan (relaxed
    SIMD) before rescoring exactly; the reference always scans exactly. Ties,
    near-duplicates, a tail after the last 16-element block (dim 100) and
    filters must not tell them apart."""
    rng = np.random.default_rng(dim)
    base = rng.normal(size=(40, dim)).astype("<f4")
    items = []
    for i in range(1500):
        if i % 3 == 0:
            vector = base[i % 40].copy()
        elif i % 3 == 1:
            vector = base[i % 40] + rng.normal(scale=1e-4, size=dim).astype("<f4")
        else:
            vector = rng.normal(size=dim).astype("<f4") * np.float32(10.0 ** rng.integers(-3, 3))
        items.append(vector_item(i, vector, scope=f"/s/{i % 4}", categories=[f"c{i % 3}"]))
    with fresh(directory) as (core, reference):
        for index in (core, reference):
            index.save(json.dumps(items))
        queries = [base[0], base[7] + np.float32(1e-3), rng.normal(size=dim).astype("<f4"), np.zeros(dim, "<f4")]
        for query in map(packed, map(list, queries)):
            for flt in ("{}", '{"scope_prefix": "/s/1"}', '{"categories": ["c2"]}'):
                for limit, min_score in ((10, 0.0), (57, 0.0), (5, 0.5)):
                    assert core.search(query, flt, limit, min_score) == reference.search(query, flt, limit, min_score)


JUNK = st.one_of(
    st.text(CHARS, max_size=20),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(CHARS, max_size=5),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(CHARS, max_size=5), children),
        max_leaves=8,
    ).map(json.dumps),
)


@SETTINGS
@given(records_text=JUNK, filter_text=JUNK)
def test_malformed_input_is_refused_alike(directory: Path, records_text: str, filter_text: str) -> None:
    with fresh(directory) as (core, reference):
        for name, args in [
            ("save", (records_text,)),
            ("delete", (filter_text,)),
            ("search_text", ("cat", filter_text, 3)),
            ("touch", (records_text, "now")),
            ("count", (None,)),
        ]:
            assert outcome(core, name, args) == outcome(reference, name, args)


@pytest.mark.parametrize(
    "text",
    [
        '[{"id": "x", "id": "y", "content": "", "created_at": "", "created_ts": 0}]',
        '[{"id": "x", "content": "", "created_at": "", "created_ts": 1e999}]',
        '[{"id": "x", "content": "\\ud800", "created_at": "", "created_ts": 0}]',
        '[{"id": "x", "content": "", "created_at": "", "created_ts": 0, "embedding": "AAAA AAA="}]',
        '[{"id": "x", "content": "", "created_at": "", "created_ts": 0, "embedding": "AAB="}]',
        '[{"id": "x", "content": "", "created_at": "", "created_ts": 0, "embedding": "AACAfw=="}]',
        '[{"id": "x", "content": "", "created_at": "", "created_ts": 0, "extra": 1}]',
        '[{"id": "x", "content": "", "created_at": "", "created_ts": true}]',
        '[{"id": "x", "content": "", "created_at": null, "created_ts": 0}]',
        '[{"id": "x", "content": "", "created_ts": 0}]',
        "[" * 300 + "]" * 300,
    ],
)
def test_each_kind_of_bad_record_is_refused_by_both(directory: Path, text: str) -> None:
    with fresh(directory) as (core, reference):
        assert outcome(core, "save", (text,)) == outcome(reference, "save", (text,)) == ("error", "InvalidRecordError")
        assert core.count(None) == reference.count(None) == 0


@pytest.mark.parametrize("arg", ["lone \ud800 surrogate", "\udfff"])
def test_lone_surrogates_in_plain_arguments_are_invalid_input(directory: Path, arg: str) -> None:
    with fresh(directory) as (core, reference):
        for name, args in [("get", (arg,)), ("count", (arg,)), ("search_text", (arg, "{}", 3)), ("scope_info", (arg,))]:
            assert outcome(core, name, args) == outcome(reference, name, args) == ("error", "InvalidRecordError")
