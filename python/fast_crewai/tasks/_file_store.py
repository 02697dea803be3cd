"""CrewAI's file store when it has no store: ``None`` without an event loop.

``crewai.utilities.file_store`` keeps a run's input files in an ``aiocache``
cache when that optional package is installed; without it ``_file_store``
is ``None`` and every one of the module's coroutines returns ``None`` at its
first line (the store, get and clear calls, and ``aget_all_files``, which
merges two of them). Its synchronous wrappers still hand each coroutine to
``_run_sync``, which runs it with ``asyncio.run``: a new event loop, and
inside a running loop (every ``akickoff``) a new thread as well. A task run
makes four or five such calls (``get_all_files`` while preparing the tools
and the prompt, ``clear_task_files``, ``clear_files``) for nothing.

The replacement ``_run_sync`` returns ``None`` at once, closing the
coroutine unstarted, when the store is absent and the coroutine is one of
the module's own; anything else, and everything once a store exists, goes
to CrewAI's ``_run_sync``.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Coroutine
from typing import Any

# The module's coroutine functions, each of which returns None when
# ``_file_store`` is None.
STORELESS_NONE = (
    "astore_files",
    "aget_files",
    "aclear_files",
    "astore_task_files",
    "aget_task_files",
    "aclear_task_files",
    "aget_all_files",
)


def make_run_sync(original: Callable[[Coroutine[Any, Any, Any]], Any], module: types.ModuleType) -> Any:
    """The replacement for ``module._run_sync``; ``module`` is
    ``crewai.utilities.file_store``."""
    codes = frozenset(getattr(module, name).__code__ for name in STORELESS_NONE)

    def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
        if (
            module._file_store is None
            and getattr(coro, "cr_code", None) in codes
            and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
        ):
            coro.close()
            return None
        return original(coro)

    return _run_sync
