"""Fixtures for the task-concurrency tests: the ``tasks`` patches on or off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fast_crewai.runtime import patches


@pytest.fixture
def tasks_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every switch on, as ``import fast_crewai.shim`` leaves it."""
    for name in ("FAST_CREWAI_ACCELERATION", "FAST_CREWAI_TASKS"):
        monkeypatch.delenv(name, raising=False)
    report = patches.enable_acceleration()
    assert report["components"]["tasks"]["missing"] == {}
    yield
    patches.disable_acceleration()


@pytest.fixture
def stock() -> None:
    """CrewAI as it ships: nothing patched."""
    patches.disable_acceleration()
