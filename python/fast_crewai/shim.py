"""``import fast_crewai.shim`` turns acceleration on for existing crews.

Switches: ``FAST_CREWAI_ACCELERATION=0`` leaves everything off;
``FAST_CREWAI_MEMORY``, ``_TOOLS``, ``_TASKS``, ``_SERIALIZATION`` and
``_DATABASE`` switch single components.

The same functions as the package root, as the original fast-crewai
documents them::

    import fast_crewai.shim
    fast_crewai.shim.enable_acceleration(verbose=True)   # what is patched, what is not and why
    fast_crewai.shim.disable_acceleration()              # CrewAI exactly as it was
    fast_crewai.shim.status()
"""

from __future__ import annotations

from .runtime.patches import apply_enabled, disable_acceleration, enable_acceleration, status

__all__ = ["disable_acceleration", "enable_acceleration", "status"]

apply_enabled()
