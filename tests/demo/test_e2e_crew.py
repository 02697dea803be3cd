"""An offline crew with memory on, through the shim, end to end: what the
tasks save lands in our store, and a later task recalls it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from crewai import CrewOutput, Memory
from crewai.memory.storage.lancedb_storage import LanceDBStorage

from fast_crewai import disable_acceleration, enable_acceleration, status
from fast_crewai.demo import crew as _demo
from fast_crewai.demo.offline import HashEmbedder
from fast_crewai.demo.scripted_llm import ScriptedLLM
from fast_crewai.memory_search._storage import AcceleratedMemoryStorage

ROOT = "/crew/research-crew/agent"
ACME = _demo.COMPANY_FACTS["Acme Robotics"]
BOREALIS = _demo.COMPANY_FACTS["Borealis Foods"]


@pytest.fixture
def shim(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``import fast_crewai.shim`` for one test, with every switch on."""
    monkeypatch.delenv("FAST_CREWAI_ACCELERATION", raising=False)
    monkeypatch.delenv("FAST_CREWAI_MEMORY", raising=False)
    enable_acceleration()
    yield
    disable_acceleration()


def _memory_storage() -> object:
    memory = Memory(llm=ScriptedLLM(), embedder=HashEmbedder())
    storage = memory._storage
    memory.close()
    return storage


def test_crew_saves_into_our_store_and_a_later_task_recalls(backend: str, shim: None) -> None:
    demo = _demo.build_demo_crew()
    result = demo.crew.kickoff()
    memory = demo.crew._memory
    assert isinstance(memory, Memory) and isinstance(result, CrewOutput)
    memory.drain_writes()
    storage = memory._storage
    assert isinstance(storage, AcceleratedMemoryStorage)
    assert status()["components"]["memory"]["backend"] == backend

    records = storage.list_records(limit=1000)
    # Three facts per researched company under the researcher; the writer's
    # briefing repeats the three Acme facts, which memory saves in its own scope.
    assert storage.count() == len(records) == 9
    by_scope: dict[str, list[str]] = {}
    for record in records:
        by_scope.setdefault(record.scope, []).append(record.content)
    assert sorted(by_scope) == [
        f"{ROOT}/briefing-writer/acme-robotics",
        f"{ROOT}/market-researcher/acme-robotics",
        f"{ROOT}/market-researcher/borealis-foods",
    ]
    assert sorted(by_scope[f"{ROOT}/market-researcher/acme-robotics"]) == sorted(ACME)
    assert sorted(by_scope[f"{ROOT}/market-researcher/borealis-foods"]) == sorted(BOREALIS)
    assert storage.count(f"{ROOT}/market-researcher") == 6

    # The writer got no earlier task output (context=[]), yet its prompt held
    # the Acme facts: recalled from what the researcher's task saved before.
    writer_prompts = "\n".join(call.text() for _, call in _demo._agent_calls(demo, _demo.BRIEFING_TASK))
    assert "Relevant memories:" in writer_prompts
    assert all(fact in writer_prompts for fact in ACME)
    report = _demo.recall_report(demo, records, _demo.BRIEFING_TASK)
    earlier = {row["content"]: row["extracted_from_earlier_task"] for row in report}
    assert {fact: earlier.get(fact) for fact in ACME} == {
        fact: _demo.RESEARCH_TASK.format(company="Acme Robotics") for fact in ACME
    }
    assert all(row["stored_in_scopes"] for row in report)
    # The briefing uses the recalled Acme facts and leaves out the neighbours.
    assert all(f"- {fact}" in result.raw for fact in ACME)
    assert not any(fact in result.raw for fact in BOREALIS)
    memory.close()


def test_search_text_finds_what_the_crew_saved(backend: str, shim: None) -> None:
    demo = _demo.build_demo_crew()
    demo.crew.kickoff()
    memory = demo.crew._memory
    assert isinstance(memory, Memory)
    memory.drain_writes()
    storage = memory._storage
    assert isinstance(storage, AcceleratedMemoryStorage)
    hits = storage.search_text("headquartered Lyon", scope_prefix=f"{ROOT}/market-researcher", limit=5)
    assert hits and hits[0][0].content == "Acme Robotics is headquartered in Lyon, France."
    assert all(record.scope.startswith(f"{ROOT}/market-researcher/") for record, _ in hits)
    memory.close()


def test_memory_switch_off_keeps_lancedb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAST_CREWAI_MEMORY", "0")
    try:
        report = enable_acceleration()
        assert report["components"]["memory"]["active"] == []
        assert isinstance(_memory_storage(), LanceDBStorage)
    finally:
        disable_acceleration()


def test_disable_acceleration_restores_lancedb(shim: None) -> None:
    assert status()["components"]["memory"]["active"]
    assert isinstance(_memory_storage(), AcceleratedMemoryStorage)
    disable_acceleration()
    assert status()["components"]["memory"]["active"] == []
    assert isinstance(_memory_storage(), LanceDBStorage)


def test_demo_reports_recall_from_our_store(shim: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert _demo.run_demo(json_output=True) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["ok"] and outcome["accelerated_store"]
    # The memory patch hands Memory the store that reopens after close(), as LanceDB's does.
    assert outcome["store"] == "fast_crewai.memory_search._storage.ReopeningMemoryStorage"
    assert outcome["recalled_from_earlier_tasks"] >= len(ACME)
    assert len(outcome["records"]) == 9
    assert outcome["llm_calls"]["extract_memories"] == 3
