"""Choosing between the WebAssembly core and the pure-Python reference.

``FAST_CREWAI_BACKEND`` is ``auto`` (the default: the core, or Python with
one warning saying why the core could not load), ``wasm`` (the core or an
error) or ``python``.

A process forked after its parent loaded the core cannot use the core (see
:mod:`.forks`): there the core is unavailable, and the reason says why.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import TYPE_CHECKING, Any, Literal

from .._errors import CoreUnavailable, FastCrewAIError
from . import forks, settings

if TYPE_CHECKING:
    from ._wasm import Runtime

BackendName = Literal["wasm", "python"]
CHOICES = ("auto", "wasm", "python")

_lock = threading.Lock()
_runtime: Runtime | None = None
# Set while a thread loads the core: a fork then may catch wasmtime half started.
_loading = False
_load_error: str | None = None
_warned = False
_override: str | None = None


def _after_fork_in_child() -> None:
    global _lock, _runtime, _loading, _load_error, _warned
    _lock = threading.Lock()
    if _runtime is not None or _loading:
        # The parent's Runtime stays reachable from the stores opened with
        # it, which refuse calls here (``forks.generation``).
        _runtime = None
        _loading = False
        _load_error = forks.CORE_STARTED_IN_PARENT
        _warned = False


forks.in_child(_after_fork_in_child)


def requested() -> str:
    """The backend asked for, by override or environment."""
    choice = (_override or os.environ.get("FAST_CREWAI_BACKEND") or "auto").strip().lower()
    if choice not in CHOICES:
        raise FastCrewAIError(f"FAST_CREWAI_BACKEND must be one of {', '.join(CHOICES)}, not {choice!r}")
    return choice


def override(name: str | None) -> None:
    """Forces a backend for this process (``None`` returns to the
    environment's choice). Used by tests and the CLI."""
    global _override
    _override = name


def runtime() -> Runtime:
    """The loaded core, loading it on first use; raises
    :class:`CoreUnavailable` with the reason when it cannot load."""
    global _runtime, _loading, _load_error
    if _runtime is not None:
        return _runtime
    with _lock:
        if _runtime is not None:
            return _runtime
        if _load_error is not None:
            raise CoreUnavailable(_load_error)
        # A bad setting is the user's to fix, not a reason to fall back.
        settings.check_all()
        _loading = True
        try:
            from ._wasm import Runtime

            _runtime = Runtime()
        except CoreUnavailable as exc:
            _load_error = str(exc)
            raise
        except Exception as exc:  # any failure to load means: no core here
            _load_error = f"{type(exc).__name__}: {exc}"
            raise CoreUnavailable(_load_error) from exc
        finally:
            _loading = False
        return _runtime


def active() -> BackendName:
    """The backend that serves calls now."""
    global _warned
    choice = requested()
    if choice == "python":
        return "python"
    try:
        runtime()
        return "wasm"
    except CoreUnavailable as exc:
        if choice == "wasm":
            raise
        if not _warned:
            _warned = True
            warnings.warn(
                f"fast-crewai: the WebAssembly core could not load ({exc}); using the pure-Python backend",
                RuntimeWarning,
                stacklevel=3,
            )
        return "python"


def core_info() -> dict[str, Any]:
    """What serves calls and how the core was loaded."""
    backend = active()
    info: dict[str, Any] = {"backend": backend, "requested": requested()}
    if backend == "wasm":
        info.update(runtime().info())
    else:
        info["load_error"] = _load_error
    return info
