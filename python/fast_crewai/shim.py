"""``import fast_crewai.shim`` turns acceleration on for existing crews.

Switches: ``FAST_CREWAI_ACCELERATION=0`` leaves everything off;
``FAST_CREWAI_MEMORY``, ``_TOOLS``, ``_TASKS``, ``_SERIALIZATION`` and
``_DATABASE`` switch single components.
"""

from __future__ import annotations

from .runtime.patches import enable_acceleration

enable_acceleration()
