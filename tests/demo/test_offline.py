"""The offline kit: environment, hashed embedder, scripted LLM (its answers
go through CrewAI's own memory analysis code, so they must validate)."""

from __future__ import annotations

import math
import os
from datetime import datetime

import pytest
from crewai import Agent, Crew, Task
from crewai.memory.analyze import (
    ExtractedMemories,
    analyze_for_consolidation,
    analyze_for_save,
    analyze_query,
    extract_memories_from_content,
)
from crewai.memory.types import MemoryRecord
from crewai.utilities.i18n import I18N_DEFAULT

from fast_crewai.demo.offline import OFFLINE_FLAGS, HashEmbedder, offline_environment
from fast_crewai.demo.scripted_llm import ScriptedLLM, crew_embedder


def test_offline_environment_sets_flags_and_keeps_existing_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in [*OFFLINE_FLAGS, "CREWAI_STORAGE_DIR"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREWAI_TESTING", "false")
    storage = offline_environment()
    assert storage.is_dir() and os.environ["CREWAI_STORAGE_DIR"] == str(storage)
    assert os.environ["CREWAI_DISABLE_TELEMETRY"] == "true"
    assert os.environ["CREWAI_TRACING_ENABLED"] == "false"
    assert os.environ["CREWAI_TESTING"] == "false"
    chosen = tmp_path_factory.mktemp("chosen")
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(chosen))
    assert offline_environment() == chosen


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hash_embedder_is_deterministic_normalised_and_word_sensitive() -> None:
    first, second = HashEmbedder(64), HashEmbedder(64)
    texts = ["Acme Robotics is headquartered in Lyon", "Acme Robotics revenue", "tulips bloom in spring"]
    vectors = first(texts)
    assert vectors == second(texts)
    assert all(len(v) == 64 and math.isclose(math.sqrt(_cosine(v, v)), 1.0, rel_tol=1e-9) for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])
    assert first(["!!!"]) == [[0.0] * 64]
    with pytest.raises(ValueError):
        HashEmbedder(0)


def test_crew_embedder_is_accepted_by_a_crew() -> None:
    llm = ScriptedLLM()
    agent = Agent(role="Analyst", goal="g", backstory="b", llm=llm)
    crew = Crew(
        agents=[agent],
        tasks=[Task(description="d", expected_output="e", agent=agent)],
        memory=True,
        embedder=crew_embedder(48),
    )
    memory = crew._memory
    assert memory is not None
    vectors = memory._embedder(["Acme Robotics"])  # type: ignore[union-attr]
    assert [len(v) for v in vectors] == [48]
    assert list(vectors[0]) == pytest.approx(HashEmbedder(48)(["Acme Robotics"])[0], abs=1e-6)


def test_memory_prompts_validate_in_crewai_analysis() -> None:
    llm = ScriptedLLM()
    content = (
        "Task: Research Acme Robotics\nAgent: Researcher\nExpected result: facts\n"
        "Result: Thought: done\nFinal Answer: Research Acme Robotics\n"
        "- Acme Robotics reported revenue of 42.5 million USD in 2025.\n"
        "- Acme Robotics is headquartered in Lyon, France."
    )
    assert extract_memories_from_content(content, llm) == [
        "Acme Robotics reported revenue of 42.5 million USD in 2025.",
        "Acme Robotics is headquartered in Lyon, France.",
    ]
    analysis = analyze_for_save("Acme Robotics reported revenue of 42.5 million USD in 2025.", ["/"], [], llm)
    assert analysis.suggested_scope == "/acme-robotics"
    assert analysis.categories == ["finance"]
    assert analysis.extracted_metadata.dates == ["2025"]
    query = analyze_query("Write a briefing on Acme Robotics. Mention its revenue.", ["/acme-robotics"], None, llm)
    assert query.recall_queries == ["Write a briefing on Acme Robotics.", "Mention its revenue."]
    assert query.suggested_scopes == ["/acme-robotics"]
    stored = MemoryRecord(
        id="r1", content="Acme Robotics is headquartered in Lyon, France.", created_at=datetime(2026, 1, 1)
    )
    duplicate = analyze_for_consolidation("Acme Robotics is headquartered in Lyon, France.", [stored], llm)
    assert duplicate.insert_new is False and [a.action for a in duplicate.actions] == ["keep"]
    assert analyze_for_consolidation("Acme Robotics has 300 employees.", [stored], llm).insert_new is True
    assert [call.kind for call in llm.calls] == ["extract_memories", "save", "query", "consolidation", "consolidation"]


def test_response_model_gets_a_model_instance() -> None:
    llm = ScriptedLLM()
    messages = [
        {"role": "system", "content": I18N_DEFAULT.memory("extract_memories_system")},
        {"role": "user", "content": "Content:\nResult: Final Answer: x\n- One fact.\n\nExtract memory statements"},
    ]
    answer = llm.call(messages, response_model=ExtractedMemories)
    assert isinstance(answer, ExtractedMemories) and answer.memories == ["One fact."]


def test_agent_turns_use_a_tool_then_answer_from_its_observation() -> None:
    llm = ScriptedLLM()
    system = (
        'Tool Name: company_facts\nTool Arguments: {"properties": {"company": {"type": "string"}}, '
        '"required": ["company"]}\nTool Description: facts\n'
        "Action: the action to take, only one name of [company_facts, search_memory], just the name"
    )
    task = "\nCurrent Task: Research Acme Robotics\n\nThis is the expected criteria for your final answer: facts"
    first = llm.call([{"role": "system", "content": system}, {"role": "user", "content": task}])
    assert first.endswith('Action: company_facts\nAction Input: {"company": "Research Acme Robotics"}')
    second = llm.call(
        [
            {"role": "system", "content": system},
            {"role": "user", "content": task},
            {"role": "assistant", "content": first + "\nObservation: Acme Robotics is based in Lyon.\nNoise Corp."},
        ]
    )
    assert second == (
        "Thought: I now know the final answer\nFinal Answer: Research Acme Robotics\n- Acme Robotics is based in Lyon."
    )
    assert [call.kind for call in llm.calls] == ["agent", "agent"]
    assert "Observation: Acme Robotics" in llm.received("agent")
