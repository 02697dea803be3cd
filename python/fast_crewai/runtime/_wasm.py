"""Hosting the core component. The only module that imports ``wasmtime``.

One :class:`Runtime` per process holds the Engine and the compiled
component. Each :class:`Instance` is one instantiation with its own Store,
used by one thread at a time. An instance gets WASI with no ambient
authority: no environment, no arguments, no stdio, and at most one
preopened directory. A trap discards the instance; the next call
instantiates afresh and resources reopen themselves.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc
from wasmtime import _ffi as ffi
from wasmtime.component._enter import enter_wasm
from wasmtime.component._types import ResultType

from .._errors import CoreOutOfMemory, CoreTimeout, CoreTrap, CoreUnavailable
from .settings import cache_dir, call_timeout, memory_limit_bytes

# The component ships at the package root, beside the public modules.
ARTIFACT = Path(__file__).resolve().parent.parent / "core.wasm"
PACKAGE = "fast-crewai:core"
VERSION = "0.1.0"
GUEST_ROOT = "/data"
EPOCH_TICK_SECONDS = 0.01
WASMTIME_VERSION = metadata.version("wasmtime")
# Part of the compile-cache key: compiled code depends on the engine config.
ENGINE_CONFIG_TAG = "epoch1-simd1-relaxed1"


class ErrorValue:
    """A ``result``'s error case: the variant tag and its payload."""

    __slots__ = ("payload", "tag")

    def __init__(self, tag: str, payload: Any) -> None:
        self.tag = tag
        self.payload = payload


def error_of(value: Any) -> ErrorValue | None:
    """The error case of a ``result<T, error>`` value, or None on success."""
    return value if isinstance(value, ErrorValue) else None


def field(record: Any, name: str) -> Any:
    """A field of a WIT record value (kebab-case names become snake_case)."""
    return getattr(record, name.replace("-", "_"))


class _Export:
    """A function export with its types looked up once, not per call."""

    def __init__(self, func: wc.Func, store: wasmtime.Store) -> None:
        self.func = func
        fty = func.type(store)
        self.param_types = [ty for _, ty in fty.params]
        self.result_type = fty.result
        # Every export returns result<T, error>; lifting it through
        # wasmtime-py's generic variant code re-reads the types per call
        # (~25 us), so its two cases are resolved once here.
        self.result_cases = (
            (self.result_type.ok, self.result_type.err) if isinstance(self.result_type, ResultType) else None
        )

    def __call__(self, store: wasmtime.Store, *params: Any) -> Any:
        # wasmtime-py's Func.__call__ re-reads the function type on every call
        # (~17 us); this is the same lowering with the types cached.
        count = len(params)
        if count != len(self.param_types):
            raise TypeError(f"expected {len(self.param_types)} arguments, got {count}")
        raw_params = (ffi.wasmtime_component_val_t * count)()
        lowered = 0
        try:
            for ty, value in zip(self.param_types, params, strict=False):
                ty.convert_to_c(store, value, ctypes.pointer(raw_params[lowered]))
                lowered += 1
            result = ffi.wasmtime_component_val_t()
            has_result = self.result_type is not None

            def run() -> Any:
                return ffi.wasmtime_component_func_call(
                    ctypes.byref(self.func._func),
                    store._context(),
                    raw_params,
                    count,
                    ctypes.byref(result) if has_result else None,
                    1 if has_result else 0,
                )

            enter_wasm(run)
            if self.result_cases is not None:
                return self._lift_result(result)
            return self.result_type.convert_from_c(result) if self.result_type is not None else None
        finally:
            for i in range(lowered):
                ffi.wasmtime_component_val_delete(ctypes.byref(raw_params[i]))

    def _lift_result(self, raw: Any) -> Any:
        assert self.result_cases is not None
        is_ok = bool(raw.of.result.is_ok)
        case_type = self.result_cases[0 if is_ok else 1]
        value = None
        if case_type is not None:
            payload = raw.of.result.val
            value = case_type.convert_from_c(payload.contents)
            # Ownership of the payload's contents moved to `value`; free the box only.
            payload.contents.kind = ffi.WASMTIME_COMPONENT_BOOL
            payload.contents.of.boolean = False
            ffi.wasmtime_component_val_delete(payload)
        if is_ok:
            return value
        return ErrorValue(value.tag, value.payload) if isinstance(value, wc.Variant) else ErrorValue("error", value)


class Instance:
    """One instantiation of the core, optionally granted one directory."""

    def __init__(self, runtime: Runtime, grant: Path | None, key: Any = None) -> None:
        self.runtime = runtime
        self.grant = grant
        self.key = key
        # How many stores and connections hold this instance (see
        # Runtime.lease); the last release closes it and its preopen.
        self.leases = 0
        self.lock = threading.RLock()
        # Bumped whenever the instance is replaced; resources compare it to
        # know they must reopen.
        self.generation = 0
        self._store: wasmtime.Store | None = None
        self._instance: wc.Instance | None = None
        self._exports: dict[str, _Export] = {}

    def _ensure(self) -> tuple[wasmtime.Store, wc.Instance]:
        if self._store is None or self._instance is None:
            store = wasmtime.Store(self.runtime.engine)
            wasi = wasmtime.WasiConfig()
            if self.grant is not None:
                wasi.preopen_dir(str(self.grant), GUEST_ROOT)
            store.set_wasi(wasi)
            store.set_limits(memory_size=memory_limit_bytes())
            store.set_epoch_deadline(1 << 62)
            self._instance = self.runtime.linker.instantiate(store, self.runtime.component)
            self._store = store
            self._exports = {}
        return self._store, self._instance

    def _export(self, interface: str, name: str) -> _Export:
        key = f"{interface}#{name}"
        export = self._exports.get(key)
        if export is None:
            store, instance = self._ensure()
            func = instance.get_func(store, self.runtime.export_index(interface, name))
            if func is None:
                raise CoreUnavailable(f"the core does not export {interface}#{name}")
            export = self._exports[key] = _Export(func, store)
        return export

    def discard(self) -> None:
        """Drops the instance; the next call instantiates a fresh one."""
        store = self._store
        self._store = None
        self._instance = None
        self._exports = {}
        self.generation += 1
        if store is not None:
            # Now, not when the collector gets to it: the Store owns the
            # preopened directory's file descriptor and the linear memory.
            store.close()

    def close(self) -> None:
        """Frees the Store (memory and file descriptors) now."""
        with self.lock:
            self.discard()

    def call(self, interface: str, name: str, *args: Any) -> Any:
        """Calls ``interface#name``; a trap discards the instance and raises
        :class:`CoreTrap` (or :class:`CoreTimeout`)."""
        with self.lock:
            export = self._export(interface, name)
            store = self._store
            assert store is not None
            self.runtime.start_ticker()
            store.set_epoch_deadline(max(1, int(call_timeout() / EPOCH_TICK_SECONDS)))
            try:
                return export(store, *args)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                self.discard()
                raise _trap_error(f"{interface}#{name}", str(exc)) from exc

    def drop_resource(self, handle: Any, generation: int) -> None:
        """Frees a resource handle if it belongs to the live instance."""
        with self.lock:
            if generation == self.generation and self._store is not None:
                try:
                    handle.drop(self._store)
                except (wasmtime.Trap, wasmtime.WasmtimeError):
                    self.discard()


def _trap_error(where: str, text: str) -> CoreTrap:
    """The exception for a trap, saying what happened: wasmtime's own text
    starts with "error while executing at wasm backtrace:"."""
    if "interrupt" in text:
        return CoreTimeout(f"{where} ran longer than {call_timeout():g}s and was interrupted")
    # An allocation the capped linear memory could not grow for ends in
    # Rust's out-of-memory handler, which the backtrace names.
    if "rust_oom" in text or "handle_alloc_error" in text:
        return CoreOutOfMemory(
            f"the core ran out of memory in {where}: an allocation would have grown its linear memory past "
            f"the limit of {memory_limit_bytes() // (1024 * 1024)} MiB (FAST_CREWAI_MEMORY_LIMIT_MB; wasm32 "
            "allows at most 4096)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = lines[-1] if lines else "no detail"
    return CoreTrap(f"the core trapped in {where}: {cause}")


class Resource:
    """A WIT resource owned by one instance, reopened after a trap.

    ``opener`` performs the resource's constructor call on an instance and
    returns the handle (raising on failure); it is called again whenever the
    instance has been replaced since the handle was made.
    """

    def __init__(self, instance: Instance, interface: str, resource: str, opener: Callable[[Instance], Any]) -> None:
        self.instance = instance
        self.interface = interface
        self.resource = resource
        self._opener = opener
        self._handle: Any = None
        self._generation = -1
        self._closed = False

    def _live_handle(self) -> Any:
        if self._closed:
            raise ValueError(f"{self.resource} is closed")
        if self._handle is None or self._generation != self.instance.generation:
            generation = self.instance.generation
            self._handle = self._opener(self.instance)
            self._generation = generation
        return self._handle

    def call(self, method: str, *args: Any) -> Any:
        with self.instance.lock:
            handle = self._live_handle()
            return self.instance.call(self.interface, f"[method]{self.resource}.{method}", handle, *args)

    def close(self) -> None:
        with self.instance.lock:
            if self._handle is not None:
                self.instance.drop_resource(self._handle, self._generation)
            self._handle = None
            self._closed = True


class Runtime:
    """The process-wide Engine, compiled component and instances."""

    def __init__(self, artifact: Path | None = None) -> None:
        started = time.perf_counter()
        artifact = artifact or Path(os.environ.get("FAST_CREWAI_CORE_PATH") or ARTIFACT)
        if not artifact.exists():
            raise CoreUnavailable(f"the core artifact {artifact} is missing; run `python3 build.py build`")
        wasm = artifact.read_bytes()
        self.artifact = artifact
        self.sha256 = hashlib.sha256(wasm).hexdigest()
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.wasm_simd = True
        # The int8 scan's dot product; used only where every relaxed
        # semantics agrees, so results do not depend on the host CPU.
        config.wasm_relaxed_simd = True
        self.engine = wasmtime.Engine(config)
        self.component, self.cache_hit, self.cache_path = self._load_component(wasm)
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        self._indices: dict[str, Any] = {}
        self._instances: dict[Any, Instance] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        # Instantiate once so that a broken artifact fails here, at load.
        self.stateless().call(f"{PACKAGE}/message-serde@{VERSION}", "canonicalize-many", "[]")
        self.load_ms = (time.perf_counter() - started) * 1000

    def _load_component(self, wasm: bytes) -> tuple[wc.Component, bool, Path | None]:
        key = f"{WASMTIME_VERSION}-{platform.machine()}-{ENGINE_CONFIG_TAG}-{self.sha256[:32]}"
        path = cache_dir() / f"core-{key}.cwasm"
        digest_path = path.with_suffix(".sha256")
        try:
            compiled = path.read_bytes()
            # Deserialising runs native code: only bytes we wrote ourselves.
            if hashlib.sha256(compiled).hexdigest() == digest_path.read_text().strip():
                return wc.Component.deserialize(self.engine, compiled), True, path
        except (OSError, wasmtime.WasmtimeError):
            pass
        component = wc.Component(self.engine, wasm)
        try:
            compiled = bytes(component.serialize())
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(compiled)
            os.replace(tmp, path)
            digest_path.write_text(hashlib.sha256(compiled).hexdigest())
        except OSError:
            # A read-only or missing cache directory only costs compile time.
            return component, False, None
        return component, False, path

    def export_index(self, interface: str, name: str) -> Any:
        key = f"{interface}#{name}"
        index = self._indices.get(key)
        if index is None:
            iface = self.component.get_export_index(interface)
            index = self.component.get_export_index(name, iface) if iface is not None else None
            if index is None:
                raise CoreUnavailable(f"the core does not export {key}")
            self._indices[key] = index
        return index

    def start_ticker(self) -> None:
        if self._ticker is not None:
            return
        with self._lock:
            if self._ticker is None:
                engine = self.engine

                def tick() -> None:
                    while True:
                        time.sleep(EPOCH_TICK_SECONDS)
                        engine.increment_epoch()

                self._ticker = threading.Thread(target=tick, name="fast-crewai-epoch", daemon=True)
                self._ticker.start()

    def private(self, directory: Path) -> Instance:
        """A new instance of its own whose only preopen is ``directory``
        (resolved): nothing another caller does, a trap included, reaches
        it (about 2 ms and 0.5 MiB each). The caller closes it
        (:meth:`Instance.close`). Raises ``FileNotFoundError`` when the
        directory does not exist."""
        directory = directory.resolve()
        directory.stat()
        return Instance(self, directory)

    def lease(self, directory: Path) -> Instance:
        """The instance whose only preopen is ``directory`` (resolved),
        shared by every store and connection in that directory; pair each
        lease with :meth:`release`. A directory removed and made again at
        the same path is another directory (keyed by device and inode), so
        it never gets an instance whose preopen points at the old one.
        Raises ``FileNotFoundError`` when the directory does not exist."""
        directory = directory.resolve()
        stat = directory.stat()
        key = (directory, stat.st_dev, stat.st_ino)
        with self._lock:
            instance = self._instances.get(key)
            if instance is None:
                instance = self._instances[key] = Instance(self, directory, key)
            instance.leases += 1
            return instance

    def release(self, instance: Instance) -> None:
        """Gives back a lease; the last one closes the instance."""
        with self._lock:
            instance.leases -= 1
            if instance.leases > 0 or self._instances.get(instance.key) is not instance:
                return
            del self._instances[instance.key]
        instance.close()

    def leased(self) -> int:
        """How many directory instances are open (for tests and status)."""
        with self._lock:
            return len(self._instances)

    def stateless(self) -> Instance:
        """The calling thread's own instance with no directory, for pure
        computations (serde, tool guard). Never entered by two threads, so
        threads run the core in parallel (the GIL is released while wasm
        runs) instead of queueing on one instance's lock. An instance costs
        ~0.3 ms to make and ~0.2 MB, and goes away with its thread."""
        instance: Instance | None = getattr(self._local, "stateless", None)
        if instance is None:
            instance = self._local.stateless = Instance(self, None)
        return instance

    def info(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact),
            "artifact_sha256": self.sha256,
            "wasmtime_version": WASMTIME_VERSION,
            "compile_cache_hit": self.cache_hit,
            "compile_cache_path": str(self.cache_path) if self.cache_path else None,
            "load_ms": round(self.load_ms, 2),
        }


def guest_path(grant: Path, host_path: Path) -> str:
    """The guest path of ``host_path`` inside ``grant``, both resolved."""
    relative = host_path.relative_to(grant)
    return f"{GUEST_ROOT}/{relative.as_posix()}" if relative.parts else GUEST_ROOT
