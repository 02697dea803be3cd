"""Hosting the core component. The only module that imports ``wasmtime``.

One :class:`Runtime` per process holds the Engine and the compiled
component. Each :class:`Instance` is one instantiation with its own Store,
used by one thread at a time. An instance gets WASI with no ambient
authority: no environment, no arguments, no stdio, and at most one
preopened directory. A trap discards the instance; the next call
instantiates afresh and resources reopen themselves.

After ``os.fork()`` the child cannot use a core its parent loaded (see
:mod:`.forks`): a Runtime made before the fork, and every instance and
resource of it, refuses calls in the child and is forgotten when closed
there; and no new Runtime can be made in the child.
"""

from __future__ import annotations

import contextlib
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
from wasmtime.component._enter import maybe_raise_last_exn
from wasmtime.component._types import ResultType

from .._errors import CoreOutOfMemory, CoreTimeout, CoreTrap, CoreUnavailable
from . import forks
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


def _c_function(name: str, restype: Any, *argtypes: Any) -> Any:
    """A ctypes handle on a function of wasmtime's C API with our own
    argument types (``dll[name]`` is a new object each time, so
    wasmtime-py's own handle on the same function is left as it is).
    Called directly, without the Python wrapper wasmtime-py puts around
    each, which costs a frame per call."""
    function = ffi.dll[name]
    function.restype = restype
    function.argtypes = argtypes
    return function


_Val = ffi.wasmtime_component_val_t
_VAL_P = ctypes.POINTER(_Val)
_RESOURCE_P = ctypes.POINTER(ffi.wasmtime_component_resource_any_t)
_func_call = _c_function(
    "wasmtime_component_func_call",
    ctypes.POINTER(ffi.wasmtime_error_t),
    ctypes.POINTER(ffi.wasmtime_component_func_t),
    ctypes.POINTER(ffi.wasmtime_context_t),
    _VAL_P,
    ctypes.c_size_t,
    _VAL_P,
    ctypes.c_size_t,
)
# wasm_byte_vec_new copies the bytes in one call; wasmtime-py lowers a
# string through an uninitialised vector, a ctypes array and a memmove.
_byte_vec_new = _c_function(
    "wasm_byte_vec_new", None, ctypes.POINTER(ffi.wasm_byte_vec_t), ctypes.c_size_t, ctypes.c_char_p
)
_val_delete = _c_function("wasmtime_component_val_delete", None, _VAL_P)
_resource_clone = _c_function("wasmtime_component_resource_any_clone", _RESOURCE_P, _RESOURCE_P)
_set_epoch_deadline = _c_function(
    "wasmtime_context_set_epoch_deadline", None, ctypes.POINTER(ffi.wasmtime_context_t), ctypes.c_uint64
)
_KIND_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
_KIND_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_KIND_RESOURCE = ffi.WASMTIME_COMPONENT_RESOURCE.value
_KIND_U32 = ffi.WASMTIME_COMPONENT_U32.value
_KIND_U64 = ffi.WASMTIME_COMPONENT_U64.value
_KIND_F64 = ffi.WASMTIME_COMPONENT_F64.value
# Parameter kinds lowered here without wasmtime-py's generic code, and the
# Python types each accepts.
_FAST_PARAMS: dict[type, tuple[int, tuple[type, ...]]] = {
    wc.String: (_KIND_STRING, (str,)),
    wc.BorrowType: (_KIND_RESOURCE, (wc.ResourceAny,)),
    wc.U32: (_KIND_U32, (int,)),
    wc.U64: (_KIND_U64, (int,)),
    wc.F64: (_KIND_F64, (float,)),
}
# Strings up to this size stay lowered in their slot between calls.
_KEPT_STRING_BYTES = 4096
# What an argument slot keeps when it keeps nothing (None is an argument).
_NOTHING = object()
# Ok payloads lifted here; others go through wasmtime-py.
_FAST_OK: dict[type, int] = {wc.String: _KIND_STRING, wc.U32: _KIND_U32, wc.U64: _KIND_U64, wc.Bool: _KIND_BOOL}


class _Export:
    """A function export with its types looked up once, not per call, and
    the common kinds (strings, numbers, borrowed handles in; ``result``
    of a string or number out) lowered and lifted with direct calls into
    wasmtime's C API; every other kind goes through wasmtime-py's own
    conversions. Not thread-safe: its argument array is reused, and the
    instance's lock serialises calls."""

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
        self._fast_params = [_FAST_PARAMS.get(type(ty)) for ty in self.param_types]
        ok = self.result_cases[0] if self.result_cases is not None else None
        self._fast_ok = _FAST_OK.get(type(ok)) if ok is not None else None
        self._count = len(self.param_types)
        self._params = (_Val * max(1, self._count))()
        # Per argument slot, the handle or short string whose lowering the
        # slot still holds: a call with the same object (a resource's own
        # handle, the same SQL text) leaves it there instead of lowering it
        # again. Freed by release().
        self._kept: list[Any] = [_NOTHING] * self._count
        self._func_ref = ctypes.byref(func._func)
        # The store's context lives as long as the store, which outlives
        # this export (an instance drops its exports with its store).
        self._context = store._context()

    def set_deadline(self, ticks: int) -> None:
        """Interrupts the next call after ``ticks`` epoch ticks."""
        _set_epoch_deadline(self._context, ticks)

    def __call__(self, store: wasmtime.Store, *params: Any, as_bytes: bool = False) -> Any:
        """Calls the export; with ``as_bytes`` a string result comes back as
        its UTF-8 bytes, undecoded."""
        count = self._count
        if len(params) != count:
            raise TypeError(f"expected {count} arguments, got {len(params)}")
        raw = self._params
        kept = self._kept
        # Slots lowered for this call only, freed after it.
        temporary: list[int] = []
        value: Any
        try:
            for i, (fast, ty, value) in enumerate(zip(self._fast_params, self.param_types, params, strict=True)):
                if value is kept[i]:
                    continue
                slot = raw[i]
                if kept[i] is not _NOTHING:
                    self._free(i)
                if fast is None:
                    ty.convert_to_c(store, value, ctypes.pointer(slot))
                    temporary.append(i)
                    continue
                kind, accepted = fast
                # (Through a variable: an isinstance narrowing would type the value as object.)
                acceptable = isinstance(value, accepted)
                if not acceptable:
                    raise TypeError(f"expected {accepted[0].__name__} for argument {i}, got {value!r}")
                if kind == _KIND_STRING:
                    data = value.encode("utf-8")
                    _byte_vec_new(ctypes.byref(slot.of.string), len(data), data)
                    if len(data) <= _KEPT_STRING_BYTES:
                        kept[i] = value
                    else:
                        temporary.append(i)
                elif kind == _KIND_RESOURCE:
                    slot.of.resource = _resource_clone(value.ptr())
                    kept[i] = value
                else:
                    if kind == _KIND_U32:
                        slot.of.u32 = value
                    elif kind == _KIND_U64:
                        slot.of.u64 = value
                    else:
                        slot.of.f64 = value
                    temporary.append(i)
                slot.kind = kind
            # Calling stores the results over the array's old contents, which
            # it frees first: it must start out holding nothing.
            result = _Val()
            result_type = self.result_type
            has_result = result_type is not None
            error = _func_call(
                self._func_ref,
                self._context,
                raw,
                count,
                ctypes.byref(result) if has_result else None,
                1 if has_result else 0,
            )
            if error:
                raise _wasmtime_error(error)
            if self.result_cases is not None:
                return self._lift_result(result, as_bytes)
            return result_type.convert_from_c(result) if result_type is not None else None
        finally:
            for i in temporary:
                _val_delete(ctypes.byref(raw[i]))
                raw[i].kind = _KIND_BOOL

    def _free(self, i: int) -> None:
        _val_delete(ctypes.byref(self._params[i]))
        self._params[i].kind = _KIND_BOOL
        self._kept[i] = _NOTHING

    def release(self) -> None:
        """Frees what the argument slots still hold."""
        for i, held in enumerate(self._kept):
            if held is not _NOTHING:
                self._free(i)

    def _lift_result(self, raw: Any, as_bytes: bool) -> Any:
        assert self.result_cases is not None
        outcome = raw.of.result
        is_ok = bool(outcome.is_ok)
        fast = self._fast_ok
        if is_ok and fast is not None:
            payload = outcome.val.contents
            if fast == _KIND_STRING:
                text = payload.of.string
                value: Any = ctypes.string_at(text.data, text.size)
                if not as_bytes:
                    value = value.decode("utf-8")
            elif fast == _KIND_U32:
                value = payload.of.u32
            elif fast == _KIND_U64:
                value = payload.of.u64
            else:
                value = bool(payload.of.boolean)
            _val_delete(ctypes.byref(raw))
            return value
        case_type = self.result_cases[0 if is_ok else 1]
        value = None
        if case_type is not None:
            payload = outcome.val
            value = case_type.convert_from_c(payload.contents)
            # Ownership of the payload's contents moved to `value`: what is
            # left to free holds nothing.
            payload.contents.kind = _KIND_BOOL
            payload.contents.of.boolean = False
        _val_delete(ctypes.byref(raw))
        if is_ok:
            return value
        return ErrorValue(value.tag, value.payload) if isinstance(value, wc.Variant) else ErrorValue("error", value)


def _wasmtime_error(pointer: Any) -> Exception:
    """The exception for a failed call, as wasmtime-py's ``enter_wasm``
    raises it (a Python exception a host function raised comes first)."""
    error = wasmtime.WasmtimeError._from_ptr(pointer)
    try:
        maybe_raise_last_exn()
    except Exception as raised:
        return raised
    return error


class Instance:
    """One instantiation of the core, optionally granted one directory."""

    def __init__(self, runtime: Runtime, grant: Path | None, key: Any = None) -> None:
        self.runtime = runtime
        # The fork generation of the process its runtime belongs to.
        self._born = runtime.born
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
        self._exports: dict[tuple[str, str], _Export] = {}

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
        export = self._exports.get((interface, name))
        if export is None:
            store, instance = self._ensure()
            func = instance.get_func(store, self.runtime.export_index(interface, name))
            if func is None:
                raise CoreUnavailable(f"the core does not export {interface}#{name}")
            export = self._exports[interface, name] = _Export(func, store)
        return export

    def inherited(self) -> bool:
        """Whether this instance is its parent's, this process being a
        fork of the one that made it (cheap: called per call)."""
        return self._born != forks.generation

    def check_owned(self) -> None:
        """Raises :class:`~fast_crewai.OpenedBeforeFork` in a forked child."""
        if self._born != forks.generation:
            raise forks.opened_before_fork("the store or connection of this core instance")

    def discard(self) -> None:
        """Drops the instance; the next call instantiates a fresh one."""
        store = self._store
        self._store = None
        self._instance = None
        for export in self._exports.values():
            export.release()
        self._exports = {}
        self.generation += 1
        if store is not None:
            # Now, not when the collector gets to it: the Store owns the
            # preopened directory's file descriptor and the linear memory.
            store.close()

    def close(self) -> None:
        """Frees the Store (memory and file descriptors) now. In a forked
        child, an instance of the parent is only forgotten, without its
        lock (a parent thread may have held it at the fork)."""
        if self.inherited():
            forks.keep(self._store, self._instance, self._exports)
            self._store = None
            self._instance = None
            self._exports = {}
            return
        with self.lock:
            self.discard()

    def call(self, interface: str, name: str, *args: Any, as_bytes: bool = False) -> Any:
        """Calls ``interface#name``; a trap discards the instance and raises
        :class:`CoreTrap` (or :class:`CoreTimeout`). With ``as_bytes`` a
        string result is its UTF-8 bytes (for a parser that reads bytes:
        decoding it here, for the parser to encode it again, costs both
        ways)."""
        self.check_owned()
        with self.lock:
            export = self._export(interface, name)
            store = self._store
            assert store is not None
            self.runtime.start_ticker()
            export.set_deadline(max(1, int(call_timeout() / EPOCH_TICK_SECONDS)))
            try:
                return export(store, *args, as_bytes=as_bytes)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                self.discard()
                raise _trap_error(f"{interface}#{name}", str(exc)) from exc

    def drop_resource(self, handle: Any, generation: int) -> None:
        """Frees a resource handle if it belongs to the live instance."""
        if self.inherited():
            return
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
        self._methods: dict[str, str] = {}

    def _live_handle(self) -> Any:
        if self._closed:
            raise ValueError(f"{self.resource} is closed")
        if self._handle is None or self._generation != self.instance.generation:
            generation = self.instance.generation
            self._handle = self._opener(self.instance)
            self._generation = generation
        return self._handle

    def call(self, method: str, *args: Any, as_bytes: bool = False) -> Any:
        name = self._methods.get(method)
        if name is None:
            name = self._methods[method] = f"[method]{self.resource}.{method}"
        instance = self.instance
        # Before its lock, which a thread of the parent may have held at a fork.
        instance.check_owned()
        with instance.lock:
            handle = self._live_handle()
            return instance.call(self.interface, name, handle, *args, as_bytes=as_bytes)

    def reopen(self) -> None:
        """Drops the handle; the next call opens the resource again."""
        if self.instance.inherited():
            self._handle = None
            return
        with self.instance.lock:
            if self._handle is not None:
                self.instance.drop_resource(self._handle, self._generation)
            self._handle = None

    def close(self) -> None:
        self.reopen()
        self._closed = True


#: Compiled cores kept in the cache: one per core version and wasmtime
#: version a user runs (several environments share the directory); the
#: least recently used beyond these are deleted when a new one is written.
CACHE_KEPT = 4


def _prune_cache(directory: Path) -> None:
    entries = []
    for path in directory.glob("core-*.cwasm"):
        with contextlib.suppress(OSError):
            entries.append((path.stat().st_mtime, path))
    entries.sort(reverse=True)
    for _, path in entries[CACHE_KEPT:]:
        for stale in (path, path.with_suffix(".sha256")):
            with contextlib.suppress(OSError):
                stale.unlink()


# The fork generation in which this process (or the parent it was forked
# from) made its first Runtime: wasmtime's I/O runtime may have started then.
_started_in: int | None = None


class Runtime:
    """The process-wide Engine, compiled component and instances."""

    def __init__(self, artifact: Path | None = None) -> None:
        global _started_in
        if _started_in is not None and _started_in != forks.generation:
            raise CoreUnavailable(forks.CORE_STARTED_IN_PARENT)
        _started_in = self.born = forks.generation
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
                component = wc.Component.deserialize(self.engine, compiled)
                # Marks it used, for _prune_cache.
                with contextlib.suppress(OSError):
                    os.utime(path)
                return component, True, path
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
            _prune_cache(path.parent)
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
        self._check_owned()
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
        self._check_owned()
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
        """Gives back a lease; the last one closes the instance (in a forked
        child, forgets the parent's instance without the table's lock)."""
        if instance.inherited():
            instance.close()
            return
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
        self._check_owned()
        instance: Instance | None = getattr(self._local, "stateless", None)
        if instance is None:
            instance = self._local.stateless = Instance(self, None)
        return instance

    def _check_owned(self) -> None:
        # Before the lock, which a thread of the parent may have held at a fork.
        if self.born != forks.generation:
            raise CoreUnavailable(forks.CORE_STARTED_IN_PARENT)

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
