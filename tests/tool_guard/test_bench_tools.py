"""The tools benchmark measures what it says: both sides really differ, and
its patch context leaves CrewAI stock."""

from __future__ import annotations

from crewai.agents import parser
from crewai.tools.tool_usage import ToolUsage

from fast_crewai.bench import SUITES
from fast_crewai.bench import tools as bench


def test_registered_as_a_suite() -> None:
    assert SUITES["tools"] == "fast_crewai.bench.tools"


def test_patched_applies_and_restores(backend: str) -> None:
    stock = (parser._safe_repair_json, ToolUsage.__dict__["_validate_tool_input"])
    with bench.patched():
        assert parser._safe_repair_json is not stock[0]
        assert ToolUsage.__dict__["_validate_tool_input"] is not stock[1]
    assert (parser._safe_repair_json, ToolUsage.__dict__["_validate_tool_input"]) == stock


def test_structured_outputs_count_real_round_trips(backend: str) -> None:
    result = bench._structured_outputs()
    assert result["cases"] >= 100
    assert 0 < result["ours_llm_calls"] < result["stock_llm_calls"]
    assert result["ours_converted"] >= result["stock_converted"]


def test_tools_have_their_own_schema_classes() -> None:
    tools = bench._tools(3, "T")
    assert len({tool.args_schema for tool in tools}) == 3
    assert tools[1]._run("q", 2) == "q:2:None"
