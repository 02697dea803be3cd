"""``kickoff_for_each`` and its async twins on the pool: the outputs, order,
token figures and failures of a stock sequential run, with the runs
actually overlapping."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import re
import threading
import time
from typing import Any
from unittest import mock

import pytest
from crewai import Crew, CrewOutput
from llms import GaugedLLM

from fast_crewai.demo import research
from fast_crewai.runtime import patches

LATENCY = 0.15


def outputs(results: list[Any]) -> list[list[str]]:
    assert all(isinstance(result, CrewOutput) for result in results)
    return [[task.raw for task in result.tasks_output] for result in results]


def usage(crew: Crew, results: list[Any], llm: GaugedLLM) -> tuple[Any, ...]:
    return (crew.usage_metrics, [result.token_usage for result in results], dict(llm._token_usage))


def stock_run(count: int, memory: bool = False) -> tuple[list[Any], Crew, GaugedLLM]:
    """The reference: CrewAI's own sequential loop (no latency: it changes
    nothing in the outputs)."""
    patches.disable_acceleration()
    llm = GaugedLLM()
    crew = research.research_crew(llm, summary=True, memory=memory)
    return crew.kickoff_for_each(research.inputs(count)), crew, llm


@pytest.mark.parametrize("memory", [False, True], ids=["memory-off", "memory-on"])
def test_sixteen_concurrent_runs_give_the_sequential_outputs_in_order(tasks_on: None, memory: bool) -> None:
    llm = GaugedLLM(latency=LATENCY)
    crew = research.research_crew(llm, summary=True, memory=memory)
    results = crew.kickoff_for_each(research.inputs(16))
    peak = llm.peak
    expected, stock_crew, stock_llm = stock_run(16, memory)
    assert outputs(results) == outputs(expected)
    assert [r.tasks_output[0].raw.splitlines()[0] for r in results] == [
        f"Research {name}" for name, _ in research.COMPANIES
    ]
    # The runs overlapped (CrewAI's loop has one call in flight at a time).
    assert peak >= 6, peak
    if not memory:
        # Memory's background LLM calls add to the same counters at times
        # that vary from run to run, in CrewAI too: figures compared without it.
        assert usage(crew, results, llm) == usage(stock_crew, expected, stock_llm)
        assert crew.usage_metrics is not None and crew.usage_metrics.successful_requests > 0


def failing_crew(names: tuple[str, ...], latency: float = LATENCY) -> tuple[Crew, GaugedLLM]:
    llm = GaugedLLM(latency=latency, fail_on=names)
    crew = research.research_crew(llm)
    crew.agents[0].max_retry_limit = 0
    return crew, llm


def test_a_failure_is_raised_as_crewai_raises_it(tasks_on: None) -> None:
    crew, _ = failing_crew(("Iris Optics",))
    with pytest.raises(RuntimeError, match="scripted failure for Iris Optics") as caught:
        crew.kickoff_for_each(research.inputs(12))
    patches.disable_acceleration()
    stock_crew, _ = failing_crew(("Iris Optics",), latency=0.0)
    with pytest.raises(RuntimeError) as stock_caught:
        stock_crew.kickoff_for_each(research.inputs(12))
    assert type(caught.value) is type(stock_caught.value)
    assert str(caught.value) == str(stock_caught.value)


def test_the_first_failure_in_input_order_is_raised_and_the_others_are_noted(tasks_on: None) -> None:
    crew, _ = failing_crew(("Cobalt Mining", "Iris Optics"))
    with pytest.raises(RuntimeError, match="Cobalt Mining") as first:
        crew.kickoff_for_each(research.inputs(12))
    notes = "\n".join(getattr(first.value, "__notes__", []))
    assert "input 8 also failed" in notes and "Iris Optics" in notes


def test_runs_after_a_failure_that_had_not_started_are_not_run(tasks_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from fast_crewai.tasks import _pool

    # One worker and a first input that fails at once: CrewAI stops there,
    # and so do we for every run still queued (the second may have started).
    monkeypatch.setenv("FAST_CREWAI_MAX_WORKERS", "1")
    _pool.shutdown_pool()
    try:
        crew, llm = failing_crew(("Acme Robotics",))
        with pytest.raises(RuntimeError, match="Acme Robotics") as caught:
            crew.kickoff_for_each(research.inputs(6))
        for name, _ in research.COMPANIES[2:6]:
            assert not any(f"Research {name}" in call.text() for call in llm.calls), name
        notes = "\n".join(getattr(caught.value, "__notes__", []))
        skipped = re.search(r"inputs \[([0-9, ]+)\] were not run after input 0 failed", notes)
        assert skipped is not None, notes
        assert {2, 3, 4, 5} <= {int(i) for i in skipped.group(1).split(",")} <= {1, 2, 3, 4, 5}
    finally:
        monkeypatch.delenv("FAST_CREWAI_MAX_WORKERS")
        _pool.shutdown_pool()


def test_no_deadlock_under_the_cyclic_collector(tasks_on: None) -> None:
    # Frequent collections in every thread (low thresholds) and full ones
    # from another thread, while crews run on the pool.
    thresholds = gc.get_threshold()
    gc.set_threshold(20, 2, 2)
    stop = threading.Event()

    def collector() -> None:
        while not stop.wait(0.01):
            gc.collect()

    hammer = threading.Thread(target=collector, daemon=True)
    hammer.start()
    finished: list[list[list[str]]] = []
    try:
        crew = research.research_crew(GaugedLLM(latency=0.02), summary=True)
        runner = threading.Thread(
            target=lambda: finished.append(outputs(crew.kickoff_for_each(research.inputs(8)))), daemon=True
        )
        runner.start()
        runner.join(timeout=240)
        assert not runner.is_alive(), "deadlocked"
    finally:
        stop.set()
        hammer.join(timeout=30)
        gc.set_threshold(*thresholds)
    assert finished and finished[0] == outputs(stock_run(8)[0])


@pytest.mark.parametrize("method", ["kickoff_for_each_async", "akickoff_for_each"])
def test_async_for_each_is_not_capped_by_the_default_executor(tasks_on: None, method: str) -> None:
    llm = GaugedLLM(latency=LATENCY)
    crew = research.research_crew(llm, summary=True)

    results = asyncio.run(getattr(crew, method)(research.inputs(12)))
    expected = stock_run(12)[0]
    assert outputs(results) == outputs(expected)
    # asyncio's default executor has min(32, cpu + 4) threads: 6 on two cores.
    assert llm.peak > 6, llm.peak


def test_kickoff_for_each_async_calls_kickoff_async_for_each_copy(tasks_on: None) -> None:
    # CrewAI's contract (its own tests patch Crew.kickoff_async): the shim
    # speeds kickoff_async up instead of going around it.
    inputs = research.inputs(3)
    calls: list[dict[str, Any]] = []

    async def fake_kickoff_async(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(kwargs["inputs"]["company"])

    crew = research.research_crew(GaugedLLM(), summary=True)
    with mock.patch.object(Crew, "kickoff_async", side_effect=fake_kickoff_async):
        results = asyncio.run(crew.kickoff_for_each_async(inputs))
    assert results == [data["company"] for data in inputs]
    assert calls == [{"inputs": data, "input_files": None} for data in inputs]


def test_kickoff_async_runs_kickoff_on_the_pool_in_the_callers_context(tasks_on: None) -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    seen: list[tuple[str, str, tuple[Any, ...]]] = []

    def fake_kickoff(self: Crew, *args: Any) -> str:
        seen.append((threading.current_thread().name, marker.get(), args))
        return "done"

    async def caller() -> Any:
        marker.set("caller's")
        return await crew.kickoff_async({"company": "Acme"})

    crew = research.research_crew(GaugedLLM(), summary=True)
    with mock.patch.object(Crew, "kickoff", fake_kickoff):
        assert asyncio.run(caller()) == "done"
    # CrewAI hands asyncio.to_thread the same two positional arguments.
    assert seen == [(mock.ANY, "caller's", ({"company": "Acme"}, None))]
    assert seen[0][0].startswith("fast-crewai-task-"), seen


def test_cancelling_akickoff_for_each_cancels_every_copy(tasks_on: None) -> None:
    # On the caller's loop CrewAI's copies are cancelled with their caller;
    # on loops of their own they must be too.
    started = threading.Semaphore(0)
    cancelled: list[str] = []

    async def slow_akickoff(self: Crew, inputs: dict[str, Any], input_files: Any = None) -> None:
        started.release()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(inputs["company"])
            raise

    async def caller(crew: Crew) -> None:
        run = asyncio.ensure_future(crew.akickoff_for_each(research.inputs(3)))
        for _ in range(3):
            while not started.acquire(blocking=False):
                await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    crew = research.research_crew(GaugedLLM(), summary=True)
    with mock.patch.object(Crew, "akickoff", slow_akickoff):
        began = time.monotonic()
        asyncio.run(asyncio.wait_for(caller(crew), 30))
        deadline = time.monotonic() + 10
        while len(cancelled) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sorted(cancelled) == sorted(data["company"] for data in research.inputs(3))
    assert time.monotonic() - began < 30


CALL_THREADS: list[str] = []


class ThreadNamingLLM(GaugedLLM):
    """Records the name of each thread its calls (its copies' too) run on."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        CALL_THREADS.append(threading.current_thread().name)
        return super().call(messages, *args, **kwargs)


def test_akickoff_copies_share_one_executor_across_loops(tasks_on: None) -> None:
    from fast_crewai.tasks._loop_executor import loop_executor

    names = CALL_THREADS
    names.clear()
    llm = ThreadNamingLLM(latency=0.02)
    crew = research.research_crew(llm, summary=True)
    first = asyncio.run(crew.akickoff_for_each(research.inputs(4)))
    executor = loop_executor()
    threads_after_first = len(executor._threads)
    second = asyncio.run(crew.akickoff_for_each(research.inputs(4)))
    assert outputs(first) == outputs(second) == outputs(stock_run(4)[0])
    # CrewAI's blocking steps (the LLM call among them) ran on the shared
    # executor, which outlived every copy's loop and served the next call.
    assert names and all(name.startswith("fast-crewai-step") for name in names), set(names)
    assert loop_executor() is executor and not executor._shutdown
    assert len(executor._threads) <= max(threads_after_first, 1) * 2
