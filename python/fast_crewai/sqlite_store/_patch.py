"""The "database" component: CrewAI's task-outputs store on the core.

Importing this module registers the patch; ``enable_acceleration`` applies
it unless ``FAST_CREWAI_DATABASE=0``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..runtime.patches import Patch, PatchTargetMissing, rebind, register

STORAGE_MODULE = "crewai.memory.storage.kickoff_task_outputs_storage"
STORAGE_CLASS = "KickoffTaskOutputsSQLiteStorage"
# Every CrewAI module that imports the class by name (CrewAI 1.15): loaded
# first so that rebind finds their copy of the name.
IMPORTERS = ("crewai.utilities.task_output_storage_handler",)


def _apply_task_outputs() -> Callable[[], None]:
    for module in IMPORTERS:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise PatchTargetMissing(f"module {module} cannot be imported ({exc})") from exc
    from ._task_outputs import KickoffTaskOutputsStorage

    return rebind(STORAGE_MODULE, STORAGE_CLASS, KickoffTaskOutputsStorage)


register(
    Patch(
        name="database.task_outputs",
        component="database",
        apply=_apply_task_outputs,
        description=f"{STORAGE_MODULE}.{STORAGE_CLASS} -> fast_crewai.AcceleratedTaskOutputsStorage",
    )
)
