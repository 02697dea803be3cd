"""The pure-Python reference of ``tool-guard``: the lenient reader, line for
line the rules of ``core-wasm/src/tool_guard/{read,lenient}.rs``.

Offsets are code points here and bytes in the core; every decision is made
on ASCII characters, so both land on the same character.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .._errors import SerdeError, UnreadableJSONError
from ..message_serde._reference import _py_parse
from ._contract import MAX_DEPTH, MAX_INT_DIGITS
from ._reference_schema import Schema

_WS = frozenset(" \t\n\r")
_DIGITS = frozenset("0123456789")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
_KEY = _WORD | {"-"}
_VALUE_START = _WORD | frozenset("{[\"'-+.")
_MEMBER_START = _KEY | frozenset("\"'")
_HEX = frozenset("0123456789abcdefABCDEF")
_INFO = _WORD - {"$"} | frozenset("+.-")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# (word, value, is Python's spelling)
_WORDS: tuple[tuple[str, Any, bool], ...] = (
    ("true", True, False),
    ("false", False, False),
    ("null", None, False),
    ("True", True, True),
    ("False", False, True),
    ("None", None, True),
)
_SPECIAL = {'"': re.compile(r'["\\\x00-\x1f]'), "'": re.compile(r"['\\\x00-\x1f]")}
_RUN_END = re.compile(r"[,}\]\n\r]|(?<=[ \t])/[/*]")
_DIGIT_RUN = re.compile(r"[0-9]*")
_BRACKET = re.compile(r"[{\[]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# The text ended before a value began.
_MISSING: Any = object()


class _Fail(Exception):
    def __init__(self, message: str, position: int, limit: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.limit = limit


class _Lenient:
    __slots__ = ("n", "pos", "repairs", "text")

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.n = len(text)
        self.pos = pos
        self.repairs: list[str] = []

    def add(self, repair: str) -> None:
        if repair not in self.repairs:
            self.repairs.append(repair)

    def skip(self) -> None:
        t, n = self.text, self.n
        while True:
            p = self.pos
            while p < n and t[p] in _WS:
                p += 1
            if t.startswith("//", p):
                self.add("comment")
                k = t.find("\n", p)
                self.pos = n if k < 0 else k + 1
            elif t.startswith("/*", p):
                self.add("comment")
                k = t.find("*/", p + 2)
                self.pos = n if k < 0 else k + 2
            else:
                self.pos = p
                return

    def value(self, depth: int, member: bool) -> Any:
        if depth > MAX_DEPTH:
            raise _Fail(f"nesting deeper than {MAX_DEPTH} levels", self.pos, True)
        self.skip()
        if self.pos >= self.n:
            return _MISSING
        c = self.text[self.pos]
        if c == "{":
            return self.object(depth)
        if c == "[":
            return self.array(depth)
        if c in "\"'":
            return self.string(c, False)[0]
        if member:
            return self.member_run()
        return self.scalar()

    def ends_before(self, close: str, after_comma: bool) -> bool:
        """Before a member or item: whether the container ends here (the
        input ran out, or its closing character after a trailing comma)."""
        self.skip()
        if self.pos >= self.n:
            self.add("truncated")
            return True
        if self.text[self.pos] == close:
            if after_comma:
                self.add("trailing-comma")
            self.pos += 1
            return True
        return False

    def ends_after(self, close: str, next_starts: frozenset[str], expecting: str) -> bool:
        """After a member or item: whether the container ends here (the
        input ran out, or its closing character); False after a comma, or
        a missing one before what can only start the next."""
        self.skip()
        if self.pos >= self.n:
            self.add("truncated")
            return True
        c = self.text[self.pos]
        if c == ",":
            self.pos += 1
            return False
        if c == close:
            self.pos += 1
            return True
        if c in next_starts:
            self.add("missing-comma")
            return False
        raise _Fail(expecting, self.pos)

    def object(self, depth: int) -> dict[str, Any]:
        t, n = self.text, self.n
        self.pos += 1
        out: dict[str, Any] = {}
        after_comma = False
        while True:
            if self.ends_before("}", after_comma):
                return out
            c = t[self.pos]
            if c in "\"'":
                key, cut = self.string(c, True)
                if cut:
                    return out
            elif c in _KEY:
                start = self.pos
                while self.pos < n and t[self.pos] in _KEY:
                    self.pos += 1
                self.add("unquoted-key")
                key = t[start : self.pos]
            else:
                raise _Fail("expecting a property name", self.pos)
            self.skip()
            if self.pos >= n:
                self.add("truncated")
                return out
            if t[self.pos] != ":":
                raise _Fail("expecting ':' after a property name", self.pos)
            self.pos += 1
            item = self.value(depth + 1, True)
            if item is _MISSING:
                self.add("truncated")
                return out
            out[key] = item
            if self.ends_after("}", _MEMBER_START, "expecting ',' or '}' in an object"):
                return out
            after_comma = True

    def array(self, depth: int) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        after_comma = False
        while True:
            if self.ends_before("]", after_comma):
                return out
            item = self.value(depth + 1, False)
            if item is _MISSING:
                self.add("truncated")
                return out
            out.append(item)
            if self.ends_after("]", _VALUE_START, "expecting ',' or ']' in an array"):
                return out
            after_comma = True

    def closes(self) -> bool:
        t, n = self.text, self.n
        j = self.pos + 1
        while j < n:
            c = t[j]
            if c in "\n\r":
                return True
            if c not in " \t":
                break
            j += 1
        if j >= n:
            return True
        c = t[j]
        if c in ",}]:\"'":
            return True
        return c == "/" and j + 1 < n and t[j + 1] in "/*"

    def string(self, quote: str, key: bool) -> tuple[str, bool]:
        t, n = self.text, self.n
        if quote == "'":
            self.add("single-quotes")
        self.pos += 1
        special = _SPECIAL[quote]
        parts: list[str] = []
        while True:
            m = special.search(t, self.pos)
            if m is None:
                parts.append(t[self.pos :])
                self.pos = n
                self.add("truncated")
                return "".join(parts), True
            parts.append(t[self.pos : m.start()])
            self.pos = m.start()
            c = t[self.pos]
            if c == "\\":
                if self.escape(quote, parts):
                    return "".join(parts), True
            elif c == quote:
                if key or self.closes():
                    self.pos += 1
                    return "".join(parts), False
                self.add("inner-quote")
                parts.append(quote)
                self.pos += 1
            else:
                self.add("escape")
                parts.append(c)
                self.pos += 1

    def escape(self, quote: str, parts: list[str]) -> bool:
        t, n = self.text, self.n
        if self.pos + 1 >= n:
            self.pos += 1
            self.add("truncated")
            return True
        kind = t[self.pos + 1]
        simple = _SIMPLE_ESCAPES.get(kind)
        if kind == "'":
            if quote == '"':
                self.add("escape")
            simple = "'"
        if simple is not None:
            parts.append(simple)
            self.pos += 2
            return False
        digits = 4 if kind == "u" else 2 if kind == "x" else 0
        if digits:
            start = self.pos + 2
            k = 0
            while k < digits and start + k < n and t[start + k] in _HEX:
                k += 1
            if k < digits and start + k == n:
                self.pos = n
                self.add("truncated")
                return True
            if k == digits:
                code = int(t[start : start + digits], 16)
                self.pos = start + digits
                if kind == "x":
                    self.add("escape")
                    parts.append(chr(code))
                else:
                    parts.append(self.unicode(code))
                return False
        # An escape JSON does not know: the backslash is kept as text.
        self.add("escape")
        parts.append("\\")
        self.pos += 1
        return False

    def unicode(self, code: int) -> str:
        t = self.text
        if 0xD800 <= code < 0xDC00 and t.startswith("\\u", self.pos):
            low_text = t[self.pos + 2 : self.pos + 6]
            if len(low_text) == 4 and all(c in _HEX for c in low_text):
                low = int(low_text, 16)
                if 0xDC00 <= low <= 0xDFFF:
                    self.pos += 6
                    return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))
        if 0xD800 <= code <= 0xDFFF:
            self.add("lone-surrogate")
            return "\ufffd"
        return chr(code)

    def scalar(self) -> Any:
        t, n = self.text, self.n
        start = self.pos
        c = t[start]
        if c in "-+." or c in _DIGITS:
            return self.number()
        if c in _WORD:
            while self.pos < n and t[self.pos] in _WORD:
                self.pos += 1
            found, value = self.word(t[start : self.pos], self.pos == n)
            if found:
                return value
        raise _Fail("expecting a value", start)

    def word(self, word: str, at_end: bool) -> tuple[bool, Any]:
        if word == "NaN":
            return True, float("nan")
        if word == "Infinity":
            return True, float("inf")
        for spelling, value, python in _WORDS:
            if spelling == word:
                if python:
                    self.add("python-literal")
                return True, value
        if at_end:
            matches = [(value, python) for spelling, value, python in _WORDS if spelling.startswith(word)]
            if len(matches) == 1:
                value, python = matches[0]
                if python:
                    self.add("python-literal")
                self.add("truncated")
                return True, value
        return False, None

    def digits(self) -> str:
        m = _DIGIT_RUN.match(self.text, self.pos)
        assert m is not None  # the pattern matches the empty string
        self.pos = m.end()
        return m.group()

    def number(self) -> Any:
        t, n = self.text, self.n
        start = self.pos
        negative = t[start] == "-"
        if t[start] in "-+":
            if t[start] == "+":
                self.add("number")
            self.pos += 1
            if t.startswith("Infinity", self.pos) and not (self.pos + 8 < n and t[self.pos + 8] in _WORD):
                self.pos += 8
                return float("-inf") if negative else float("inf")
        int_digits = self.digits()
        frac: str | None = None
        if self.pos < n and t[self.pos] == ".":
            self.pos += 1
            frac = self.digits()
        if not int_digits and not frac:
            if self.pos == n:
                return _MISSING
            raise _Fail("expecting a value", start)
        exponent: str | None = None
        if self.pos < n and t[self.pos] in "eE":
            exp_start = self.pos
            self.pos += 1
            if self.pos < n and t[self.pos] in "+-":
                self.pos += 1
            if self.digits():
                exponent = t[exp_start : self.pos]
            elif self.pos == n:
                self.add("truncated")
            else:
                raise _Fail("expecting a digit in the exponent", self.pos)
        if not int_digits or frac == "" or (len(int_digits) > 1 and int_digits[0] == "0"):
            self.add("number")
        if frac is None and exponent is None:
            significant = int_digits.lstrip("0")
            if len(significant) > MAX_INT_DIGITS:
                raise _Fail(f"integer longer than {MAX_INT_DIGITS} digits", start, True)
            value = int(significant) if significant else 0
            return -value if negative else value
        sign = "-" if negative else ""
        return float(f"{sign}{int_digits or '0'}.{frac or '0'}{exponent or ''}")

    def member_run(self) -> Any:
        t = self.text
        start = self.pos
        m = _RUN_END.search(t, start)
        end = m.start() if m else self.n
        trimmed_end = start + len(t[start:end].rstrip(" \t"))
        if trimmed_end == start:
            raise _Fail("expecting a value", start)
        saved = list(self.repairs)
        try:
            token = self.scalar()
            if token is _MISSING or self.pos == trimmed_end:
                return token
        except _Fail:
            pass
        self.repairs = saved
        self.pos = trimmed_end
        self.add("unquoted-value")
        return t[start:trimmed_end]


def fence(text: str) -> tuple[int, int] | None:
    """The first Markdown fence's content start (when it begins with ``{`` or
    ``[``) and end."""
    opening = text.find("```")
    if opening < 0:
        return None
    n = len(text)
    i = opening + 3
    while i < n and text[i] in _INFO:
        i += 1
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == "\r":
        i += 1
    if i < n and text[i] == "\n":
        i += 1
    closing = text.find("```", i)
    end = n if closing < 0 else closing
    start = i
    while start < end and text[start] in _WS:
        start += 1
    if start < end and text[start] in "{[":
        return start, end
    return None


def _attempt(source: str, start: int, lead: str | None) -> tuple[Any, list[str]]:
    parser = _Lenient(source, start)
    if lead is not None:
        parser.add(lead)
    value = parser.value(0, False)
    parser.skip()
    if parser.pos < len(source):
        parser.add("extract")
    return value, parser.repairs


def read(text: str) -> tuple[Any, list[str]]:
    """The value of ``text`` and the repairs that reading it needed."""
    try:
        return _py_parse(text), []
    except SerdeError:
        pass
    first = 0
    while first < len(text) and text[first] in _WS:
        first += 1
    failure: _Fail | None = None
    if first >= len(text) or text[first] not in "{[":
        fenced = fence(text)
        if fenced is not None:
            start, end = fenced
            try:
                return _attempt(text[:end], start, "fence")
            except _Fail as exc:
                if exc.limit:
                    raise UnreadableJSONError(exc.message, exc.position) from None
                failure = exc
    # After a failure the next candidate starts at or after the point of
    # failure, so the scan stays linear in the text.
    origin = 0
    while (m := _BRACKET.search(text, origin)) is not None:
        start = m.start()
        try:
            return _attempt(text, start, None if start == first else "extract")
        except _Fail as exc:
            if exc.limit:
                raise UnreadableJSONError(exc.message, exc.position) from None
            origin = max(exc.position, start + 1)
            failure = failure or exc
    if failure is not None:
        raise UnreadableJSONError(failure.message, failure.position)
    raise UnreadableJSONError("no JSON object or array found")


def check_text(text: str) -> None:
    """Refuses a text holding a lone surrogate, which cannot cross to the
    core as UTF-8; both backends refuse it the same way."""
    m = _SURROGATE.search(text)
    if m is not None:
        raise UnreadableJSONError("the text holds a lone surrogate", m.start())


def _dumps(value: Any, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)


class PythonGuard:
    """The reference implementation, in pure Python."""

    def repair(self, text: str, schema: str | None) -> str:
        check_text(text)
        compiled = Schema(schema) if schema is not None else None
        value, repairs = read(text)
        result: dict[str, Any] = {"value": value, "repairs": repairs}
        if compiled is not None:
            result["errors"] = [{"path": path, "message": message} for path, message in compiled.validate(value)]
        return _dumps(result)

    def canonicalize(self, text: str) -> str:
        check_text(text)
        return _dumps(read(text)[0], sort_keys=True)
