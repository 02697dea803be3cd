"""Hosting the core: loading, caching, isolation, traps, threads, fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import fast_crewai
from fast_crewai import AgentMessage, CoreOutOfMemory, CoreTimeout, CoreTrap, CoreUnavailable
from fast_crewai.message_serde._core import WasmSerde
from fast_crewai.runtime import _wasm
from fast_crewai.runtime import backend as _backend
from fast_crewai.runtime._wasm import Runtime, error_of

SERDE = "fast-crewai:core/message-serde@0.1.0"
SQLITE = "fast-crewai:core/sqlite-store@0.1.0"
PYTHON = sys.executable
SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": SRC, **env}
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


def big_batch(count: int) -> str:
    message = AgentMessage(id="1", sender="a", recipient="b", content="x" * 200, timestamp=1.0)
    return "[" + ",".join([message.to_json()] * count) + "]"


def test_core_info_describes_the_loaded_core() -> None:
    _backend.override("wasm")
    try:
        info = fast_crewai.core_info()
    finally:
        _backend.override(None)
    assert info["backend"] == "wasm"
    assert Path(info["artifact"]).name == "core.wasm"
    assert len(info["artifact_sha256"]) == 64
    assert info["wasmtime_version"].startswith("50.")
    assert isinstance(info["compile_cache_hit"], bool)
    assert info["load_ms"] > 0


def test_compile_cache_is_written_then_hit(tmp_path: Path) -> None:
    os.environ["FAST_CREWAI_CACHE_DIR"] = str(tmp_path)
    try:
        first = Runtime()
        second = Runtime()
    finally:
        del os.environ["FAST_CREWAI_CACHE_DIR"]
    assert first.cache_hit is False
    assert second.cache_hit is True
    assert first.cache_path == second.cache_path
    assert first.cache_path is not None and first.cache_path.parent == tmp_path / "fast-crewai"


def test_the_cache_keeps_the_most_recently_used_cores(tmp_path: Path) -> None:
    cache = tmp_path / "fast-crewai"
    cache.mkdir()
    # Older cores' entries, as earlier versions left them, oldest first.
    old = [cache / f"core-old{i}.cwasm" for i in range(6)]
    for i, path in enumerate(old):
        path.write_bytes(b"x")
        path.with_suffix(".sha256").write_text("x")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    os.environ["FAST_CREWAI_CACHE_DIR"] = str(tmp_path)
    try:
        written = Runtime().cache_path
    finally:
        del os.environ["FAST_CREWAI_CACHE_DIR"]
    assert written is not None
    kept = sorted(p.name for p in cache.glob("core-*.cwasm"))
    assert kept == sorted([written.name] + [p.name for p in old[-(_wasm.CACHE_KEPT - 1) :]])
    assert sorted(p.stem for p in cache.glob("*.sha256")) == sorted(Path(name).stem for name in kept)


def test_a_corrupted_cache_entry_is_recompiled_not_loaded(tmp_path: Path) -> None:
    os.environ["FAST_CREWAI_CACHE_DIR"] = str(tmp_path)
    try:
        cached = Runtime().cache_path
        assert cached is not None
        cached.write_bytes(b"\0" * 64)
        again = Runtime()
    finally:
        del os.environ["FAST_CREWAI_CACHE_DIR"]
    assert again.cache_hit is False
    assert again.stateless().call(SERDE, "canonicalize-many", "[]") == "[]"


def test_works_without_a_writable_cache(tmp_path: Path) -> None:
    # A cache directory below a regular file cannot be created, even by root.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = run_python(
        "from fast_crewai import AgentMessage\n"
        "from fast_crewai.runtime import backend as _backend\n"
        "r = _backend.runtime()\n"
        "m = AgentMessage(id='1', sender='a', recipient='b', content='c', timestamp=1.0)\n"
        "assert AgentMessage.from_json(m.to_json()) == m\n"
        "print(r.cache_hit, r.cache_path)",
        FAST_CREWAI_CACHE_DIR=str(blocker / "cache"),
        FAST_CREWAI_BACKEND="wasm",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False None"


def test_a_trap_is_typed_and_the_next_call_gets_a_fresh_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    instance = _backend.runtime().stateless()
    generation = instance.generation
    monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "0.001")
    with pytest.raises(CoreTimeout) as info:
        instance.call(SERDE, "canonicalize-many", big_batch(20_000))
    assert isinstance(info.value, CoreTrap)
    assert info.value.__cause__ is not None
    monkeypatch.delenv("FAST_CREWAI_CALL_TIMEOUT")
    assert instance.generation == generation + 1
    assert instance.call(SERDE, "canonicalize-many", "[]") == "[]"


def test_memory_cap_turns_runaway_allocation_into_a_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAST_CREWAI_MEMORY_LIMIT_MB", "40")
    runtime = Runtime()
    instance = runtime.stateless()
    with pytest.raises(CoreOutOfMemory) as info:
        instance.call(SERDE, "canonicalize-many", big_batch(100_000))
    # What ran out, where, and the limit: not wasmtime's bare "error while executing".
    message = str(info.value)
    assert message.startswith(f"the core ran out of memory in {SERDE}#canonicalize-many: ")
    assert "the limit of 40 MiB (FAST_CREWAI_MEMORY_LIMIT_MB" in message
    monkeypatch.delenv("FAST_CREWAI_MEMORY_LIMIT_MB")
    assert instance.call(SERDE, "canonicalize-many", "[]") == "[]"


def test_no_ambient_authority_over_the_filesystem(tmp_path: Path) -> None:
    secret = tmp_path / "secret.db"
    secret.write_bytes(b"")
    instance = _backend.runtime().stateless()
    for path in (str(secret), "/etc/hostname", "/data/x.db", "x.db"):
        opened = instance.call(SQLITE, "[static]connection.open", path, "read-only")
        err = error_of(opened)
        assert err is not None, path
        assert err.tag in ("not-found", "other"), (path, err.tag)


def test_a_granted_directory_is_the_only_one_reachable(tmp_path: Path) -> None:
    granted = tmp_path / "granted"
    granted.mkdir()
    (tmp_path / "outside.db").write_bytes(b"")
    runtime = _backend.runtime()
    instance = runtime.lease(granted)
    try:
        inside = instance.call(SQLITE, "[static]connection.open", "/data/new.db", "create")
        assert error_of(inside) is None
        assert (granted / "new.db").exists()
        escaped = instance.call(SQLITE, "[static]connection.open", "/data/../outside.db", "read-write")
        assert error_of(escaped) is not None
    finally:
        runtime.release(instance)


def test_a_directory_made_again_at_the_same_path_gets_its_own_instance(tmp_path: Path) -> None:
    runtime = _backend.runtime()
    directory = tmp_path / "again"
    directory.mkdir()
    first = runtime.lease(directory)
    try:
        directory.rename(tmp_path / "moved")
        directory.mkdir()
        second = runtime.lease(directory)
        try:
            assert second is not first
            opened = second.call(SQLITE, "[static]connection.open", "/data/new.db", "create")
            assert error_of(opened) is None
            assert (directory / "new.db").exists() and not (tmp_path / "moved" / "new.db").exists()
        finally:
            runtime.release(second)
    finally:
        runtime.release(first)


def test_calls_from_many_threads_are_safe() -> None:
    serde = WasmSerde()
    batch = big_batch(50)
    expected = serde.canonicalize_many(batch)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                results.append(serde.canonicalize_many(batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 160
    assert all(r == expected for r in results)


def test_auto_falls_back_to_python_with_one_warning(tmp_path: Path) -> None:
    code = (
        "import warnings, json\n"
        "from fast_crewai import AgentMessage, core_info\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(3):\n"
        "        m = AgentMessage(id='1', sender='a', recipient='b', content='c', timestamp=1.0)\n"
        "        assert AgentMessage.from_json(m.to_json()) == m\n"
        "print(json.dumps({'warnings': [str(w.message) for w in caught], 'backend': core_info()['backend']}))\n"
    )
    result = run_python(code, FAST_CREWAI_BACKEND="auto", FAST_CREWAI_CORE_PATH=str(tmp_path / "missing.wasm"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "python"
    assert len(report["warnings"]) == 1
    assert "could not load" in report["warnings"][0] and "missing.wasm" in report["warnings"][0]


def test_wasm_backend_requested_but_unavailable_raises(tmp_path: Path) -> None:
    code = (
        "from fast_crewai import AgentMessage, CoreUnavailable\n"
        "try:\n"
        "    AgentMessage.from_json('{}')\n"
        "except CoreUnavailable as e:\n"
        "    print('unavailable:', e)\n"
    )
    result = run_python(code, FAST_CREWAI_BACKEND="wasm", FAST_CREWAI_CORE_PATH=str(tmp_path / "missing.wasm"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("unavailable:")


def test_unknown_backend_name_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAST_CREWAI_BACKEND", "fortran")
    with pytest.raises(fast_crewai.FastCrewAIError, match="FAST_CREWAI_BACKEND"):
        _backend.active()


def test_a_missing_core_raises_core_unavailable_under_the_root_error(tmp_path: Path) -> None:
    with pytest.raises(fast_crewai.FastCrewAIError) as caught:
        Runtime(tmp_path / "missing.wasm")
    assert type(caught.value) is CoreUnavailable
    assert "missing.wasm" in str(caught.value)


def test_trap_classes_are_core_traps() -> None:
    assert issubclass(CoreTimeout, CoreTrap)
    assert issubclass(CoreOutOfMemory, CoreTrap)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FAST_CREWAI_CALL_TIMEOUT", "inf"),
        ("FAST_CREWAI_CALL_TIMEOUT", "nan"),
        ("FAST_CREWAI_CALL_TIMEOUT", "-1"),
        ("FAST_CREWAI_CALL_TIMEOUT", "1e300"),
        ("FAST_CREWAI_CALL_TIMEOUT", "soon"),
        ("FAST_CREWAI_MEMORY_LIMIT_MB", "0"),
        ("FAST_CREWAI_MEMORY_LIMIT_MB", "5000"),
        ("FAST_CREWAI_MEMORY_LIMIT_MB", "lots"),
    ],
)
def test_an_unusable_setting_fails_at_load_naming_the_variable(variable: str, value: str) -> None:
    code = (
        "import fast_crewai\n"
        "from fast_crewai.runtime import backend\n"
        "try:\n"
        "    backend.runtime()\n"
        "except fast_crewai.ConfigurationError as exc:\n"
        "    print('refused:', exc)\n"
    )
    result = run_python(code, **{variable: value, "FAST_CREWAI_BACKEND": "wasm"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"refused: {variable}="), result.stdout


def test_an_empty_setting_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from fast_crewai.runtime import settings

    monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "  ")
    assert settings.call_timeout() == 300.0
    monkeypatch.setenv("FAST_CREWAI_CALL_TIMEOUT", "2.5")
    assert settings.call_timeout() == 2.5


def test_a_failed_call_returns_a_typed_error() -> None:
    result = _backend.runtime().stateless().call("fast-crewai:core/tool-guard@0.1.0", "repair", "no json here")
    err = error_of(result)
    assert err is not None and err.tag == "unreadable"
    assert err.payload.message == "no JSON object or array found"


def test_each_call_gets_its_own_arguments_whatever_the_last_call_left_lowered(tmp_path: Path) -> None:
    """An export keeps a handle or a short string lowered between calls with
    the same object; any other argument, None included, is lowered anew, and
    a replaced instance starts from nothing."""
    from fast_crewai.memory_search._core import WasmMemoryIndex

    _backend.runtime()
    index = WasmMemoryIndex(tmp_path / "args.db")
    try:
        items = [
            {"id": f"r{i}", "content": "x", "scope": scope, "created_at": "t", "created_ts": 0.0}
            for i, scope in enumerate(["/a", "/a/b", "/c"])
        ]
        index.save(json.dumps(items))
        scope = "/a"
        expected = {None: 3, "/a": 2, "/c": 1, "/none": 0}
        for prefix in [None, scope, scope, None, "/c", None, "/c", "/none", scope]:
            assert index.count(prefix) == expected[prefix]
        long_prefix = "/a" + "/x" * 5000  # past what a slot keeps
        for _ in range(2):
            assert index.count(long_prefix) == 0
            assert index.count(scope) == 2
        index._instance.discard()
        assert index.count(scope) == 2 and index.count(None) == 3
    finally:
        index.close()
