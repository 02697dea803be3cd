"""Message serde: round trips, strictness and core-vs-reference agreement."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fast_crewai import AgentMessage, SerdeError
from fast_crewai.message_serde._core import WasmSerde
from fast_crewai.message_serde._reference import PythonSerde

ODD_TEXT = [
    "",
    "plain",
    "é ñ 中文 عربي עברית",
    "astral 😀 𝄞 𐍈",
    "combining e\u0301 and zero\u200bwidth",
    "controls \x00 \x01 \x1f \x7f",
    'quotes " and \\ backslash / slash',
    "line\nbreak\ttab\r\u2028\u2029",
    "x" * 100_000,
]


def message(**overrides: object) -> AgentMessage:
    fields: dict[str, object] = {
        "id": "m-1",
        "sender": "researcher",
        "recipient": "writer",
        "content": "hello",
        "timestamp": 1_700_000_000.25,
        "metadata": {"n": 2**80, "x": 0.1, "tiny": 5e-324, "big": 1e300, "neg": -0.0, "nested": [1, {"a": None}]},
    }
    fields.update(overrides)
    return AgentMessage(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("content", ODD_TEXT)
def test_round_trip_is_exact(backend: str, content: str) -> None:
    original = message(content=content, metadata={"k": content, "n": -(2**100), "f": 1 / 3})
    decoded = AgentMessage.from_json(original.to_json())
    assert decoded == original
    assert decoded.to_json() == original.to_json()


def test_canonical_form_matches_json_dumps(backend: str) -> None:
    original = message(content="é😀\n")
    expected = json.dumps(
        {
            "id": "m-1",
            "sender": "researcher",
            "recipient": "writer",
            "content": "é😀\n",
            "timestamp": 1_700_000_000.25,
            "metadata": original.metadata,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert original.to_json() == expected


def test_batch_round_trip(backend: str) -> None:
    batch = [message(id=str(i), content=ODD_TEXT[i % len(ODD_TEXT)][:50]) for i in range(1000)]
    encoded = AgentMessage.encode_many(batch)
    assert AgentMessage.decode_many(encoded) == batch
    assert AgentMessage.decode_many("[]") == []
    assert AgentMessage.encode_many([]) == "[]"


def test_escaped_input_decodes_to_the_same_message(backend: str) -> None:
    text = (
        '{"id":"\\u0031","sender":"a","recipient":"b","content":"\\ud83d\\ude00 \\u00e9",'
        '"timestamp":1E2,"metadata":{"big":123456789012345678901234567890}}'
    )
    decoded = AgentMessage.from_json(text)
    assert decoded.id == "1"
    assert decoded.content == "😀 é"
    assert decoded.timestamp == 100.0
    assert decoded.metadata["big"] == 123456789012345678901234567890


@pytest.mark.parametrize(
    ("text", "kind", "field"),
    [
        ("", "invalid-json", None),
        ("{", "invalid-json", None),
        ('{"id": "1",}', "invalid-json", None),
        ("[1, 2", "invalid-json", None),
        ('{"id": NaN}', "invalid-json", None),
        ('{"id": "\\ud800"}', "invalid-json", None),
        ('{"id": "\\udc00\\ud800"}', "invalid-json", None),
        ('{"id": "1", "id": "2"}', "invalid-json", None),
        ('{"timestamp": 1e999}', "invalid-json", None),
        ("[" * 300 + "]" * 300, "too-deep", None),
        ("[]", "invalid-message", None),
        ('{"sender":"a","recipient":"b","content":"c","timestamp":1,"metadata":{}}', "invalid-message", "id"),
        (
            '{"id":"1","sender":"a","recipient":"b","content":7,"timestamp":1,"metadata":{}}',
            "invalid-message",
            "content",
        ),
        (
            '{"id":"1","sender":"a","recipient":"b","content":"c","timestamp":true,"metadata":{}}',
            "invalid-message",
            "timestamp",
        ),
        (
            '{"id":"1","sender":"a","recipient":"b","content":"c","timestamp":1,"metadata":[]}',
            "invalid-message",
            "metadata",
        ),
        (
            '{"id":"1","sender":"a","recipient":"b","content":"c","timestamp":1,"metadata":{},"extra":1}',
            "invalid-message",
            "extra",
        ),
    ],
)
def test_from_json_rejects_with_a_typed_error(backend: str, text: str, kind: str, field: str | None) -> None:
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json(text)
    assert info.value.kind == kind
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_errors_carry_positions(backend: str) -> None:
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json('{"id": "é😀", x}')
    assert info.value.position == 13


def test_batch_error_names_the_message(backend: str) -> None:
    good = message().to_json()
    bad = good.replace('"sender":"researcher",', "")
    with pytest.raises(SerdeError) as info:
        AgentMessage.decode_many(f"[{good},{good},{bad}]")
    assert info.value.field == "[2].sender"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"content": "lone \ud800 surrogate"}, "content"),
        ({"metadata": {"x": float("nan")}}, None),
        ({"metadata": {"when": object()}}, "metadata"),
        ({"sender": 5}, "sender"),
    ],
)
def test_to_json_rejects_what_cannot_round_trip(backend: str, overrides: dict[str, object], field: str | None) -> None:
    with pytest.raises(SerdeError) as info:
        message(**overrides).to_json()
    if field is not None:
        assert info.value.field == field


def test_a_raw_lone_surrogate_in_input_is_rejected(backend: str) -> None:
    with pytest.raises(SerdeError) as info:
        AgentMessage.from_json('{"id": "\ud800"}')
    assert info.value.kind == "invalid-json"


# --------------------------------------------------------------------------- core vs reference

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _outcome(backend: object, text: str) -> tuple[str, str | None, str | None]:
    try:
        return ("ok", backend.canonicalize_many(text), None)  # type: ignore[attr-defined]
    except SerdeError as exc:
        return (exc.kind, None, exc.field)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.text(),
                "sender": st.text() | st.integers(),
                "recipient": st.text(),
                "content": st.text(),
                "timestamp": st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.booleans(),
                "metadata": st.dictionaries(st.text(max_size=8), json_values, max_size=5) | json_values,
            }
        ),
        max_size=5,
    ),
    st.booleans(),
)
def test_core_and_reference_agree_on_documents(items: list[dict[str, object]], ascii_only: bool) -> None:
    text = json.dumps(items, ensure_ascii=ascii_only)
    assert _outcome(WasmSerde(), text) == _outcome(PythonSerde(), text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(alphabet=st.sampled_from([*list('[]{}",:0123456789.eE+-tfnul \\u"dD8aA'), "é", "😀"]), max_size=40))
def test_core_and_reference_agree_on_garbage(text: str) -> None:
    core, reference = _outcome(WasmSerde(), text), _outcome(PythonSerde(), text)
    assert core[0] == reference[0], (text, core, reference)
    assert core == reference
