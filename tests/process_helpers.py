"""What the fault tests share: checking a database with stdlib sqlite3, and
running a worker process, as root in a mount namespace of its own when it
mounts what it needs (read-only media, a small disk to fill)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
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
