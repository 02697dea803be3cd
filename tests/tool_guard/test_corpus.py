"""The corpus, stock CrewAI against the shim, case by case.

For every tool-argument text (ReAct parser + validation, the validation
cascade alone, the native path) and every structured output, what stock
yields and what we yield. We never change the value of a valid input, we
succeed wherever stock succeeds, and every other difference has a stated
reason (:func:`why`); an unexplained difference fails the test.

``python3 tests/tool_guard/test_corpus.py`` writes ``corpus/report.json``
(every case) and ``corpus/REPORT.md`` (the summary).
"""

from __future__ import annotations

import ast
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fast_crewai.bench.tool_corpus import oracle_agent, output_models

CORPUS = Path(__file__).resolve().parent / "corpus"
MISSING = object()
Outcome = tuple[str, Any]  # ("ok", value) or ("error", None)


def load(name: str) -> list[dict[str, Any]]:
    # Split on "\n" only: str.splitlines would also split inside a case at U+2028.
    return [json.loads(line) for line in (CORPUS / name).read_text(encoding="utf-8").split("\n") if line]


def _patched(on: bool) -> None:
    from fast_crewai import disable_acceleration, enable_acceleration

    disable_acceleration()
    if on:
        enable_acceleration()


def _switches() -> dict[str, str]:
    return {"FAST_CREWAI_MEMORY": "0", "FAST_CREWAI_TASKS": "0", "FAST_CREWAI_DATABASE": "0"}


# --------------------------------------------------------------------------- tool arguments


def _tool_usage() -> Any:
    from crewai.agents.parser import AgentAction
    from crewai.tools.tool_usage import ToolUsage

    action = AgentAction(thought="", tool="search", tool_input="", text="")
    return ToolUsage(tools_handler=None, tools=[], task=None, function_calling_llm=None, action=action)  # type: ignore[arg-type]


def react(text: str) -> Outcome:
    """Parser, then validation: what reaches the tool on the ReAct path."""
    from crewai.agents import parser

    try:
        action = parser.parse(f"Thought: I need the tool\nAction: search\nAction Input: {text}")
        value = _tool_usage()._validate_tool_input(getattr(action, "tool_input", None))
    except Exception:
        return ("error", None)
    return ("ok", value) if isinstance(value, dict) else ("error", None)


def cascade(text: str) -> Outcome:
    """``ToolUsage._validate_tool_input`` alone."""
    try:
        return ("ok", _tool_usage()._validate_tool_input(text))
    except Exception:
        return ("error", None)


def native(text: str) -> Outcome:
    from crewai.utilities import agent_utils

    try:
        args, error = agent_utils.parse_tool_call_args(text, "search", "call-1")
    except Exception:
        return ("error", None)
    return ("ok", args) if error is None and isinstance(args, dict) else ("error", None)


PATHS: dict[str, Callable[[str], Outcome]] = {"react": react, "cascade": cascade, "native": native}


def _nones_as_strings(value: Any) -> Any:
    if value is None:
        return "None"
    if isinstance(value, dict):
        return {k: _nones_as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nones_as_strings(v) for v in value]
    return value


def _python_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except Exception:
        return MISSING


def _valid_dict(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return MISSING
    return value if isinstance(value, dict) else MISSING


def why(case: dict[str, Any], path: str, stock: Outcome, ours: Outcome) -> str | None:
    """Why stock and ours differ on a case, or None when they do not."""
    if stock == ours:
        return None
    if stock[0] == "error":
        return "stock fails, the guard reads it: " + {
            "native": "the native path only ran json.loads; unambiguous slips are repaired instead of another LLM turn",
        }.get(path, f"a {case['class']} text stock's cascade could not turn into a dict")
    if ours[0] == "error":
        return None  # not explainable: we must succeed where stock does
    if _nones_as_strings(ours[1]) == stock[1]:
        return "stock's parser (json_repair) turns Python None into the string 'None'; the guard reads null"
    if _python_value(case["text"]) == ours[1]:
        return "ours is what Python reads (ast.literal_eval); stock's parser (json_repair) reads it differently"
    if case["class"].startswith("truncated") or case["class"] == "huge-truncated":
        return (
            "cut off mid-value: json_repair gives a dangling key an empty string, trims a cut string's trailing"
            " space and keeps a cut escape's backslash; the guard drops a dangling key, keeps the text as written"
            " and completes a cut literal (n -> null)"
        )
    return None


def tool_argument_rows() -> Iterator[dict[str, Any]]:
    cases = load("tool_arguments.jsonl")
    results: dict[str, dict[str, dict[str, Outcome]]] = {}
    for side, on in (("stock", False), ("ours", True)):
        _patched(on)
        for case in cases:
            row = results.setdefault(case["id"], {})
            for path, run in PATHS.items():
                row.setdefault(path, {})[side] = run(case["text"])
    _patched(False)
    for case in cases:
        for path in PATHS:
            stock, ours = results[case["id"]][path]["stock"], results[case["id"]][path]["ours"]
            yield {"case": case, "path": path, "stock": stock, "ours": ours, "why": why(case, path, stock, ours)}


# --------------------------------------------------------------------------- structured outputs


def convert(case: dict[str, Any], models: dict[str, Any]) -> tuple[Outcome, int]:
    from crewai.utilities.converter import convert_to_model

    agent = oracle_agent(case["intended"])
    try:
        result = convert_to_model(case["text"], models[case["model"]], None, agent=agent)
    except Exception:
        return ("error", None), agent.llm.calls
    if isinstance(result, str):  # CrewAI gave up and kept the text
        return ("error", None), agent.llm.calls
    return ("ok", result.model_dump()), agent.llm.calls


def output_rows() -> Iterator[dict[str, Any]]:
    cases, models = load("structured_outputs.jsonl"), output_models()
    results: dict[str, dict[str, tuple[Outcome, int]]] = {}
    for side, on in (("stock", False), ("ours", True)):
        _patched(on)
        for case in cases:
            results.setdefault(case["id"], {})[side] = convert(case, models)
    _patched(False)
    for case in cases:
        (stock, stock_calls), (ours, our_calls) = results[case["id"]]["stock"], results[case["id"]]["ours"]
        reason = None
        if stock != ours:
            if stock_calls > 0 and our_calls == 0 and case["class"] == "truncated-closing":
                reason = "cut off at the end: the guard closes it and validates locally; stock asked the LLM"
            elif stock_calls > 0 and our_calls == 0 and ours[1] == case["intended"]:
                reason = None  # same value as the LLM's, one round trip less: not a difference
        yield {
            "case": case,
            "stock": stock,
            "ours": ours,
            "stock_llm_calls": stock_calls,
            "our_llm_calls": our_calls,
            "why": reason,
        }


# --------------------------------------------------------------------------- tests


@pytest.fixture
def switches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("FAST_CREWAI_ACCELERATION", raising=False)
    for name, value in _switches().items():
        monkeypatch.setenv(name, value)
    yield
    _patched(False)


def test_corpus_sizes() -> None:
    assert len(load("tool_arguments.jsonl")) >= 300
    assert len(load("structured_outputs.jsonl")) >= 100


def test_tool_arguments_against_stock(backend: str, switches: None) -> None:
    unexplained, lost, changed = [], [], []
    for row in tool_argument_rows():
        case, stock, ours = row["case"], row["stock"], row["ours"]
        valid = _valid_dict(case["text"])
        if valid is not MISSING and ours != ("ok", valid):
            changed.append((case["id"], row["path"]))
        if stock[0] == "ok" and ours[0] != "ok":
            lost.append((case["id"], row["path"]))
        if stock != ours and row["why"] is None:
            unexplained.append((case["id"], row["path"], stock, ours))
    assert changed == [], "a valid input read to a different value"
    assert lost == [], "stock read these, we did not"
    assert unexplained == []


def test_structured_outputs_against_stock(backend: str, switches: None) -> None:
    rows = list(output_rows())
    for row in rows:
        case, stock, ours = row["case"], row["stock"], row["ours"]
        assert row["our_llm_calls"] <= row["stock_llm_calls"], case["id"]
        if stock[0] == "ok":
            assert ours[0] == "ok", case["id"]
        if row["stock_llm_calls"] == 0 and stock[0] == "ok":
            assert ours == stock, case["id"]  # what stock read itself, we read the same
        if stock != ours:
            assert row["why"] is not None or ours == ("ok", case["intended"]), case["id"]
    saved = sum(r["stock_llm_calls"] - r["our_llm_calls"] for r in rows)
    assert saved > 0


# --------------------------------------------------------------------------- report


def _short(outcome: Outcome) -> Any:
    if outcome[0] != "ok":
        return "error"
    text = json.dumps(outcome[1], ensure_ascii=False, default=repr)
    return text if len(text) <= 200 else text[:200] + "…"


def write_report() -> None:
    os.environ.update(_switches())
    arg_rows = list(tool_argument_rows())
    out_rows = list(output_rows())
    entries = [
        {
            "id": r["case"]["id"],
            "class": r["case"]["class"],
            "path": r["path"],
            "stock": _short(r["stock"]),
            "ours": _short(r["ours"]),
            "why": r["why"],
        }
        for r in arg_rows
    ] + [
        {
            "id": r["case"]["id"],
            "class": r["case"]["class"],
            "model": r["case"]["model"],
            "stock": _short(r["stock"]),
            "ours": _short(r["ours"]),
            "stock_llm_calls": r["stock_llm_calls"],
            "our_llm_calls": r["our_llm_calls"],
            "why": r["why"],
        }
        for r in out_rows
    ]
    (CORPUS / "report.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    lines = [
        "# Tool-guard corpus: stock CrewAI against the shim",
        "",
        "Generated by `python3 tests/tool_guard/test_corpus.py`; every case is in `report.json`.",
        "",
        "## Tool arguments (ok = a dict reached the tool)",
        "",
        "| class | path | cases | stock ok | ours ok | same | differ |",
        "|---|---|---|---|---|---|---|",
    ]
    table: dict[tuple[str, str], Counter[str]] = {}
    for r in arg_rows:
        c = table.setdefault((r["case"]["class"], r["path"]), Counter())
        c["cases"] += 1
        c["stock"] += r["stock"][0] == "ok"
        c["ours"] += r["ours"][0] == "ok"
        c["same"] += r["stock"] == r["ours"]
    for (kind, path), c in table.items():
        lines.append(
            f"| {kind} | {path} | {c['cases']} | {c['stock']} | {c['ours']} | {c['same']} | {c['cases'] - c['same']} |"
        )
    lines += ["", "Why they differ:", ""]
    for reason, count in Counter(r["why"] for r in arg_rows if r["why"]).most_common():
        lines.append(f"- {count} x {reason}")
    lines += [
        "",
        "## Structured outputs (the LLM answers a conversion request with the intended value)",
        "",
        "| class | cases | stock ok | ours ok | stock LLM calls | our LLM calls |",
        "|---|---|---|---|---|---|",
    ]
    outs: dict[str, Counter[str]] = {}
    for r in out_rows:
        c = outs.setdefault(r["case"]["class"], Counter())
        c["cases"] += 1
        c["stock"] += r["stock"][0] == "ok"
        c["ours"] += r["ours"][0] == "ok"
        c["stock_calls"] += r["stock_llm_calls"]
        c["our_calls"] += r["our_llm_calls"]
    for kind, c in outs.items():
        lines.append(f"| {kind} | {c['cases']} | {c['stock']} | {c['ours']} | {c['stock_calls']} | {c['our_calls']} |")
    total_stock = sum(r["stock_llm_calls"] for r in out_rows)
    total_ours = sum(r["our_llm_calls"] for r in out_rows)
    lines += ["", f"LLM round trips on the corpus: stock {total_stock}, ours {total_ours}.", ""]
    for reason, count in Counter(r["why"] for r in out_rows if r["why"]).most_common():
        lines.append(f"- {count} x {reason}")
    (CORPUS / "REPORT.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    for name, value in {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "OTEL_SDK_DISABLED": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "CREWAI_TESTING": "true",
        "CREWAI_DISABLE_VERSION_CHECK": "true",
    }.items():
        os.environ.setdefault(name, value)
    sys.exit(write_report())
