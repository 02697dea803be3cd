"""The ``tasks`` patches: what they replace, that disabling restores CrewAI
exactly, the switch, per-crew memory drains and the named-lock queue."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from crewai import Crew, Memory, Task
from crewai.agent.core import Agent
from crewai.flow.flow_wrappers import FlowMethod
from crewai.flow.runtime import Flow
from crewai.memory.unified_memory import Memory as MemoryClass
from crewai.utilities.crew.models import CrewContext
from opentelemetry import baggage
from opentelemetry.context import attach, detach

from fast_crewai.demo.offline import HashEmbedder
from fast_crewai.demo.scripted_llm import ScriptedLLM
from fast_crewai.runtime import patches

PATCHED = {
    Crew: ("kickoff_for_each", "kickoff_async", "akickoff_for_each"),
    Task: ("execute_async", "_execute_core", "_aexecute_core"),
    Agent: ("execute_task", "aexecute_task"),
    MemoryClass: ("_submit_save", "drain_writes"),
    Flow: ("_create_initial_state", "_find_triggered_methods"),
    FlowMethod: ("__get__",),
}


def snapshot() -> dict[str, Any]:
    import crewai.agent.core
    import crewai.lite_agent
    import crewai.utilities.agent_utils
    import crewai_core.lock_store

    state: dict[str, Any] = {
        f"{cls.__name__}.{name}": cls.__dict__.get(name) for cls, names in PATCHED.items() for name in names
    }
    for module in (crewai.utilities.agent_utils, crewai.agent.core, crewai.lite_agent):
        state[f"{module.__name__}.parse_tools"] = module.parse_tools
    state["lock backend"] = crewai_core.lock_store._backend
    return state


def test_enable_replaces_and_disable_restores_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAST_CREWAI_ACCELERATION", "FAST_CREWAI_TASKS"):
        monkeypatch.delenv(name, raising=False)
    patches.disable_acceleration()
    stock = snapshot()
    stock_for_each_async = Crew.__dict__["kickoff_for_each_async"]
    report = patches.enable_acceleration()
    tasks = report["components"]["tasks"]
    assert tasks["active"] == tasks["available"] and len(tasks["active"]) == 11
    patched = snapshot()
    assert all(patched[key] is not stock[key] for key in stock), [k for k in stock if patched[k] is stock[k]]
    # CrewAI's own, calling the patched Crew.kickoff_async for each copy.
    assert Crew.__dict__["kickoff_for_each_async"] is stock_for_each_async
    patches.disable_acceleration()
    assert snapshot() == stock


def test_the_switch_leaves_crewai_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    patches.disable_acceleration()
    stock = snapshot()
    monkeypatch.setenv("FAST_CREWAI_TASKS", "0")
    try:
        report = patches.enable_acceleration()
        assert report["components"]["tasks"]["active"] == []
        assert snapshot() == stock
    finally:
        patches.disable_acceleration()


@contextlib.contextmanager
def in_crew(crew_id: str) -> Iterator[None]:
    """The context a crew's kickoff sets up (CrewAI's own baggage)."""
    token = attach(baggage.set_baggage("crew_context", CrewContext(id=crew_id, key=crew_id)))
    try:
        yield
    finally:
        detach(token)


def test_a_crews_memory_drain_does_not_wait_for_another_crews_saves(tasks_on: None) -> None:
    memory = Memory(llm=ScriptedLLM(), embedder=HashEmbedder())
    slow_save_may_finish = threading.Event()
    try:
        with in_crew("crew-a"):
            mine = memory._submit_save(time.sleep, 0.05)
        with in_crew("crew-b"):
            theirs = memory._submit_save(slow_save_may_finish.wait, 30)
        drained = threading.Event()

        def drain_as_crew_a() -> None:
            with in_crew("crew-a"):
                memory.drain_writes()
            drained.set()

        threading.Thread(target=drain_as_crew_a, daemon=True).start()
        assert drained.wait(10), "crew a's drain waited for crew b's save"
        assert mine.done() and not theirs.done()

        # Outside any crew a drain waits for everything, as CrewAI's does.
        everything = threading.Thread(target=memory.drain_writes, daemon=True)
        everything.start()
        everything.join(0.3)
        assert everything.is_alive()
        slow_save_may_finish.set()
        everything.join(10)
        assert not everything.is_alive() and theirs.done()
    finally:
        slow_save_may_finish.set()
        memory.close()


def test_threads_queue_in_process_for_a_named_lock(tasks_on: None) -> None:
    from crewai_core.lock_store import lock

    # CrewAI's file lock polls every 0.25 s; queued threads are handed the
    # lock as soon as it is released.
    order: list[int] = []

    def hold(index: int) -> None:
        with lock("fast-crewai-test-queue"):
            order.append(index)
            time.sleep(0.01)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(12)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.perf_counter() - started
    assert sorted(order) == list(range(12))
    # 12 holds of 10 ms; polling would have cost 0.25 s per collision.
    assert elapsed < 1.0, elapsed


def test_the_named_lock_still_excludes_other_processes(tasks_on: None, tmp_path: Any) -> None:
    import subprocess
    import sys

    from crewai_core.lock_store import lock

    script = (
        "import sys, time\n"
        "from crewai_core.lock_store import lock\n"
        "with lock('fast-crewai-test-cross'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(1.0)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        started = time.perf_counter()
        with lock("fast-crewai-test-cross"):
            waited = time.perf_counter() - started
        assert waited > 0.5, waited
    finally:
        child.wait(30)
        if child.stdout is not None:
            child.stdout.close()


def test_agent_executors_share_one_state_class_with_their_own_state(tasks_on: None) -> None:
    from crewai.agents.agent_executor import AgentExecutorState
    from crewai.flow.runtime import FlowState

    from fast_crewai.demo import research

    executors = [research.research_crew(ScriptedLLM()).agents[0] for _ in range(2)]
    for agent in executors:
        agent.create_agent_executor()
    first, second = (agent.agent_executor._create_initial_state() for agent in executors)  # type: ignore[union-attr]
    assert type(first) is type(second)
    assert issubclass(type(first), FlowState) and issubclass(type(first), AgentExecutorState)
    assert first is not second and first.id != second.id and first.messages is not second.messages
    patches.disable_acceleration()
    # CrewAI makes a class per call, with the same fields.
    stock = [executors[0].agent_executor._create_initial_state() for _ in range(2)]  # type: ignore[union-attr]
    assert type(stock[0]) is not type(stock[1])
    assert type(stock[0]).model_fields.keys() == type(first).model_fields.keys()
