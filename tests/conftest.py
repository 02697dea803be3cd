"""Shared fixtures: every test that takes ``backend`` runs on both."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_TESTING", "true")
os.environ.setdefault("CREWAI_DISABLE_VERSION_CHECK", "true")

from fast_crewai.runtime import backend as _backend

BACKENDS = ["wasm", "python"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test once on the core and once on the Python reference."""
    _backend.override(request.param)
    try:
        if request.param == "wasm":
            _backend.runtime()  # the core must load here: no silent fallback
        yield request.param
    finally:
        _backend.override(None)


@pytest.fixture(autouse=True)
def _isolated_storage(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """CrewAI writes under CREWAI_STORAGE_DIR; keep every test's writes apart."""
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path_factory.mktemp("crewai-storage")))


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes a test starts; killed and reaped when it ends."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
