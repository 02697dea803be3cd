"""Stateless core calls from many threads: each thread has its own
instance, results are all correct, and the calls really run at once."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import pytest

from fast_crewai import AgentMessage
from fast_crewai.runtime import _wasm
from fast_crewai.runtime import backend as _backend

THREADS = 8
CALLS = 6


def batch(thread: int, call: int) -> list[AgentMessage]:
    # Big enough that the core's part of a call takes milliseconds.
    return [
        AgentMessage(
            id=f"{thread}-{call}-{i}",
            sender=f"agent-{thread}",
            recipient="crew",
            content="é" * (i % 7) + f"message {i} of thread {thread}",
            timestamp=float(i),
            metadata={"thread": thread, "call": call, "i": i},
        )
        for i in range(1500)
    ]


def test_threads_calling_serde_at_once_are_correct_and_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    _backend.override("wasm")
    try:
        runtime = _backend.runtime()
        intervals: list[tuple[int, float, float]] = []
        users: dict[int, set[int]] = {}
        lock = threading.Lock()
        real_enter = _wasm._func_call

        def timed_enter(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return real_enter(*args)
            finally:
                with lock:
                    intervals.append((threading.get_ident(), started, time.perf_counter()))

        # Every call enters wasm through this C-API function.
        monkeypatch.setattr(_wasm, "_func_call", timed_enter)
        real_call = _wasm.Instance.call

        def watched_call(instance: _wasm.Instance, *args: Any) -> Any:
            with lock:
                users.setdefault(id(instance), set()).add(threading.get_ident())
            return real_call(instance, *args)

        monkeypatch.setattr(_wasm.Instance, "call", watched_call)
        failures: list[str] = []
        barrier = threading.Barrier(THREADS)

        finished: list[int] = []

        def work(thread: int) -> None:
            barrier.wait()
            for call in range(CALLS):
                messages = batch(thread, call)
                text = AgentMessage.encode_many(messages)
                if AgentMessage.decode_many(text) != messages:
                    failures.append(f"thread {thread} call {call}: round trip differs")
                expected = json.dumps(
                    [dataclasses.asdict(m) for m in messages], ensure_ascii=False, separators=(",", ":")
                )
                if text != expected:
                    failures.append(f"thread {thread} call {call}: not canonical")
            finished.append(thread)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not failures, failures[:3]
        assert sorted(finished) == list(range(THREADS))
        # Never one instance entered by two threads.
        assert all(len(threads_of) == 1 for threads_of in users.values()), users
        assert len(users) >= THREADS
        assert runtime.stateless() is runtime.stateless()
        # Some core calls of different threads were running at the same moment.
        overlapping = sum(
            1
            for i, (a, a0, a1) in enumerate(intervals)
            for b, b0, b1 in intervals[i + 1 :]
            if a != b and a0 < b1 and b0 < a1
        )
        assert overlapping > 0
    finally:
        _backend.override(None)
