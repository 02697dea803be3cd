"""What the fault tests share: checking a database with stdlib sqlite3,
running a worker process, as root in a mount namespace of its own when it
mounts what it needs (read-only media, a small disk to fill), and running
work in a child made by ``os.fork()``."""

from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import fast_crewai

#: What a worker needs on its path: the package, and this directory (for
#: :mod:`full_disk`).
WORKER_PATH = os.pathsep.join([str(Path(fast_crewai.__file__).resolve().parent.parent), str(Path(__file__).parent)])
AS_ROOT = os.geteuid() == 0


def integrity(database: Path) -> list[tuple[str]]:
    """``PRAGMA integrity_check`` as stdlib sqlite3 sees the file."""
    conn = sqlite3.connect(database)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def in_own_mount_namespace(command: list[str], to_do: str) -> list[str]:
    """``command`` in a mount namespace of its own (``unshare --mount``),
    where it may mount what it needs without the rest of the machine
    seeing it; ``to_do`` says what for, if this is impossible. Mounting
    takes root: the tests that need it fail, clearly, without it."""
    if not AS_ROOT:
        pytest.fail(f"this test must run as root to {to_do} in a mount namespace of its own (unshare --mount)")
    if shutil.which("unshare") is None:
        pytest.fail(f"as root this test needs unshare(1) to {to_do}")
    return ["unshare", "--mount", "--propagation", "private", *command]


def run_worker(command: list[str]) -> Any:
    """Runs a worker to its end; returns the JSON it printed."""
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": WORKER_PATH}, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def in_forked_child(work: Callable[[], Any], timeout: float = 120.0) -> tuple[Any, list[str]]:
    """Runs ``work()`` in a child made by ``os.fork()`` (multiprocessing's
    'fork' start method, as Celery or a ``multiprocessing.Pool`` on Linux
    would) and returns what it returned, with the fast-crewai warnings it
    raised. Fails the test when the child raises, dies, or does not answer
    within ``timeout`` seconds (a hang: the child is killed, the suite goes
    on)."""
    fork = multiprocessing.get_context("fork")
    receiver, sender = fork.Pipe(duplex=False)

    def run() -> None:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = work()
            warned = [str(w.message) for w in caught if str(w.message).startswith("fast-crewai")]
            sender.send(("ok", result, warned))
        except BaseException:
            sender.send(("error", traceback.format_exc(), []))

    child = fork.Process(target=run, daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            pytest.fail(f"the forked child did not answer within {timeout:g}s: it hangs")
        outcome, value, warned = receiver.recv()
    except EOFError:
        pytest.fail("the forked child died without answering")
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()
        receiver.close()
    assert outcome == "ok", value
    assert child.exitcode == 0, child.exitcode
    return value, warned


#: The process-wide locks the fork hooks give a child afresh (module, then
#: attribute path): one held by another thread at a fork would otherwise
#: stay held in the child, by no thread, for good.
FORK_RESET_LOCKS = (
    ("fast_crewai.runtime.backend", "_lock"),
    ("fast_crewai.runtime.patches", "_lock"),
    ("fast_crewai.runtime.reaper", "_start_lock"),
    ("fast_crewai.runtime.reaper", "_running_lock"),
    ("fast_crewai.memory_search._open", "_shared_lock"),
    ("fast_crewai.memory_search._storage", "_reopen_lock"),
    ("fast_crewai.sqlite_store._task_outputs", "_connections_lock"),
    ("fast_crewai.tasks._pool", "_pool_lock"),
    ("fast_crewai.tasks._locks", "_locks_guard"),
    ("fast_crewai.tasks._flow_state", "_lock"),
    ("fast_crewai.tasks._loop_executor", "_lock"),
    ("fast_crewai.tasks._invocations", "_busy_lock"),
    ("fast_crewai.tool_guard._schema_cache", "_lock"),
    ("crewai.events.event_bus", "CrewAIEventsBus._instance_lock"),
    ("crewai.events.event_bus", "crewai_event_bus._futures_lock"),
)


@contextlib.contextmanager
def fork_reset_locks_held() -> Iterator[None]:
    """Another thread holds every lock of :data:`FORK_RESET_LOCKS` while
    the block runs, as a thread busy in fast-crewai or CrewAI may hold one
    when another thread forks."""
    locks = []
    for module, path in FORK_RESET_LOCKS:
        target: Any = importlib.import_module(module)
        for name in path.split("."):
            target = getattr(target, name)
        locks.append(target)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with contextlib.ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            holding.set()
            done.wait(300)

    holder = threading.Thread(target=hold, name="holds-module-locks", daemon=True)
    holder.start()
    try:
        assert holding.wait(30), "could not take the module locks"
        yield
    finally:
        done.set()
        holder.join(30)
