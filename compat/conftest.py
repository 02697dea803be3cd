"""Root conftest for CrewAI's own test suite, as ``build.py compat`` runs it.

CrewAI's sdist ships ``tests/`` without the repository's root ``conftest.py``
and ``.env.test``; this file is the minimal equivalent of both for an offline
replay: fake credentials, telemetry and tracing off, VCR cassettes replayed
from ``tests/cassettes/<test dir>`` with recording off, and the per-test
resets of CrewAI's global state that its tests expect.

With ``FAST_CREWAI_COMPAT_SHIM=1`` it imports ``fast_crewai.shim`` before any
test module imports CrewAI, and refuses to run if nothing was patched. With
``FAST_CREWAI_COMPAT_PROGRESS=<file>`` it appends ``start``/``end`` lines per
test, so a run that is killed still says which test it was in.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# What .env.test provides: placeholders where a client insists on a key, the
# replay mode, and CrewAI's own switches for tests. Values already set win.
TEST_ENV = {
    "OPENAI_API_KEY": "fake-api-key",
    "ANTHROPIC_API_KEY": "fake-anthropic-key",
    "GEMINI_API_KEY": "fake-gemini-key",
    "AZURE_API_KEY": "fake-azure-key",
    "OPENROUTER_API_KEY": "fake-openrouter-key",
    "AWS_ACCESS_KEY_ID": "fake-aws-access-key",
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AZURE_ENDPOINT": "https://fake-azure-endpoint.openai.azure.com",
    "AZURE_OPENAI_ENDPOINT": "https://fake-azure-endpoint.openai.azure.com",
    "AZURE_OPENAI_API_KEY": "fake-azure-openai-key",
    "AZURE_API_VERSION": "2024-02-15-preview",
    "OPENAI_API_VERSION": "2024-02-15-preview",
    "OPENAI_BASE_URL": "https://api.openai.com/v1",
    "OPENAI_API_BASE": "https://api.openai.com/v1",
    "SERPER_API_KEY": "fake-serper-key",
    "CREWAI_PERSONAL_ACCESS_TOKEN": "fake-personal-token",
    "CREWAI_PLUS_URL": "https://fake.crewai.com",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TESTING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)

if os.environ.get("FAST_CREWAI_COMPAT_SHIM") == "1":
    import fast_crewai.shim  # noqa: F401  (patches CrewAI on import)
    from fast_crewai import status

    _report = status()
    if not _report["acceleration"]:
        raise pytest.UsageError(f"fast_crewai.shim patched nothing: {json.dumps(_report, default=str)}")

# Written by the controlling process only: with pytest-xdist, workers report
# to it, and it sees the start and the end of every test.
_PROGRESS = None if os.environ.get("PYTEST_XDIST_WORKER") else os.environ.get("FAST_CREWAI_COMPAT_PROGRESS")


def _progress(event: str, nodeid: str, outcome: str = "") -> None:
    if _PROGRESS:
        line = json.dumps({"event": event, "test": nodeid, "outcome": outcome, "time": time.time()})
        with open(_PROGRESS, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _progress("start", nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # A test's outcome is its call phase's, unless setup or teardown failed
    # or it was skipped in setup. pytest-xdist reports a worker that died
    # in a test (a per-test timeout ends the worker) with the phase "???".
    if report.when == "???":
        _progress("result", report.nodeid, "crashed")
    elif report.when == "call" or report.outcome != "passed":
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        _progress("result", report.nodeid, outcome)


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _progress("end", nodeid)


@pytest.fixture(autouse=True)
def _crewai_test_environment() -> Iterator[None]:
    """Each test gets its own CREWAI_STORAGE_DIR; CrewAI's global event
    state is reset before and its handlers dropped after, as CrewAI's own
    root conftest does."""
    from crewai.events.base_events import reset_emission_counter
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.event_context import EventContextConfig, _event_context_config, _event_id_stack
    from crewai.events.listeners.tracing.trace_listener import TraceCollectionListener

    reset_emission_counter()
    _event_id_stack.set(())
    _event_context_config.set(EventContextConfig())
    previous = os.environ.get("CREWAI_STORAGE_DIR")
    with tempfile.TemporaryDirectory(prefix="crewai-compat-") as storage:
        os.environ["CREWAI_STORAGE_DIR"] = storage
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("CREWAI_STORAGE_DIR", None)
            else:
                os.environ["CREWAI_STORAGE_DIR"] = previous
            with crewai_event_bus._rwlock.w_locked():
                crewai_event_bus._sync_handlers.clear()
                crewai_event_bus._async_handlers.clear()
            # The listener caches a batch manager on its singleton.
            TraceCollectionListener._instance = None


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """Cassettes mirror the test tree: tests/a/b/test_x.py -> tests/cassettes/a/b/."""
    tests_root = Path(__file__).parent / "tests"
    relative = Path(request.path).parent.relative_to(tests_root)
    return str(tests_root / "cassettes" / relative)


@pytest.fixture(scope="module")
def vcr_config(vcr_cassette_dir: str) -> dict[str, Any]:
    """Replay only, matched as CrewAI records them (bodies and headers vary
    between runs: ids, timestamps, user agents)."""
    return {
        "cassette_library_dir": vcr_cassette_dir,
        "record_mode": "none",
        "match_on": ["method", "scheme", "host", "port", "path"],
        "filter_query_parameters": ["key"],
    }
