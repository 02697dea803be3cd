"""``kickoff_for_each`` and its async twins on the pool: the outputs, order,
token figures and failures of a stock sequential run, with the runs
actually overlapping."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest
from crewai import Crew, CrewOutput

from fast_crewai.demo import research
from fast_crewai.runtime import patches

from .conftest import GaugedLLM

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


def test_the_first_failure_in_input_order_is_raised_and_the_others_are_noted(tasks_on: None) -> None:
    failing = ("Cobalt Mining", "Iris Optics")
    llm = GaugedLLM(latency=LATENCY, fail_on="Iris Optics")
    crew = research.research_crew(llm)
    crew.agents[0].max_retry_limit = 0
    with pytest.raises(RuntimeError, match="scripted failure for Iris Optics") as caught:
        crew.kickoff_for_each(research.inputs(12))
    patches.disable_acceleration()
    stock_llm = GaugedLLM(fail_on="Iris Optics")
    stock_crew = research.research_crew(stock_llm)
    stock_crew.agents[0].max_retry_limit = 0
    with pytest.raises(RuntimeError) as stock_caught:
        stock_crew.kickoff_for_each(research.inputs(12))
    assert type(caught.value) is type(stock_caught.value) and str(caught.value) == str(stock_caught.value)

    # Two failing inputs: the earlier one is raised, the later one noted.
    patches.enable_acceleration()
    both = GaugedLLM(latency=LATENCY)
    both.fail_on = None
    crew = research.research_crew(_FailOnAny(latency=LATENCY, names=failing))
    crew.agents[0].max_retry_limit = 0
    with pytest.raises(RuntimeError, match="Cobalt Mining") as first:
        crew.kickoff_for_each(research.inputs(12))
    notes = "\n".join(getattr(first.value, "__notes__", []))
    assert "input 8 also failed" in notes and "Iris Optics" in notes


class _FailOnAny(GaugedLLM):
    names: tuple[str, ...] = ()

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        for name in self.names:
            if name in str(messages):
                raise RuntimeError(f"scripted failure for {name}")
        return super().call(messages, *args, **kwargs)


def test_runs_after_a_failure_that_had_not_started_are_not_run(
    tasks_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fast_crewai.tasks import _pool

    # One worker and a first input that fails: CrewAI stops at it, and so do
    # we for every run still queued.
    monkeypatch.setenv("FAST_CREWAI_MAX_WORKERS", "1")
    _pool.shutdown_pool()
    try:
        llm = GaugedLLM(fail_on="Acme Robotics")
        crew = research.research_crew(llm)
        crew.agents[0].max_retry_limit = 0
        with pytest.raises(RuntimeError, match="Acme Robotics") as caught:
            crew.kickoff_for_each(research.inputs(6))
        researched = {call.text().split("Current Task: Research ", 1)[-1][:14] for call in llm.calls}
        assert not any(name in " ".join(researched) for name, _ in research.COMPANIES[2:6])
        assert "were not run" in "\n".join(getattr(caught.value, "__notes__", []))
    finally:
        monkeypatch.delenv("FAST_CREWAI_MAX_WORKERS")
        _pool.shutdown_pool()


def test_no_deadlock_under_the_cyclic_collector(tasks_on: None) -> None:
    # Collections as often as possible, from every thread, while crews run.
    thresholds = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    stop = threading.Event()

    def collector() -> None:
        while not stop.is_set():
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

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        before = getattr(loop, "_default_executor", None)
        results = await getattr(crew, method)(research.inputs(12))
        # The loop's own executor is back afterwards.
        assert getattr(loop, "_default_executor", None) is before
        return results

    results = asyncio.run(main())
    expected = stock_run(12)[0]
    assert outputs(results) == outputs(expected)
    # asyncio's default executor has min(32, cpu + 4) threads: 6 on two cores.
    assert llm.peak > 6, llm.peak
