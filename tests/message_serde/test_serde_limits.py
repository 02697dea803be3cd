"""Message serde under hostile sizes and wrong types: the codec's limits
(127 MiB per document, 256 nested arrays and objects, 65,536 members per
object) hold on both backends alike, in linear time, with their own error
kinds."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fast_crewai import AgentMessage, FastCrewAIError, SerdeError
from fast_crewai.message_serde._contract import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_MEMBERS
from fast_crewai.message_serde._core import WasmSerde
from fast_crewai.message_serde._reference import PythonSerde

HEAD = '{"id":"1","sender":"a","recipient":"b","content":"'
MIDDLE = '","timestamp":1,"metadata":'


def document(metadata: str, content: str = "") -> str:
    return f"{HEAD}{content}{MIDDLE}{metadata}}}"


def wide_object(n: int) -> str:
    return "{" + ",".join(f'"key-{i}":{i}' for i in range(n)) + "}"


def nested(levels: int) -> str:
    """Metadata that makes ``levels`` nested arrays and objects in all,
    counting the message and its metadata."""
    arrays = levels - 2
    return '{"x":' + "[" * arrays + "]" * arrays + "}"


# Guards against a super-linear blow-up, not speed targets (those live in
# the benchmarks): comparing each key with every earlier one took 88 s for
# 200k keys in the core, and would take ~9 s for 65,536. Linear work takes
# well under a second, ~0.7 s of CPU on the Python backend on a loaded
# machine; the bound leaves room for that. Timings are CPU seconds of this
# process (the core runs in it), so other processes do not count.
BLOWUP_CPU_S = 5.0


def test_a_200k_key_object_is_refused_without_a_blowup(backend: str) -> None:
    # 200k keys took 88 s in the core when each key was compared with every earlier one.
    text = document(wide_object(200_000))
    started = time.process_time()
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json(text)
    elapsed = time.process_time() - started
    assert info.value.kind == "too-large"
    assert f"more than {MAX_MEMBERS} members" in info.value.message
    assert elapsed < BLOWUP_CPU_S, elapsed


def test_the_largest_object_parses_without_a_blowup(backend: str) -> None:
    text = document(wide_object(MAX_MEMBERS))
    started = time.process_time()
    decoded = AgentMessage.from_json(text)
    elapsed = time.process_time() - started
    assert len(decoded.metadata) == MAX_MEMBERS
    assert elapsed < BLOWUP_CPU_S, elapsed
    one_more = document(wide_object(MAX_MEMBERS + 1))
    with pytest.raises(SerdeError, match="members") as info:
        AgentMessage.from_json(one_more)
    assert info.value.kind == "too-large"


def test_duplicate_keys_in_a_large_object_are_found_fast(backend: str) -> None:
    text = document(wide_object(MAX_MEMBERS - 1)[:-1] + ',"key-7":0}')
    started = time.process_time()
    with pytest.raises(SerdeError, match='duplicate key "key-7"') as info:
        AgentMessage.from_json(text)
    assert time.process_time() - started < BLOWUP_CPU_S
    assert info.value.kind == "invalid-json"


def depth(value: object) -> int:
    levels = 0
    while isinstance(value, list):
        levels += 1
        value = value[0] if value else None
    return levels


def test_depth_limit_edges(backend: str) -> None:
    assert depth(AgentMessage.from_json(document(nested(MAX_DEPTH))).metadata["x"]) == MAX_DEPTH - 2
    text = document(nested(MAX_DEPTH + 1))
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json(text)
    assert info.value.kind == "too-deep"
    # The bracket that opens the 257th level: the message and metadata are two.
    assert info.value.position == text.index("[") + MAX_DEPTH - 2
    # A scalar inside the deepest array adds no level.
    with_scalar = document(nested(MAX_DEPTH).replace("[]", "[1]"))
    assert depth(AgentMessage.from_json(with_scalar).metadata["x"]) == MAX_DEPTH - 2


def test_far_too_deep_is_refused_without_recursing(backend: str) -> None:
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json(document("[" * 100_000))
    assert info.value.kind == "too-deep"
    deep: object = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(SerdeError) as encode_info:
        AgentMessage("1", "a", "b", "c", 1.0, {"deep": deep}).to_json()
    assert (encode_info.value.kind, encode_info.value.field) == ("too-deep", "metadata")
    # Past the limit but within Python's recursion: the canonicaliser refuses it.
    shallow: object = []
    for _ in range(300):
        shallow = [shallow]
    with pytest.raises(SerdeError) as batch_info:
        AgentMessage.encode_many(
            [AgentMessage("1", "a", "b", "c", 1.0, {}), AgentMessage("2", "a", "b", "c", 1.0, {"s": shallow})]
        )
    assert (batch_info.value.kind, batch_info.value.field) == ("too-deep", "[1].metadata")


def test_document_size_limit_edges(backend: str) -> None:
    filler = MAX_DOCUMENT_BYTES - len(document("{}"))
    largest = document("{}", "x" * filler)
    assert len(largest) == MAX_DOCUMENT_BYTES
    # The largest document crosses in and, canonical already, back out whole.
    assert len(AgentMessage.from_json(largest).content) == filler
    del largest
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json(document("{}", "x" * (filler + 1)))
    assert info.value.kind == "too-large"
    assert info.value.message == (
        f"the document is {MAX_DOCUMENT_BYTES + 1} bytes, more than the limit of {MAX_DOCUMENT_BYTES} bytes"
    )
    # Multi-byte text counts in UTF-8 bytes, not characters.
    with pytest.raises(SerdeError) as wide_info:
        AgentMessage.from_json(document("{}", "é" * (filler // 2 + 1)))
    assert wide_info.value.kind == "too-large"


def test_a_canonical_form_past_the_limit_is_refused(backend: str) -> None:
    # "1e15" (4 bytes) is "1000000000000000.0" (18) in canonical form.
    floats = 2_000_000
    metadata = '{"f":[' + ",".join(["1e15"] * floats) + "]}"
    content = "x" * (MAX_DOCUMENT_BYTES - len(document(metadata)) - floats * 7)
    text = document(metadata, content)
    assert len(text) < MAX_DOCUMENT_BYTES
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json(text)
    assert info.value.kind == "too-large"
    assert info.value.message.startswith(f"the canonical form is {len(text) + floats * 14} bytes")


@pytest.mark.parametrize("given", [b'{"id": "1"}', None, 42, ["{}"], bytearray(b"{}")])
def test_anything_but_str_is_a_typed_error(backend: str, given: object) -> None:
    for call in (AgentMessage.from_json, AgentMessage.decode_many):
        with pytest.raises(SerdeError) as info:
            call(given)  # type: ignore[arg-type]
        assert info.value.kind == "invalid-json"
        assert type(given).__name__ in info.value.message
    for serde in (WasmSerde(), PythonSerde()):
        with pytest.raises(SerdeError):
            serde.canonicalize_one(given)  # type: ignore[arg-type]


def test_encoding_something_that_is_not_a_message_is_a_typed_error(backend: str) -> None:
    good = AgentMessage("1", "a", "b", "c", 1.0, {})
    with pytest.raises(SerdeError) as info:
        AgentMessage.encode_many([good, {"id": "2"}])  # type: ignore[list-item]
    assert (info.value.kind, info.value.field) == ("invalid-message", "[1]")
    assert isinstance(info.value, FastCrewAIError)


# --------------------------------------------------------------------------- core vs reference


def _outcome(backend: object, text: str) -> tuple[str, str | None, str | None, int | None]:
    try:
        return ("ok", backend.canonicalize_many(text), None, None)  # type: ignore[attr-defined]
    except SerdeError as exc:
        # Positions are part of the contract for syntax and depth faults;
        # the reference cannot place a fault its hooks find.
        position = exc.position if exc.kind == "too-deep" else None
        return (exc.kind, None, exc.field, position)


_FRAGMENTS = st.sampled_from(
    ["[", "]", "{", "}", '{"k":', '"a":1', ",", "1", "1e400", '"\\ud800"', "x", " ", '"s"', ":", '{"a":1,"a":2}']
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.integers(min_value=MAX_DEPTH - 3, max_value=MAX_DEPTH + 3),
    st.lists(_FRAGMENTS, max_size=6),
    st.lists(_FRAGMENTS, max_size=6),
    st.booleans(),
)
def test_core_and_reference_agree_near_the_depth_limit(
    levels: int, before: list[str], inside: list[str], objects: bool
) -> None:
    opener, closer = ('{"k":', "}") if objects else ("[", "]")
    text = "[" + "".join(before) + opener * (levels - 1) + "".join(inside) + closer * (levels - 1) + "]"
    core, reference = _outcome(WasmSerde(), text), _outcome(PythonSerde(), text)
    assert core == reference, (text, core, reference)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(min_value=MAX_MEMBERS - 2, max_value=MAX_MEMBERS + 2), st.integers(min_value=-1, max_value=70_000))
def test_core_and_reference_agree_near_the_member_limit(members: int, repeat: int) -> None:
    keys = [f"k{i}" for i in range(members)]
    if 0 <= repeat < members - 1:
        keys[-1] = keys[repeat]
    text = "[" + "{" + ",".join(f'"{key}":0' for key in keys) + "}]"
    assert _outcome(WasmSerde(), text)[0] == _outcome(PythonSerde(), text)[0]
