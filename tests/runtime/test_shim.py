"""The patch registry: enable, disable, switches, missing targets, versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import fast_crewai
from fast_crewai.runtime import patches as _shim
from fast_crewai.runtime.patches import Patch, PatchTargetMissing, rebind

SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Patch]]:
    """An empty registry and state for the test; the real ones come back after."""
    fresh: list[Patch] = []
    monkeypatch.setattr(_shim, "_registry", fresh)
    monkeypatch.setattr(_shim, "_state", _shim._State())
    monkeypatch.setattr(_shim, "_load_builtin_patches", lambda: None)
    monkeypatch.setattr(_shim, "_version_problem", lambda: None)
    for name in list(os.environ):
        if name.startswith("FAST_CREWAI_") and name != "FAST_CREWAI_BACKEND":
            monkeypatch.delenv(name)
    yield fresh
    _shim.disable_acceleration()


@pytest.fixture
def fake_modules() -> Iterator[tuple[types.ModuleType, types.ModuleType]]:
    """``fake_target.helper`` and ``fake_user`` that imported it by name."""

    def helper() -> str:
        return "stock"

    target = types.ModuleType("fake_target")
    target.helper = helper  # type: ignore[attr-defined]
    user = types.ModuleType("fake_user")
    user.helper = helper  # type: ignore[attr-defined]
    sys.modules["fake_target"], sys.modules["fake_user"] = target, user
    yield target, user
    del sys.modules["fake_target"], sys.modules["fake_user"]


def accelerated() -> str:
    return "fast"


def counting_patch(name: str, component: str, calls: list[str]) -> Patch:
    def apply() -> Callable[[], None]:
        calls.append(name)
        return lambda: calls.append(f"undo {name}")

    return Patch(name, component, apply)


def test_rebind_replaces_every_alias_and_disable_restores_them(
    registry: list[Patch], fake_modules: tuple[types.ModuleType, types.ModuleType]
) -> None:
    target, user = fake_modules
    stock = target.helper
    _shim.register(Patch("fake.helper", "tools", lambda: rebind("fake_target", "helper", accelerated)))
    _shim.enable_acceleration()
    assert target.helper is accelerated and user.helper is accelerated
    assert _shim.status()["components"]["tools"]["active"] == ["fake.helper"]
    # A module imported while the patch is on takes the replacement by name;
    # disabling restores it too.
    late = types.ModuleType("fake_late_user")
    late.helper = target.helper  # type: ignore[attr-defined]
    sys.modules["fake_late_user"] = late
    try:
        _shim.disable_acceleration()
        assert target.helper is stock and user.helper is stock and late.helper is stock
    finally:
        del sys.modules["fake_late_user"]
    assert _shim.status()["components"]["tools"]["active"] == []


def test_enable_is_idempotent(registry: list[Patch]) -> None:
    calls: list[str] = []
    _shim.register(counting_patch("p", "memory", calls))
    _shim.enable_acceleration()
    _shim.enable_acceleration()
    assert calls == ["p"]
    _shim.disable_acceleration()
    _shim.disable_acceleration()
    assert calls == ["p", "undo p"]


def test_master_switch_turns_everything_off(registry: list[Patch], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    _shim.register(counting_patch("p", "memory", calls))
    monkeypatch.setenv("FAST_CREWAI_ACCELERATION", "0")
    report = _shim.enable_acceleration()
    assert calls == []
    assert report["acceleration"] is False
    assert all(not c["enabled"] for c in report["components"].values())


@pytest.mark.parametrize("component", _shim.COMPONENTS)
def test_component_switches(registry: list[Patch], monkeypatch: pytest.MonkeyPatch, component: str) -> None:
    calls: list[str] = []
    for name in _shim.COMPONENTS:
        _shim.register(counting_patch(f"{name}.patch", name, calls))
    monkeypatch.setenv(f"FAST_CREWAI_{component.upper()}", "0")
    _shim.enable_acceleration()
    assert sorted(calls) == sorted(f"{n}.patch" for n in _shim.COMPONENTS if n != component)


def test_a_missing_target_is_reported_once_and_others_still_apply(registry: list[Patch]) -> None:
    calls: list[str] = []

    def missing() -> Callable[[], None]:
        raise PatchTargetMissing("crewai.gone.Thing does not exist")

    _shim.register(Patch("gone", "tasks", missing))
    _shim.register(counting_patch("ok", "tasks", calls))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _shim.enable_acceleration()
        _shim.enable_acceleration()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "crewai.gone.Thing" in messages[0]
    report = _shim.status()["components"]["tasks"]
    assert report["missing"] == {"gone": "crewai.gone.Thing does not exist"}
    assert report["active"] == ["ok"]


def test_rebind_of_a_missing_attribute_is_a_missing_target(registry: list[Patch]) -> None:
    with pytest.raises(PatchTargetMissing):
        rebind("json", "no_such_function", accelerated)
    with pytest.raises(PatchTargetMissing):
        rebind("no_such_module_anywhere", "x", accelerated)


def test_an_untested_crewai_version_leaves_stock_behaviour(
    registry: list[Patch], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shim, "_version_problem", lambda: "CrewAI 2.0.1 is outside the tested range")
    calls: list[str] = []
    _shim.register(counting_patch("p", "memory", calls))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = _shim.enable_acceleration()
        _shim.enable_acceleration()
    assert calls == []
    assert report["version_problem"] == "CrewAI 2.0.1 is outside the tested range"
    assert len(caught) == 1


@pytest.mark.parametrize(("version", "ok"), [("1.15.30", True), ("1.15.0", True), ("1.16.0", False), ("1.14.9", False)])
def test_version_range(monkeypatch: pytest.MonkeyPatch, version: str, ok: bool) -> None:
    monkeypatch.setattr(_shim, "crewai_version", lambda: version)
    assert (_shim._version_problem() is None) is ok


def test_status_names_the_backend_of_every_component(registry: list[Patch]) -> None:
    _shim.register(counting_patch("m", "memory", []))
    report = _shim.enable_acceleration()
    assert set(report["components"]) == set(_shim.COMPONENTS)
    assert report["components"]["memory"]["backend"] in {"wasm", "python"}
    assert report["components"]["tools"]["backend"] == "stock"
    assert "memory" in _shim.format_status(report)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": SRC, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


PROBE = (
    "import json\n"
    "from crewai.memory.storage import factory\n"
    "import crewai.utilities.task_output_storage_handler as h\n"
    "print(json.dumps({'memory_factory': factory._factory is not None,"
    " 'task_outputs': h.KickoffTaskOutputsSQLiteStorage.__module__}))\n"
)


def test_importing_the_package_patches_nothing() -> None:
    result = run_python("import fast_crewai\n" + PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "memory_factory": False,
        "task_outputs": "crewai.memory.storage.kickoff_task_outputs_storage",
    }


def test_importing_the_shim_enables_and_disable_restores() -> None:
    code = "import fast_crewai.shim, fast_crewai\n" + PROBE + "fast_crewai.disable_acceleration()\n" + PROBE
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    enabled, disabled = (json.loads(line) for line in result.stdout.splitlines()[-2:])
    assert enabled["memory_factory"] is True
    assert enabled["task_outputs"].startswith("fast_crewai")
    assert disabled == {"memory_factory": False, "task_outputs": "crewai.memory.storage.kickoff_task_outputs_storage"}


def test_the_shim_loads_the_core_at_the_first_store_not_at_import() -> None:
    """``import fast_crewai.shim`` applies the patches without loading the
    core (its import cost); the first store loads it."""
    code = (
        "import sys, tempfile, fast_crewai.shim\n"
        "from fast_crewai import status\n"
        "print('wasmtime' in sys.modules, 'fast_crewai.sqlite_store._wrapper' in sys.modules)\n"
        "from crewai.memory.storage import kickoff_task_outputs_storage as k\n"
        "k.KickoffTaskOutputsSQLiteStorage(tempfile.mkdtemp() + '/outputs.db').load()\n"
        "print('wasmtime' in sys.modules, status()['components']['database']['backend'])\n"
    )
    result = run_python(code, FAST_CREWAI_BACKEND="wasm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["False False", "True wasm"]


def test_the_shim_module_has_the_documented_api() -> None:
    """``fast_crewai.shim.enable_acceleration(verbose=True)``,
    ``disable_acceleration()`` and ``status()``, as the original fast-crewai
    documents them, in a fresh process."""
    code = (
        "import fast_crewai.shim as shim\n"
        "from crewai.memory.storage import factory\n"
        "assert shim.status()['acceleration'] is True\n"
        "shim.disable_acceleration()\n"
        "assert shim.status()['acceleration'] is False\n"
        "assert factory._factory is None, factory._factory\n"
        "shim.enable_acceleration(verbose=True)\n"
        "assert shim.status()['components']['memory']['active'] == ['memory.storage_factory']\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "FAST_CREWAI_DATABASE": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "memory        on      wasm     memory.storage_factory" in done.stdout
    assert "not applied: database.task_outputs: switched off by FAST_CREWAI_DATABASE" in done.stdout


def test_verbose_says_why_a_patch_is_not_applied(registry: list[Patch], capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[str] = []
    _shim.register(counting_patch("quiet.patch", "tasks", calls))
    _shim.register(Patch("gone.patch", "tools", lambda: (_ for _ in ()).throw(PatchTargetMissing("no such thing"))))
    os.environ["FAST_CREWAI_TASKS"] = "0"
    try:
        _shim.enable_acceleration(verbose=True)
    finally:
        del os.environ["FAST_CREWAI_TASKS"]
    out = capsys.readouterr().out
    assert "not applied: quiet.patch: switched off by FAST_CREWAI_TASKS" in out
    assert "not applied: gone.patch: no such thing" in out
    assert calls == []
