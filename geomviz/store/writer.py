"""Writing one run: rows batched in memory and committed atomically at each ``flush()``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    _SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    STORE_FILE,
    RunLock,
    StoreError,
    _connect,
    _finite_or_none,
)


class RunWriter:
    """Writes one run. ``flush()`` commits what was buffered; ``close(status)`` ends the run.

    ``meta`` is merged into the run metadata (JSON-serialisable values). The writer
    holds the run's :class:`RunLock` (taken here unless ``lock`` is given) until
    ``close``; a second writer raises :class:`RunLocked`. ``resume`` keeps the rows
    up to ``drop_after_step``, and a row written again for a kept step replaces the
    stored one; ``restart`` empties an existing store (a run that crashed before its
    first checkpoint starts again from scratch).
    """

    def __init__(self, folder: str | Path, meta: dict[str, Any], heartbeat_s: float = 5.0,
                 resume: bool = False, drop_after_step: int | None = None,
                 restart: bool = False, lock: RunLock | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / STORE_FILE
        # rows up to this step are kept from before a resume: written again, they replace
        self._kept = drop_after_step if resume and not restart else None
        self._run_lock = lock or RunLock(self.folder)  # before the existence check: no race
        try:
            self._open(resume or restart, drop_after_step, restart, meta, heartbeat_s)
        except BaseException:
            self._run_lock.release()
            raise
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, args=(heartbeat_s,), daemon=True)
        self._beat.start()

    def _open(self, resume: bool, drop_after_step: int | None, restart: bool,
              meta: dict[str, Any], heartbeat_s: float) -> None:
        if self.path.exists() and not resume:
            raise StoreError(f"{self.path} already exists (use a new --out or --resume)")
        self._con = _connect(self.path, readonly=False)
        try:
            self._con.execute("PRAGMA journal_mode = WAL")
            self._con.execute("PRAGMA synchronous = NORMAL")
            # schema and first metadata in one transaction: readers never see half a store
            self._con.executescript("BEGIN;" + _SCHEMA)
            if restart:
                for table in ("scalars", "histograms", "arrays", "hist_edges", "meta"):
                    self._con.execute(f"DELETE FROM {table}")
            elif resume:
                self._check_version()
                if drop_after_step is not None:  # rows a resumed run will write again
                    for table in ("scalars", "histograms", "arrays"):
                        self._con.execute(f"DELETE FROM {table} WHERE step > ?",
                                          (drop_after_step,))
            self._write_first_meta(meta, heartbeat_s, keep_created=resume and not restart)
        except sqlite3.DatabaseError as e:
            self._con.close()
            raise StoreError(f"{self.path} is not a writable geomviz run store ({e})") from None
        self._lock = threading.Lock()
        self._scalars: list[tuple] = []
        self._hists: list[tuple] = []
        self._arrays: list[tuple] = []
        self._edges: dict[str, bytes] = {}

    def _write_first_meta(self, meta: dict[str, Any], heartbeat_s: float,
                          keep_created: bool) -> None:
        now = time.time()
        base = {"schema_version": SCHEMA_VERSION, "created": now, "status": "running"}
        if keep_created and self._con.execute(
                "SELECT 1 FROM meta WHERE key = 'created'").fetchone():
            base.pop("created")
        self._set_meta({**base, **meta, "heartbeat": now, "heartbeat_s": heartbeat_s})
        self._con.commit()

    # buffered rows ------------------------------------------------------------------------
    def scalars(self, step: int, values: dict[str, float], split: str = "train",
                epoch: int | None = None) -> None:
        self._scalars.extend((int(step), epoch, split, k, _finite_or_none(v))
                             for k, v in values.items())

    def histogram(self, step: int, name: str, counts: np.ndarray, edges: np.ndarray,
                  split: str = "train", epoch: int | None = None) -> None:
        """Counts on fixed ``edges`` (len(counts) == len(edges) - 1; edges fixed per name)."""
        counts = np.asarray(counts, dtype=np.int64)
        edge_bytes = np.asarray(edges, dtype=np.float64).tobytes()
        if len(counts) + 1 != len(edge_bytes) // 8:
            raise ValueError(f"histogram {name!r}: {len(counts)} counts need "
                             f"{len(counts) + 1} edges")
        known = self._edges.setdefault(name, edge_bytes)
        if known != edge_bytes:
            raise ValueError(f"histogram {name!r}: bin edges must stay fixed for a run")
        self._hists.append((int(step), epoch, split, name, counts.tobytes()))

    def array(self, step: int, name: str, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value)
        self._arrays.append((int(step), name, value.dtype.str, json.dumps(list(value.shape)),
                             value.tobytes()))

    def flush(self) -> None:
        """Commit everything buffered, atomically, and refresh the heartbeat. A failed
        commit (a full disk) is rolled back and is one :class:`StoreError` naming the store."""
        with self._lock, self._writing():
            cur = self._con.cursor()
            if self._kept is not None:
                self._replace_kept(cur, self._kept)
            cur.executemany("INSERT INTO scalars VALUES (?, ?, ?, ?, ?)", self._scalars)
            cur.executemany("INSERT OR IGNORE INTO hist_edges VALUES (?, ?)",
                            list(self._edges.items()))
            cur.executemany("INSERT INTO histograms VALUES (?, ?, ?, ?, ?)", self._hists)
            cur.executemany("INSERT INTO arrays VALUES (?, ?, ?, ?, ?)", self._arrays)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('heartbeat', ?)",
                        (json.dumps(time.time()),))
            self._con.commit()
            self._scalars, self._hists, self._arrays = [], [], []

    def set_meta(self, **values: Any) -> None:
        with self._lock, self._writing():
            self._set_meta(values)
            self._con.commit()

    @contextlib.contextmanager
    def _writing(self):
        try:
            yield
        except sqlite3.Error as e:
            self._con.rollback()
            raise StoreError(f"{self.path}: cannot write ({e})") from None

    def close(self, status: str = "finished", message: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self._stop.set()
        self._beat.join(timeout=10)
        extra = {"message": message} if message else {}
        try:
            try:
                self.flush()
            finally:  # rows that cannot be written (a full disk) still leave the status
                self.set_meta(status=status, ended=time.time(), **extra)
            self._con.close()
        finally:
            self._run_lock.release()

    # internals ----------------------------------------------------------------------------
    def _replace_kept(self, cur: sqlite3.Cursor, kept: int) -> None:
        """Delete the stored rows that buffered rows of kept steps (``step <= kept``) will
        replace: a resumed run writes a few again (the probe set at step 0, each resume),
        and no row may be stored twice."""
        cur.executemany("DELETE FROM scalars WHERE name = ? AND split = ? AND step = ?",
                        [(r[3], r[2], r[0]) for r in self._scalars if r[0] <= kept])
        cur.executemany("DELETE FROM histograms WHERE name = ? AND split = ? AND step = ?",
                        [(r[3], r[2], r[0]) for r in self._hists if r[0] <= kept])
        cur.executemany("DELETE FROM arrays WHERE name = ? AND step = ?",
                        [(r[1], r[0]) for r in self._arrays if r[0] <= kept])

    def _check_version(self) -> None:
        row = self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            version = None if row is None else json.loads(row[0])
        except (TypeError, ValueError):
            version = row[0]
        if row is not None and version != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has store schema version {version!r}; "
                             f"cannot resume it with version {SCHEMA_VERSION}")

    def _set_meta(self, values: dict[str, Any]) -> None:
        self._con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                              [(k, json.dumps(v)) for k, v in values.items()])

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                with self._lock:
                    self._con.execute("INSERT OR REPLACE INTO meta VALUES ('heartbeat', ?)",
                                      (json.dumps(time.time()),))
                    self._con.commit()
            except sqlite3.Error:  # the run is closing; nothing to keep alive
                return


class NullWriter:
    """What ranks other than 0 get: accepts every call, writes nothing."""

    def scalars(self, *a, **k) -> None: ...
    def histogram(self, *a, **k) -> None: ...
    def array(self, *a, **k) -> None: ...
    def flush(self) -> None: ...
    def set_meta(self, **k) -> None: ...
    def close(self, *a, **k) -> None: ...
