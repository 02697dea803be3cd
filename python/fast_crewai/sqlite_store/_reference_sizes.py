"""The sizes of the core's JSON documents, for the reference: it binds and
reads values natively, yet must refuse exactly what the core refuses (a
parameter document or a result past 127 MiB, a value past 64 MiB).

A cheap upper bound is computed first; the exact size (the core's encoding
byte for byte) only when the bound is past the limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._errors import TooLargeError
from ..message_serde._contract import MAX_DOCUMENT_BYTES
from ._contract import (
    MAX_VALUE_BYTES,
    ExecuteResult,
    Params,
    parameters_too_large,
    result_too_large,
    to_wire,
    value_too_large,
)

# Every byte below 0x20 is escaped: as \uXXXX, or in two bytes for these.
_SHORT_ESCAPES = b"\n\r\t\b\f"
_NOT_CONTROL = bytes(range(0x20, 0x100))
# The most a JSON scalar other than text or a blob takes ("-1.2345678901234567e-308").
_SCALAR_BOUND = 24


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _values(params: Params) -> Iterable[Any]:
    return params.values() if isinstance(params, Mapping) else params


def check_parameters(param_sets: Sequence[Params], many: bool) -> None:
    """Refuses what the core's codec would: the JSON document past its
    limit first, then each text or blob past ``MAX_VALUE_BYTES`` in order."""
    bound = 2
    largest = 0
    for params in param_sets:
        bound += 3
        if isinstance(params, Mapping):
            bound += sum(6 * len(key) + 4 for key in params)
        for value in _values(params):
            kind = type(value)
            if kind is str:
                bound += 6 * len(value) + 3
                largest = max(largest, 4 * len(value))
            elif kind is bytes:
                bound += 2 * len(value) + 16
                largest = max(largest, len(value))
            else:
                bound += _SCALAR_BOUND + 1
    if bound > MAX_DOCUMENT_BYTES:
        size = _utf8_size(to_wire(param_sets if many else param_sets[0], many))
        if size > MAX_DOCUMENT_BYTES:
            raise TooLargeError(parameters_too_large(size, many))
    if largest > MAX_VALUE_BYTES:
        for params in param_sets:
            for value in _values(params):
                size = _utf8_size(value) if type(value) is str else len(value) if type(value) is bytes else 0
                if size > MAX_VALUE_BYTES:
                    raise TooLargeError(value_too_large(size))


def _float_size(value: float) -> int:
    """The length of Rust's ``{:e}`` of a finite double: the shortest
    round-trip digits, as ``repr`` finds them, as ``d.ddde<exp>``."""
    if value == 0.0:
        return 4 if math.copysign(1.0, value) < 0 else 3
    text = repr(abs(value))
    mantissa, _, exponent_text = text.partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    digits = mantissa.replace(".", "")
    point = mantissa.index(".") if "." in mantissa else len(mantissa)
    significant = digits.lstrip("0")
    exponent += point - 1 - (len(digits) - len(significant))
    significant = significant.rstrip("0")
    return (value < 0) + len(significant) + (len(significant) > 1) + 1 + len(str(exponent))


def _text_size(text: str) -> int:
    """The length of the core's JSON string for ``text``."""
    raw = text.encode("utf-8")
    controls = raw.translate(None, _NOT_CONTROL)
    short = sum(controls.count(byte) for byte in _SHORT_ESCAPES)
    return len(raw) + 2 + raw.count(b'"') + raw.count(b"\\") + 5 * len(controls) - 4 * short


def _value_size(value: Any) -> int:
    if value is None:
        return 4
    if type(value) is int:
        return len(str(value))
    if type(value) is float:
        if math.isinf(value):
            return len('{"$real":"inf"}') + (value < 0)
        return _float_size(value)
    if type(value) is str:
        return _text_size(value)
    return len('{"$blob":""}') + 4 * math.ceil(len(value) / 3)


def document_size(result: ExecuteResult) -> int:
    """The length of the core's result document for ``result``."""
    size = len('{"columns":[],"rows":[],"changes":,"last-insert-rowid":}')
    size += len(str(result.changes)) + len(str(result.last_insert_rowid))
    size += sum(_text_size(name) for name in result.columns) + max(len(result.columns) - 1, 0)
    size += max(len(result.rows) - 1, 0) + len(result.rows) * (2 + max(len(result.columns) - 1, 0))
    return size + sum(_value_size(value) for row in result.rows for value in row)


def check_result(result: ExecuteResult) -> None:
    """Refuses a result whose document the core could not return."""
    bound = 64 + (len(result.columns) + 2) * len(result.rows) + sum(6 * len(name) + 3 for name in result.columns)
    for row in result.rows:
        for value in row:
            if isinstance(value, str):
                bound += 6 * len(value)
            elif isinstance(value, bytes):
                bound += 2 * len(value) + 16
            else:
                bound += _SCALAR_BOUND
    if bound > MAX_DOCUMENT_BYTES and document_size(result) > MAX_DOCUMENT_BYTES:
        raise TooLargeError(result_too_large())
