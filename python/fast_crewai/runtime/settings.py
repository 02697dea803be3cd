"""The ``FAST_CREWAI_*`` runtime settings, read from the environment.

Each is parsed once per distinct value (tests and long-running services may
change the environment between calls) and checked: a value that cannot be
used raises :class:`~fast_crewai.ConfigurationError` naming the variable,
when the core loads and at every use, never a bare ``ValueError`` or an
overflow deep inside a call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from .._errors import ConfigurationError

#: wasm32's ceiling: a linear memory cannot grow past 4 GiB.
MAX_MEMORY_MB = 4096
#: A call may be given at most a week; beyond that a deadline means nothing,
#: and the epoch count that implements it must stay far inside 64 bits.
MAX_CALL_TIMEOUT = 7 * 24 * 3600.0

_parsed: dict[tuple[str, str], float] = {}


def _number(name: str, default: str, low: float, high: float, unit: str) -> float:
    raw = os.environ.get(name)
    text = default if raw is None or not raw.strip() else raw.strip()
    key = (name, text)
    cached = _parsed.get(key)
    if cached is not None:
        return cached
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low < value <= high):
        raise ConfigurationError(
            f"{name}={raw!r} is not usable: give a number of {unit} greater than {low:g} and at most {high:g}"
        )
    _parsed[key] = value
    return value


def call_timeout() -> float:
    """Seconds one call may run before it is interrupted, on either backend
    (``FAST_CREWAI_CALL_TIMEOUT``, default 300)."""
    return _number("FAST_CREWAI_CALL_TIMEOUT", "300", 0.0, MAX_CALL_TIMEOUT, "seconds")


def memory_limit_bytes() -> int:
    """The cap on one instance's linear memory (``FAST_CREWAI_MEMORY_LIMIT_MB``,
    default 4096: wasm32's ceiling)."""
    return int(_number("FAST_CREWAI_MEMORY_LIMIT_MB", str(MAX_MEMORY_MB), 0.0, MAX_MEMORY_MB, "MiB") * 1024 * 1024)


#: The host pool's default bound (see :mod:`fast_crewai.tasks._pool` for why
#: it does not follow the core count).
DEFAULT_MAX_WORKERS = 32
#: More threads than this is a typo, not a configuration.
MAX_WORKERS_CEILING = 4096


def max_workers() -> int:
    """The bound on the host pool's threads (``FAST_CREWAI_MAX_WORKERS``,
    default 32), a whole number from 1 to 4096."""
    value = _number("FAST_CREWAI_MAX_WORKERS", str(DEFAULT_MAX_WORKERS), 0.0, MAX_WORKERS_CEILING, "threads")
    if value != int(value):
        raise ConfigurationError(
            f"FAST_CREWAI_MAX_WORKERS={os.environ.get('FAST_CREWAI_MAX_WORKERS')!r} is not usable: give a whole number"
        )
    return int(value)


def cache_dir() -> Path:
    """Where the compiled component is cached (``FAST_CREWAI_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/fast-crewai``, else ``~/.cache/fast-crewai``)."""
    base = os.environ.get("FAST_CREWAI_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fast-crewai"


#: Every setting with a value to check, checked together when the core loads.
CHECKED: tuple[Callable[[], object], ...] = (call_timeout, memory_limit_bytes)


def check_all() -> None:
    """Raises :class:`ConfigurationError` for the first unusable setting."""
    for setting in CHECKED:
        setting()
