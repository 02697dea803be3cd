"""Benchmarks, each measured side by side with the stock alternative in one
run and reported as ratios. ``python3 build.py bench`` and
``fast-crewai bench`` run them."""

from __future__ import annotations

import contextlib
import importlib
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from ..runtime import backend as _backend

# Suite name -> module exposing ``run(quick: bool) -> dict``.
SUITES = {
    "serde": "fast_crewai.bench.serde",
    "memory": "fast_crewai.bench.memory",
    "sqlite": "fast_crewai.bench.sqlite",
    "tasks": "fast_crewai.bench.tasks",
    "tools": "fast_crewai.bench.tools",
    "crew": "fast_crewai.bench.crew",
}


def timings(fn: Callable[[], object], repeat: int, warmup: int = 3) -> dict[str, float]:
    """Per-call seconds of ``fn``: p50, p95 and mean over ``repeat`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95 and mean of some timings."""
    ordered = sorted(samples)
    return {
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "mean": statistics.fmean(ordered),
    }


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("inf")


def run_benchmarks(suites: list[str] | None, quick: bool, emit: bool) -> dict[str, Any]:
    """Runs the named suites (all by default)."""
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "core": _backend.core_info(),
        "suites": {},
    }
    for name in suites or list(SUITES):
        if name not in SUITES:
            raise SystemExit(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
        module = importlib.import_module(SUITES[name])
        # Suites print as they measure; with JSON on stdout that goes to stderr.
        with contextlib.redirect_stdout(sys.stdout if emit else sys.stderr):
            print(f"== {name}", flush=True)
            results["suites"][name] = module.run(quick)
    return results
