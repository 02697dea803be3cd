"""Asynchronous tasks on the pool: one agent (or one tool) invoked by
several at once, hierarchical delegation, usage limits, event attribution."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from crewai import Crew, CrewOutput, Task
from crewai.events import crewai_event_bus
from crewai.events.base_events import BaseEvent
from crewai.events.types.agent_events import AgentExecutionStartedEvent
from crewai.events.types.crew_events import CrewKickoffStartedEvent
from crewai.events.types.llm_events import LLMStreamChunkEvent
from crewai.events.types.task_events import TaskCompletedEvent
from crewai.events.types.tool_usage_events import ToolUsageFinishedEvent
from llms import GaugedLLM, ManagerLLM

from fast_crewai.demo import research
from fast_crewai.runtime import patches
from fast_crewai.tasks import pool_status

THREE = ("Acme Robotics", "Fjord Energy", "Nimbus Cloud")


def raws(result: Any) -> list[str]:
    assert isinstance(result, CrewOutput)
    return [task.raw for task in result.tasks_output]


def sequential_reference(**options: Any) -> list[str]:
    """The same crew with its research tasks run one after another by stock
    CrewAI (each researcher task waited for before the next starts)."""
    patches.disable_acceleration()
    crew = research.research_crew(GaugedLLM(), companies=THREE, **options)
    for task in crew.tasks:
        task.async_execution = False
    return raws(crew.kickoff())


def test_stock_crewai_fails_on_async_tasks_sharing_an_agent(stock: None) -> None:
    # The first task's LLM call waits for a second one, so the tasks overlap
    # however loaded the machine is (stock's crash needs them to).
    crew = research.research_crew(GaugedLLM(latency=0.1, meet=2), companies=THREE)
    with pytest.raises(RuntimeError, match="Executor is already running"):
        crew.kickoff()


def test_async_tasks_sharing_an_agent_complete_concurrently_with_sequential_outputs(tasks_on: None) -> None:
    llm = GaugedLLM(latency=0.2)
    crew = research.research_crew(llm, companies=THREE)
    twins_before = pool_status()["agent_twins"]
    result = raws(crew.kickoff())
    assert llm.peak >= 2, llm.peak  # the research tasks overlapped
    assert pool_status()["agent_twins"] - twins_before >= 1
    # The agent's own executor is left as CrewAI leaves it; no lease outlives the run.
    assert crew.agents[0].agent_executor is not None
    assert pool_status()["leased"] == 0
    assert result == sequential_reference()


def test_hierarchical_delegation_of_parallel_tasks_to_one_coworker(tasks_on: None) -> None:
    # The coworker's LLM calls wait for a second one, so the delegations
    # overlap however loaded the machine is (stock's crash needs them to).
    worker_llm, manager_llm = GaugedLLM(latency=0.1, meet=2), ManagerLLM(latency=0.05)
    crew = research.research_crew(worker_llm, companies=THREE, hierarchical_manager=manager_llm)
    result = raws(crew.kickoff())
    # Every research task was delegated to the researcher, concurrently.
    assert worker_llm.peak >= 2, worker_llm.peak
    for company, output in zip(THREE, result, strict=False):
        assert all(fact in output for fact in research.company_facts(company)), output

    patches.disable_acceleration()
    stock_crew = research.research_crew(
        GaugedLLM(latency=0.1, meet=2), companies=THREE, hierarchical_manager=ManagerLLM()
    )
    with pytest.raises(RuntimeError, match="Executor is already running"):
        stock_crew.kickoff()


def test_usage_limits_hold_per_run_under_concurrency(tasks_on: None) -> None:
    # Each run uses the shared tool once; its limit of one must hold per run
    # (in CrewAI a limit counts per task execution), not across the runs
    # that happen to be in flight.
    crew = research.research_crew(GaugedLLM(latency=0.1), max_usage_count=1)
    results = crew.kickoff_for_each(research.inputs(8))
    for (company, _), result in zip(research.COMPANIES, results, strict=False):
        output = raws(result)[0]
        assert "usage limit" not in output
        assert all(fact in output for fact in research.company_facts(company)), output
    same_agent = research.research_crew(GaugedLLM(latency=0.1), companies=THREE, max_usage_count=1)
    assert raws(same_agent.kickoff()) == sequential_reference(max_usage_count=1)


def test_a_tools_counter_another_run_is_spending_is_not_reset(tasks_on: None) -> None:
    from crewai.utilities.agent_utils import parse_tools

    from fast_crewai.tasks._invocations import leased

    tool = research.facts_tool(max_usage_count=3)
    tool.current_usage_count = 2
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with leased(None, [tool]):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert holding.wait(10)
        parse_tools([tool])  # a crew setting up elsewhere
        assert tool.current_usage_count == 2
        with leased(None, [tool]) as (_, mapped):
            assert mapped is not None and mapped[0] is not tool
            assert mapped[0].max_usage_count == 3
    finally:
        release.set()
        thread.join(10)
    parse_tools([tool])  # nobody is using it now: CrewAI's reset applies
    assert tool.current_usage_count == 0


def event_types() -> set[type[BaseEvent]]:
    """Every event class CrewAI defines (handlers are looked up by exact type)."""
    found: set[type[BaseEvent]] = set()
    pending = [BaseEvent]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


class _RecordingLLM(GaugedLLM):
    """Emits each answer as a stream chunk, as a streaming provider would."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        answer = super().call(messages, *args, **kwargs)
        crewai_event_bus.emit(
            self,
            LLMStreamChunkEvent(chunk=str(answer), call_id="scripted", from_agent=kwargs.get("from_agent")),
        )
        return answer


def test_stock_crewai_raises_on_a_failed_async_task_while_the_others_run(stock: None) -> None:
    # Two researchers (no shared executor): the first one's task fails at once
    # and CrewAI raises without waiting for the second, whose thread goes on
    # emitting events. Placed right before the attribution test: without the
    # fixture that waits for a test's tasks, those events land in its
    # handlers, their parents emitted before it registered them.
    llm = GaugedLLM(latency=0.5, fail_on=(THREE[0],))
    agents = [research.research_crew(llm).agents[0] for _ in range(2)]
    tasks = [
        Task(
            description=research.RESEARCH_TASK.format(company=company),
            expected_output="The facts, one per line",
            agent=agent,
            async_execution=True,
        )
        for company, agent in zip(THREE, agents, strict=False)
    ]
    tasks.append(Task(description="Summarise.", expected_output="A short summary", agent=agents[1]))
    crew = Crew(agents=agents, tasks=tasks)
    with pytest.raises(RuntimeError, match="scripted failure"):
        crew.kickoff()
    # The second task is still on its first LLM call (its answer takes a
    # second in all), waited for by no one.
    deadline = time.monotonic() + 10
    while llm.now == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert llm.now == 1 and tasks[1].output is None


def test_events_are_attributed_to_the_crew_that_caused_them(tasks_on: None) -> None:
    # Each event's parent chain leads to the kickoff of one crew copy; every
    # event that names a company must name that copy's company only.
    texts = {
        AgentExecutionStartedEvent: lambda e: e.task_prompt,
        ToolUsageFinishedEvent: lambda e: str(e.output),
        TaskCompletedEvent: lambda e: e.output.raw,
        LLMStreamChunkEvent: lambda e: e.chunk,
    }
    events: dict[str, Any] = {}
    lock = threading.Lock()

    def record(_: Any, event: Any) -> None:
        with lock:
            events[event.event_id] = event

    with crewai_event_bus.scoped_handlers():
        for kind in event_types():
            crewai_event_bus.register_handler(kind, record)
        crew = research.research_crew(_RecordingLLM(latency=0.1), summary=True)
        crew.kickoff_for_each(research.inputs(8))
        assert crewai_event_bus.flush(timeout=30)

    def kickoff_of(event: Any) -> CrewKickoffStartedEvent:
        while not isinstance(event, CrewKickoffStartedEvent):
            event = events[event.parent_event_id]
        return event

    checked: dict[type, int] = {}
    for event in list(events.values()):
        text_of = texts.get(type(event))
        if text_of is None:
            continue
        company = kickoff_of(event).inputs["company"]  # type: ignore[index]
        text = text_of(event)
        assert company in text, (type(event).__name__, company, text)
        assert not any(name in text for name, _ in research.COMPANIES[:8] if name != company), text
        checked[type(event)] = checked.get(type(event), 0) + 1
    # Two tasks, one tool call and three LLM answers per run.
    assert checked == {
        AgentExecutionStartedEvent: 16,
        ToolUsageFinishedEvent: 8,
        TaskCompletedEvent: 16,
        LLMStreamChunkEvent: 24,
    }


def test_stream_chunks_of_concurrent_crews_stay_in_their_own_stream(tasks_on: None) -> None:
    # Two streaming crews at once, each with asynchronous tasks on the pool:
    # each stream carries only its own crew's chunks.
    pairs = (("Acme Robotics", "Fjord Energy"), ("Nimbus Cloud", "Onyx Materials"))
    streams: dict[int, list[str]] = {}

    def run(index: int) -> None:
        crew: Crew = research.research_crew(_RecordingLLM(latency=0.1), companies=pairs[index])
        crew.stream = True
        stream = crew.kickoff()
        streams[index] = [chunk.content for chunk in stream]  # type: ignore[union-attr]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for index, mine in enumerate(pairs):
        text = "\n".join(streams[index])
        theirs = pairs[1 - index]
        assert all(name in text for name in mine), text
        assert not any(name in text for name in theirs), text
