"""The core and the Python reference agree byte for byte on every text and
schema, including their errors (hypothesis)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fast_crewai import ToolGuardError
from fast_crewai.tool_guard._core import WasmGuard
from fast_crewai.tool_guard._reference import PythonGuard

CORE = WasmGuard()
REFERENCE = PythonGuard()
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that steer the reader: brackets, quotes, escapes, literal words,
# number pieces, comments, fences, and some non-ASCII.
_ALPHABET = list("{}[]\"':,.-+0123456789eE \n\tTrueFalsNonulxIfinity\\/*`#$_éu😀\r")
NOISE = st.text(alphabet=st.sampled_from(_ALPHABET), max_size=80)
# Tokens and near-tokens, so that most sequences exercise a reader rule.
FRAGMENTS = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\n",
    "\t",
    '"a"',
    "'b'",
    '"',
    "'",
    "key",
    "k-1",
    "$x",
    "1",
    "-",
    "+",
    ".",
    "0",
    "07",
    "1.5",
    ".5",
    "5.",
    "1e",
    "1e5",
    "e-",
    "-Infinity",
    "Infinity",
    "NaN",
    "true",
    "tru",
    "True",
    "False",
    "None",
    "Non",
    "null",
    "nul",
    "undefined",
    "hello world",
    "\\",
    "\\n",
    "\\u00e9",
    "\\u12",
    "\\ud83d",
    "\\ude00",
    "\\x41",
    "\\'",
    '\\"',
    "\\q",
    "// c\n",
    "/* c */",
    "/*",
    "```json\n",
    "```",
    "Sure: ",
    " thanks",
    "é",
    "😀",
    "\x01",
    "\r\n",
]
TOKENS = st.lists(st.sampled_from(FRAGMENTS), max_size=24).map("".join)
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6).filter(str.isprintable), inner, max_size=4)
    ),
    max_leaves=12,
)


def outcome(backend: Any, *args: Any) -> tuple[str, Any]:
    method = backend.repair if len(args) == 2 else backend.canonicalize
    try:
        return ("ok", method(*args))
    except ToolGuardError as exc:
        return (type(exc).__name__, (exc.message, exc.position))


def agree(*args: Any) -> None:
    assert outcome(CORE, *args) == outcome(REFERENCE, *args), args


def mangled(value: Any, draw: Any) -> str:
    """A JSON text of ``value`` with the mistakes LLMs make."""
    style = draw(st.sampled_from(["json", "indent", "python", "ascii"]))
    if style == "python":
        text = repr(value)
    elif style == "indent":
        text = json.dumps(value, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=style == "ascii")
    edit = draw(st.sampled_from(["none", "cut", "delete", "insert", "fence", "prose", "comma"]))
    if edit == "cut" and text:
        text = text[: draw(st.integers(0, len(text)))]
    elif edit == "delete" and text:
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + text[i + 1 :]
    elif edit == "insert":
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(list("\"',:{}[] \n/\\"))) + text[i:]
    elif edit == "fence":
        text = f"Here you go:\n```json\n{text}\n```\nDone."
    elif edit == "prose":
        text = f"The arguments are {text} as requested."
    elif edit == "comma":
        text = text.replace("]", ",]").replace("}", ",}")
    return text


@st.composite
def llm_texts(draw: Any) -> str:
    return mangled(draw(JSON_VALUES), draw)


@SETTINGS
@given(NOISE)
def test_noise(text: str) -> None:
    agree(text, None)
    agree(text)


@SETTINGS
@given(TOKENS)
def test_token_soup(text: str) -> None:
    agree(text, None)
    agree(text)


@SETTINGS
@given(TEXT)
def test_arbitrary_text(text: str) -> None:
    agree(text, None)


@SETTINGS
@given(llm_texts())
def test_mangled_json(text: str) -> None:
    agree(text, None)
    agree(text)


@SETTINGS
@given(JSON_VALUES)
def test_valid_json_reads_to_its_value_on_both(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    for backend in (CORE, REFERENCE):
        read = json.loads(backend.repair(text, None))
        assert read == {"value": json.loads(text), "repairs": []}


@SETTINGS
@given(JSON_VALUES)
def test_the_lenient_path_keeps_valid_members(value: Any) -> None:
    # A NaN member sends valid JSON down the lenient path on both backends.
    text = '{"v": ' + json.dumps(value, ensure_ascii=False) + ', "n": NaN}'
    for backend in (CORE, REFERENCE):
        read = json.loads(backend.repair(text, None))
        assert read["repairs"] == []
        assert read["value"]["v"] == value
        assert math.isnan(read["value"]["n"])


SCHEMA_LEAVES = st.sampled_from(
    [
        {},
        True,
        False,
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": ["string", "null"]},
        {"type": "boolean"},
        {"enum": [1, "a", None, [1], {"a": 1}]},
        {"const": 1.0},
        {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        {"$ref": "#/$defs/P"},
    ]
)
SCHEMAS = st.recursive(
    SCHEMA_LEAVES,
    lambda inner: (
        st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.dictionaries(st.sampled_from(["a", "b", "c", "d/e"]), inner, max_size=3),
            },
            optional={
                "required": st.lists(st.sampled_from(["a", "b", "x"]), max_size=3),
                "additionalProperties": st.booleans() | inner,
            },
        )
        | st.fixed_dictionaries(
            {"type": st.just("array")}, optional={"items": inner, "prefixItems": st.lists(inner, max_size=2)}
        )
        | st.fixed_dictionaries({"allOf": st.lists(inner, min_size=1, max_size=2)})
    ),
    max_leaves=6,
)
P_DEF = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}


@SETTINGS
@given(SCHEMAS, llm_texts())
def test_schema_validation(schema: Any, text: str) -> None:
    document = schema if isinstance(schema, bool) else {**schema, "$defs": {"P": P_DEF}}
    agree(text, json.dumps(document))


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list('{}[]":,$ref#/typeanyOf0123456789truefalse')), max_size=40))
def test_arbitrary_schemas(schema: str) -> None:
    agree('{"a": 1}', schema)
