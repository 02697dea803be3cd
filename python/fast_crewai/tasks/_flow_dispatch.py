"""Two pieces of CrewAI's ``Flow`` machinery, same results with less CPU.

Every CrewAI agent executor is a ``Flow`` of 32 methods, built at least
twice per task run, and every method it runs asks which listeners its
completion triggers. Sampled under the GIL over sequential ``akickoff``
runs of the research crew, those two paths were a quarter of a run's CPU,
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
"""

from __future__ import annotations

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
            check_fired = multi_event_or(condition) and not is_router
            if check_fired and name in fired:
                continue
            key = str(name)
            seen = pending.setdefault(key, set())
            seen.add(trigger)
            if not satisfied(condition, seen):
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
