"""CrewAI's own test suite, stock and with the shim (``build.py compat``).

Downloads CrewAI's sdist for the installed version, copies in the root
``conftest.py`` and ``pytest.ini`` it lacks (beside this file), runs the
selection below twice in process groups with per-test and whole-run
timeouts, and compares the pass sets; writes both lists to
``build/compat.json``. Imported by ``build.py``, whose helpers it uses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from build import PYTHON, ROOT, fail, log, run, test_env

COMPAT_SUPPORT = ROOT / "compat"
COMPAT_DIR = ROOT / "build" / "compat"
COMPAT_REPORT = ROOT / "build" / "compat.json"
# The parts of CrewAI's suite (relative to its sdist) that replay offline on
# a plain install (no optional extra such as anthropic, litellm, a2a,
# qdrant): the subsystems the shim patches or shares paths with (memory,
# knowledge, storage, SQLite connections, tools, hooks, agents, crews,
# tasks, flows, events, streaming) and the LLM tests that need only the OpenAI
# client CrewAI depends on. Chosen by running the whole suite stock.
COMPAT_TESTS = [
    "tests/memory",
    "tests/knowledge",
    "tests/storage",
    "tests/tools",
    "tests/hooks",
    "tests/agents",
    "tests/crew",
    "tests/task",
    "tests/test_crew.py",
    "tests/test_task.py",
    "tests/test_flow.py",
    "tests/test_flow_definition.py",
    "tests/test_flow_from_definition.py",
    "tests/test_flow_default_override.py",
    "tests/test_flow_usage_metrics.py",
    "tests/test_flow_turns.py",
    "tests/test_flow_replies.py",
    "tests/test_flow_resumability_regression.py",
    "tests/test_flow_tool_action_usage.py",
    "tests/test_flow_tool_action_failure_policy.py",
    "tests/test_flow_ask.py",
    "tests/test_flow_jobs.py",
    "tests/test_flow_conversation.py",
    "tests/test_flow_persistence.py",
    "tests/test_flow_persistence_factory.py",
    "tests/test_human_feedback_decorator.py",
    "tests/test_async_human_feedback.py",
    "tests/test_checkpoint.py",
    "tests/test_event_record.py",
    "tests/test_crew_thread_safety.py",
    "tests/test_streaming.py",
    "tests/test_sqlite_connection_lifecycle.py",
    "tests/test_tool_cache_default.py",
    "tests/test_custom_llm.py",
    "tests/llms/openai",
    "tests/llms/openai_compatible",
    "tests/llms/test_base_llm.py",
    "tests/llms/test_context_window.py",
    "tests/llms/test_retry.py",
    "tests/llms/test_tool_call_streaming.py",
    "tests/llms/hooks/test_base_interceptor.py",
    "tests/llms/hooks/test_openai_interceptor.py",
    "tests/llms/hooks/test_transport.py",
]
# CrewAI's own per-test limit; its few slower tests mark a longer one.
COMPAT_TEST_TIMEOUT_S = 60
COMPAT_RUN_TIMEOUT_S = 900
# Most of a test's time is spent waiting (retries, backoffs, thread joins),
# not computing: 4 pytest-xdist workers on 2 cores cut a run's wall time
# about 2x (measured on the whole selection).
COMPAT_WORKERS = 4
# A worker that hits the per-test timeout dumps its threads' stacks and
# dies; pytest-xdist replaces it this many times, then ends the run.
COMPAT_WORKER_RESTARTS = 2


def compat_tree(version: str) -> Path:
    """CrewAI's tests for ``version`` from its sdist (downloaded once), with
    the root conftest.py and pytest.ini the sdist lacks."""
    COMPAT_DIR.mkdir(parents=True, exist_ok=True)
    sdist = COMPAT_DIR / f"crewai-{version}.tar.gz"
    if not sdist.exists():
        with tempfile.TemporaryDirectory(prefix="fcw-sdist-", dir=COMPAT_DIR) as tmp:
            run(
                [
                    PYTHON,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    "crewai",
                    f"crewai=={version}",
                    "-d",
                    tmp,
                ]
            )
            (found,) = Path(tmp).glob("crewai-*.tar.gz")
            found.rename(sdist)
    tree = COMPAT_DIR / f"crewai-{version}"
    # A fresh copy each run: tests write next to their files.
    shutil.rmtree(tree, ignore_errors=True)
    prefix = f"crewai-{version}/tests/"
    extracted = 0
    with tarfile.open(sdist) as tar:
        # Regular files only, each written under the tree by hand (the
        # "data" extraction filter is missing from Debian 12's Python).
        for member in tar:
            if not (member.isfile() and member.name.startswith(prefix)) or ".." in member.name.split("/"):
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            path = tree / member.name[len(f"crewai-{version}/") :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.read())
            extracted += 1
    if not extracted:
        fail(f"{sdist.name} has no tests/ directory")
    for name in ("conftest.py", "pytest.ini"):
        shutil.copyfile(COMPAT_SUPPORT / name, tree / name)
    return tree


@dataclass
class CompatRun:
    """One run of the selected tests."""

    label: str
    seconds: float
    outcomes: dict[str, str]  # test id -> passed, failed, skipped, xfailed, crashed
    durations: dict[str, float]  # test id -> seconds from its start to its end
    unfinished: list[str]  # tests still running when the run ended
    problem: str | None  # why the run cannot be trusted, if it cannot
    log: str

    def tests(self, outcome: str) -> list[str]:
        return sorted(test for test, found in self.outcomes.items() if found == outcome)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.outcomes.values()).items()))

    def summary(self) -> dict[str, object]:
        slowest = sorted(self.durations.items(), key=lambda item: -item[1])[:10]
        return {
            "seconds": self.seconds,
            "counts": self.counts(),
            "problem": self.problem,
            "crashed": self.tests("crashed"),
            "unfinished": self.unfinished,
            "slowest": {test: round(seconds, 2) for test, seconds in slowest},
            "log": self.log,
            "passed": self.tests("passed"),
            "failed": self.tests("failed"),
        }


def compat_run(tree: Path, label: str, shim: bool, tests: list[str], workers: int = COMPAT_WORKERS) -> CompatRun:
    """Runs ``tests`` once, in a process group ended after
    COMPAT_RUN_TIMEOUT_S; the conftest's progress file says which tests
    finished, which crashed and which were running when the run ended."""
    progress = COMPAT_DIR / f"{label}.progress.jsonl"
    log_path = COMPAT_DIR / f"{label}.log"
    progress.unlink(missing_ok=True)
    env = test_env()
    env["FAST_CREWAI_COMPAT_PROGRESS"] = str(progress)
    env["FAST_CREWAI_COMPAT_SHIM"] = "1" if shim else "0"
    if shim:
        # The core, not a silent fallback to the Python reference.
        env["FAST_CREWAI_BACKEND"] = "wasm"
    cmd = [
        str(PYTHON),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--block-network",
        "--record-mode=none",
        f"-n={workers}",
        "--dist=load",
        f"--max-worker-restart={COMPAT_WORKER_RESTARTS}",
        f"--timeout={COMPAT_TEST_TIMEOUT_S}",
        # On a timeout: dump every thread's stack and end the worker, so a
        # deadlock cannot be hidden by an exception raised into a finalizer.
        "--timeout-method=thread",
        *tests,
    ]
    log(f"compat {label}: {len(tests)} paths of CrewAI's tests, output in {log_path.relative_to(ROOT)}")
    start = time.monotonic()
    timed_out = False
    with log_path.open("w") as out:
        process = subprocess.Popen(cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=COMPAT_RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
    outcomes: dict[str, str] = {}
    started: dict[str, float] = {}
    durations: dict[str, float] = {}
    if progress.exists():
        for line in progress.read_text().splitlines():
            event = json.loads(line)
            test = event["test"]
            if event["event"] == "start":
                started[test] = event["time"]
            elif event["event"] == "end":
                durations[test] = event["time"] - started.pop(test, event["time"])
            elif outcomes.get(test) in (None, "passed"):
                # A teardown error after a passed call makes the test fail.
                outcomes[test] = event["outcome"]
    crashed = [test for test, outcome in outcomes.items() if outcome == "crashed"]
    unfinished = sorted(test for test in started if test not in crashed)
    problem = None
    if timed_out:
        problem = f"the run took over {COMPAT_RUN_TIMEOUT_S} s; still running: {', '.join(unfinished) or 'no test'}"
    elif crashed:
        problem = f"hung over {COMPAT_TEST_TIMEOUT_S} s or crashed its worker: {', '.join(crashed)} (stacks in the log)"
    elif unfinished:
        # pytest-timeout's thread method ends a process without pytest-xdist
        # the same way; a crash does too.
        problem = f"the run ended while {', '.join(unfinished)} was running (see the log)"
    elif returncode not in (0, 1):
        problem = f"pytest exited with status {returncode} (see the log)"
    elif not outcomes:
        problem = "no test ran"
    result = CompatRun(
        label,
        round(time.monotonic() - start, 1),
        outcomes,
        durations,
        unfinished,
        problem,
        str(log_path.relative_to(ROOT)),
    )
    log(f"compat {label}: {result.counts()} in {result.seconds} s" + (f"; {problem}" if problem else ""))
    return result


def run_compat(version: str) -> None:
    """Both runs for CrewAI ``version``; fails on a regression or a run that
    cannot be trusted."""
    tree = compat_tree(version)
    stock = compat_run(tree, "stock", shim=False, tests=COMPAT_TESTS)
    shim = compat_run(tree, "shim", shim=True, tests=COMPAT_TESTS)
    runs = [stock, shim]
    stock_passed, shim_passed = set(stock.tests("passed")), set(shim.tests("passed"))
    differ = sorted(stock_passed - shim_passed)
    regressions = differ
    if differ and not shim.problem:
        # Some of CrewAI's tests bound timings; on a loaded machine they fail
        # now and then whatever is patched. A difference counts when the
        # test fails again with the shim, alone in one worker.
        rerun = compat_run(tree, "shim-rerun", shim=True, tests=differ, workers=1)
        runs.append(rerun)
        regressions = [test for test in differ if rerun.outcomes.get(test) != "passed"]
    lists = {
        "pass_with_stock_only": regressions,
        "passed_when_rerun": sorted(set(differ) - set(regressions)),
        "pass_with_shim_only": sorted(shim_passed - stock_passed),
    }
    report = {
        "crewai": version,
        "paths": COMPAT_TESTS,
        "test_timeout_s": COMPAT_TEST_TIMEOUT_S,
        "stock": stock.summary(),
        "shim": shim.summary(),
        **lists,
    }
    COMPAT_REPORT.write_text(json.dumps(report, indent=2) + "\n")
    log(f"compat: {len(stock_passed)} passed stock, {len(shim_passed)} passed with the shim")
    log(f"compat: both lists in {COMPAT_REPORT.relative_to(ROOT)}")
    for key, what in (
        ("pass_with_stock_only", "passes stock, not with the shim"),
        ("passed_when_rerun", "failed with the shim, passed when rerun alone"),
        ("pass_with_shim_only", "passes with the shim only"),
    ):
        for test in lists[key]:
            log(f"  {what}: {test}")
    problems = [f"{run.label}: {run.problem}" for run in runs if run.problem]
    if problems:
        fail("; ".join(problems))
    if regressions:
        fail(f"{len(regressions)} of CrewAI's tests pass stock but fail with the shim")
