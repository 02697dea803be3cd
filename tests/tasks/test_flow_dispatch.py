"""The ``tasks.flow_dispatch`` patch: the listeners a method triggers, the
flow's bookkeeping and its bound methods are exactly CrewAI's."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import crewai.flow.runtime as runtime
import pytest
from crewai.agents.agent_executor import AgentExecutor
from crewai.flow import Flow, and_, listen, or_, router, start
from crewai.flow.flow_wrappers import FlowMethod
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
