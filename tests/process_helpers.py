"""What the fault tests share: checking a database with stdlib sqlite3."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def integrity(database: Path) -> list[tuple[str]]:
    """``PRAGMA integrity_check`` as stdlib sqlite3 sees the file."""
    conn = sqlite3.connect(database)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
