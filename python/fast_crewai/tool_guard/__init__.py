"""``tool-guard`` (``wit/tool-guard.wit``): the JSON that LLMs write as tool
arguments and structured outputs, read, repaired and validated in one pass.

:func:`repair_json` and :func:`canonical_json` run on the active backend:
the core (:mod:`._core`) or the pure-Python reference (:mod:`._reference`),
both implementing :mod:`._contract`. :mod:`._patch` puts them under
CrewAI's tool calls (the ``tools`` switch) and structured outputs (the
``serialization`` switch).
"""

from ._guard import FieldError, GuardResult, canonical_json, canonical_text, guard_backend, repair_json

__all__ = ["FieldError", "GuardResult", "canonical_json", "canonical_text", "guard_backend", "repair_json"]
