"""Concurrent invocations of one agent, or of one tool, kept apart.

A CrewAI ``Agent`` holds one executor, which ``execute_task`` re-targets at
each task (task, tools, prompt) and then runs; a second invocation while the
first is running either re-targets the running executor under it or fails
with "Executor is already running" (CrewAI issue 7332). That happens to
asynchronous tasks sharing an agent, to hierarchical crews (the manager runs
every task) and to parallel delegations to one coworker. A tool's
``current_usage_count`` is likewise one counter, reset by ``parse_tools`` at
every executor build, so concurrent runs sharing a tool reset and spend each
other's ``max_usage_count`` budget.

Here an invocation *leases* its agent and tools. The first invocation uses
the objects themselves, exactly as CrewAI does. An invocation that finds an
object leased by another one gets a private stand-in for the duration:

- for an agent, a *twin*: a shallow ``model_copy`` sharing everything that
  is the agent's identity or shared state (id, role, llm, tools, crew,
  memory, token counter, cache, RPM controller) with its own per-invocation
  state (executor, tools handler, last messages, tool failures), so events
  carry the agent's id and role and usage adds up on the agent;
- for a tool, a shallow copy with its own usage counter (mutable containers
  the tool holds stay shared; a scalar field it reassigns does not propagate
  back to the original).

Leases live in a context variable, so a nested call in the same invocation
(a retry after an error) reuses what the invocation holds, as CrewAI does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from ..runtime import forks

_EMPTY: Mapping[int, Any] = MappingProxyType({})
# id(original) -> the object this context uses for it (itself or a stand-in).
_held: ContextVar[Mapping[int, Any]] = ContextVar("fast_crewai_leases", default=_EMPTY)
# ids of the agents and tools some invocation is using in person.
_busy: set[int] = set()
_busy_lock = threading.RLock()
# How many stand-ins were made, by kind (for status and tests).
_stand_ins = {"agents": 0, "tools": 0}


def _after_fork_in_child() -> None:
    # The hook runs in the thread that forked, in its context: its own
    # invocations go on in the child and keep what they use in person; the
    # other threads' are gone, and their leases with them. Counts start over.
    global _busy, _busy_lock
    _busy = {key for key, used in _held.get().items() if id(used) == key and key in _busy}
    _busy_lock = threading.RLock()
    _stand_ins.update(agents=0, tools=0)


forks.in_child(_after_fork_in_child)


def agent_twin(agent: Any) -> Any:
    """A stand-in for ``agent`` with its own per-invocation state."""
    from crewai.agents.tools_handler import ToolsHandler

    twin = agent.model_copy()
    # Written through __dict__: these are plain resets of per-invocation state
    # and must not run assignment validators.
    twin.__dict__["agent_executor"] = None
    handler = agent.tools_handler
    twin.__dict__["tools_handler"] = ToolsHandler(cache=handler.cache if handler is not None else None)
    private = twin.__pydantic_private__
    if private is not None:
        for name in ("_last_messages", "_tool_failures"):
            if name in private:
                private[name] = []
    return twin


def tool_copy(tool: Any) -> Any:
    """A stand-in for ``tool`` with its own usage counter and lock."""
    copy = tool.model_copy()
    private = copy.__pydantic_private__
    if private is not None and "_usage_lock" in private:
        private["_usage_lock"] = threading.Lock()
    return copy


@contextlib.contextmanager
def leased(agent: Any | None, tools: Sequence[Any] | None) -> Iterator[tuple[Any, list[Any] | None]]:
    """Leases ``agent`` and ``tools`` for one invocation; yields what to run
    with: the agent or its twin, and the tools with stand-ins where needed
    (``None`` stays ``None``)."""
    held = _held.get()
    acquired: list[int] = []
    added: dict[int, Any] = {}

    def use(obj: Any, stand_in: Any) -> Any:
        key = id(obj)
        if key in held:
            return held[key]
        if key in added:
            return added[key]
        with _busy_lock:
            mine = key not in _busy
            if mine:
                _busy.add(key)
                acquired.append(key)
        chosen = obj if mine else stand_in(obj)
        if not mine:
            with _busy_lock:
                _stand_ins["agents" if stand_in is agent_twin else "tools"] += 1
        added[key] = chosen
        added[id(chosen)] = chosen
        return chosen

    try:
        runner = use(agent, agent_twin) if agent is not None else None
        mapped = None if tools is None else [use(tool, tool_copy) for tool in tools]
        token = _held.set(MappingProxyType({**held, **added})) if added else None
        try:
            yield runner, mapped
        finally:
            if token is not None:
                _held.reset(token)
    finally:
        if acquired:
            with _busy_lock:
                _busy.difference_update(acquired)


def leased_elsewhere(obj: Any) -> bool:
    """Whether another invocation (not this context's) is using ``obj``."""
    return id(obj) in _busy and id(obj) not in _held.get()


def lease_status() -> dict[str, int]:
    """How many agents and tools are leased now, and how many stand-ins
    (agent twins, tool copies) were made so far."""
    with _busy_lock:
        return {"leased": len(_busy), "agent_twins": _stand_ins["agents"], "tool_copies": _stand_ins["tools"]}
