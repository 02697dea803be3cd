"""The tool-guard corpus: what LLMs write as tool arguments and as
structured task outputs, in the shapes seen in CrewAI issues and forums.

``tests/tool_guard/corpus/build.py`` writes it to ``tests/tool_guard/corpus``
(deterministic, committed); ``fast-crewai bench tools`` measures on it. The
output models and an agent whose LLM answers conversion requests with the
intended value (counting the round trips) are here too.
"""

from __future__ import annotations

import json
from typing import Any

# Argument objects tools receive: strings with quotes, backslashes, line
# breaks and non-ASCII; numbers of every kind; nulls; nesting.
ARGUMENTS: list[dict[str, Any]] = [
    {"query": "weather in Paris"},
    {"query": "latest AI news", "limit": 5},
    {"url": "https://example.com/a?b=1&c=2", "timeout": 30.5},
    {"path": "C:\\Users\\dana\\report.txt", "encoding": "utf-8"},
    {"code": 'print("hello")\nprint(1 + 2)', "language": "python"},
    {"sql": "SELECT * FROM users WHERE name = 'O''Brien'", "dry_run": True},
    {"text": "Er sagte: „Grüß Gott“ – 東京 😀", "lang": "de"},
    {"filters": {"region": "eu", "years": [2023, 2024], "active": False}},
    {"coworker": "Senior Researcher", "task": "Research XAI", "context": "Explainable AI"},
    {"amount": -1234.5, "currency": "USD", "rate": 1e-7},
    {"id": 12345678901234567890, "ok": None},
    {"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 0}]},
    {"question": 'What does "idempotent" mean?', "detail": None},
    {"message": "line one\nline two\ttabbed", "notify": True},
    {"empty": "", "zero": 0, "list": []},
    {"email": "dana@example.com", "subject": "Re: {meeting} [urgent]"},
    {"expression": "2 * (3 + 4) / 5", "precision": 3},
    {"city": "São Paulo", "country": "BR", "population": 12325232},
    {"nested": {"a": {"b": {"c": {"d": [1, {"e": "deep"}]}}}}},
    {"regex": "^\\d{3}-\\d{4}$", "flags": ["i", "m"]},
    {"markdown": "# Title\n\n- item `code`\n- [link](http://x.y)", "render": False},
    {"coordinates": [48.8566, 2.3522], "radius_km": 0.5},
]


def py_literal(value: Any) -> str:
    return repr(value)


def unquoted_keys(value: dict[str, Any]) -> str:
    inner = ", ".join(f"{key}: {json.dumps(item, ensure_ascii=False)}" for key, item in value.items())
    return "{" + inner + "}"


def trailing_commas(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2).replace("\n}", ",\n}").replace("\n  ]", ",\n  ]")


def with_comments(value: dict[str, Any]) -> str:
    lines = ["{"]
    for i, (key, item) in enumerate(value.items()):
        comma = "," if i < len(value) - 1 else ""
        lines.append(f"  // the {key}")
        lines.append(f"  {json.dumps(key)}: {json.dumps(item, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines)


def truncated(value: dict[str, Any], keep: float) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text[: max(1, int(len(text) * keep))]


def fenced(value: dict[str, Any]) -> str:
    return f"```json\n{json.dumps(value, ensure_ascii=False, indent=2)}\n```"


def prose(value: dict[str, Any]) -> str:
    return f"I will use the tool with these arguments: {json.dumps(value, ensure_ascii=False)}. Let me know the result."


def single_quoted_json(value: dict[str, Any]) -> str:
    """JSON punctuation with Python's quotes, but JSON's literals."""
    return json.dumps(value, ensure_ascii=False).replace('"', "'")


def tool_argument_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def add(kind: str, text: str, note: str = "") -> None:
        cases.append({"id": f"args-{len(cases):03d}", "class": kind, "text": text, "note": note})

    for value in ARGUMENTS:
        add("clean", json.dumps(value, ensure_ascii=False))
        add("clean-compact-ascii", json.dumps(value, separators=(",", ":")))
        add("python-literal", py_literal(value))
        add("unquoted-keys", unquoted_keys(value))
        add("trailing-commas", trailing_commas(value))
        add("comments", with_comments(value))
        add("fenced", fenced(value))
        add("prose-wrapped", prose(value))
        add("truncated-late", truncated(value, 0.9))
        add("truncated-early", truncated(value, 0.5))
        add("single-quotes", single_quoted_json(value))
    # The shapes CrewAI users report.
    for text in (
        "what is the weather in Paris",
        'query="weather in Paris"',
        "query: weather in Paris",
        '"weather in Paris"',
        "search for the latest AI news, limit 5",
        "None",
        "",
        "{}",
        "N/A",
        "I don't need a tool for this.",
    ):
        add("not-a-dictionary", text, "Action Input is not a valid key, value dictionary")
    for value in ARGUMENTS[:8]:
        schema = {key: {"type": "string", "description": f"the {key}"} for key in value}
        add("schema-echoed", json.dumps(schema), "the model answered with the argument schema")
        add("schema-echoed-full", json.dumps({"properties": schema, "required": list(value)}), "the whole schema")
        add("list-not-object", json.dumps([value], ensure_ascii=False), "a list instead of an object")
    for value in ARGUMENTS[:10]:
        add("wrong-types", json.dumps({key: [item] for key, item in value.items()}, ensure_ascii=False))
        with_none = {**value, "optional": None}
        add("python-none-in-json", json.dumps(with_none, ensure_ascii=False).replace("null", "None"))
        add("unescaped-inner-quotes", '{"question": "What does "' + str(value.get("query", "it")) + '" mean?"}')
        add("raw-line-breaks", '{"message": "first line\nsecond line", "n": ' + str(len(value)) + "}")
    huge = {f"key_{i}": f"value {i} " * 20 for i in range(300)}
    add("huge", json.dumps(huge))
    add("huge-python", py_literal(huge))
    add("huge-truncated", json.dumps(huge)[:-2000])
    for text in (
        "}{",
        "{{{{",
        "[[[]",
        "{'a': }",
        "{: 1}",
        "<tool>search</tool>",
        "Action: search\nAction Input: {",
        "\x00\x01\x02",
        "{" * 300 + "}" * 300,
        "🤖🤖🤖",
    ):
        add("garbage", text)
    for text in (
        '{"name": "Zoë", "city": "Zürich", "emoji": "👩\u200d💻"}',
        '{"rtl": "مرحبا بالعالم", "mixed": "abc\u202edef"}',
        '{"escaped": "\\u00e9\\ud83d\\ude00", "nbsp": "a\u00a0b"}',
        "{'combining': 'e\u0301', 'zwj': 'a\u200db'}",
        '{"bom": "\ufeffstart", "line_sep": "a\u2028b"}',
    ):
        add("odd-unicode", text)
    return cases


# Structured outputs: (model name, intended value) pairs the tests' models fit.
OUTPUTS: list[tuple[str, dict[str, Any]]] = [
    ("Report", {"title": "Q3 revenue", "score": 0.82, "tags": ["finance", "q3"]}),
    ("Report", {"title": "Market “overview” 2024", "score": 1.0, "tags": []}),
    ("Report", {"title": "Risks: supply chain, FX", "score": 0.35, "tags": ["risk"]}),
    ("Person", {"name": "Dana Whitfield", "age": 41, "email": "dana@acme.example"}),
    ("Person", {"name": "José Álvarez", "age": 29, "email": None}),
    ("Plan", {"goal": "Launch", "steps": [{"name": "design", "done": True}, {"name": "build", "done": False}]}),
    ("Plan", {"goal": "Hire", "steps": [{"name": "post job", "done": False}]}),
    ("Summary", {"text": 'He said "ship it" and left.\nNext day: done.', "words": 9}),
    ("Summary", {"text": "Café → 東京 ✈️", "words": 3}),
    ("Report", {"title": "C:\\data\\q3.csv parsed", "score": 0.5, "tags": ["io"]}),
]


def structured_output_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def add(kind: str, model: str, intended: dict[str, Any], text: str) -> None:
        cases.append({"id": f"out-{len(cases):03d}", "class": kind, "model": model, "intended": intended, "text": text})

    for model, value in OUTPUTS:
        add("clean", model, value, json.dumps(value, ensure_ascii=False))
        add("fenced", model, value, fenced(value))
        add(
            "prose-wrapped",
            model,
            value,
            f"Here is the final answer:\n\n{json.dumps(value, ensure_ascii=False)}\n\nThanks!",
        )
        add("python-literal", model, value, py_literal(value))
        add("trailing-commas", model, value, trailing_commas(value))
        add("unquoted-keys", model, value, unquoted_keys(value))
        add("truncated-closing", model, value, json.dumps(value, ensure_ascii=False)[:-1])
        add("fenced-prose-two-objects", model, value, f"Draft: {{}}\nFinal:\n```json\n{json.dumps(value)}\n```")
        add("wrong-types", model, value, json.dumps({key: [item] for key, item in value.items()}, ensure_ascii=False))
        add("list-not-object", model, value, json.dumps([value], ensure_ascii=False))
        add("garbage", model, value, f"I could not produce the {model.lower()} as JSON, sorry.")
    return cases


def output_models() -> dict[str, Any]:
    """The pydantic models the structured-output cases are meant for."""
    from pydantic import BaseModel

    class Report(BaseModel):
        title: str
        score: float
        tags: list[str]

    class Person(BaseModel):
        name: str
        age: int
        email: str | None

    class Step(BaseModel):
        name: str
        done: bool

    class Plan(BaseModel):
        goal: str
        steps: list[Step]

    class Summary(BaseModel):
        text: str
        words: int

    return {"Report": Report, "Person": Person, "Plan": Plan, "Summary": Summary}


def oracle_agent(intended: dict[str, Any]) -> Any:
    """An agent whose LLM answers a conversion request with ``intended``;
    ``agent.llm.calls`` counts the round trips. Imports CrewAI."""
    from crewai import BaseLLM
    from crewai.utilities.converter import Converter

    class OracleLLM(BaseLLM):
        calls: int = 0

        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            self.calls += 1
            return json.dumps(intended)

        def supports_function_calling(self) -> bool:
            return False

    class OracleAgent:
        verbose = False
        function_calling_llm = None

        def __init__(self) -> None:
            self.llm = OracleLLM(model="oracle")

        def get_output_converter(self, llm: Any, text: str, model: Any, instructions: str) -> Converter:
            return Converter(llm=llm, text=text, model=model, instructions=instructions)

    return OracleAgent()
