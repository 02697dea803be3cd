"""What both tool-guard backends implement (``wit/tool-guard.wit``).

``repair(text, schema) -> text`` reads what an LLM wrote and returns
``{"value":V,"repairs":[names]}`` (plus ``"errors":[{"path":P,"message":M}]``
when a schema is given), exactly as
``json.dumps(result, ensure_ascii=False, separators=(",", ":"))`` writes it.
``canonicalize(text) -> text`` reads the same way and returns the value with
keys sorted at every level, compact. Texts must not hold lone surrogates
(:func:`fast_crewai.tool_guard.repair_json` replaces them first).

The reading rules are documented in ``core-wasm/src/tool_guard/mod.rs`` and
``wit/tool-guard.wit``; :mod:`._reference` follows them line for line.
"""

from __future__ import annotations

from typing import Protocol

INTERFACE = "fast-crewai:core/tool-guard@0.1.0"

#: Every repair name, in the order the WIT documents them.
REPAIRS = (
    "fence",
    "extract",
    "comment",
    "single-quotes",
    "unquoted-key",
    "unquoted-value",
    "python-literal",
    "trailing-comma",
    "missing-comma",
    "number",
    "escape",
    "inner-quote",
    "lone-surrogate",
    "truncated",
)

MAX_DEPTH = 256
MAX_INT_DIGITS = 4300
#: Schema validation deeper than this (values and ``$ref`` hops) is an error.
MAX_SCHEMA_DEPTH = 512
#: At most this many violations are reported.
MAX_ERRORS = 100


class GuardBackend(Protocol):
    def repair(self, text: str, schema: str | None) -> str: ...

    def canonicalize(self, text: str) -> str: ...
