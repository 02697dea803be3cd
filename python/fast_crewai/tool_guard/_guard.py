"""The tool guard's public functions: read what an LLM wrote, repaired and
optionally validated, in one pass; canonical text for cache keys."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._errors import InvalidSchemaError, ToolGuardError, UnreadableJSONError
from ..runtime import backend as _backend
from ._contract import GuardBackend
from ._core import WasmGuard
from ._reference import PythonGuard
from ._reference_schema import Schema

_BACKENDS: dict[str, GuardBackend] = {"wasm": WasmGuard(), "python": PythonGuard()}
_SURROGATE = re.compile("[\ud800-\udfff]")


def guard_backend(name: str | None = None) -> GuardBackend:
    """The named backend, or the active one."""
    return _BACKENDS[name or _backend.active()]


class FieldError(NamedTuple):
    """A schema violation: a JSON pointer into the value and a sentence."""

    path: str
    message: str


@dataclass(frozen=True)
class GuardResult:
    """What :func:`repair_json` read.

    ``value`` is the JSON value; ``repairs`` names what had to be repaired
    (empty for valid JSON); ``errors`` lists schema violations (empty without
    a schema).
    """

    value: Any
    repairs: tuple[str, ...] = ()
    errors: tuple[FieldError, ...] = ()

    @property
    def valid(self) -> bool:
        """No schema violation."""
        return not self.errors


def _schema_text(schema: Mapping[str, Any] | bool | str | None) -> str | None:
    if schema is None or isinstance(schema, str):
        return schema
    return json.dumps(schema, ensure_ascii=False)


def _result(text: str, extra_repairs: tuple[str, ...] = ()) -> GuardResult:
    raw = json.loads(text)
    repairs = tuple(raw["repairs"]) + tuple(r for r in extra_repairs if r not in raw["repairs"])
    errors = tuple(FieldError(e["path"], e["message"]) for e in raw.get("errors", ()))
    return GuardResult(raw["value"], repairs, errors)


def repair_json(text: str, schema: Mapping[str, Any] | bool | str | None = None) -> GuardResult:
    """Reads the JSON in ``text`` (an object or array, or any valid JSON),
    repairing what LLMs get wrong, and validates it against ``schema`` (a
    JSON schema as a dict or as text) when one is given.

    Valid JSON is read by Python's ``json.loads`` and never changes value.
    Raises :class:`~fast_crewai.UnreadableJSONError` when nothing can be
    read and :class:`~fast_crewai.InvalidSchemaError` for a bad schema.
    """
    if not isinstance(text, str):
        raise ToolGuardError(f"expected the text as str, got {type(text).__name__}")
    schema_text = _schema_text(schema)
    try:
        value = json.loads(text)
    except ValueError:  # JSONDecodeError, or an integer longer than Python reads
        pass
    else:
        if schema_text is None:
            return GuardResult(value)
        # The core reads valid JSON to the same value, except the few texts
        # Python reads and the core refuses or changes (lone surrogates,
        # nesting beyond 256 levels): those are validated here.
        try:
            checked = _result(guard_backend().repair(text, schema_text))
            if not checked.repairs:
                return GuardResult(value, (), checked.errors)
        except UnreadableJSONError:
            pass
        try:
            errors = Schema(schema_text).validate(value)
        except RecursionError:
            raise InvalidSchemaError("the schema recurses deeper than Python's stack allows") from None
        return GuardResult(value, (), tuple(FieldError(p, m) for p, m in errors))
    return read_unparsed(text, schema_text)


def read_unparsed(text: str, schema_text: str | None = None) -> GuardResult:
    """:func:`repair_json` for a text ``json.loads`` already refused."""
    extra: tuple[str, ...] = ()
    if _SURROGATE.search(text) is not None:
        text = _SURROGATE.sub("\ufffd", text)
        extra = ("lone-surrogate",)
    return _result(guard_backend().repair(text, schema_text), extra)


def canonical_json(value: Any) -> str:
    """The canonical text of a JSON value: keys sorted at every level, no
    insignificant whitespace (what the core's ``canonicalize`` writes for
    the same value). Raises :class:`~fast_crewai.ToolGuardError` for a
    value JSON cannot hold."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ToolGuardError(f"not a JSON value: {exc}") from None


def canonical_text(text: str) -> str:
    """Reads ``text`` as :func:`repair_json` does and returns the canonical
    text of its value."""
    try:
        return canonical_json(json.loads(text))
    except (ValueError, ToolGuardError):
        pass
    return guard_backend().canonicalize(_SURROGATE.sub("\ufffd", text))
