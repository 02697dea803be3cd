"""Task concurrency, CrewAI as shipped side by side with the shim, one run.

The crew: one researcher, one task, two LLM calls (the tool call, then the
answer), each made to wait ``latency`` seconds by the scripted LLM as a
model's network time would; inputs are 12 companies. Measured:

- ``kickoff_for_each``: CrewAI runs the copies one after another; the shim
  runs them on the host pool.
- ``kickoff_for_each_async`` and ``akickoff_for_each``: CrewAI runs their
  blocking work on asyncio's default executor, ``min(32, cpu + 4)`` threads;
  the shim on the host pool.
- CPU per crew run (process CPU time over the runs, the scripted LLM's
  waiting excluded): CrewAI alone; the shim with the ``tasks`` component off
  (no pool: the other components' cost alone); the shim with the pool.

Each figure is the median of three calls (one with ``--quick``, which also
shortens the latency to 100 ms). Three configurations: ``stock`` (nothing patched), ``shim`` (every switch
on, as ``import fast_crewai.shim`` leaves it) and ``shim_no_pool``
(``FAST_CREWAI_TASKS=0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..demo.offline import offline_environment
from . import ratio

INPUTS = 12


@contextlib.contextmanager
def _configuration(name: str) -> Iterator[None]:
    from ..runtime import patches

    saved = os.environ.get("FAST_CREWAI_TASKS")
    patches.disable_acceleration()
    if name == "shim_no_pool":
        os.environ["FAST_CREWAI_TASKS"] = "0"
    try:
        if name != "stock":
            patches.enable_acceleration()
        yield
    finally:
        patches.disable_acceleration()
        if saved is None:
            os.environ.pop("FAST_CREWAI_TASKS", None)
        else:
            os.environ["FAST_CREWAI_TASKS"] = saved


def _measure(
    configuration: str, latency: float, repeat: int, call: Callable[[Any, list[dict[str, Any]]], list[Any]]
) -> dict[str, Any]:
    """Wall and CPU seconds of a for-each call over :data:`INPUTS` inputs,
    the median of ``repeat`` calls (after a warm-up call), checking that
    every run answered for its own input."""
    from ..demo import research
    from ..demo.scripted_llm import ScriptedLLM

    inputs = research.inputs(INPUTS)
    walls, cpus = [], []
    with _configuration(configuration):
        call(research.research_crew(ScriptedLLM(latency=0.0)), inputs[:2])
        for _ in range(repeat):
            crew = research.research_crew(ScriptedLLM(latency=latency))
            cpu, wall = time.process_time(), time.perf_counter()
            results = call(crew, inputs)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            for result, data in zip(results, inputs, strict=True):
                if data["company"] not in result.raw:
                    raise RuntimeError(f"{configuration}: a run answered {result.raw!r} for {data['company']}")
    return {
        "wall_s": round(statistics.median(walls), 3),
        "wall_samples_s": [round(w, 3) for w in walls],
        "cpu_ms_per_run": round(statistics.median(cpus) / len(inputs) * 1000, 2),
    }


def _for_each(crew: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return list(crew.kickoff_for_each(inputs))


def _for_each_async(crew: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return list(asyncio.run(crew.kickoff_for_each_async(inputs)))


def _akickoff_for_each(crew: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return list(asyncio.run(crew.akickoff_for_each(inputs)))


def _noop() -> None:
    return None


def _pool_round_trip_us(repeat: int) -> dict[str, float]:
    """Submitting a no-op to the pool and waiting for it, against calling it."""
    from ..tasks import host_pool

    pool = host_pool()
    started = time.perf_counter()
    for _ in range(repeat):
        pool.submit(_noop).result()
    pooled = (time.perf_counter() - started) / repeat
    started = time.perf_counter()
    for _ in range(repeat):
        _noop()
    direct = (time.perf_counter() - started) / repeat
    return {"pool_us": round(pooled * 1e6, 2), "direct_us": round(direct * 1e6, 3)}


def run(quick: bool) -> dict[str, Any]:
    offline_environment()
    latency = 0.1 if quick else 0.25
    repeat = 1 if quick else 3
    out: dict[str, Any] = {
        "inputs": INPUTS,
        "llm_calls_per_run": 2,
        "latency_s": latency,
        "sequential_latency_s": round(INPUTS * 2 * latency, 3),
        "cpu_count": os.cpu_count(),
        "asyncio_default_workers": min(32, (os.cpu_count() or 1) + 4),
    }
    print(
        f"  {INPUTS} inputs, 2 LLM calls of {latency * 1000:.0f} ms per run "
        f"(one after another: {out['sequential_latency_s']} s of waiting)",
        flush=True,
    )
    for name, call, configurations in (
        ("kickoff_for_each", _for_each, ("stock", "shim_no_pool", "shim")),
        ("kickoff_for_each_async", _for_each_async, ("stock", "shim")),
        ("akickoff_for_each", _akickoff_for_each, ("stock", "shim")),
    ):
        row: dict[str, Any] = {c: _measure(c, latency, repeat, call) for c in configurations}
        row["speedup"] = ratio(row["stock"]["wall_s"], row["shim"]["wall_s"])
        out[name] = row
        cells = "  ".join(
            f"{c} {row[c]['wall_s']:.2f} s ({row[c]['cpu_ms_per_run']:.0f} ms CPU/run)" for c in configurations
        )
        print(f"  {name:<24} {cells}   stock/shim {row['speedup']}x", flush=True)
    out["pool_round_trip"] = _pool_round_trip_us(200 if quick else 2000)
    trip = out["pool_round_trip"]
    print(f"  pool submit+result of a no-op: {trip['pool_us']} us (a direct call: {trip['direct_us']} us)", flush=True)
    return out
