"""Crews and the host pool in a child made by ``os.fork()`` after the parent
used them: the child's pool is its own (fresh counts, live threads), CrewAI's
event bus starts again, and a crew gives the parent's outputs. Every child
runs with a deadline (``in_forked_child``), so a hang fails the test."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from crewai import CrewOutput
from llms import GaugedLLM
from process_helpers import fork_reset_locks_held, in_forked_child

import fast_crewai
from fast_crewai.demo import research
from fast_crewai.tasks import host_pool, pool_status


def worker_name() -> str:
    return threading.current_thread().name


async def on_the_pool() -> str:
    """How the patched ``kickoff_async``/``akickoff_for_each`` wait for pool
    work: through asyncio, never by calling ``result()`` (which would run a
    job still queued in the waiting thread itself)."""
    return await asyncio.wait_for(asyncio.wrap_future(host_pool().submit(worker_name)), 30)


def test_the_host_pool_starts_afresh_in_the_child() -> None:
    pool = host_pool()
    for _ in range(3):
        assert asyncio.run(on_the_pool()).startswith("fast-crewai-task-")
    before = pool_status()
    assert before["threads"] >= 1 and before["submitted"] >= 3

    def child() -> dict[str, Any]:
        name = asyncio.run(on_the_pool())
        return {"name": name, "status": pool_status(), "same pool": host_pool() is pool}

    with fork_reset_locks_held():
        result, _ = in_forked_child(child, timeout=60)
    assert result["name"] == "fast-crewai-task-0"
    assert not result["same pool"]
    status = result["status"]
    assert (status["threads"], status["submitted"], status["completed"], status["ran_by_waiter"]) == (1, 1, 1, 0)
    # The parent's pool is as it was.
    assert host_pool() is pool and pool_status()["submitted"] == before["submitted"]
    assert asyncio.run(on_the_pool()).startswith("fast-crewai-task-")


def outputs(result: Any) -> list[str]:
    assert isinstance(result, CrewOutput)
    return [task.raw for task in result.tasks_output]


def test_a_crew_the_parent_ran_runs_in_the_child_with_the_same_outputs(tasks_on: None) -> None:
    crew = research.research_crew(GaugedLLM(), summary=True)
    one = research.inputs(1)[0]
    several = research.inputs(3)

    def run() -> tuple[list[str], list[list[str]]]:
        alone = outputs(crew.copy().kickoff(inputs=one))
        each = [outputs(result) for result in asyncio.run(crew.akickoff_for_each(several))]
        return alone, each

    expected = run()
    assert fast_crewai.status()["core"]["backend"] == "wasm"
    submitted_here = pool_status()["submitted"]
    assert submitted_here >= len(several)

    def child() -> dict[str, Any]:
        return {"outputs": run(), "pool": pool_status(), "status": fast_crewai.status()}

    with fork_reset_locks_held():
        result, warned = in_forked_child(child)
    assert [list(run) for run in result["outputs"][1]] == [list(run) for run in expected[1]]
    assert result["outputs"][0] == expected[0]
    assert expected[0][0].startswith(f"Research {one['company']}")
    # The tool guard and the task-outputs store ran on Python, said once.
    assert len(warned) == 1 and "os.fork()" in warned[0]
    assert result["status"]["core"]["backend"] == "python"
    assert result["status"]["components"]["tasks"]["active"] == fast_crewai.status()["components"]["tasks"]["active"]
    assert result["pool"]["submitted"] == len(several) == result["pool"]["completed"]
