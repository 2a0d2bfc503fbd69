"""What the grid does for a run whose worker died: the store says so at once.

A worker killed with ``kill -9`` leaves its store at ``running``; readers would call it
``crashed`` only once its heartbeat went stale (30 s). The worker's run lock died with
it, so the grid takes that lock and closes the store as ``crashed`` with the reason, as
the run itself would have. A store that is not ``running`` (the run ended before the
worker died) or whose lock is held (a live writer) is left alone.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

from ..store import STORE_FILE, RunLock, RunLocked

__all__ = ["mark_crashed"]


def mark_crashed(folder: str | Path, why: str) -> bool:
    """Close the ``running`` store in ``folder`` as ``crashed`` with ``why``; True when done."""
    folder = Path(folder)
    if not (folder / STORE_FILE).is_file():
        return False
    try:
        lock = RunLock(folder)
    except (RunLocked, OSError):
        return False
    try:
        con = sqlite3.connect(folder / STORE_FILE, timeout=10)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'status'").fetchone()
            if row is None or json.loads(row[0]) != "running":
                return False
            con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in (
                                ("status", "crashed"), ("message", why),
                                ("ended", time.time()))])
            con.commit()
            return True
        finally:
            con.close()
    except (sqlite3.Error, ValueError):
        return False
    finally:
        with contextlib.suppress(OSError):
            lock.release()
