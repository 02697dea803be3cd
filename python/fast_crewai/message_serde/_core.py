"""``message-serde`` served by the core."""

from __future__ import annotations

from .._errors import SerdeError
from ..runtime import backend as _backend
from ._contract import INTERFACE, require_text


class WasmSerde:
    """The same contract, served by the core's ``message-serde``."""

    def _call(self, name: str, text: str) -> str:
        from ..runtime._wasm import error_of, field

        try:
            result = _backend.runtime().stateless().call(INTERFACE, name, require_text(text))
        except UnicodeEncodeError as exc:
            # A str holding a lone surrogate cannot even cross as UTF-8.
            raise SerdeError("invalid-json", "lone surrogate in string", position=exc.start) from None
        err = error_of(result)
        if err is not None:
            problem = err.payload
            position = field(problem, "position")
            raise SerdeError(err.tag, field(problem, "message"), field(problem, "field") or None, position)
        assert isinstance(result, str)
        return result

    def canonicalize_many(self, text: str) -> str:
        return self._call("canonicalize-many", text)

    def canonicalize_one(self, text: str) -> str:
        return self._call("canonicalize-one", text)
