"""The ``tasks`` component's patches (``FAST_CREWAI_TASKS=0`` leaves them off).

- ``tasks.kickoff_for_each``: ``Crew.kickoff_for_each`` runs its copies
  concurrently on the host pool (:mod:`._runs`).
- ``tasks.async_kickoffs``: ``Crew.kickoff_async`` runs ``self.kickoff``
  on the host pool instead of asyncio's default executor (``min(32, cpu +
  4)`` threads), so CrewAI's own ``kickoff_for_each_async``, left as it is,
  calls ``Crew.kickoff_async`` for each copy and is no longer capped.
  ``Crew.akickoff_for_each`` still calls ``akickoff`` for each copy, each on
  an event loop of its own in a pool thread: CrewAI runs them all on the
  caller's loop, where every crew's synchronous parts (setup, storage
  writes, flow bookkeeping) queue behind each other's and the flows'
  blocking steps share that loop's default executor. Coroutine callbacks of
  those crews therefore run on their crew's loop, not the caller's;
  cancelling the caller cancels every copy's ``akickoff``, as it does in
  CrewAI. A streaming crew, a checkpoint to restore, and a call from a loop
  that runs on a pool worker (it must not wait for the pool it occupies)
  keep CrewAI's own path.
- ``tasks.async_execution``: ``Task.execute_async`` runs on the host pool
  instead of a new thread per task.
- ``tasks.invocations``: concurrent invocations of one agent or one tool get
  their own executor state and usage counters (:mod:`._invocations`);
  ``parse_tools`` leaves the counter of a tool another invocation is using
  alone.
- ``tasks.memory_drain``: a crew's memory drain waits for its own saves
  (:mod:`._drain`).
- ``tasks.flow_state_class``: agent executors reuse one state class per
  state model (:mod:`._flow_state`), CPU every concurrent crew waits for.
- ``tasks.flow_dispatch``: a flow finds the listeners a method triggers, and
  binds its methods, with less CPU and the same results
  (:mod:`._flow_dispatch`).
- ``tasks.flow_persist_hop``: a flow skips the thread hop that persists a
  finished method when neither the method nor the flow persists anything
  (:mod:`._flow_dispatch`).
- ``tasks.storeless_files``: without ``aiocache`` CrewAI has no file store,
  and its file calls return ``None`` at once instead of running an event
  loop (and a thread, inside a running loop) to find nothing
  (:mod:`._file_store`).
- ``tasks.lock_queue``: threads queue in-process for CrewAI's named file
  locks instead of polling them (:mod:`._locks`).
- ``tasks.event_bus_after_fork``: in a process forked after CrewAI's event
  bus ran, the bus starts its threads again instead of waiting forever for
  the parent's (:mod:`._event_bus`).

Every patch replaces methods, rebinds a function or a module's global
(``crewai.flow.runtime``'s ``asyncio``) or sets CrewAI's lock backend, and
its undo puts the originals back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from ..runtime.patches import Patch, PatchTargetMissing, rebind, register
from . import _drain, _event_bus, _file_store, _flow_dispatch, _flow_state, _locks, _runs
from ._invocations import leased, leased_elsewhere
from ._loop_executor import loop_executor
from ._pool import host_pool, in_pool_worker

Undo = Callable[[], None]


def _class(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise PatchTargetMissing(f"{module}.{name} cannot be loaded ({exc})") from exc


def _replace(cls: Any, name: str, make: Callable[[Any], Any]) -> Undo:
    """Sets ``cls.name`` to ``make(original)``; returns the undo."""
    original = getattr(cls, name, None)
    if not callable(original):
        raise PatchTargetMissing(f"{cls.__module__}.{cls.__qualname__}.{name} does not exist")
    own = cls.__dict__.get(name)
    replacement = functools.wraps(original)(make(original))
    setattr(cls, name, replacement)

    def undo() -> None:
        if cls.__dict__.get(name) is replacement:
            if own is None:
                delattr(cls, name)
            else:
                setattr(cls, name, own)

    return undo


def _stacked(steps: list[Callable[[], Undo]]) -> Undo:
    """Applies ``steps`` in order, all or none; returns the undo of all."""
    undos: list[Undo] = []

    def undo() -> None:
        for step in reversed(undos):
            step()

    try:
        for step in steps:
            undos.append(step())
    except BaseException:
        undo()
        raise
    return undo


def _apply_kickoff_for_each() -> Undo:
    crew_class = _class("crewai.crew", "Crew")

    def make(original: Any) -> Any:
        def kickoff_for_each(self: Any, inputs: list[dict[str, Any]], input_files: Any = None) -> Any:
            return _runs.kickoff_for_each(original, self, inputs, input_files)

        return kickoff_for_each

    return _replace(crew_class, "kickoff_for_each", make)


def _apply_kickoff_async() -> Undo:
    crew_class = _class("crewai.crew", "Crew")

    def make(original: Any) -> Any:
        async def kickoff_async(
            self: Any, inputs: dict[str, Any] | None = None, input_files: Any = None, from_checkpoint: Any = None
        ) -> Any:
            # A stream is consumed on the caller's loop; a restored crew
            # comes back here through CrewAI's path.
            if self.stream or from_checkpoint is not None or in_pool_worker():
                return await original(self, inputs, input_files, from_checkpoint)
            # What CrewAI hands asyncio.to_thread, with the same arguments;
            # the pool runs it in a copy of this context, as to_thread does.
            return await asyncio.wrap_future(host_pool().submit(self.kickoff, inputs or {}, input_files))

        return kickoff_async

    return _replace(crew_class, "kickoff_async", make)


class _OwnLoop:
    """Runs a coroutine on a new event loop in the calling thread, its
    default executor the shared one (:mod:`._loop_executor`), and lets
    another thread cancel it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def run(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        async def main() -> Any:
            asyncio.get_running_loop().set_default_executor(loop_executor())
            with self._lock:
                if self._cancelled:
                    raise asyncio.CancelledError
                self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            try:
                return await make()
            finally:
                # From here on the loop may close: nothing to cancel.
                with self._lock:
                    self._loop = self._task = None

        return asyncio.run(main())

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)


def _apply_akickoff_for_each() -> Undo:
    crew_class = _class("crewai.crew", "Crew")
    run_for_each_async = _class("crewai.crews.utils", "run_for_each_async")

    def make(original: Any) -> Any:
        async def akickoff_for_each(self: Any, inputs: list[dict[str, Any]], input_files: Any = None) -> Any:
            # A stream is consumed on the caller's loop; a loop on a pool
            # worker must not wait for the pool.
            if self.stream or in_pool_worker():
                return await original(self, inputs, input_files)

            async def kickoff_fn(crew: Any, data: dict[str, Any]) -> Any:
                own = _OwnLoop()
                future = host_pool().submit(own.run, lambda: crew.akickoff(inputs=data, input_files=input_files))
                try:
                    return await asyncio.wrap_future(future)
                except asyncio.CancelledError:
                    # A queued run is dropped by wrap_future; a running one
                    # stops at its next await, as on the caller's loop.
                    own.cancel()
                    raise

            # CrewAI's own loop: copies, gather, usage sum, log reset.
            return await run_for_each_async(self, inputs, kickoff_fn)

        return akickoff_for_each

    return _replace(crew_class, "akickoff_for_each", make)


def _apply_async_kickoffs() -> Undo:
    return _stacked([_apply_kickoff_async, _apply_akickoff_for_each])


def _apply_async_execution() -> Undo:
    task_class = _class("crewai.task", "Task")

    def make(original: Any) -> Any:
        def execute_async(self: Any, agent: Any = None, context: str | None = None, tools: Any = None) -> Any:
            def run() -> Any:
                # CrewAI's own body for a task started asynchronously.
                done: Future[Any] = Future()
                self._execute_task_async(agent, context, tools, done)
                return done.result()

            return host_pool().submit(run)

        return execute_async

    return _replace(task_class, "execute_async", make)


def _tools_arg(tools: Any, effective: list[Any] | None, mapped: list[Any] | None) -> Any:
    """The tools to pass on: CrewAI's own argument unless a stand-in
    replaced one of them."""
    if effective is None or mapped is None or all(m is o for m, o in zip(mapped, effective, strict=True)):
        return tools
    return mapped


def _apply_invocations() -> Undo:
    agent_class = _class("crewai.agent.core", "Agent")
    task_class = _class("crewai.task", "Task")

    def make_execute(original: Any) -> Any:
        def execute_task(self: Any, task: Any, context: str | None = None, tools: Any = None) -> Any:
            effective = list(tools or self.tools or []) or None
            with leased(self, effective) as (runner, mapped):
                return original(runner, task, context, _tools_arg(tools, effective, mapped))

        return execute_task

    def make_aexecute(original: Any) -> Any:
        async def aexecute_task(self: Any, task: Any, context: str | None = None, tools: Any = None) -> Any:
            effective = list(tools or self.tools or []) or None
            with leased(self, effective) as (runner, mapped):
                return await original(runner, task, context, _tools_arg(tools, effective, mapped))

        return aexecute_task

    # The task level holds the agent's lease too: after execute_task returns
    # it reads agent.last_messages, per-invocation state.
    def make_core(original: Any) -> Any:
        def _execute_core(self: Any, agent: Any, context: str | None, tools: Any) -> Any:
            chosen = agent or self.agent
            if not isinstance(chosen, agent_class):
                return original(self, agent, context, tools)
            with leased(chosen, None) as (runner, _):
                if runner is chosen:
                    return original(self, agent, context, tools)
                try:
                    return original(self, runner, context, tools)
                finally:
                    if self.agent is runner:
                        self.agent = chosen

        return _execute_core

    def make_acore(original: Any) -> Any:
        async def _aexecute_core(self: Any, agent: Any, context: str | None, tools: Any) -> Any:
            chosen = agent or self.agent
            if not isinstance(chosen, agent_class):
                return await original(self, agent, context, tools)
            with leased(chosen, None) as (runner, _):
                if runner is chosen:
                    return await original(self, agent, context, tools)
                try:
                    return await original(self, runner, context, tools)
                finally:
                    if self.agent is runner:
                        self.agent = chosen

        return _aexecute_core

    stock_parse = importlib.import_module("crewai.utilities.agent_utils").parse_tools

    @functools.wraps(stock_parse)
    def parse_tools(tools: list[Any]) -> Any:
        # CrewAI resets every tool's usage counter when it builds an executor
        # (each task start, each crew setup); a counter another invocation is
        # spending keeps its value.
        foreign = sorted((tool for tool in tools if leased_elsewhere(tool)), key=id)
        if not foreign:
            return stock_parse(tools)
        with contextlib.ExitStack() as stack:
            for tool in foreign:
                lock = (tool.__pydantic_private__ or {}).get("_usage_lock")
                if lock is not None:
                    stack.enter_context(lock)
            counts = [(tool, tool.current_usage_count) for tool in foreign]
            try:
                return stock_parse(tools)
            finally:
                for tool, count in counts:
                    tool.current_usage_count = count

    return _stacked(
        [
            functools.partial(_replace, agent_class, "execute_task", make_execute),
            functools.partial(_replace, agent_class, "aexecute_task", make_aexecute),
            functools.partial(_replace, task_class, "_execute_core", make_core),
            functools.partial(_replace, task_class, "_aexecute_core", make_acore),
            functools.partial(rebind, "crewai.utilities.agent_utils", "parse_tools", parse_tools),
        ]
    )


def _apply_memory_drain() -> Undo:
    memory_class = _class("crewai.memory.unified_memory", "Memory")

    def make_submit(original: Any) -> Any:
        def _submit_save(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            return _drain.tag(original(self, fn, *args, **kwargs))

        return _submit_save

    def make_drain(original: Any) -> Any:
        def drain_writes(self: Any) -> None:
            if not _drain.drain_own_writes(self):
                original(self)

        return drain_writes

    return _stacked(
        [
            functools.partial(_replace, memory_class, "_submit_save", make_submit),
            functools.partial(_replace, memory_class, "drain_writes", make_drain),
        ]
    )


def _apply_lock_queue() -> Undo:
    try:
        store = importlib.import_module("crewai_core.lock_store")
    except ImportError as exc:
        raise PatchTargetMissing(f"crewai_core.lock_store cannot be imported ({exc})") from exc
    setter = getattr(store, "set_lock_backend", None)
    if setter is None:
        raise PatchTargetMissing("crewai_core.lock_store.set_lock_backend does not exist")
    previous = getattr(store, "_backend", None)
    redis_available = getattr(store, "_redis_available", lambda: False)
    if previous is None and redis_available():
        return lambda: None
    ours = _locks.queued(previous or _locks.file_lock)
    setter(ours)

    def undo() -> None:
        if getattr(store, "_backend", None) is ours:
            setter(previous)

    return undo


def _apply_flow_state_class() -> Undo:
    flow_class = _class("crewai.flow.runtime", "Flow")
    flow_state = _class("crewai.flow.runtime", "FlowState")
    return _replace(
        flow_class,
        "_create_initial_state",
        lambda original: _flow_state.make_create_initial_state(original, flow_state),
    )


def _apply_flow_dispatch() -> Undo:
    runtime = importlib.import_module("crewai.flow.runtime")
    flow_class = _class("crewai.flow.runtime", "Flow")
    flow_method = _class("crewai.flow.flow_wrappers", "FlowMethod")
    for helper in ("_condition_satisfied", "_is_multi_event_or"):
        if not callable(getattr(runtime, helper, None)):
            raise PatchTargetMissing(f"crewai.flow.runtime.{helper} does not exist")
    return _stacked(
        [
            functools.partial(
                _replace,
                flow_class,
                "_find_triggered_methods",
                lambda original: _flow_dispatch.make_find_triggered_methods(original, flow_class, runtime),
            ),
            functools.partial(
                _replace,
                flow_method,
                "__get__",
                lambda original: _flow_dispatch.make_flow_method_get(original, flow_method),
            ),
        ]
    )


def _apply_flow_persist_hop() -> Undo:
    runtime = importlib.import_module("crewai.flow.runtime")
    flow_class = _class("crewai.flow.runtime", "Flow")
    persist_completion = flow_class.__dict__.get("_persist_method_completion")
    if not callable(persist_completion):
        raise PatchTargetMissing("crewai.flow.runtime.Flow._persist_method_completion does not exist")
    if getattr(runtime, "asyncio", None) is not asyncio:
        raise PatchTargetMissing("crewai.flow.runtime.asyncio is not the asyncio module")
    replacement = _flow_dispatch.make_runtime_asyncio(persist_completion)
    runtime.asyncio = replacement  # type: ignore[attr-defined]

    def undo() -> None:
        if getattr(runtime, "asyncio", None) is replacement:
            runtime.asyncio = asyncio  # type: ignore[attr-defined]

    return undo


def _apply_file_store() -> Undo:
    try:
        module = importlib.import_module("crewai.utilities.file_store")
    except ImportError as exc:
        raise PatchTargetMissing(f"crewai.utilities.file_store cannot be imported ({exc})") from exc
    for name in (*_file_store.STORELESS_NONE, "_run_sync", "_file_store"):
        if not hasattr(module, name):
            raise PatchTargetMissing(f"crewai.utilities.file_store.{name} does not exist")
    original = module._run_sync
    replacement = _file_store.make_run_sync(original, module)
    module._run_sync = replacement  # type: ignore[attr-defined]

    def undo() -> None:
        if module._run_sync is replacement:
            module._run_sync = original  # type: ignore[attr-defined]

    return undo


for _name, _apply, _description in (
    ("tasks.kickoff_for_each", _apply_kickoff_for_each, "Crew.kickoff_for_each runs its copies on the host pool"),
    (
        "tasks.async_kickoffs",
        _apply_async_kickoffs,
        "kickoff_async (so kickoff_for_each_async) and akickoff_for_each run their crews on the host pool",
    ),
    ("tasks.async_execution", _apply_async_execution, "Task.execute_async runs on the host pool"),
    (
        "tasks.invocations",
        _apply_invocations,
        "concurrent invocations of one agent or tool get their own executor state and usage counters",
    ),
    ("tasks.memory_drain", _apply_memory_drain, "a crew's memory drain waits for its own saves only"),
    (
        "tasks.flow_state_class",
        _apply_flow_state_class,
        "agent executors reuse one state class per state model instead of building one each",
    ),
    (
        "tasks.flow_dispatch",
        _apply_flow_dispatch,
        "flows find the listeners a method triggers, and bind their methods, with less CPU",
    ),
    (
        "tasks.flow_persist_hop",
        _apply_flow_persist_hop,
        "flows skip the thread hop that persists a finished method when nothing is persisted",
    ),
    (
        "tasks.storeless_files",
        _apply_file_store,
        "without a file store (no aiocache), CrewAI's file calls return None without running an event loop",
    ),
    (
        "tasks.lock_queue",
        _apply_lock_queue,
        "threads queue in-process for CrewAI's named file locks instead of polling them",
    ),
    (
        "tasks.event_bus_after_fork",
        _event_bus.apply,
        "a process forked after CrewAI's event bus ran starts the bus's threads again",
    ),
):
    register(Patch(name=_name, component="tasks", apply=_apply, description=_description))
