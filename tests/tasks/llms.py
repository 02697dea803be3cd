"""Scripted LLMs for the task-concurrency tests: they count how many calls
are in flight, fail on cue, or delegate as a hierarchical manager."""

from __future__ import annotations

import json
import threading
from typing import Any

from pydantic import PrivateAttr

from fast_crewai.demo.offline import between
from fast_crewai.demo.scripted_llm import ScriptedLLM


class GaugedLLM(ScriptedLLM):
    """A scripted LLM that records the most calls it had in flight at once
    (shared by the copies CrewAI makes of it) and raises on prompts that
    mention one of the names in ``fail_on``.

    With ``meet=n`` its calls wait, up to ``meet_timeout`` seconds, until
    ``n`` of them have been in flight at once: work that can overlap then
    always does, whatever the machine's load, and a run whose second call
    can never come (a crash) still ends."""

    fail_on: tuple[str, ...] = ()
    meet: int = 0
    meet_timeout: float = 3.0
    _gauge: dict[str, int] = PrivateAttr(default_factory=lambda: {"now": 0, "peak": 0})
    _gauge_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _met: threading.Event = PrivateAttr(default_factory=threading.Event)

    @property
    def peak(self) -> int:
        return self._gauge["peak"]

    @property
    def now(self) -> int:
        """Calls in flight now."""
        return self._gauge["now"]

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        text = json.dumps(messages, default=str)
        for name in self.fail_on:
            if name in text:
                raise RuntimeError(f"scripted failure for {name}")
        with self._gauge_lock:
            self._gauge["now"] += 1
            self._gauge["peak"] = max(self._gauge["peak"], self._gauge["now"])
            if self.meet and self._gauge["now"] >= self.meet:
                self._met.set()
        try:
            if self.meet:
                self._met.wait(self.meet_timeout)
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
        delegate = next(
            (n.strip() for n in between(system, "only one name of [", "]").split(",") if "elegate" in n), ""
        )
        answered = any("Observation:" in t for t in texts[1:] if t is not task_prompt)
        if delegate and task_prompt and not answered:
            task = between(task_prompt, "Current Task:", "\n\nThis is the expected criteria")
            arguments = {"task": task, "context": task, "coworker": self.coworker}
            return f"Thought: delegate.\nAction: {delegate}\nAction Input: {json.dumps(arguments)}"
        return super().call(messages, *args, **kwargs)
