"""Three pieces of CrewAI's ``Flow`` machinery, same results with less CPU.

Every CrewAI agent executor is a ``Flow`` of 32 methods, built at least
twice per task run, and every method it runs asks which listeners its
completion triggers. Sampled under the GIL over sequential ``akickoff``
runs of the research crew, the first two were a quarter of a run's CPU,
CPU that concurrent crews queue for:

- ``Flow._find_triggered_methods`` (~20%): for each listener it calls
  ``_condition_met``, which reads the private ``_pending_events`` through
  pydantic's ``__getattr__``, and rebuilds the listener's name and key
  through ``NewType`` calls. The replacement reads the private attributes
  once per call and does the same steps inline, in the same order, with the
  same side effects: every listener it checks records the trigger in
  ``_pending_events``, a satisfied one has its entry removed, and a
  multi-event OR listener that fires is added to ``_fired_or_listeners``.
  A flow class that overrides ``_condition_met`` or ``_listener_methods``
  gets CrewAI's own method.
- ``FlowMethod.__get__`` (~7%): binding a flow method builds a new wrapper
  through ``__init__``, which runs ``inspect.signature`` on the function
  again. The replacement copies the class-level wrapper's attributes, which
  ``__init__`` computed from the same function, and sets the instance. A
  subclass with its own ``__init__`` or ``__new__`` gets CrewAI's own
  binding.
- The hop that persists a completed method: after every method, a flow
  awaits ``asyncio.to_thread(self._persist_method_completion, name)``, one
  thread hand-off each way, even when neither the method nor the flow has a
  ``persist`` definition, where the call returns at once. That is half the
  thread hops of an agent executor's run (20 of 40 per task run of the
  research crew). ``crewai.flow.runtime`` gets its own ``asyncio``
  (:func:`make_runtime_asyncio`): the real module for every name but
  ``to_thread``, which returns ``None`` without the hop exactly when
  CrewAI's method would return it without doing anything. Everything else,
  a subclass's own ``_persist_method_completion`` included, goes to the
  thread as before.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any


def make_find_triggered_methods(original: Any, flow_class: Any, runtime: Any) -> Any:
    """The replacement for ``Flow._find_triggered_methods``; ``runtime`` is
    the ``crewai.flow.runtime`` module, whose condition helpers it uses."""
    condition_met = flow_class._condition_met
    listener_methods = flow_class._listener_methods
    satisfied = runtime._condition_satisfied
    multi_event_or = runtime._is_multi_event_or

    def _find_triggered_methods(self: Any, trigger_method: Any, router_only: bool) -> list[Any]:
        cls = type(self)
        if cls._condition_met is not condition_met or cls._listener_methods is not listener_methods:
            return original(self, trigger_method, router_only)  # type: ignore[no-any-return]
        private = self.__pydantic_private__
        pending = private["_pending_events"]
        fired = private["_fired_or_listeners"]
        trigger = str(trigger_method)
        triggered: list[Any] = []
        for name, definition in private["_definition"].methods.items():
            condition = definition.listen
            if condition is None:
                continue
            is_router = definition.router
            if router_only != is_router:
                continue
            check_fired = not isinstance(condition, str) and multi_event_or(condition) and not is_router
            if check_fired and name in fired:
                continue
            key = str(name)
            seen = pending.setdefault(key, set())
            seen.add(trigger)
            # A plain event name is most listeners' condition; this is
            # ``_condition_satisfied``'s own first case, without the call.
            if not (condition in seen if isinstance(condition, str) else satisfied(condition, seen)):
                continue
            del pending[key]
            triggered.append(name)
            if check_fired:
                fired.add(name)
        return triggered

    return _find_triggered_methods


def make_flow_method_get(original: Any, flow_method: Any) -> Any:
    """The replacement for ``FlowMethod.__get__``."""
    init: Any = flow_method.__init__
    new: Any = flow_method.__new__

    def __get__(self: Any, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        cls: Any = type(self)
        if cls.__init__ is not init or cls.__new__ is not new:
            return original(self, instance, owner)
        bound = new(cls)
        bound.__dict__.update(self.__dict__)
        bound._instance = instance
        bound.__self__ = instance
        return bound

    return __get__


class _RuntimeAsyncio(types.ModuleType):
    """``asyncio`` as ``crewai.flow.runtime`` sees it: every name but
    ``to_thread`` is looked up on the real module at each use, so anything
    that patches ``asyncio`` later is seen there too."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


def _persists_nothing(flow: Any, method_name: Any) -> bool:
    """Whether ``Flow._persist_method_completion(flow, method_name)`` would
    return without doing anything: the same reads, in the same order."""
    try:
        definition = flow._definition
        method = definition.methods.get(str(method_name))
        if method is None:
            return False
        persist = method.persist if method.persist is not None else definition.persist
        return persist is None or not persist.enabled
    except Exception:
        # Whatever CrewAI's method would raise, it raises in the thread, as
        # before: the hop is taken.
        return False


def make_runtime_asyncio(persist_completion: Callable[..., Any]) -> types.ModuleType:
    """The ``asyncio`` module ``crewai.flow.runtime`` gets;
    ``persist_completion`` is ``Flow._persist_method_completion``."""

    async def to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if (
            getattr(func, "__func__", None) is persist_completion
            and len(args) == 1
            and not kwargs
            and _persists_nothing(getattr(func, "__self__", None), args[0])
        ):
            return None
        return await asyncio.to_thread(func, *args, **kwargs)

    module = _RuntimeAsyncio("asyncio", asyncio.__doc__)
    module.to_thread = to_thread  # type: ignore[attr-defined]
    return module
