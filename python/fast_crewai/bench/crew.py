"""Whole-crew benchmark: the demo's offline crew kicked off stock (CrewAI's
LanceDB memory store) and with ``fast_crewai.shim``, side by side.

The crew is :func:`fast_crewai.demo.crew.build_demo_crew`: a scripted LLM
that answers at once, a hashed bag-of-words embedder, memory on, a tool and
three tasks. Each sample is a fresh process, so neither side inherits the
other's imports, caches or threads; the sides alternate, after one
untimed warm-up process each (it fills the component's compile cache and the
OS file cache). A process kicks the crew off twice, each time on a new
storage directory: the first kickoff ("cold") also pays for what CrewAI
imports lazily on a first kickoff, the second ("warm") is the steady state.

Per kickoff: wall time until ``kickoff()`` returns, and wall and CPU time
(every thread of the process) until the memory work it started is done:
memory's background saves drained and LanceDB's background compaction
joined. Also measured: the import time ``import fast_crewai.shim`` adds
after ``import crewai``, median over fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import ratio

SIDES = ("stock", "shim")
# The store each side must have used: a sample that ran on the wrong store
# would make the comparison meaningless.
EXPECTED_STORE = {"stock": "LanceDBStorage", "shim": "AcceleratedMemoryStorage"}
KICKOFFS_PER_PROCESS = 2
PROCESSES = {True: 3, False: 6}  # per side, by quick
IMPORT_SAMPLES = {True: 5, False: 9}
_IMPORT_SHIM = (
    "import time, crewai\nstart = time.perf_counter()\nimport fast_crewai.shim\nprint(time.perf_counter() - start)\n"
)


# The stores' methods a crew calls, timed on the shim's side: what is left
# of a kickoff without them is CrewAI's own work, the floor no store moves.
_TIMED_METHODS = {
    "fast_crewai.memory_search._storage:AcceleratedMemoryStorage": (
        "save",
        "search",
        "touch_records",
        "update",
        "delete",
        "get_record",
        "list_records",
        "list_scopes",
        "count",
        "reset",
    ),
    "fast_crewai.sqlite_store._task_outputs:KickoffTaskOutputsStorage": ("add", "update", "load", "delete_all"),
}


class _StoreClock:
    """Wall time spent inside the timed store methods, every thread summed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def install(self) -> None:
        import importlib

        for target, methods in _TIMED_METHODS.items():
            module, name = target.split(":")
            cls = getattr(importlib.import_module(module), name)
            for method in methods:
                setattr(cls, method, self._timed(getattr(cls, method)))

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                with self._lock:
                    self.seconds += elapsed

        return timed


_store_clock = _StoreClock()


def _kickoff(side: str) -> dict[str, Any]:
    """One kickoff on a new storage directory (called in the child)."""
    from crewai import Memory

    from ..demo.crew import build_demo_crew

    with tempfile.TemporaryDirectory(prefix="fast-crewai-crew-bench-", ignore_cleanup_errors=True) as storage:
        os.environ["CREWAI_STORAGE_DIR"] = storage
        demo = build_demo_crew()
        _store_clock.seconds = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        demo.crew.kickoff()
        kickoff_s = time.perf_counter() - wall
        memory = demo.crew._memory
        if not isinstance(memory, Memory):
            raise RuntimeError("the benchmark crew ran without its own memory")
        memory.drain_writes()
        for thread in threading.enumerate():
            if thread.name == "lancedb-compact":
                thread.join()
        total_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        # The class the store's behaviour comes from (the shim hands Memory a
        # subclass that reopens after close(), as LanceDB's store does).
        classes = [c.__name__ for c in type(memory._storage).__mro__]
        store = next((name for name in classes if name in EXPECTED_STORE.values()), classes[0])
        memory.close()
    if store != EXPECTED_STORE[side]:
        raise RuntimeError(f"the {side} crew's memory used {store}, not {EXPECTED_STORE[side]}")
    return {
        "kickoff_s": kickoff_s,
        "total_s": total_s,
        "cpu_s": cpu_s,
        "llm_calls": len(demo.llm.calls),
        "in_stores_s": _store_clock.seconds,
    }


def _child(side: str, out: Path) -> None:
    from ..demo.offline import offline_environment

    offline_environment()
    if side == "shim":
        import fast_crewai.shim  # noqa: F401  (acceleration on, as a user turns it on)

        _store_clock.install()
    samples = [_kickoff(side) for _ in range(KICKOFFS_PER_PROCESS)]
    out.write_text(json.dumps(samples))


def _spawn(side: str, workdir: Path) -> list[dict[str, Any]]:
    out = workdir / f"{side}.json"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "fast_crewai.bench.crew", "--side", side, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"the {side} crew process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    samples: list[dict[str, Any]] = json.loads(out.read_text())
    return samples


def _import_seconds() -> float:
    done = subprocess.run([sys.executable, "-c", _IMPORT_SHIM], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"importing fast_crewai.shim failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _median(samples: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(s[key] for s in samples))


def run(quick: bool) -> dict[str, Any]:
    processes = PROCESSES[quick]
    runs: dict[str, list[list[dict[str, Any]]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="fast-crewai-crew-bench-") as tmp:
        workdir = Path(tmp)
        for side in SIDES:
            _spawn(side, workdir)  # warm-up, not counted
        for i in range(processes):
            for side in SIDES if i % 2 == 0 else reversed(SIDES):
                runs[side].append(_spawn(side, workdir))
    imports = [_import_seconds() for _ in range(IMPORT_SAMPLES[quick])]
    result: dict[str, Any] = {
        "crew": "fast_crewai.demo.crew.build_demo_crew: scripted LLM, hashed embedder, memory, a tool, three tasks",
        "processes_per_side": processes,
        "kickoffs_per_process": KICKOFFS_PER_PROCESS,
        "measure": "medians over processes; total = kickoff + memory's background saves and compaction",
    }
    for phase, index in (("cold", 0), ("warm", KICKOFFS_PER_PROCESS - 1)):
        row: dict[str, Any] = {}
        for side in SIDES:
            samples = [process[index] for process in runs[side]]
            row[side] = {
                key: round(_median(samples, key), 4)
                for key in ("kickoff_s", "total_s", "cpu_s", "llm_calls", "in_stores_s")
            }
        for key in ("kickoff_s", "total_s", "cpu_s"):
            row[f"shim_over_stock_{key[:-2]}"] = ratio(row["shim"][key], row["stock"][key])
        # The shim's total without the time inside its stores (background
        # saves overlap the kickoff, so this is a bound, not a measurement).
        floor = max(0.0, row["shim"]["total_s"] - row["shim"]["in_stores_s"])
        row["floor_over_stock_total"] = ratio(floor, row["stock"]["total_s"])
        result[phase] = row
        print(
            f"  {phase:<5} kickoff: stock {row['stock']['kickoff_s']:.3f} s  shim {row['shim']['kickoff_s']:.3f} s"
            f"  -> {row['shim_over_stock_kickoff']}x   with memory work: wall {row['shim_over_stock_total']}x"
            f"  cpu {row['shim_over_stock_cpu']}x  ({row['stock']['llm_calls']:.0f}/{row['shim']['llm_calls']:.0f}"
            " LLM calls)",
            flush=True,
        )
        print(
            f"        inside fast-crewai's stores: {row['shim']['in_stores_s'] * 1e3:.1f} ms of the shim's"
            f" {row['shim']['total_s'] * 1e3:.1f} ms; without them (CrewAI's own work, the floor):"
            f" {row['floor_over_stock_total']}x stock",
            flush=True,
        )
    result["shim_import"] = {
        "median_ms": round(statistics.median(imports) * 1e3, 1),
        "min_ms": round(min(imports) * 1e3, 1),
        "samples": len(imports),
    }
    print(
        f"  import fast_crewai.shim after import crewai: median {result['shim_import']['median_ms']} ms"
        f" (min {result['shim_import']['min_ms']} ms, {len(imports)} fresh processes)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="one side of the crew benchmark (run by run())")
    parser.add_argument("--side", choices=SIDES, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    _child(args.side, args.out)


if __name__ == "__main__":
    main()
