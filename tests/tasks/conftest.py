"""Fixtures for the task-concurrency tests: the ``tasks`` patches on or off,
LLMs that count how many calls are in flight, fail on cue or delegate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import PrivateAttr

from fast_crewai.demo.offline import between
from fast_crewai.demo.scripted_llm import ScriptedLLM
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


class GaugedLLM(ScriptedLLM):
    """A scripted LLM that records the most calls it had in flight at once
    (shared by the copies CrewAI makes of it) and raises on prompts that
    mention ``fail_on``."""

    fail_on: str | None = None
    _gauge: dict[str, int] = PrivateAttr(default_factory=lambda: {"now": 0, "peak": 0})
    _gauge_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def peak(self) -> int:
        return self._gauge["peak"]

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        if self.fail_on is not None and self.fail_on in json.dumps(messages, default=str):
            raise RuntimeError(f"scripted failure for {self.fail_on}")
        with self._gauge_lock:
            self._gauge["now"] += 1
            self._gauge["peak"] = max(self._gauge["peak"], self._gauge["now"])
        try:
            return super().call(messages, *args, **kwargs)
        finally:
            with self._gauge_lock:
                self._gauge["now"] -= 1


class ManagerLLM(GaugedLLM):
    """A manager that delegates each task, whole, to the coworker named
    ``coworker``, then answers with what came back."""

    coworker: str = "Researcher"

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        texts = [m["content"] for m in messages] if isinstance(messages, list) else [messages]
        system, task_prompt = texts[0], next((t for t in texts if "Current Task:" in t), "")
        delegate = next((n.strip() for n in between(system, "only one name of [", "]").split(",") if "elegate" in n), "")
        answered = any("Observation:" in t for t in texts[1:] if t is not task_prompt)
        if delegate and task_prompt and not answered:
            task = between(task_prompt, "Current Task:", "\n\nThis is the expected criteria")
            arguments = {"task": task, "context": task, "coworker": self.coworker}
            return f"Thought: delegate.\nAction: {delegate}\nAction Input: {json.dumps(arguments)}"
        return super().call(messages, *args, **kwargs)
