"""A child made by ``os.fork()`` after its parent used the core: new stores
fall back to the Python backend with one warning saying why, handles opened
in the parent refuse calls instead of hanging, and nothing of the parent's
is disturbed. Every child runs with a deadline (``in_forked_child``), so a
regression fails instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from crewai import Task
from crewai.memory.types import MemoryRecord
from process_helpers import fork_reset_locks_held, in_forked_child, integrity

import fast_crewai
from fast_crewai import AgentMessage, CoreUnavailable, OpenedBeforeFork
from fast_crewai.memory_search._storage import AcceleratedMemoryStorage, ReopeningMemoryStorage
from fast_crewai.runtime import _wasm, forks, patches
from fast_crewai.runtime import backend as _backend
from fast_crewai.sqlite_store._task_outputs import KickoffTaskOutputsStorage
from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper

SRC = str(Path(fast_crewai.__file__).resolve().parent.parent)
SERDE = "fast-crewai:core/message-serde@0.1.0"
#: What the reason for the fallback must say.
REASON = ("os.fork()", "wasmtime", "'spawn'", "'forkserver'")


def record(id: str, vector: list[float], scope: str = "/fork") -> MemoryRecord:
    moment = datetime(2026, 1, 1, 12, 0, 0)
    return MemoryRecord(
        id=id,
        content=f"memory {id}",
        scope=scope,
        categories=["fact"],
        metadata={"n": len(id)},
        importance=0.5,
        created_at=moment,
        last_accessed=moment,
        embedding=vector,
        source="tester",
    )


def hit_ids(store: AcceleratedMemoryStorage, vector: list[float]) -> list[str]:
    return [found.id for found, _ in store.search(vector, limit=10)]


@pytest.fixture
def auto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``FAST_CREWAI_BACKEND`` unset (``auto``), with the core loaded here."""
    monkeypatch.delenv("FAST_CREWAI_BACKEND", raising=False)
    _backend.override(None)
    _backend.runtime()
    yield
    _backend.override(None)


def test_a_child_of_a_core_user_opens_new_stores_on_python_with_one_warning(auto: None, tmp_path: Path) -> None:
    parent_db = AcceleratedSQLiteWrapper(tmp_path / "parent.db", backend="wasm")
    parent_db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    parent_db.execute("INSERT INTO t(v) VALUES ('parent')")
    parent_memory = AcceleratedMemoryStorage(tmp_path / "memory", backend="wasm")
    parent_memory.save([record("p1", [1.0, 0.0, 0.0])])

    def child() -> dict[str, Any]:
        with AcceleratedSQLiteWrapper(tmp_path / "child.db") as db:
            db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL)")
            db.executemany("INSERT INTO t(v, n) VALUES (?, ?)", [(f"row {i}", i / 4) for i in range(50)])
            with db.transaction():
                db.execute("UPDATE t SET v = v || '!' WHERE id % 10 = 0")
            rows = db.query("SELECT id, v, n FROM t ORDER BY id")
            db_backend = db.backend
        # A new store on a file of its own, and one on the file the
        # parent's store has open: both get indexes of their own.
        with AcceleratedMemoryStorage(tmp_path / "child-memory") as own:
            own.save([record("c1", [0.0, 1.0, 0.0]), record("c2", [0.0, 0.9, 0.1])])
            own_hits = hit_ids(own, [0.0, 1.0, 0.0])
            memory_backend = own.backend
        with AcceleratedMemoryStorage(tmp_path / "memory") as shared:
            seen_from_parent = hit_ids(shared, [1.0, 0.0, 0.0])
            shared.save([record("c3", [0.0, 0.0, 1.0])])
        return {
            "backends": [db_backend, memory_backend],
            "rows": rows,
            "own_hits": own_hits,
            "seen_from_parent": seen_from_parent,
            "core": fast_crewai.core_info(),
            "status": patches.format_status(fast_crewai.status()),
        }

    result, warned = in_forked_child(child)
    assert result["backends"] == ["python", "python"]
    assert len(warned) == 1, warned
    assert all(part in warned[0] for part in REASON), warned[0]
    assert result["core"]["backend"] == "python"
    assert all(part in result["core"]["load_error"] for part in REASON)
    assert "core unavailable: this process was made by os.fork()" in result["status"]
    assert result["own_hits"] == ["c1", "c2"]
    assert result["seen_from_parent"] == ["p1"]

    # What the child wrote, read back here through the core.
    with AcceleratedSQLiteWrapper(tmp_path / "child.db", backend="wasm") as db:
        assert db.query("SELECT id, v, n FROM t ORDER BY id") == [tuple(row) for row in result["rows"]]
        assert len(result["rows"]) == 50 and result["rows"][9][1] == "row 9!"
    with AcceleratedMemoryStorage(tmp_path / "child-memory", backend="wasm") as own:
        assert own.count() == 2 and hit_ids(own, [0.0, 1.0, 0.0]) == ["c1", "c2"]
    # The parent's own store sees the child's commit to its file.
    assert hit_ids(parent_memory, [0.0, 0.0, 1.0])[0] == "c3"
    assert parent_memory.count() == 2
    assert parent_db.query("SELECT v FROM t") == [("parent",)]
    for database in (tmp_path / "child.db", tmp_path / "parent.db", tmp_path / "memory" / "fast_crewai_memory.db"):
        assert integrity(database) == [("ok",)]
    parent_db.close()
    parent_memory.close()


def test_handles_opened_in_the_parent_refuse_calls_in_the_child(backend: str, tmp_path: Path) -> None:
    db = AcceleratedSQLiteWrapper(tmp_path / "t.db", backend=backend)
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    memory = AcceleratedMemoryStorage(tmp_path / "memory", backend=backend)
    memory.save([record("p1", [1.0, 0.0, 0.0])])
    # A parent thread inside a transaction at the fork: the wrapper's mutex,
    # the file lock's thread lock and (on the core) the instance's lock are
    # held, by a thread the child does not have.
    inside, leave = threading.Event(), threading.Event()

    def hold_a_transaction() -> None:
        with db.transaction():
            db.execute("INSERT INTO t(v) VALUES ('during the fork')")
            inside.set()
            leave.wait(60)

    holder = threading.Thread(target=hold_a_transaction)
    holder.start()
    assert inside.wait(30)

    def child() -> dict[str, Any]:
        refused: dict[str, str] = {}
        calls = {
            "execute": lambda: db.execute("INSERT INTO t(v) VALUES ('child')"),
            "query": lambda: db.query("SELECT count(*) FROM t"),
            "transaction": lambda: db.transaction().__enter__(),
            "memory.search": lambda: memory.search([1.0, 0.0, 0.0], limit=3),
            "memory.save": lambda: memory.save([record("c1", [0.0, 1.0, 0.0])]),
            "memory.count": lambda: memory.count(),
        }
        started = time.monotonic()
        for name, call in calls.items():
            try:
                call()
            except OpenedBeforeFork as exc:
                assert isinstance(exc, CoreUnavailable)
                refused[name] = str(exc)
        # Closing forgets them: no hang, no error, nothing of the parent's touched.
        db.close()
        memory.close()
        return {"refused": refused, "seconds": time.monotonic() - started}

    try:
        result, _ = in_forked_child(child, timeout=60)
    finally:
        leave.set()
        holder.join(30)
    assert sorted(result["refused"]) == [
        "execute",
        "memory.count",
        "memory.save",
        "memory.search",
        "query",
        "transaction",
    ]
    assert result["seconds"] < 5
    assert "t.db was opened before os.fork() in the parent process" in result["refused"]["execute"]
    assert "must be opened again in this process" in result["refused"]["memory.search"]
    # The parent's handles go on working, its transaction committed.
    assert db.query("SELECT v FROM t") == [("during the fork",)]
    db.execute("INSERT INTO t(v) VALUES ('after')")
    assert db.query("SELECT count(*) FROM t") == [(2,)]
    memory.save([record("p2", [0.0, 1.0, 0.0])])
    assert hit_ids(memory, [0.0, 1.0, 0.0])[0] == "p2"
    db.close()
    memory.close()
    assert integrity(tmp_path / "t.db") == [("ok",)]


def test_a_child_opens_its_own_stores_on_files_the_parent_has_open(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tables of open stores (memory indexes by file and backend, the
    task-outputs store's connections) start empty in the child, whose
    stores on the same files get their own; the parent's task-outputs
    store object, which holds no connection itself, goes on working there."""
    monkeypatch.delenv("FAST_CREWAI_BACKEND", raising=False)
    memory = AcceleratedMemoryStorage(tmp_path / "memory", backend=backend)
    memory.save([record("p1", [1.0, 0.0, 0.0])])
    outputs = KickoffTaskOutputsStorage(str(tmp_path / "outputs.db"))
    tasks = [Task(description=f"Task {i}", expected_output=f"Output {i}") for i in range(2)]
    outputs.add(tasks[0], {"raw": "parent"}, 0)

    def child() -> dict[str, Any]:
        _backend.override(None)
        with AcceleratedMemoryStorage(tmp_path / "memory") as again:
            found = hit_ids(again, [1.0, 0.0, 0.0])
            again.save([record("c1", [0.0, 1.0, 0.0])])
        outputs.add(tasks[1], {"raw": "child"}, 1)
        loaded = KickoffTaskOutputsStorage(str(tmp_path / "outputs.db")).load()
        return {"found": found, "outputs": [row["output"]["raw"] for row in loaded]}

    with fork_reset_locks_held():
        result, _ = in_forked_child(child)
    assert result == {"found": ["p1"], "outputs": ["parent", "child"]}
    assert hit_ids(memory, [0.0, 1.0, 0.0])[0] == "c1"
    assert [row["output"]["raw"] for row in outputs.load()] == ["parent", "child"]
    memory.close()
    assert integrity(tmp_path / "outputs.db") == [("ok",)]


def test_the_parents_core_refuses_calls_in_the_child(auto: None, tmp_path: Path) -> None:
    runtime = _backend.runtime()
    stateless = runtime.stateless()
    assert error_free(stateless.call(SERDE, "canonicalize-many", "[]"))
    leased = runtime.lease(tmp_path)

    def child() -> dict[str, str]:
        refused = {}
        for name, call in {
            "stateless.call": lambda: stateless.call(SERDE, "canonicalize-many", "[]"),
            "runtime.stateless": runtime.stateless,
            "runtime.lease": lambda: runtime.lease(tmp_path),
            "a new Runtime": _wasm.Runtime,
        }.items():
            try:
                call()
            except CoreUnavailable as exc:
                refused[name] = f"{type(exc).__name__}: {exc}"
        stateless.close()
        runtime.release(leased)
        # The serde and tool guard choose the backend per call: Python here.
        message = AgentMessage(id="1", sender="a", recipient="b", content="c", timestamp=1.0)
        assert AgentMessage.from_json(message.to_json()) == message
        return refused

    refused, warned = in_forked_child(child)
    assert refused["stateless.call"].startswith("OpenedBeforeFork: ")
    for name in ("runtime.stateless", "runtime.lease", "a new Runtime"):
        assert refused[name].startswith("CoreUnavailable: this process was made by os.fork()"), refused[name]
    assert len(warned) == 1
    # Untouched here.
    assert error_free(stateless.call(SERDE, "canonicalize-many", "[]"))
    runtime.release(leased)


def error_free(value: Any) -> bool:
    return _wasm.error_of(value) is None


def test_wasm_requested_in_a_child_of_a_core_user_raises_core_unavailable(auto: None, tmp_path: Path) -> None:
    def child() -> dict[str, Any]:
        os.environ["FAST_CREWAI_BACKEND"] = "wasm"
        errors = {}
        for name, call in {
            "wrapper": lambda: AcceleratedSQLiteWrapper(tmp_path / "new.db"),
            "memory": lambda: AcceleratedMemoryStorage(tmp_path / "memory"),
            "serde": lambda: AgentMessage.from_json("{}"),
        }.items():
            try:
                call()
            except CoreUnavailable as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
        return {"errors": errors, "status": patches.format_status(fast_crewai.status())}

    result, warned = in_forked_child(child)
    assert warned == []
    assert sorted(result["errors"]) == ["memory", "serde", "wrapper"]
    for text in result["errors"].values():
        assert text.startswith("CoreUnavailable: ") and all(part in text for part in REASON), text
    assert "backend: unavailable" in result["status"]
    assert "core unavailable: this process was made by os.fork()" in result["status"]
    assert not (tmp_path / "new.db").exists()


def test_crewais_memory_store_reopens_in_the_child(auto: None, tmp_path: Path) -> None:
    """The store CrewAI's ``Memory`` holds cannot be opened again by the
    user, so it opens its own index in the child, on this process's backend."""
    store = ReopeningMemoryStorage(tmp_path / "memory")
    assert store.backend == "wasm"
    store.save([record("p1", [1.0, 0.0, 0.0])])

    def child() -> dict[str, Any]:
        found = hit_ids(store, [1.0, 0.0, 0.0])
        store.save([record("c1", [0.0, 1.0, 0.0])])
        result = {"found": found, "count": store.count(), "backend": store.backend}
        store.close()
        return result

    result, warned = in_forked_child(child)
    assert result == {"found": ["p1"], "count": 2, "backend": "python"}
    assert len(warned) == 1
    assert store.backend == "wasm" and hit_ids(store, [0.0, 1.0, 0.0])[0] == "c1"
    store.close()


def test_the_fork_generation_moves_in_the_child_only() -> None:
    here = forks.generation
    (there, _) = in_forked_child(lambda: forks.generation)
    assert there == here + 1 and forks.generation == here


CHILD_OF_A_SHIM_USER = """
import json, multiprocessing, sys, warnings
import fast_crewai.shim
from fast_crewai.runtime import backend

def grandchild(conn):
    from fast_crewai import AcceleratedSQLiteWrapper
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with AcceleratedSQLiteWrapper(sys.argv[1] + "/grandchild.db") as db:
            db.execute("CREATE TABLE t(x)")
            conn.send({"backend": db.backend, "warnings": len(caught)})

def child(conn):
    from fast_crewai import AcceleratedSQLiteWrapper, core_info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with AcceleratedSQLiteWrapper(sys.argv[1] + "/child.db") as db:
            db.execute("CREATE TABLE t(x)")
            db.execute("INSERT INTO t VALUES (42)")
            rows = db.query("SELECT x FROM t")
            used = db.backend
    # This child loaded the core itself: its own children cannot.
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=grandchild, args=(sender,))
    process.start()
    below = receiver.recv() if receiver.poll(60) else "hung"
    process.join(30)
    conn.send({"backend": used, "rows": rows, "warnings": len(caught),
               "core": core_info()["backend"], "grandchild": below})

assert backend._runtime is None and "wasmtime" not in sys.modules
receiver, sender = multiprocessing.Pipe(duplex=False)
process = multiprocessing.get_context("fork").Process(target=child, args=(sender,))
process.start()
print(json.dumps(receiver.recv() if receiver.poll(120) else "hung"))
process.join(30)
"""


def test_a_child_of_a_process_that_never_loaded_the_core_uses_it(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("FAST_CREWAI_BACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD_OF_A_SHIM_USER, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report != "hung"
    assert report["backend"] == "wasm" and report["core"] == "wasm"
    assert report["rows"] == [[42]] and report["warnings"] == 0
    assert report["grandchild"] == {"backend": "python", "warnings": 1}
