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

    def _call(self, name: str, text: str, *schema: str) -> str:
        # Imported here: importing the package must not import wasmtime.
        from ..runtime._wasm import ErrorValue

        try:
            result = _backend.runtime().stateless().call(INTERFACE, name, text, *schema)
        except UnicodeEncodeError:
            # A str holding a lone surrogate cannot cross as UTF-8: the text
            # is refused first, as the reference does; else it was the schema.
            check_text(text)
            raise InvalidSchemaError("the schema is not strict JSON") from None
        if isinstance(result, ErrorValue):
            problem = result.payload
            raise _ERRORS[result.tag](problem.message, problem.position)
        assert isinstance(result, str)
        return result

    def repair(self, text: str, schema: str | None) -> str:
        if schema is None:
            return self._call("repair", text)
        return self._call("repair-with-schema", text, schema)

    def canonicalize(self, text: str) -> str:
        return self._call("canonicalize", text)
