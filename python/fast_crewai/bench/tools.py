"""CrewAI's tool calls and structured outputs, stock and through the tool
guard's patches (the ``tools`` and ``serialization`` switches), in one run.

- ``react_call_10_tools``: one ReAct tool call as an agent makes it (parse
  the LLM text, ``execute_tool_and_check_finality``) among 10 tools, around
  a trivial tool; ``tool_alone_us`` is the tool's own share.
- ``parse_<class>``: ``ToolUsage._validate_tool_input`` (CrewAI's cascade:
  json.loads, literal_eval, json5, json_repair) on one text per class, and
  ``react_parse_<class>``: the agent parser plus that validation.
- ``clean_json_crossing``: the core's ``repair`` on clean JSON against
  ``json.loads``, which the patches keep first.
- ``describe_10_tools``: the tool descriptions of one prompt, for tools seen
  for the first time and for tools already rendered.
- ``structured_outputs``: LLM round trips ``convert_to_model`` spends on the
  structured-output corpus, stock and ours.

Times are p50 per call in µs; ``stock_over_ours`` above 1 means faster than
stock. A shared machine adds noise: compare runs, not digits.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

from ..demo.offline import offline_environment
from . import ratio, timings

CLASS_TEXTS = {
    "clean": '{"query": "weather in Paris", "limit": 5}',
    "python_literal": "{'query': 'weather in Paris', 'limit': 5, 'region': None}",
    "unquoted_keys": '{query: "weather in Paris", limit: 5}',
    "trailing_commas": '{\n  "query": "weather in Paris",\n  "limit": 5,\n}',
    "fenced": '```json\n{"query": "weather in Paris", "limit": 5}\n```',
    "truncated": '{"query": "weather in Paris", "limit": 5, "tags": ["news", "wea',
    "garbage": "I am not sure which tool fits here, sorry.",
}


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """The tool guard's patches applied, whatever the global switches say."""
    from ..tool_guard._patch import PATCHES

    undos: list[Callable[[], None]] = []
    try:
        for patch in PATCHES:
            undos.append(patch.apply())
        yield
    finally:
        for undo in reversed(undos):
            undo()


def _tools(count: int, tag: str) -> list[Any]:
    """``count`` tools, each with its own args-schema class."""
    from crewai.tools import BaseTool
    from pydantic import BaseModel, Field, create_model

    tools = []
    for i in range(count):
        args = create_model(
            f"Args{tag}{i}",
            query=(str, Field(description="what to look for")),
            limit=(int, Field(default=5, description="how many results")),
            region=(str | None, Field(default=None, description="where to look")),
            __base__=BaseModel,
        )

        def run(self: Any, query: str, limit: int = 5, region: str | None = None) -> str:
            return f"{query}:{limit}:{region}"

        cls = type(
            f"Tool{tag}{i}",
            (BaseTool,),
            {"__annotations__": {"name": str, "description": str, "args_schema": type}, "_run": run},
        )
        tools.append(cls(name=f"tool number {i}", description=f"Tool {i} looks things up.", args_schema=args))
    return tools


def _side_by_side(label: str, fn: Callable[[], object], repeat: int) -> dict[str, float]:
    stock = timings(fn, repeat)["p50"]
    with patched():
        ours = timings(fn, repeat)["p50"]
    entry = {"stock_us": round(stock * 1e6, 2), "ours_us": round(ours * 1e6, 2), "stock_over_ours": ratio(stock, ours)}
    print(f"  {label:<32} stock {entry['stock_us']:>9} us  ours {entry['ours_us']:>8} us  {entry['stock_over_ours']}x")
    return entry


def _react_call(quick: bool) -> dict[str, Any]:
    from crewai.agents.parser import AgentAction, parse
    from crewai.agents.tools_handler import ToolsHandler
    from crewai.utilities.tool_utils import execute_tool_and_check_finality

    tools = _tools(10, "React")
    structured = [tool.to_structured_tool() for tool in tools]
    text = 'Thought: I should look it up\nAction: tool number 7\nAction Input: {"query": "weather", "limit": 3}'

    def call() -> object:
        action = parse(text)
        assert isinstance(action, AgentAction)
        return execute_tool_and_check_finality(action, structured, tools_handler=ToolsHandler())

    entry = _side_by_side("react_call_10_tools", call, 100 if quick else 500)
    tool_alone = timings(lambda: tools[7]._run("weather", 3), 1000)["p50"]
    entry["tool_alone_us"] = round(tool_alone * 1e6, 3)
    return entry


def _parsing(quick: bool) -> dict[str, Any]:
    from crewai.agents.parser import AgentAction, parse
    from crewai.tools.tool_usage import ToolUsage

    action = AgentAction(thought="", tool="search", tool_input="", text="")
    usage = ToolUsage(tools_handler=None, tools=[], task=None, function_calling_llm=None, action=action)  # type: ignore[arg-type]
    repeat = 100 if quick else 400
    out: dict[str, Any] = {}

    def attempt(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            try:
                return fn()
            except Exception as exc:  # garbage: stock and ours raise the same error
                return exc

        return run

    for name, text in CLASS_TEXTS.items():

        def validate(text: str = text) -> object:
            return usage._validate_tool_input(text)

        out[f"parse_{name}"] = _side_by_side(f"parse_{name}", attempt(validate), repeat)
    for name, text in CLASS_TEXTS.items():
        agent_text = f"Thought: t\nAction: search\nAction Input: {text}"

        def react(agent_text: str = agent_text) -> object:
            parsed = parse(agent_text)
            return usage._validate_tool_input(getattr(parsed, "tool_input", None))

        out[f"react_parse_{name}"] = _side_by_side(f"react_parse_{name}", attempt(react), repeat)
    return out


def _crossing(quick: bool) -> dict[str, Any]:
    from ..tool_guard import guard_backend

    backend = guard_backend()
    clean = CLASS_TEXTS["clean"]
    repeat = 500 if quick else 2000
    loads = timings(lambda: json.loads(clean), repeat)["p50"]
    guard = timings(lambda: backend.repair(clean, None), repeat)["p50"]
    entry = {
        "json_loads_us": round(loads * 1e6, 2),
        "guard_us": round(guard * 1e6, 2),
        "guard_over_json_loads": ratio(guard, loads),
        "kept_first": "json.loads" if loads <= guard else "guard",
    }
    print(f"  {'clean_json_crossing':<32} json.loads {entry['json_loads_us']} us  guard {entry['guard_us']} us")
    return entry


def _descriptions(quick: bool) -> dict[str, Any]:
    from crewai.utilities.agent_utils import render_text_description_and_args

    rounds = 5 if quick else 20
    out: dict[str, Any] = {}
    for side in ("stock", "ours"):
        with patched() if side == "ours" else contextlib.nullcontext():
            first, later = [], []
            for r in range(rounds):
                # Tools never rendered before: new classes, so no cache knows them.
                structured = [tool.to_structured_tool() for tool in _tools(10, f"{side}{r}")]

                def render(tools: list[Any] = structured) -> object:
                    return render_text_description_and_args(tools)

                first.append(timings(render, 1, warmup=0)["p50"])
                later.append(timings(render, 20)["p50"])
            first.sort()
            later.sort()
            out[f"{side}_first_us"] = round(first[len(first) // 2] * 1e6, 1)
            out[f"{side}_later_us"] = round(later[len(later) // 2] * 1e6, 1)
    out["first_stock_over_ours"] = ratio(out["stock_first_us"], out["ours_first_us"])
    out["later_stock_over_ours"] = ratio(out["stock_later_us"], out["ours_later_us"])
    print(
        f"  {'describe_10_tools':<32} first prompt: stock {out['stock_first_us']} us, ours {out['ours_first_us']} us;"
        f" later prompts: stock {out['stock_later_us']} us, ours {out['ours_later_us']} us"
    )
    return out


def _structured_outputs() -> dict[str, Any]:
    from crewai.utilities.converter import convert_to_model

    from .tool_corpus import oracle_agent, output_models, structured_output_cases

    models = output_models()
    cases = structured_output_cases()
    out: dict[str, Any] = {"cases": len(cases)}
    for side in ("stock", "ours"):
        calls = ok = 0
        with patched() if side == "ours" else contextlib.nullcontext():
            for case in cases:
                agent = oracle_agent(case["intended"])
                try:
                    result = convert_to_model(case["text"], models[case["model"]], None, agent=agent)
                    ok += not isinstance(result, str)
                except Exception:  # the cases with wrong types raise, stock and ours alike
                    pass
                calls += agent.llm.calls
        out[f"{side}_llm_calls"] = calls
        out[f"{side}_converted"] = ok
    print(
        f"  {'structured_outputs':<32} {out['cases']} texts: LLM round trips stock {out['stock_llm_calls']},"
        f" ours {out['ours_llm_calls']}; converted stock {out['stock_converted']}, ours {out['ours_converted']}"
    )
    return out


def run(quick: bool) -> dict[str, Any]:
    offline_environment()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        results: dict[str, Any] = {"react_call_10_tools": _react_call(quick)}
        results.update(_parsing(quick))
        results["clean_json_crossing"] = _crossing(quick)
        results["describe_10_tools"] = _descriptions(quick)
        results["structured_outputs"] = _structured_outputs()
    finally:
        if gc_was_enabled:
            gc.enable()
    return results
