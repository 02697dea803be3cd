"""The memory patch: CrewAI's memory storage factory hands out
:class:`~fast_crewai.memory_search._storage.ReopeningMemoryStorage` (an
``AcceleratedMemoryStorage`` that a call after ``Memory.close()`` opens
again, as LanceDB keeps working) wherever CrewAI would build its LanceDB
store, so ``Memory()`` and ``Crew(memory=True)`` use it with no code
change. Registered on import; ``FAST_CREWAI_MEMORY=0`` leaves LanceDB in
place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..runtime.patches import Patch, PatchTargetMissing, register

#: The storage spec CrewAI 1.15 maps to a store other than LanceDB. Every other
#: string is LanceDB: "lancedb" in its default directory, anything else a
#: directory path for it.
_NOT_LANCEDB = frozenset({"qdrant-edge"})


def _apply() -> Callable[[], None]:
    try:
        factory_module = importlib.import_module("crewai.memory.storage.factory")
    except ImportError as exc:
        raise PatchTargetMissing(f"crewai.memory.storage.factory cannot be imported ({exc})") from exc
    setter = getattr(factory_module, "set_memory_storage_factory", None)
    if setter is None:
        raise PatchTargetMissing("crewai.memory.storage.factory.set_memory_storage_factory does not exist")
    previous: Callable[[str], Any] | None = getattr(factory_module, "_factory", None)

    def accelerated_storage(spec: str) -> Any:
        # A factory the application registered first keeps the say for the
        # specs it handles.
        if previous is not None:
            chosen = previous(spec)
            if chosen is not None:
                return chosen
        if spec in _NOT_LANCEDB:
            return None
        from ._storage import ReopeningMemoryStorage

        return ReopeningMemoryStorage(None if spec == "lancedb" else spec)

    setter(accelerated_storage)

    def undo() -> None:
        # Leave a factory registered after ours alone.
        if getattr(factory_module, "_factory", None) is accelerated_storage:
            setter(previous)

    return undo


register(
    Patch(
        name="memory.storage_factory",
        component="memory",
        apply=_apply,
        description="Memory() stores in AcceleratedMemoryStorage instead of LanceDBStorage",
    )
)
