"""The ``tasks.storeless_files`` patch: without a file store CrewAI's file
calls give what CrewAI's give, without an event loop; with one, CrewAI's own
path runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import crewai.utilities.file_store as file_store
import pytest

from fast_crewai.tasks import _file_store

CREW, TASK = uuid.uuid4(), uuid.uuid4()

# Every synchronous wrapper of the module, with arguments.
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("store_files", (CREW, {"a.txt": "x"})),
    ("get_files", (CREW,)),
    ("clear_files", (CREW,)),
    ("store_task_files", (TASK, {"b.txt": "y"})),
    ("get_task_files", (TASK,)),
    ("clear_task_files", (TASK,)),
    ("get_all_files", (CREW, TASK)),
    ("get_all_files", (CREW, None)),
]


@pytest.fixture
def loops_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The coroutines ``asyncio.run`` ran."""
    ran: list[Any] = []
    real = asyncio.run

    def counted(coro: Any, **kwargs: Any) -> Any:
        ran.append(coro)
        return real(coro, **kwargs)

    monkeypatch.setattr(asyncio, "run", counted)
    yield ran


def call(name: str, args: tuple[Any, ...], in_loop: bool) -> Any:
    function: Callable[..., Any] = getattr(file_store, name)
    if not in_loop:
        return function(*args)

    async def inside() -> Any:
        return function(*args)

    loop = asyncio.new_event_loop()  # not asyncio.run, which the tests count
    try:
        return loop.run_until_complete(inside())
    finally:
        loop.close()


@pytest.mark.parametrize("in_loop", [False, True], ids=["no-loop", "in-loop"])
@pytest.mark.parametrize(("name", "args"), CALLS, ids=[f"{n}-{len(a)}" for n, a in CALLS])
def test_without_a_store_a_call_gives_crewais_result_without_a_loop(
    stock: None, loops_run: list[Any], name: str, args: tuple[Any, ...], in_loop: bool
) -> None:
    from fast_crewai.runtime import patches

    assert file_store._file_store is None  # aiocache is not installed here
    expected = call(name, args, in_loop)
    assert len(loops_run) == 1  # CrewAI runs an event loop to find it
    report = patches.enable_acceleration()
    try:
        assert "tasks.storeless_files" in report["components"]["tasks"]["active"]
        loops_run.clear()
        assert call(name, args, in_loop) == expected
        assert loops_run == []
    finally:
        patches.disable_acceleration()


class MemoryStore:
    """Stands in for aiocache's cache: what ``file_store`` awaits of one."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    async def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        await asyncio.sleep(0)
        self.items[key] = value

    async def get(self, key: str) -> Any:
        await asyncio.sleep(0)
        return self.items.get(key)

    async def delete(self, key: str) -> None:
        await asyncio.sleep(0)
        self.items.pop(key, None)


@pytest.mark.parametrize("in_loop", [False, True], ids=["no-loop", "in-loop"])
def test_with_a_store_crewais_path_keeps_the_files(
    tasks_on: None, monkeypatch: pytest.MonkeyPatch, loops_run: list[Any], in_loop: bool
) -> None:
    monkeypatch.setattr(file_store, "_file_store", MemoryStore())
    call("store_files", (CREW, {"a.txt": "crew", "c.txt": "crew"}), in_loop)
    call("store_task_files", (TASK, {"a.txt": "task"}), in_loop)
    assert call("get_all_files", (CREW, TASK), in_loop) == {"a.txt": "task", "c.txt": "crew"}
    call("clear_task_files", (TASK,), in_loop)
    assert call("get_all_files", (CREW, TASK), in_loop) == {"a.txt": "crew", "c.txt": "crew"}
    assert len(loops_run) == 5


def test_a_coroutine_of_another_module_goes_to_crewais_path(tasks_on: None, loops_run: list[Any]) -> None:
    async def answer() -> int:
        return 42

    assert file_store._run_sync(answer()) == 42
    assert len(loops_run) == 1


def test_the_names_it_relies_on_are_the_modules_coroutines() -> None:
    for name in _file_store.STORELESS_NONE:
        assert asyncio.iscoroutinefunction(getattr(file_store, name)), name
