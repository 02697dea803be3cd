"""The patch registry behind ``import fast_crewai.shim``.

Components register :class:`Patch` objects here. :func:`enable_acceleration`
applies the ones whose component is switched on, :func:`disable_acceleration`
reverts exactly what was applied, and :func:`status` reports both. A target
that is missing, or a CrewAI version outside the tested range, is reported
once as a warning and leaves CrewAI's own behaviour untouched.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import backend as _backend
from . import forks

logger = logging.getLogger("fast_crewai")

COMPONENTS = ("memory", "tools", "tasks", "serialization", "database")
# Components whose patches run on the host alone, never in the core.
HOST_ONLY = frozenset({"tasks"})
# The CrewAI releases the patches are written for and tested against.
TESTED_CREWAI = ((1, 15), (1, 16))


class PatchTargetMissing(Exception):
    """Raised by a patch's ``apply`` when what it patches does not exist."""


@dataclass
class Patch:
    """One reversible change to CrewAI, owned by a component.

    ``apply`` performs the change and returns a callable that undoes it;
    it raises :class:`PatchTargetMissing` when its target is absent.
    """

    name: str
    component: str
    apply: Callable[[], Callable[[], None]]
    description: str = ""


@dataclass
class _State:
    applied: dict[str, Callable[[], None]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)
    version_problem: str | None = None


_registry: list[Patch] = []
_state = _State()
_lock = threading.RLock()


def _after_fork_in_child() -> None:
    # The patches stay applied; the lock may have been held by a parent thread.
    global _lock
    _lock = threading.RLock()


forks.in_child(_after_fork_in_child)


def register(patch: Patch) -> None:
    """Adds a patch to the registry (once per name)."""
    if patch.component not in COMPONENTS:
        raise ValueError(f"unknown component {patch.component!r}")
    with _lock:
        if all(p.name != patch.name for p in _registry):
            _registry.append(patch)


def _flag(name: str, default: bool = True) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def component_enabled(component: str) -> bool:
    """Whether the environment leaves ``component`` switched on."""
    return _flag("FAST_CREWAI_ACCELERATION") and _flag(f"FAST_CREWAI_{component.upper()}")


def _warn_once(key: str, message: str) -> None:
    if key in _state.warned:
        return
    _state.warned.add(key)
    warnings.warn(f"fast-crewai: {message}", RuntimeWarning, stacklevel=4)
    logger.warning(message)


def crewai_version() -> str | None:
    try:
        from importlib import metadata

        return metadata.version("crewai")
    except Exception:
        return None


def _version_problem() -> str | None:
    version = crewai_version()
    if version is None:
        return "CrewAI is not installed; nothing to accelerate"
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return f"cannot read the CrewAI version {version!r}; acceleration stays off"
    low, high = TESTED_CREWAI
    if not low <= (major, minor) < high:
        return (
            f"CrewAI {version} is outside the tested range "
            f">={low[0]}.{low[1]},<{high[0]}.{high[1]}; acceleration stays off and CrewAI runs unchanged"
        )
    return None


#: The modules whose import registers each component's patches.
PATCH_MODULES = (
    "fast_crewai.memory_search._patch",
    "fast_crewai.sqlite_store._patch",
    "fast_crewai.tasks._patch",
    "fast_crewai.tool_guard._patch",
)


def _load_builtin_patches() -> None:
    for module in PATCH_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def enable_acceleration(verbose: bool = False) -> dict[str, Any]:
    """Applies every registered patch whose component is on. Idempotent.

    Returns :func:`status`. With ``verbose`` the status is also printed.
    """
    with _lock:
        apply_enabled()
        report = status()
    if verbose:
        print(format_status(report))
    return report


def apply_enabled() -> None:
    """What :func:`enable_acceleration` does, without building the report:
    the core is not loaded here but by the first store or call that needs
    it, so ``import fast_crewai.shim`` costs no more than its patches."""
    with _lock:
        _load_builtin_patches()
        problem = _version_problem() if _flag("FAST_CREWAI_ACCELERATION") else None
        _state.version_problem = problem
        if problem is not None:
            _warn_once("version", problem)
        else:
            for patch in _registry:
                if patch.name in _state.applied or not component_enabled(patch.component):
                    continue
                try:
                    _state.applied[patch.name] = patch.apply()
                    _state.missing.pop(patch.name, None)
                except PatchTargetMissing as exc:
                    _state.missing[patch.name] = str(exc)
                    _warn_once(
                        f"missing:{patch.name}",
                        f"cannot apply {patch.name}: {exc}; CrewAI's own behaviour is kept for it",
                    )


def disable_acceleration() -> None:
    """Reverts every applied patch, newest first, restoring the originals."""
    with _lock:
        for name in reversed(list(_state.applied)):
            _state.applied.pop(name)()


def status() -> dict[str, Any]:
    """Which patches are active, which targets were missing, which backend
    serves each component."""
    with _lock:
        try:
            backend: str = _backend.active()
            core = _backend.core_info()
        except Exception as exc:  # status must report, never fail
            backend, core = "unavailable", {"error": str(exc)}
        components = {}
        for component in COMPONENTS:
            patches = [p for p in _registry if p.component == component]
            serving = any(p.name in _state.applied for p in patches)
            components[component] = {
                "enabled": component_enabled(component),
                # A component with no applied patch is served by CrewAI itself.
                "backend": ("host" if component in HOST_ONLY else backend) if serving else "stock",
                "active": [p.name for p in patches if p.name in _state.applied],
                "missing": {p.name: _state.missing[p.name] for p in patches if p.name in _state.missing},
                "available": [p.name for p in patches],
            }
        from ..tasks import pool_status

        components["tasks"]["pool"] = pool_status()
        return {
            "acceleration": bool(_state.applied),
            "crewai_version": crewai_version(),
            "version_problem": _state.version_problem,
            "core": core,
            "components": components,
        }


def format_status(report: dict[str, Any]) -> str:
    """A readable table of :func:`status`."""
    core = report["core"]
    lines = [
        f"fast-crewai  backend: {core.get('backend', 'unavailable')}  crewai: {report['crewai_version']}",
    ]
    if core.get("artifact_sha256"):
        lines.append(
            f"core: {core['artifact']} sha256 {core['artifact_sha256'][:16]}  wasmtime {core['wasmtime_version']}"
            f"  load {core['load_ms']} ms  cache {'hit' if core['compile_cache_hit'] else 'miss'}"
        )
    # load_error: the Python backend serves instead; error: none serves
    # (FAST_CREWAI_BACKEND=wasm without the core).
    unavailable = core.get("load_error") or core.get("error")
    if unavailable:
        lines.append(f"core unavailable: {unavailable}")
    if report["version_problem"]:
        lines.append(f"note: {report['version_problem']}")
    lines.append(f"{'component':<14}{'switch':<8}{'backend':<9}patches")
    for name, comp in report["components"].items():
        active = ", ".join(comp["active"]) or ("-" if comp["available"] else "(no patches in this version)")
        missing = "".join(f"  [missing: {p}]" for p in comp["missing"])
        lines.append(f"{name:<14}{'on' if comp['enabled'] else 'off':<8}{comp['backend']:<9}{active}{missing}")
    pool = report["components"]["tasks"].get("pool", {})
    if pool.get("created"):
        lines.append(
            f"task pool: {pool['threads']}/{pool['max_workers']} threads, {pool['busy']} busy, {pool['queued']} queued"
        )
    lines.extend(_reasons(report))
    return "\n".join(lines)


def _reasons(report: dict[str, Any]) -> list[str]:
    """Why each patch that is not applied is not."""
    reasons: list[str] = []
    for name, comp in report["components"].items():
        idle = [p for p in comp["available"] if p not in comp["active"] and p not in comp["missing"]]
        if not idle:
            continue
        if report["version_problem"]:
            why = report["version_problem"]
        elif not comp["enabled"]:
            switch = (
                "FAST_CREWAI_ACCELERATION" if not _flag("FAST_CREWAI_ACCELERATION") else f"FAST_CREWAI_{name.upper()}"
            )
            why = f"switched off by {switch}"
        else:
            why = "not enabled (call enable_acceleration())"
        reasons.extend(f"not applied: {patch}: {why}" for patch in idle)
    for comp in report["components"].values():
        reasons.extend(f"not applied: {patch}: {why}" for patch, why in comp["missing"].items())
    return reasons


def _holders(attribute: str, value: Any) -> list[Any]:
    """The loaded modules (not ours) whose global ``attribute`` is ``value``."""
    found: list[Any] = []
    for module in list(sys.modules.values()):
        if module is None or getattr(module, "__name__", "").startswith("fast_crewai"):
            continue
        try:
            if module.__dict__.get(attribute) is value:
                found.append(module)
        except Exception:  # exotic module objects without a usable __dict__
            continue
    return found


def rebind(module_name: str, attribute: str, replacement: Any) -> Callable[[], None]:
    """Replaces ``module.attribute`` and every alias of the same object that
    other loaded modules imported by name; returns the undo, which restores
    it in every module holding the replacement by then, modules imported
    while it was on included (they imported the replacement by name)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PatchTargetMissing(f"module {module_name} cannot be imported ({exc})") from exc
    if not hasattr(module, attribute):
        raise PatchTargetMissing(f"{module_name}.{attribute} does not exist")
    original = getattr(module, attribute)
    for holder in _holders(attribute, original):
        setattr(holder, attribute, replacement)

    def undo() -> None:
        for holder in _holders(attribute, replacement):
            setattr(holder, attribute, original)

    return undo
