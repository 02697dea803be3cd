"""The ``tasks.flow_dispatch`` patch: the listeners a method triggers, the
flow's bookkeeping and its bound methods are exactly CrewAI's. The
``tasks.flow_persist_hop`` patch: a flow that persists nothing skips the
persistence hop, one that persists still saves after every method."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crewai.flow.runtime as runtime
import pytest
from crewai.agents.agent_executor import AgentExecutor
from crewai.flow import Flow, and_, listen, or_, router, start
from crewai.flow.flow_wrappers import FlowMethod
from crewai.flow.persistence import SQLiteFlowPersistence, persist
from hypothesis import given, settings
from hypothesis import strategies as st

from fast_crewai.tasks import _flow_dispatch


class Shapes(Flow):  # type: ignore[type-arg]
    """Every kind of condition CrewAI dispatches on: single, AND, OR of one
    and of several events, nested, router outcomes, a router on an OR."""

    @start()
    def begin(self) -> None:
        self.state["ran"] = [*self.state.get("ran", []), "begin"]

    @listen(begin)
    def single(self) -> None:
        self.state["ran"] = [*self.state.get("ran", []), "single"]

    @listen(and_(begin, single))
    def both(self) -> None:
        self.state["ran"] = [*self.state.get("ran", []), "both"]

    @listen(or_(single, both))
    def either(self) -> None:
        self.state["ran"] = [*self.state.get("ran", []), "either"]

    @router(either)
    def route(self) -> str:
        return "left"

    @listen("left")
    async def went_left(self) -> None:
        self.state["ran"] = [*self.state.get("ran", []), "went_left"]

    @listen(or_("left", and_(single, "right")))
    def nested(self) -> None:
        self.state["ran"] = [*self.state.get("ran", []), "nested"]

    @router(or_(begin, nested))
    def fork(self) -> str:
        return "right"

    @listen(or_(begin))
    def lone(self) -> None:
        self.state["ran"] = [*self.state.get("ran", []), "lone"]


TRIGGERS = [
    "begin",
    "single",
    "both",
    "either",
    "route",
    "left",
    "went_left",
    "right",
    "nested",
    "fork",
    "lone",
    "unknown",
]


def bookkeeping(flow: Flow) -> tuple[dict[str, set[str]], set[str]]:  # type: ignore[type-arg]
    private = flow.__pydantic_private__ or {}
    return {k: set(v) for k, v in private["_pending_events"].items()}, set(private["_fired_or_listeners"])


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(TRIGGERS), st.booleans()), max_size=30))
def test_triggered_listeners_and_bookkeeping_match_crewais(steps: list[tuple[str, bool]]) -> None:
    installed = runtime.Flow.__dict__["_find_triggered_methods"]
    stock = getattr(installed, "__wrapped__", installed)
    ours = _flow_dispatch.make_find_triggered_methods(stock, runtime.Flow, runtime)
    with_stock, with_ours = Shapes(), Shapes()
    for trigger, router_only in steps:
        assert ours(with_ours, trigger, router_only) == stock(with_stock, trigger, router_only)
        assert bookkeeping(with_ours) == bookkeeping(with_stock)


def run_shapes() -> list[str]:
    flow = Shapes()
    flow.kickoff()
    return list(flow.state["ran"])


def test_a_flow_runs_the_same_methods_in_the_same_order(tasks_on: None) -> None:
    from fast_crewai.runtime import patches

    ours = run_shapes()
    patches.disable_acceleration()
    assert ours == run_shapes()
    assert "went_left" in ours and "nested" in ours


def bound_pairs() -> list[tuple[type, str]]:
    return [
        (cls, name)
        for cls in (Shapes, AgentExecutor)
        for name, value in vars(cls).items()
        if isinstance(value, FlowMethod)
    ]


@pytest.mark.parametrize(("cls", "name"), bound_pairs(), ids=lambda v: getattr(v, "__name__", v))
def test_a_bound_flow_method_is_crewais(tasks_on: None, cls: type, name: str) -> None:
    wrapper = vars(cls)[name]
    stock_get = type(wrapper).__get__.__wrapped__
    instance = object.__new__(cls)
    ours, stock = getattr(instance, name), stock_get(wrapper, instance, cls)
    assert type(ours) is type(stock)
    assert vars(ours) == vars(stock)
    assert ours.__self__ is instance and ours._instance is instance
    assert inspect.signature(ours) == inspect.signature(stock)
    assert asyncio.iscoroutinefunction(ours) == asyncio.iscoroutinefunction(stock)
    assert getattr(instance, name) is not ours  # a new wrapper per access, as CrewAI makes


def test_a_bound_async_flow_method_still_runs(tasks_on: None) -> None:
    flow = Shapes()
    assert asyncio.iscoroutinefunction(flow.went_left)
    asyncio.run(flow.went_left())
    assert flow.state["ran"] == ["went_left"]


def test_a_subclass_with_its_own_init_binds_through_it(tasks_on: None) -> None:
    made: list[Any] = []

    class Counting(FlowMethod):  # type: ignore[type-arg]
        def __init__(self, meth: Any, instance: Any = None) -> None:
            super().__init__(meth, instance)
            made.append(instance)

    def method(self: Any) -> str:
        return "ran"

    wrapper = Counting(method)
    holder = type("Holder", (), {"method": wrapper})()
    assert holder.method() == "ran"
    assert made == [None, holder]


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the functions handed to the real ``asyncio.to_thread``."""
    names: list[str] = []
    real = asyncio.to_thread

    async def counted(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        names.append(getattr(func, "__name__", type(func).__name__))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    yield names


def test_a_flow_that_persists_nothing_skips_the_persistence_hop(tasks_on: None, hops: list[str]) -> None:
    from fast_crewai.runtime import patches

    ours = run_shapes()
    ours_hops = list(hops)
    patches.disable_acceleration()
    hops.clear()
    flow = Shapes()
    flow.kickoff()
    assert flow.state["ran"] == ours
    # Stock hands every finished method's persistence to a thread; the
    # method hops themselves stay.
    assert hops.count("_persist_method_completion") == len(flow._method_outputs) > len(ours)
    assert "_persist_method_completion" not in ours_hops
    assert [name for name in hops if name != "_persist_method_completion"] == ours_hops


@persist()
class Persisted(Flow):  # type: ignore[type-arg]
    @start()
    def first(self) -> None:
        self.state["steps"] = [*self.state.get("steps", []), "first"]

    @listen(first)
    def second(self) -> None:
        self.state["steps"] = [*self.state.get("steps", []), "second"]


def test_a_flow_that_persists_still_saves_after_every_method(tasks_on: None, hops: list[str], tmp_path: Path) -> None:
    store = SQLiteFlowPersistence(db_path=str(tmp_path / "flows.db"))
    flow = Persisted(persistence=store)
    flow.kickoff()
    assert hops.count("_persist_method_completion") == 2
    saved = store.load_state(flow.state["id"])
    assert saved is not None and saved["steps"] == ["first", "second"]


def test_a_subclass_persistence_hook_still_runs_in_a_thread(tasks_on: None) -> None:
    calls: list[tuple[str, bool]] = []

    class Hooked(Flow):  # type: ignore[type-arg]
        @start()
        def first(self) -> None:
            return None

        @listen(first)
        def second(self) -> None:
            return None

        def _persist_method_completion(self, method_name: Any) -> None:
            calls.append((str(method_name), threading.current_thread() is threading.main_thread()))

    Hooked().kickoff()
    assert [name for name, _ in calls] == ["first", "second"]
    assert calls and not any(on_main for _, on_main in calls)


def test_an_unknown_method_raises_as_crewais_does(tasks_on: None) -> None:
    flow = Shapes()
    with pytest.raises(KeyError):
        asyncio.run(runtime.asyncio.to_thread(flow._persist_method_completion, "not_a_method"))


def test_the_runtime_sees_later_patches_to_asyncio(tasks_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from fast_crewai.runtime import patches

    assert runtime.asyncio is not asyncio
    assert runtime.asyncio.gather is asyncio.gather

    async def sleep(*_: Any) -> None:
        return None

    monkeypatch.setattr(asyncio, "sleep", sleep)
    assert runtime.asyncio.sleep is sleep
    patches.disable_acceleration()
    assert runtime.asyncio is asyncio
