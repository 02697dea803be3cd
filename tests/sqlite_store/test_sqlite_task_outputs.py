"""CrewAI's task-outputs store on the wrapper: same behaviour as stock, files
interchangeable both ways, the shim's rebinding, and Crew.replay on it."""

from __future__ import annotations

import datetime
import decimal
import enum
import logging
import sqlite3
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.memory.storage import kickoff_task_outputs_storage as stock_module
from crewai.utilities import task_output_storage_handler
from crewai.utilities.errors import DatabaseOperationError
from pydantic import BaseModel

from fast_crewai.demo.scripted_llm import ScriptedLLM
from fast_crewai.runtime import patches as _shim
from fast_crewai.sqlite_store._task_outputs import FILE_NAME, KickoffTaskOutputsStorage

StockStorage = stock_module.KickoffTaskOutputsSQLiteStorage
assert StockStorage.__module__ == stock_module.__name__, "collected with the shim already applied"


class Colour(enum.Enum):
    RED = "red"


class Finding(BaseModel):
    title: str
    score: float


def make_task(n: int) -> Task:
    return Task(description=f"Research item {n} about {{topic}}", expected_output=f"Facts {n}")


def output(n: int) -> dict[str, Any]:
    """An output dict using every type CrewJSONEncoder handles."""
    return {
        "description": f"task {n}",
        "raw": f"result {n} — “quoted” 😀",
        "pydantic": Finding(title=f"f{n}", score=n / 3),
        "json_dict": {"when": datetime.datetime(2026, 1, 2, 3, 4, 5), "day": datetime.date(2026, 1, 2)},
        "ids": [uuid.UUID(int=n), decimal.Decimal("1.10"), Colour.RED, b"\x00\xff"],
        "agent": "Researcher",
        "output_format": "raw",
        "messages": [],
    }


def exercise(storage: Any, tasks: list[Task]) -> list[list[dict[str, Any]]]:
    """The calls CrewAI makes, and what load() returned after each step."""
    seen = []
    for i, task in enumerate(tasks):
        storage.add(task, output(i), i, inputs={"topic": "otters", "n": i})
    seen.append(storage.load())
    storage.update(1, output={"raw": "replayed", "when": datetime.date(2026, 5, 6)}, was_replayed=True)
    storage.add(tasks[0], output(9), 0, was_replayed=True)  # INSERT OR REPLACE of the same task_id
    storage.update(7, was_replayed=True)  # no such row: a warning, no error
    seen.append(storage.load())
    storage.delete_all()
    seen.append(storage.load())
    return seen


def without_timestamps(loads: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    for records in loads:
        for record in records:
            assert isinstance(record.pop("timestamp"), str)
    return loads


def stdlib_query(path: Path | str, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def schema(path: Path) -> list[tuple[Any, ...]]:
    return stdlib_query(path, "SELECT type, name, sql FROM sqlite_schema ORDER BY name")


def test_behaves_like_stock(backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tasks = [make_task(n) for n in range(3)]
    with caplog.at_level(logging.WARNING):
        expected = without_timestamps(exercise(StockStorage(str(tmp_path / "stock.db")), tasks))
        stock_log = caplog.messages[:]
        caplog.clear()
        got = without_timestamps(exercise(KickoffTaskOutputsStorage(str(tmp_path / "ours.db")), tasks))
    assert got == expected
    assert caplog.messages == stock_log == ["No row found with task_index 7. No update performed."]
    assert schema(tmp_path / "ours.db") == schema(tmp_path / "stock.db")


def test_stored_rows_are_the_same_bytes_as_stock(backend: str, tmp_path: Path) -> None:
    tasks = [make_task(n) for n in range(2)]
    for storage in (StockStorage(str(tmp_path / "s.db")), KickoffTaskOutputsStorage(str(tmp_path / "o.db"))):
        for i, task in enumerate(tasks):
            storage.add(task, output(i), i, was_replayed=bool(i), inputs={"topic": "x"})
    select = "SELECT * FROM latest_kickoff_task_outputs ORDER BY task_index"
    stock_rows, our_rows = stdlib_query(tmp_path / "s.db", select), stdlib_query(tmp_path / "o.db", select)
    assert [row[:-1] for row in our_rows] == [row[:-1] for row in stock_rows]
    assert [type(v) for row in our_rows for v in row] == [type(v) for row in stock_rows for v in row]


def test_files_are_interchangeable_with_stock_both_ways(backend: str, tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    tasks = [make_task(n) for n in range(3)]
    stock = StockStorage(path)
    for i, task in enumerate(tasks[:2]):
        stock.add(task, output(i), i, inputs={"topic": "otters"})
    assert stdlib_query(path, "PRAGMA journal_mode") == [("wal",)]
    ours = KickoffTaskOutputsStorage(path)
    assert ours.load() == stock.load()
    ours.add(tasks[2], output(2), 2)
    ours.update(0, was_replayed=True, output={"raw": "again"})
    assert StockStorage(path).load() == ours.load()
    assert [r["was_replayed"] for r in stock.load()] == [1, 0, 0]
    stock.delete_all()
    assert ours.load() == []
    assert stdlib_query(path, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_a_file_deleted_or_replaced_between_operations_is_picked_up(backend: str, tmp_path: Path, change: str) -> None:
    """The store keeps its connection between operations, but only while
    the path names the same file."""
    path = tmp_path / "outputs.db"
    ours = KickoffTaskOutputsStorage(str(path))
    ours.add(make_task(0), output(0), 0)
    assert len(ours.load()) == 1
    path.unlink()
    if change == "replaced":
        other = StockStorage(str(tmp_path / "other.db"))
        other.add(make_task(1), output(1), 1)
        other.add(make_task(2), output(2), 2)
        (tmp_path / "other.db").rename(path)
    else:
        KickoffTaskOutputsStorage(str(path))  # as CrewAI's next crew makes the table again
    assert [row["task_index"] for row in ours.load()] == ([1, 2] if change == "replaced" else [])
    ours.add(make_task(3), output(3), 3)
    assert stdlib_query(path, "SELECT task_index FROM latest_kickoff_task_outputs ORDER BY task_index") == (
        [(1,), (2,), (3,)] if change == "replaced" else [(3,)]
    )


def test_default_location_is_stocks(backend: str) -> None:
    ours = KickoffTaskOutputsStorage()
    assert ours.db_path == StockStorage().db_path
    assert Path(ours.db_path).name == FILE_NAME


def test_an_old_table_gets_its_task_key_column(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE latest_kickoff_task_outputs (task_id TEXT PRIMARY KEY, expected_output TEXT,"
        " output JSON, task_index INTEGER, inputs JSON, was_replayed BOOLEAN,"
        " timestamp DATETIME DEFAULT CURRENT_TIMESTAMP)"
    )
    conn.close()
    storage = KickoffTaskOutputsStorage(str(path))
    storage.add(make_task(1), {"raw": "r"}, 0)
    assert storage.load()[0]["task_key"] == make_task(1).key


def test_a_handler_on_a_made_table_does_not_queue_for_the_named_lock(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fast_crewai.sqlite_store import _task_outputs

    taken: list[str] = []
    real_lock = _task_outputs.store_lock

    def counting_lock(name: str, **kwargs: Any) -> Any:
        taken.append(name)
        return real_lock(name, **kwargs)

    monkeypatch.setattr(_task_outputs, "store_lock", counting_lock)
    path = str(tmp_path / "outputs.db")
    KickoffTaskOutputsStorage(path)
    assert len(taken) == 1  # the file and table are made under the lock
    second = KickoffTaskOutputsStorage(path)
    assert len(taken) == 1
    second.add(make_task(1), output(1), 1)
    assert len(taken) == 2 and [row["task_index"] for row in second.load()] == [1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.update(0, no_such_column=1), "Error updating task outputs: no such column: no_such_column"),
        (lambda s: s.update(0, **{"task_index = 0; DROP TABLE x; --": 1}), "Error updating task outputs: no such"),
        (lambda s: s.update(0, output=["not", "storable"]), "Error updating task outputs:"),
    ],
)
def test_errors_are_database_operation_errors(backend: str, tmp_path: Path, call: Any, message: str) -> None:
    storage = KickoffTaskOutputsStorage(str(tmp_path / "e.db"))
    with pytest.raises(DatabaseOperationError, match=message.replace("(", r"\(")):
        call(storage)


def test_an_unusable_file_fails_like_stock(backend: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database " * 100)
    with pytest.raises(DatabaseOperationError, match="Database initialization error"):
        KickoffTaskOutputsStorage(str(junk))


# --------------------------------------------------------------------------- the shim and a crew


@pytest.fixture
def database_shim(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the database component on; everything reverted after."""
    for component in _shim.COMPONENTS:
        if component != "database":
            monkeypatch.setenv(f"FAST_CREWAI_{component.upper()}", "0")
    yield
    _shim.disable_acceleration()


def bound(module: types.ModuleType) -> object:
    """What the module's global name for the storage class refers to now."""
    return module.__dict__["KickoffTaskOutputsSQLiteStorage"]


def test_the_shim_rebinds_every_importer_and_reverts(backend: str, database_shim: None) -> None:
    report = _shim.enable_acceleration()
    assert report["components"]["database"]["active"] == ["database.task_outputs"]
    assert bound(stock_module) is KickoffTaskOutputsStorage
    assert bound(task_output_storage_handler) is KickoffTaskOutputsStorage
    assert isinstance(build_crew()[0]._task_output_handler.storage, KickoffTaskOutputsStorage)
    _shim.disable_acceleration()
    assert bound(task_output_storage_handler) is StockStorage
    assert bound(stock_module) is StockStorage


def test_the_switch_keeps_stock(backend: str, database_shim: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAST_CREWAI_DATABASE", "0")
    report = _shim.enable_acceleration()
    assert report["components"]["database"]["active"] == []
    assert bound(task_output_storage_handler) is StockStorage


def build_crew() -> tuple[Crew, list[Task]]:
    llm = ScriptedLLM()
    agent = Agent(role="Researcher", goal="Find facts", backstory="Careful", llm=llm)
    tasks = [
        Task(description=f"Step {i}: describe {{topic}}", expected_output="A sentence", agent=agent) for i in range(3)
    ]
    return Crew(agents=[agent], tasks=tasks), tasks


@pytest.mark.parametrize("kickoff_on", ["ours", "stock"])
def test_crew_replay_on_the_accelerated_store(backend: str, database_shim: None, kickoff_on: str) -> None:
    if kickoff_on == "ours":
        _shim.enable_acceleration()
    crew, tasks = build_crew()
    crew.kickoff(inputs={"topic": "otters"})
    _shim.enable_acceleration()
    replaying, _ = build_crew()
    replaying.tasks = crew.tasks  # replay needs the same task ids
    storage = replaying._task_output_handler.storage
    assert isinstance(storage, KickoffTaskOutputsStorage)
    before = storage.load()
    assert [r["task_index"] for r in before] == [0, 1, 2]
    assert [r["inputs"] for r in before] == [{"topic": "otters"}] * 3
    result = replaying.replay(str(tasks[1].id))
    assert "Step 2" in result.raw
    after = storage.load()
    assert [r["was_replayed"] for r in after] == [0, 1, 1]
    assert [r["task_id"] for r in after] == [str(t.id) for t in tasks]
    assert after[0] == before[0]
    # Stock CrewAI reads the same records from the file.
    assert StockStorage(storage.db_path).load() == after


# --------------------------------------------------------------------------- a replaced sqlite3.connect


def test_a_replaced_sqlite_connect_sees_every_call_as_without_the_core(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What CrewAI's own tests and tracing instrumentation rely on: each
    # operation opens its connection through sqlite3.connect and closes it.
    opened: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def tracking_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        opened.append(conn)
        return conn

    tasks = [make_task(n) for n in range(3)]
    expected = without_timestamps(exercise(StockStorage(str(tmp_path / "stock.db")), tasks))
    monkeypatch.setattr(stock_module.sqlite3, "connect", tracking_connect)
    with caplog.at_level(logging.WARNING, logger="fast_crewai"):
        storage = KickoffTaskOutputsStorage(str(tmp_path / "ours.db"))
        got = without_timestamps(exercise(storage, tasks))
    assert got == expected
    # As stock: init, 3 adds, load, update, add, update, load, delete, load.
    assert len(opened) == 11
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            conn.execute("SELECT 1")
    warnings = [r.getMessage() for r in caplog.records if r.name == "fast_crewai"]
    assert len(warnings) == 1 and "sqlite3.connect is replaced" in warnings[0], warnings

    # Put back: the core again, on the same file.
    monkeypatch.undo()
    storage.add(tasks[0], output(0), 0)
    assert len(opened) == 11
    assert [r["task_index"] for r in storage.load()] == [0]


def test_a_failure_in_a_replaced_connect_rolls_back_as_stock(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = KickoffTaskOutputsStorage(str(tmp_path / "ours.db"))
    real_connect = sqlite3.connect

    class FailingConnection(sqlite3.Connection):
        def cursor(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
            raise sqlite3.OperationalError("simulated failure after BEGIN")

    def failing_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(*args, **{**kwargs, "factory": FailingConnection})

    monkeypatch.setattr(stock_module.sqlite3, "connect", failing_connect)
    with pytest.raises(DatabaseOperationError, match="simulated failure after BEGIN"):
        storage.add(make_task(0), output(0), 0)
    monkeypatch.undo()
    assert storage.load() == []
