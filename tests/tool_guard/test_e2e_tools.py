"""Offline crews with the scripted LLM, stock and through the shim: Python's
None reaches the tool as None, and everything else a crew sees (prompts,
observations, usage limits, the repeated-call guard, result_as_answer,
events) stays what stock produces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.tool_usage_events import ToolUsageFinishedEvent
from crewai.tools import BaseTool
from pydantic import BaseModel, Field

from fast_crewai import disable_acceleration, enable_acceleration
from fast_crewai.demo.offline import between
from fast_crewai.demo.scripted_llm import ScriptedLLM


class ToolScript(ScriptedLLM):
    """The demo's scripted LLM, with the Action Inputs given: one tool call
    per input, then a final answer quoting the last observation's first line."""

    inputs: list[str] = Field(default_factory=list)

    def _agent_turn(self, system: str, texts: list[tuple[str, str]]) -> str:  # type: ignore[override]
        observations = [
            t.split("Observation:", 1)[1] for role, t in texts if role == "assistant" and "Observation:" in t
        ]
        tool = between(system, "only one name of [", "]").split(",")[0].strip()
        if len(observations) < len(self.inputs):
            return f"Thought: I should use {tool}.\nAction: {tool}\nAction Input: {self.inputs[len(observations)]}"
        # Every third observation also repeats the tool descriptions: quote its first line.
        last = observations[-1].strip().splitlines()[0] if observations else "nothing"
        return f"Thought: I now know the final answer\nFinal Answer: {last}"


class LookupArgs(BaseModel):
    query: str = Field(description="what to look up")
    region: str | None = Field(default="eu", description="where; null for everywhere")


class LookupTool(BaseTool):
    name: str = "lookup"
    description: str = "Looks things up."
    args_schema: type[BaseModel] = LookupArgs
    received: list[dict[str, Any]] = Field(default_factory=list)

    def _run(self, query: str, region: str | None = "eu") -> str:
        self.received.append({"query": query, "region": region})
        return f"found {query} in {region if region is not None else 'every region'}"


@pytest.fixture
def switches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("FAST_CREWAI_ACCELERATION", raising=False)
    for component in ("MEMORY", "TASKS", "DATABASE"):
        monkeypatch.setenv(f"FAST_CREWAI_{component}", "0")
    yield
    disable_acceleration()


def run_crew(inputs: list[str], **tool_options: Any) -> tuple[LookupTool, ToolScript, str, int]:
    tool = LookupTool(**tool_options)
    llm = ToolScript(inputs=inputs)
    agent = Agent(role="Researcher", goal="Look things up", backstory="Careful.", llm=llm, tools=[tool])
    task = Task(description="Find the weather.", expected_output="A sentence.", agent=agent)
    finished: list[ToolUsageFinishedEvent] = []
    with crewai_event_bus.scoped_handlers():
        crewai_event_bus.on(ToolUsageFinishedEvent)(lambda source, event: finished.append(event))
        result = Crew(agents=[agent], tasks=[task]).kickoff()
        crewai_event_bus.flush()
    return tool, llm, result.raw, len(finished)


def transcript(llm: ToolScript) -> list[tuple[str, str]]:
    return [(call.kind, call.answer) for call in llm.calls] + [
        (role, text) for call in llm.calls for role, text in call.messages
    ]


def test_python_none_reaches_the_tool_as_none(backend: str, switches: None) -> None:
    inputs = ["{'query': 'weather', 'region': None}"]
    stock_tool, _, stock_answer, _ = run_crew(inputs)
    # Stock's parser repairs the text with json_repair, which writes None as "None".
    assert stock_tool.received == [{"query": "weather", "region": "None"}]
    assert stock_answer == "found weather in None"
    enable_acceleration()
    tool, _, answer, finished = run_crew(inputs)
    assert tool.received == [{"query": "weather", "region": None}]
    assert answer == "found weather in every region"
    assert finished == 1


def test_repaired_arguments_reach_the_tool(backend: str, switches: None) -> None:
    enable_acceleration()
    inputs = [
        "{query: 'weather', region: 'us',}",
        '```json\n{"query": "rain", "region": "eu"}\n```',
        '{"query": "snow", "region": "asia"',
    ]
    tool, _, answer, finished = run_crew(inputs)
    assert tool.received == [
        {"query": "weather", "region": "us"},
        {"query": "rain", "region": "eu"},
        {"query": "snow", "region": "asia"},
    ]
    assert answer == "found snow in asia" and finished == 3


@pytest.mark.parametrize(
    ("inputs", "options"),
    [
        (['{"query": "weather"}', '{"query": "rain", "region": "us"}'], {}),
        # The usage limit answers the second call.
        (['{"query": "weather"}', '{"query": "rain"}'], {"max_usage_count": 1}),
        # The same call twice in a row: stock's repeated-usage guard answers.
        (['{"query": "weather"}', '{"query": "weather"}'], {}),
        # The tool's result is the answer.
        (['{"query": "weather"}'], {"result_as_answer": True}),
        # Arguments the schema refuses: the error observation.
        (['{"region": "us"}'], {}),
    ],
)
def test_a_crew_sees_what_it_sees_in_stock(
    backend: str, switches: None, inputs: list[str], options: dict[str, Any]
) -> None:
    stock_tool, stock_llm, stock_answer, stock_finished = run_crew(inputs, **options)
    enable_acceleration()
    tool, llm, answer, finished = run_crew(inputs, **options)
    assert tool.received == stock_tool.received
    assert answer == stock_answer
    assert finished == stock_finished
    # Every prompt (tool descriptions included) and every observation.
    assert transcript(llm) == transcript(stock_llm)
