"""``fast-crewai demo``: an offline crew on the accelerated memory store.

Two researchers' tasks look companies up with a tool; memory extracts their
findings and saves them into the embedded store. A writer's task, given no
context from the earlier tasks, can only know about the company through
memory: the demo shows what was saved (with scopes), what the writer
recalled, which backend served it, and how long the kickoff took.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .offline import between, fact_lines, offline_environment

if TYPE_CHECKING:
    from crewai import Crew
    from crewai.memory.types import MemoryRecord

    from .scripted_llm import ScriptedCall, ScriptedLLM

COMPANY_FACTS = {
    "Acme Robotics": [
        "Acme Robotics reported revenue of 42.5 million USD in 2025.",
        "Acme Robotics is headquartered in Lyon, France.",
        "Acme Robotics' chief executive is Dana Whitfield.",
    ],
    "Borealis Foods": [
        "Borealis Foods reported revenue of 18.2 million USD in 2025.",
        "Borealis Foods is headquartered in Tromso, Norway.",
        "Borealis Foods' chief executive is Ines Okafor.",
    ],
}
RESEARCH_TASK = "Research {company}: use the company facts tool and report every fact it returns."
# Over 200 characters, so recall also runs memory's query analysis.
BRIEFING_TASK = (
    "Write a short board briefing on Acme Robotics. Use only what the team already knows from earlier research: "
    "where the company is headquartered, how much revenue it reported and who leads it. "
    "Do not research anything new."
)
CREW_NAME = "research crew"


@dataclass
class DemoCrew:
    """The crew and the scripted LLM that records what it was shown."""

    crew: Crew
    llm: ScriptedLLM


def build_demo_crew(dims: int = 256) -> DemoCrew:
    """The demo's crew: call after :func:`offline_environment` (it imports
    CrewAI) and after acceleration is enabled, as a user's script would."""
    from crewai import Agent, Crew, Task
    from crewai.tools import tool

    from .scripted_llm import ScriptedLLM, crew_embedder

    @tool("company facts")
    def company_facts(company: str) -> str:
        """Returns the known facts about a company, one per line."""
        lines = [fact for name, facts in COMPANY_FACTS.items() if name.lower() in company.lower() for fact in facts]
        return "\n".join(lines) or "No facts found."

    llm = ScriptedLLM()
    researcher = Agent(
        role="Market Researcher",
        goal="Find the facts about companies",
        backstory="You look companies up and report facts exactly.",
        llm=llm,
        tools=[company_facts],
    )
    writer = Agent(
        role="Briefing Writer",
        goal="Write briefings from what the team knows",
        backstory="You write short, factual briefings for the board.",
        llm=llm,
    )
    tasks = [
        Task(
            description=RESEARCH_TASK.format(company=name), expected_output="The facts, one per line", agent=researcher
        )
        for name in COMPANY_FACTS
    ]
    # context=[]: the writer gets no earlier task output, only memory.
    tasks.append(Task(description=BRIEFING_TASK, expected_output="A short briefing", agent=writer, context=[]))
    crew = Crew(
        name=CREW_NAME,
        agents=[researcher, writer],
        tasks=tasks,
        memory=True,
        embedder=crew_embedder(dims),
    )
    return DemoCrew(crew=crew, llm=llm)


def _agent_calls(demo: DemoCrew, task_description: str) -> list[tuple[int, ScriptedCall]]:
    marker = f"Current Task: {task_description}"
    return [(i, c) for i, c in enumerate(demo.llm.calls) if c.kind == "agent" and marker in c.text()]


def extracted_from(demo: DemoCrew, fact: str) -> tuple[int, str] | None:
    """The first memory extraction that produced ``fact``: its position among
    the LLM calls and the task whose output it was extracted from."""
    for index, call in enumerate(demo.llm.calls):
        if call.kind == "extract_memories" and fact in json.loads(call.answer)["memories"]:
            return index, between(call.text(), "Task:", "\nAgent:")
    return None


def recalled_facts(demo: DemoCrew, task_description: str) -> list[str]:
    """The memories shown to the agent working on ``task_description``: the
    ones CrewAI put in its prompt and the ones its memory searches returned."""
    facts: list[str] = []
    for _, call in _agent_calls(demo, task_description):
        for role, text in call.messages:
            if role == "user" and "Relevant memories:" in text:
                facts += fact_lines(between(text, "Relevant memories:", "\n\nIMPORTANT:"))
            if role == "assistant" and "Observation: Found memories:" in text:
                facts += fact_lines(text.split("Observation:", 1)[1])
    return list(dict.fromkeys(facts))


def recall_report(demo: DemoCrew, records: list[MemoryRecord], task_description: str) -> list[dict[str, Any]]:
    """Each fact the agent on ``task_description`` recalled: whether the store
    holds it and where, which earlier task's output it was extracted from
    before this task started, and whether the task's answer used it."""
    calls = _agent_calls(demo, task_description)
    started = calls[0][0] if calls else len(demo.llm.calls)
    answers = "\n".join(call.answer for _, call in calls)
    rows = []
    for fact in recalled_facts(demo, task_description):
        origin = extracted_from(demo, fact)
        earlier = origin is not None and origin[0] < started and origin[1] != task_description
        rows.append(
            {
                "content": fact,
                "stored_in_scopes": sorted({r.scope for r in records if r.content == fact}),
                "extracted_from_earlier_task": origin[1] if origin is not None and earlier else None,
                "used_in_answer": f"- {fact}" in answers,
            }
        )
    return rows


def run_demo(json_output: bool = False) -> int:
    """Runs the demo crew; 0 when memory was served by our store and the
    writer recalled facts saved by earlier tasks, 1 otherwise."""
    storage_dir = offline_environment()

    from ..runtime.patches import enable_acceleration, status

    enable_acceleration()
    from crewai import CrewOutput, Memory

    demo = build_demo_crew()
    start = time.perf_counter()
    result = demo.crew.kickoff()
    kickoff_s = time.perf_counter() - start
    # Only now: preparing the agents rebuilds the crew's Memory (and its store).
    memory = demo.crew._memory
    if not isinstance(memory, Memory) or not isinstance(result, CrewOutput):
        raise RuntimeError("the demo crew ran without its own memory or without a plain output")
    memory.drain_writes()
    storage = memory._storage
    try:
        from ..memory_search._storage import AcceleratedMemoryStorage

        ours = isinstance(storage, AcceleratedMemoryStorage)
    except ImportError:
        ours = False
    records = storage.list_records(limit=10_000)
    recalled = recall_report(demo, records, BRIEFING_TASK)
    from_earlier = [r for r in recalled if r["extracted_from_earlier_task"] and r["stored_in_scopes"]]
    memory_status = status()["components"]["memory"]
    memory.close()
    outcome: dict[str, Any] = {
        "ok": ours and bool(from_earlier),
        "store": f"{type(storage).__module__}.{type(storage).__name__}",
        "accelerated_store": ours,
        "memory_backend": memory_status["backend"],
        "memory_patches": memory_status["active"],
        "storage_dir": str(storage_dir),
        "kickoff_s": round(kickoff_s, 3),
        "llm_calls": dict(Counter(call.kind for call in demo.llm.calls)),
        "records": [{"scope": r.scope, "categories": list(r.categories), "content": r.content} for r in records],
        "recalled_by_writer": recalled,
        "recalled_from_earlier_tasks": len(from_earlier),
        "briefing": result.raw,
    }
    print(json.dumps(outcome, indent=2) if json_output else _format(outcome))
    return 0 if outcome["ok"] else 1


def _format(outcome: dict[str, Any]) -> str:
    calls = ", ".join(f"{kind} {n}" for kind, n in sorted(outcome["llm_calls"].items()))
    lines = [
        f"memory store: {outcome['store']} ({'accelerated' if outcome['accelerated_store'] else 'NOT accelerated'})",
        f"memory backend: {outcome['memory_backend']}  patches: {', '.join(outcome['memory_patches']) or '-'}",
        f"kickoff: {outcome['kickoff_s']:.3f} s  (scripted LLM calls: {calls})",
        "",
        f"remembered: {len(outcome['records'])} records",
    ]
    lines += [f"  {r['scope']}  [{', '.join(r['categories'])}]  {r['content']}" for r in outcome["records"]]
    lines += ["", "the writer's task (given no earlier task output) recalled:"]
    for row in outcome["recalled_by_writer"]:
        used = "used in the briefing" if row["used_in_answer"] else "not about the briefing's subject"
        origin = row["extracted_from_earlier_task"] or "no earlier task"
        lines.append(f"  {row['content']}  ({used})\n      from: {origin}")
    lines += ["", "briefing:", *(f"  {line}" for line in outcome["briefing"].splitlines()), ""]
    if outcome["ok"]:
        lines.append(
            f"OK: the accelerated store served memory; {outcome['recalled_from_earlier_tasks']} recalled facts "
            "were saved by earlier tasks"
        )
    else:
        lines.append(
            "FAILED: " + ("the store was not ours" if not outcome["accelerated_store"] else "nothing recalled")
        )
    return "\n".join(lines)
