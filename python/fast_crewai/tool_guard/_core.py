"""``tool-guard`` served by the core."""

from __future__ import annotations

from .._errors import InvalidSchemaError, ToolGuardError, UnreadableJSONError
from ..runtime import backend as _backend
from ._contract import INTERFACE
from ._reference import check_text

_ERRORS: dict[str, type[ToolGuardError]] = {
    "unreadable": UnreadableJSONError,
    "invalid-schema": InvalidSchemaError,
}


class WasmGuard:
    """The same contract, served by the core's ``tool-guard``: one crossing
    per call, the result as one JSON text."""

    def _call(self, name: str, text: str, *schema: str | None) -> str:
        from ..runtime._wasm import error_of, field

        try:
            result = _backend.runtime().stateless().call(INTERFACE, name, text, *schema)
        except UnicodeEncodeError:
            # A str holding a lone surrogate cannot cross as UTF-8: the text
            # is refused first, as the reference does; else it was the schema.
            check_text(text)
            raise InvalidSchemaError("the schema is not strict JSON") from None
        err = error_of(result)
        if err is not None:
            problem = err.payload
            raise _ERRORS[err.tag](field(problem, "message"), field(problem, "position"))
        assert isinstance(result, str)
        return result

    def repair(self, text: str, schema: str | None) -> str:
        return self._call("repair", text, schema)

    def canonicalize(self, text: str) -> str:
        return self._call("canonicalize", text)
