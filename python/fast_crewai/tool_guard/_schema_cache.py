"""``model_json_schema`` computed once per args-schema class.

CrewAI calls ``tool.args_schema.model_json_schema()`` on every tool call;
pydantic regenerates the schema each time. :func:`install` gives one class
a ``model_json_schema`` that keeps the schema of each ``(class, arguments)``
as JSON text and hands out a fresh copy per call (callers may mutate it).
Only classes that do not define their own ``model_json_schema`` are touched,
and :func:`uninstall_all` restores them.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

from ..runtime import forks

_lock = threading.Lock()
_installed: set[type] = set()
# (class, args, kwargs) -> the schema as JSON text.
_texts: dict[tuple[Any, ...], str] = {}
_MAX_ENTRIES = 4096


def _after_fork_in_child() -> None:
    # The schemas kept stay good; the lock may have been held by a parent thread.
    global _lock
    _lock = threading.Lock()


forks.in_child(_after_fork_in_child)


def _generic() -> Any:
    from pydantic import BaseModel

    return BaseModel.model_json_schema.__func__  # type: ignore[attr-defined]


def _cached_model_json_schema(cls: type, *args: Any, **kwargs: Any) -> dict[str, Any]:
    generic = _generic()
    complete = getattr(cls, "__pydantic_complete__", False)
    try:
        key = (cls, args, tuple(sorted(kwargs.items())))
        text = _texts.get(key) if complete else None
    except TypeError:  # an unhashable argument
        key, text = None, None
    if text is not None:
        cached: dict[str, Any] = json.loads(text)
        return cached
    schema: dict[str, Any] = generic(cls, *args, **kwargs)
    if key is not None and complete and len(_texts) < _MAX_ENTRIES:
        # A schema with a value JSON cannot hold is simply not cached.
        with contextlib.suppress(TypeError, ValueError):
            _texts[key] = json.dumps(schema)
    return schema


_METHOD: Any = classmethod(_cached_model_json_schema)


def install(cls: Any) -> None:
    """Caches ``cls.model_json_schema`` unless the class customises it."""
    if not isinstance(cls, type) or cls in _installed:
        return
    try:
        from pydantic import BaseModel
    except ImportError:
        return
    if not issubclass(cls, BaseModel):
        return
    # A class (or a base) with its own model_json_schema keeps it uncached.
    if getattr(cls.model_json_schema, "__func__", None) not in (_generic(), _cached_model_json_schema):
        return
    with _lock:
        if cls not in _installed and "model_json_schema" not in cls.__dict__:
            cls.model_json_schema = _METHOD  # type: ignore[method-assign]
            _installed.add(cls)


def uninstall_all() -> None:
    """Gives every touched class pydantic's own method back."""
    with _lock:
        for cls in _installed:
            if cls.__dict__.get("model_json_schema") is _METHOD:
                delattr(cls, "model_json_schema")
        _installed.clear()
        _texts.clear()
