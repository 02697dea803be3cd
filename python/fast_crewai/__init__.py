"""fast-crewai: a portable WebAssembly accelerator for CrewAI.

``import fast_crewai`` patches nothing; ``import fast_crewai.shim`` (or
:func:`enable_acceleration`) does.
"""

from __future__ import annotations

from ._errors import (
    BusyError,
    ConfigurationError,
    ConstraintError,
    CoreOutOfMemory,
    CoreTimeout,
    CoreTrap,
    CoreUnavailable,
    CorruptError,
    DiskFullError,
    FastCrewAIError,
    InvalidRecordError,
    InvalidSchemaError,
    MemoryStoreError,
    MisuseError,
    NotFoundError,
    OpenedBeforeFork,
    PathNotAllowedError,
    ReadOnlyError,
    ReadOnlyStoreError,
    RecordTooLargeError,
    ResultTooLargeError,
    SerdeError,
    SQLiteError,
    StorageFailure,
    StoreCapacityError,
    TooLargeError,
    ToolGuardError,
    UnreadableJSONError,
    UnsupportedPlatformError,
)
from .message_serde import AgentMessage
from .runtime.backend import core_info
from .runtime.patches import disable_acceleration, enable_acceleration, status
from .tool_guard import GuardResult, canonical_json, repair_json

__version__ = "0.1.0"

# Loaded on first use: these import CrewAI, which takes seconds.
_LAZY = {
    "AcceleratedMemoryStorage": ("fast_crewai.memory_search._storage", "AcceleratedMemoryStorage"),
    "AcceleratedSQLiteWrapper": ("fast_crewai.sqlite_store._wrapper", "AcceleratedSQLiteWrapper"),
    "AcceleratedTaskOutputsStorage": ("fast_crewai.sqlite_store._task_outputs", "KickoffTaskOutputsStorage"),
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'fast_crewai' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)


__all__ = [
    "AcceleratedMemoryStorage",
    "AcceleratedSQLiteWrapper",
    "AcceleratedTaskOutputsStorage",
    "AgentMessage",
    "BusyError",
    "ConfigurationError",
    "ConstraintError",
    "CoreOutOfMemory",
    "CoreTimeout",
    "CoreTrap",
    "CoreUnavailable",
    "CorruptError",
    "DiskFullError",
    "FastCrewAIError",
    "GuardResult",
    "InvalidRecordError",
    "InvalidSchemaError",
    "MemoryStoreError",
    "MisuseError",
    "NotFoundError",
    "OpenedBeforeFork",
    "PathNotAllowedError",
    "ReadOnlyError",
    "ReadOnlyStoreError",
    "RecordTooLargeError",
    "ResultTooLargeError",
    "SQLiteError",
    "SerdeError",
    "StorageFailure",
    "StoreCapacityError",
    "TooLargeError",
    "ToolGuardError",
    "UnreadableJSONError",
    "UnsupportedPlatformError",
    "__version__",
    "canonical_json",
    "core_info",
    "disable_acceleration",
    "enable_acceleration",
    "repair_json",
    "status",
]
