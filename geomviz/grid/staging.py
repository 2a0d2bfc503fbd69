"""``--local-dir``: a remote worker writes its run on its own disk and publishes it into
the shared runs folder, whole and readable.

SQLite's WAL mode needs shared memory between the writer and its readers, which a
network filesystem (NFS, SMB, most cluster mounts) does not give. So a run on a worker
is written in WAL mode under ``<local-dir>/<grid id>/<run>`` and is *published*:

- **when**: at each checkpoint (end of every epoch; the checkpoint file is watched) and
  when the run ends, whatever its status (finished, diverged, crashed, interrupted);
- **how**: a consistent copy of the store (SQLite's online backup, taken while the writer
  runs, in ``journal_mode=DELETE``: one file, no ``-wal``/``-shm``), plus the checkpoint,
  is built in ``<runs>/.incoming-<run>-<id>`` beside the run, then renamed into place
  (a rename within one filesystem is atomic; an older copy is renamed away first and
  removed after). A reader sees the previous copy or the new one (or, for the instant
  between the two renames, no run), never half of one.

**What the dashboard shows live**: each run as of its last checkpoint. A published copy
of a live run reads ``running``; its heartbeat is stretched to six times the interval
between publications, after which a copy that stopped being published reads ``crashed``.

**Resume**: the next call sees the published run ``crashed`` (or stale) and resumes it:
the task copies it back to its own disk (or takes the copy a task interrupted on that
node left there, which is as new or newer) and continues from its checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from ..store import STORE_FILE

__all__ = ["Stage", "publish", "stage_in"]

CHECKPOINT = "checkpoint.pt"


def _copy_store(src: Path, dst: Path, meta: dict | None = None) -> None:
    """A consistent copy of the store ``src`` (live writer or not) at ``dst``, as one file
    in rollback-journal mode; ``meta`` values are written into the copy."""
    s = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    d = sqlite3.connect(dst, timeout=30)
    try:
        s.backup(d)
        d.execute("PRAGMA journal_mode = DELETE")
        if meta:
            d.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                          [(k, json.dumps(v)) for k, v in meta.items()])
        d.commit()
    finally:
        s.close()
        d.close()


def _status(store: Path) -> str | None:
    con = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'status'").fetchone()
        return json.loads(row[0]) if row else None
    finally:
        con.close()


def publish(local: Path, shared: Path, interval: float | None = None) -> None:
    """Copy the run in ``local`` into ``shared`` atomically (see the module)."""
    if not (local / STORE_FILE).is_file():
        return
    shared.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = shared.parent / f".incoming-{shared.name}-{tag}"
    tmp.mkdir()
    try:
        meta = {"published": {"host": socket.gethostname(), "from": str(local),
                              "at": time.time()}}
        if interval is not None and _status(local / STORE_FILE) == "running":
            meta.update(heartbeat=time.time(), heartbeat_s=max(5.0, interval))
        _copy_store(local / STORE_FILE, tmp / STORE_FILE, meta)
        if (local / CHECKPOINT).is_file():
            shutil.copy2(local / CHECKPOINT, tmp / CHECKPOINT)  # replaced whole, never torn
        old = None
        if shared.exists():
            old = shared.parent / f".replaced-{shared.name}-{tag}"
            shared.rename(old)
        tmp.rename(shared)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def stage_in(shared: Path, local: Path) -> bool:
    """Make ``local`` the run to continue: a copy an interrupted task left on this disk,
    else a copy of the published run, else nothing (a new run). True when resuming."""
    if (local / STORE_FILE).is_file() or (local / CHECKPOINT).is_file():
        return True
    if local.exists():
        shutil.rmtree(local)
    if not (shared / STORE_FILE).is_file():
        return False
    local.mkdir(parents=True)
    _copy_store(shared / STORE_FILE, local / STORE_FILE)
    if (shared / CHECKPOINT).is_file():
        shutil.copy2(shared / CHECKPOINT, local / CHECKPOINT)
    return True


class Stage:
    """One run staged on a worker's disk: :meth:`open` gives the folder to train in, a
    thread publishes it at each checkpoint, :meth:`close` publishes it a last time and
    removes the local copy."""

    def __init__(self, local_dir: Path, shared: Path, poll: float = 1.0) -> None:
        grid = hashlib.sha1(str(shared.parent.resolve()).encode()).hexdigest()[:12]
        self.shared, self.local = shared, Path(local_dir) / grid / shared.name
        self.poll, self.resume = poll, False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = time.monotonic()

    def open(self) -> Path:
        self.local.parent.mkdir(parents=True, exist_ok=True)
        self.resume = stage_in(self.shared, self.local)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self.local

    def _watch(self) -> None:
        ckpt, seen = self.local / CHECKPOINT, None
        while not self._stop.wait(self.poll):
            with contextlib.suppress(OSError):
                mtime = ckpt.stat().st_mtime_ns
                if mtime != seen:
                    seen = mtime
                    now = time.monotonic()
                    with contextlib.suppress(sqlite3.Error):
                        publish(self.local, self.shared, interval=now - self._last)
                    self._last = now

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        publish(self.local, self.shared)
        store = self.local / STORE_FILE
        if not store.is_file() or _status(store) != "running":  # published whole: drop it
            shutil.rmtree(self.local, ignore_errors=True)
