"""Reads databases in a directory this process cannot write: ``python
readonly_worker.py <dir> [<mount point>]`` prints one JSON report of what
each backend did there. With a mount point (root, inside a mount namespace
of its own: ``unshare --mount``) it first binds the directory read-only
there and reads through it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from fast_crewai import ReadOnlyError
from fast_crewai.sqlite_store._wrapper import AcceleratedSQLiteWrapper


def outcome(action: object) -> str:
    try:
        action()  # type: ignore[operator]
    except ReadOnlyError:
        return "ReadOnlyError"
    except Exception as exc:  # the report names whatever else happened
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def main() -> None:
    mount = Path(sys.argv[-1])
    if len(sys.argv) == 3:
        subprocess.run(["mount", "--bind", sys.argv[1], str(mount)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
    report: dict[str, object] = {"media": outcome(lambda: (mount / "probe").write_text(""))}
    before = sorted(p.name for p in mount.iterdir())
    for name in sorted(p.name for p in mount.glob("*.db")):
        path = mount / name
        for backend in ("wasm", "python"):
            with AcceleratedSQLiteWrapper(path, mode="read-only", backend=backend) as db:
                report[f"{name} {backend} rows"] = db.query("SELECT x FROM t ORDER BY x")
                report[f"{name} {backend} write"] = outcome(lambda db=db: db.execute("INSERT INTO t VALUES (9)"))
            report[f"{name} {backend} open read-write"] = outcome(
                lambda path=path, backend=backend: AcceleratedSQLiteWrapper(path, mode="read-write", backend=backend)
            )
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        report[f"{name} stdlib rows"] = conn.execute("SELECT x FROM t ORDER BY x").fetchall()
        conn.close()
    report["files unchanged"] = sorted(p.name for p in mount.iterdir()) == before
    print(json.dumps(report))


if __name__ == "__main__":
    main()
