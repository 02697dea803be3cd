"""The tool guard under CrewAI: what each patch changes, what it keeps, and
that disabling restores stock exactly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from crewai.agents import parser
from crewai.agents.cache.cache_handler import CacheHandler
from crewai.agents.parser import AgentAction
from crewai.tools import BaseTool
from crewai.tools import structured_tool as _structured
from crewai.tools.tool_usage import ToolUsage
from crewai.utilities import agent_utils, converter, string_utils
from pydantic import BaseModel, Field

from fast_crewai import disable_acceleration, enable_acceleration, status
from fast_crewai.tool_guard import _schema_cache

PATCHES = [
    "tools.parser_repair",
    "tools.validate_input",
    "tools.native_args",
    "tools.descriptions",
    "tools.args_schemas",
    "tools.sanitized_names",
    "tools.exact_select",
    "tools.cache_keys",
]


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``tools`` and ``serialization`` patches on, the others off."""
    monkeypatch.delenv("FAST_CREWAI_ACCELERATION", raising=False)
    for component in ("MEMORY", "TASKS", "DATABASE"):
        monkeypatch.setenv(f"FAST_CREWAI_{component}", "0")
    monkeypatch.setenv("FAST_CREWAI_TOOLS", "1")
    monkeypatch.setenv("FAST_CREWAI_SERIALIZATION", "1")
    enable_acceleration()
    yield
    disable_acceleration()


class SearchArgs(BaseModel):
    query: str = Field(description="what to look for")
    limit: int | None = Field(default=None, description="how many results")


class SearchTool(BaseTool):
    name: str = "search the web"
    description: str = "Finds pages."
    args_schema: type[BaseModel] = SearchArgs

    def _run(self, query: str, limit: int | None = None) -> str:
        return f"{query}|{limit!r}"


def usage(tools: list[Any], tool_input: str = "{}") -> ToolUsage:
    action = AgentAction(thought="", tool=tools[0].name, tool_input=tool_input, text="")
    return ToolUsage(tools_handler=None, tools=tools, task=None, function_calling_llm=None, action=action)  # type: ignore[arg-type]


def originals() -> dict[str, Any]:
    return {
        "parser": parser._safe_repair_json,
        "validate": ToolUsage.__dict__["_validate_tool_input"],
        "select": ToolUsage.__dict__["_select_tool"],
        "init": ToolUsage.__dict__["__init__"],
        "native": agent_utils.parse_tool_call_args,
        "describe": _structured.format_description_for_llm,
        "sanitize": string_utils.sanitize_tool_name,
        "cache_add": CacheHandler.__dict__["add"],
        "cache_read": CacheHandler.__dict__["read"],
        "partial": converter.handle_partial_json,
        "apartial": converter.async_handle_partial_json,
    }


def test_every_patch_applies_and_disabling_restores_stock(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stock = originals()
    monkeypatch.delenv("FAST_CREWAI_ACCELERATION", raising=False)
    for component in ("MEMORY", "TASKS", "DATABASE"):
        monkeypatch.setenv(f"FAST_CREWAI_{component}", "0")
    report = enable_acceleration()
    try:
        assert report["components"]["tools"]["active"] == PATCHES
        assert report["components"]["serialization"]["active"] == ["serialization.partial_json"]
        assert report["components"]["tools"]["backend"] == backend
        patched = originals()
        assert all(patched[name] is not stock[name] for name in stock)
        usage([SearchTool().to_structured_tool()])
        assert "model_json_schema" in SearchArgs.__dict__
    finally:
        disable_acceleration()
    assert originals() == stock
    assert "model_json_schema" not in SearchArgs.__dict__
    assert status()["components"]["tools"]["active"] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"query": "x", "limit": null}', {"query": "x", "limit": None}),
        ("{'query': 'x', 'limit': None}", {"query": "x", "limit": None}),
        ('{"query": "x", "limit": None}', {"query": "x", "limit": None}),
        ("{query: 'x', limit: 3,}", {"query": "x", "limit": 3}),
        ('```json\n{"query": "x"}\n```', {"query": "x"}),
        ('{"query": "x", "limit": 3', {"query": "x", "limit": 3}),
    ],
)
def test_react_arguments_through_parser_and_validation(guard: None, text: str, expected: dict[str, Any]) -> None:
    action = parser.parse(f"Thought: go\nAction: search the web\nAction Input: {text}")
    assert isinstance(action, AgentAction)
    tool = SearchTool().to_structured_tool()
    assert usage([tool])._validate_tool_input(action.tool_input) == expected


def test_none_reached_the_tool_as_a_string_in_stock_and_stays_none_here(guard: None) -> None:
    text = "Thought: go\nAction: search the web\nAction Input: {'query': 'x', 'limit': None}"
    disable_acceleration()
    stock = parser.parse(text)
    assert isinstance(stock, AgentAction) and json.loads(stock.tool_input)["limit"] == "None"
    enable_acceleration()
    ours = parser.parse(text)
    assert isinstance(ours, AgentAction) and json.loads(ours.tool_input)["limit"] is None


def test_parser_keeps_stocks_text_where_stock_reads_it(guard: None) -> None:
    # Valid JSON: json_repair's re-serialization, byte for byte.
    assert parser._safe_repair_json('{"a":1,"b":"é"}') == '{"a": 1, "b": "\\u00e9"}'
    assert parser._safe_repair_json("[1, 2]") == "[1, 2]"
    assert parser._safe_repair_json("{invalid_json") == "{invalid_json"
    # json_repair's own reading of a raw line break is kept.
    assert parser._safe_repair_json('{"a": "x\n"}') == '{"a": "x"}'


def test_validate_input_keeps_python_values_and_stock_errors(guard: None) -> None:
    tool_usage = usage([SearchTool().to_structured_tool()])
    # literal_eval's exact values (a tuple), json5's hex: stock's readers win
    # where the guard would only see an unquoted run.
    assert tool_usage._validate_tool_input("{'a': (1, 2)}") == {"a": (1, 2)}
    assert tool_usage._validate_tool_input("{a: 0x10}") == {"a": 16}
    assert tool_usage._validate_tool_input(None) == {}
    with pytest.raises(Exception, match="valid dictionary"):
        tool_usage._validate_tool_input("   ")
    with pytest.raises(Exception, match="valid dictionary"):
        tool_usage._validate_tool_input("[1, 2]")


def test_native_arguments_repair_only_unambiguous_slips(guard: None) -> None:
    args, error = agent_utils.parse_tool_call_args("{'query': 'x', limit: 3,}", "search", "c1")
    assert (args, error) == ({"query": "x", "limit": 3}, None)
    args, error = agent_utils.parse_tool_call_args('{"query": "x"}', "search", "c1")
    assert (args, error) == ({"query": "x"}, None)
    # Where the string ends, or what a cut-off tail held, stays the LLM's call.
    for text in ('{"code": "print("hi")"}', '{"query": "x', "{bad}"):
        args, error = agent_utils.parse_tool_call_args(text, "search", "c1")
        assert args is None and error is not None and "Failed to parse" in error["result"]


def test_exact_name_first_then_stocks_fuzzy_match(guard: None) -> None:
    class Other(SearchTool):
        name: str = "search the wet"

    tools = [Other().to_structured_tool(), SearchTool().to_structured_tool()]
    tool_usage = usage(tools)
    assert tool_usage._select_tool("search the web").name == "search the web"
    assert tool_usage._select_tool("Search_The_Web").name == "search the web"
    assert tool_usage._select_tool("search the wex").name in {"search the web", "search the wet"}
    with pytest.raises(Exception, match="don't exist"):
        tool_usage._select_tool("calculator")


def test_descriptions_render_once_and_follow_changes(guard: None) -> None:
    tool = SearchTool()
    first = tool.to_structured_tool().formatted_description
    disable_acceleration()
    assert SearchTool().to_structured_tool().formatted_description == first
    enable_acceleration()
    assert tool.to_structured_tool().formatted_description == first
    tool.description = "Finds pages, fast."
    assert "Finds pages, fast." in tool.to_structured_tool().formatted_description

    class MoreArgs(SearchArgs):
        region: str = "eu"

    tool.args_schema = MoreArgs
    assert '"region"' in tool.to_structured_tool().formatted_description
    tool.name = "lookup"
    assert tool.to_structured_tool().formatted_description.startswith("Tool Name: lookup\n")


def test_cached_schema_is_a_fresh_copy(guard: None) -> None:
    class Args(BaseModel):
        x: int

    _schema_cache.install(Args)
    first = Args.model_json_schema()
    first["properties"]["x"]["type"] = "mutated"
    assert Args.model_json_schema()["properties"]["x"]["type"] == "integer"
    assert Args.model_json_schema(mode="serialization") == BaseModel.model_json_schema.__func__(  # type: ignore[attr-defined]
        Args, mode="serialization"
    )

    class Custom(BaseModel):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {"custom": True}

    _schema_cache.install(Custom)
    assert "model_json_schema" in Custom.__dict__ and Custom.model_json_schema() == {"custom": True}


def test_equivalent_arguments_share_a_cache_entry(guard: None) -> None:
    cache = CacheHandler()
    cache.add(tool="search", input='{"query": "x", "limit": 3}', output="result")
    assert cache.read(tool="search", input='{"limit":3,"query":"x"}') == "result"
    assert cache.read(tool="search", input='{"limit": 3.0, "query": "x"}') is None
    cache.add(tool="search", input="plain words", output="other")
    assert cache.read(tool="search", input="plain words") == "other"


class Report(BaseModel):
    title: str
    score: float


def test_structured_outputs_repaired_before_the_llm(guard: None) -> None:
    # agent=None: stock would have to call an LLM (and raises TypeError).
    for text in (
        "Here it is:\n```json\n{'title': 'Q3', 'score': 0.5,}\n```",
        '{"title": "Q3", "score": 0.5',
        'The report is {title: "Q3", score: .5} as asked.',
    ):
        assert converter.handle_partial_json(text, Report, False, None) == Report(title="Q3", score=0.5)
        assert converter.handle_partial_json(text, Report, True, None) == {"title": "Q3", "score": 0.5}
        coro = converter.async_handle_partial_json(text, Report, False, None)
        assert asyncio.run(coro) == Report(title="Q3", score=0.5)
    # What the guard cannot make valid stays CrewAI's: its regex, then the LLM.
    with pytest.raises(TypeError, match="Agent must be provided"):
        converter.handle_partial_json('{"title": "Q3"', Report, False, None)
    with pytest.raises(TypeError, match="Agent must be provided"):
        converter.handle_partial_json("no json at all", Report, False, None)
