"""The per-run store: one SQLite file (``run.sqlite``, WAL mode) per run folder.

The writer batches rows in memory and commits them at each ``flush()``; a commit
is atomic, so a run killed at any moment (even ``kill -9``) keeps everything up
to its last flush. A heartbeat thread refreshes ``meta.heartbeat`` so a reader
can tell a live run from a dead one: ``status == "running"`` with a heartbeat
older than ``stale_after`` seconds reads as ``"crashed"``. One writer per run: the
writer holds an OS lock on ``run.lock`` (:class:`RunLock`) that dies with its process.

Reading (``open_run``, ``list_runs``) uses read-only connections that never create a
file (no ``-wal``/``-shm`` beside a store that has none) and works while the writer is
live; a store that cannot be read, is not a regular file (a FIFO would block the open)
or whose metadata is malformed raises :class:`StoreError` with one line when opened.
Inside :func:`confined` (each dashboard request) a store whose real path, links followed,
lies outside the given folder is refused before it is opened. Tables (schema version
:data:`SCHEMA_VERSION`)::

    meta(key, value)                                   JSON values
    scalars(step, epoch, split, name, value)
    hist_edges(name, edges)                            float64 bytes
    histograms(step, epoch, split, name, counts)       int64 bytes
    arrays(step, name, dtype, shape, data)             raw bytes
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import stat
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA_VERSION", "STORE_FILE", "LOCK_FILE", "StoreError", "RunLocked", "PidLock",
    "RunLock", "RunWriter", "NullWriter", "Run", "open_run", "list_runs", "warn_skipped",
    "confined", "store_problem",
]

SCHEMA_VERSION = 1
STORE_FILE = "run.sqlite"
LOCK_FILE = "run.lock"  # beside the store: the writer's exclusive lock, holding its pid
STATUSES = ("running", "finished", "crashed", "diverged")
# the folder every store opened in this context must lie in (set by :func:`confined`): a
# context variable, so each dashboard request (a thread) has its own and nothing is shared
_WITHIN: ContextVar[Path | None] = ContextVar("geomviz_store_within", default=None)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scalars (
    step INTEGER NOT NULL, epoch INTEGER, split TEXT NOT NULL, name TEXT NOT NULL,
    value REAL);
CREATE INDEX IF NOT EXISTS scalars_by_name ON scalars (name, split, step);
CREATE TABLE IF NOT EXISTS hist_edges (name TEXT PRIMARY KEY, edges BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS histograms (
    step INTEGER NOT NULL, epoch INTEGER, split TEXT NOT NULL, name TEXT NOT NULL,
    counts BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS histograms_by_name ON histograms (name, split, step);
CREATE TABLE IF NOT EXISTS arrays (
    step INTEGER NOT NULL, name TEXT NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS arrays_by_name ON arrays (name, step);
"""


class StoreError(Exception):
    """A store that cannot be read: missing, corrupt, or of an unknown schema version."""


class RunLocked(StoreError):
    """Another live writer (process or thread) holds the run's lock."""


class PidLock:
    """An exclusive ``fcntl.flock`` on ``<folder>/<FILE>``, which holds the holder's pid.

    The OS drops the lock when the holder dies (``kill -9`` included), so a crashed
    holder never blocks the next one. Each lock opens the file anew, and flock locks
    belong to the open file, so two threads of one process exclude each other as two
    processes do. The file is never deleted: a process that opened it before a deletion
    would lock an orphan inode. Subclasses name the file and the error a held lock raises.
    """

    FILE = LOCK_FILE

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / self.FILE
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            self._fd = None
            raise self.held(holder) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def held(self, holder: str) -> Exception:
        """The error raised when process ``holder`` (its pid, or "?") holds the lock."""
        return RunLocked(f"{self.path.parent} is locked by process {holder}")

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class RunLock(PidLock):
    """The one-writer-per-run lock on ``run.lock`` beside the store."""

    def held(self, holder: str) -> Exception:
        return RunLocked(f"{self.path.parent} is being written by another process "
                         f"(pid {holder}); wait for it to end or use another --out")


def _connect(path: Path, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
    if readonly:
        flags = "mode=ro&immutable=1" if immutable else "mode=ro"
        con = sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True, timeout=30,
                              check_same_thread=False)
    else:
        con = sqlite3.connect(path, timeout=30, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 30000")
    return con


def _sidecars(real: Path) -> tuple[Path, Path]:
    return real.with_name(real.name + "-wal"), real.with_name(real.name + "-shm")


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _connect_reader(path: Path) -> tuple[sqlite3.Connection, bool]:
    """``(connection, immutable)``: a read-only connection that creates no file.

    SQLite opening a WAL store read-only (``mode=ro``) still creates its ``-wal`` and
    ``-shm`` files when they are missing. They are missing exactly when no connection
    has the store open (a writer keeps both while it lives, SQLite deletes them when the
    last connection closes; a writer killed with -9 leaves them): then the file is
    complete and nothing changes it, and it is opened ``immutable``. A writer that starts
    later (``--resume``) makes a ``-wal`` before it changes the file; :class:`Run` checks
    for one after each query and, seeing it, reads again through the log. Otherwise
    (a live or killed writer) both files exist and ``mode=ro`` reads through them. In a
    folder this process cannot write (a read-only mount, another user's runs) SQLite
    cannot open the WAL index it needs; an empty log there means nothing to replay, and
    the store is again read as the immutable file it is."""
    real = path.resolve()
    wal, shm = _sidecars(real)
    wal_size = _size(wal)  # None: no log (a writer that just closed removed it)
    if wal_size is None or (not shm.exists() and wal_size == 0):
        return _connect(real, readonly=True, immutable=True), True
    if not shm.exists():  # mode=ro would make one; rows in the log are never ignored
        raise sqlite3.OperationalError(
            "unable to open database file: reading its write-ahead log (-wal) needs its "
            "index (-shm), which is missing, and a reader creates no file; copy the run "
            "folder somewhere writable and open it once for writing (sqlite3 run.sqlite "
            "'PRAGMA quick_check') to rebuild it")
    con = _connect(real, readonly=True)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return con, False
    except sqlite3.OperationalError:
        if os.access(real.parent, os.W_OK):
            con.close()
            raise
        if (_size(wal) or 0) > 0:  # rows a killed writer left in its log
            con.close()
            raise sqlite3.OperationalError(
                "unable to open database file: reading its write-ahead log (-wal) needs a "
                "folder it can write; copy the run folder somewhere writable") from None
    con.close()
    return _connect(real, readonly=True, immutable=True), True


@contextlib.contextmanager
def confined(root: str | Path):
    """Within this block every store opened must lie inside ``root`` once links are
    resolved (the dashboard serves nothing outside its runs folder); others raise
    :class:`StoreError` before any file is opened."""
    token = _WITHIN.set(Path(root).resolve())
    try:
        yield
    finally:
        _WITHIN.reset(token)


def store_problem(path: str | Path, within: str | Path | None = None) -> str | None:
    """Why the store file ``path`` must not be opened, in a few words, or None. Links are
    followed; with ``within`` (default: the folder of :func:`confined`, if any) a store
    whose real path lies outside it is refused. A FIFO, socket or device is refused too:
    opening one blocks or reads something that is no store."""
    base = Path(within).resolve() if within is not None else _WITHIN.get()
    path = Path(path)
    try:
        real = path.resolve(strict=True)
        mode = real.stat().st_mode
    except FileNotFoundError:
        return "is a broken link" if path.is_symlink() else "does not exist"
    except (OSError, RuntimeError) as e:  # a link loop, a name too long, no permission
        return f"cannot be read ({getattr(e, 'strerror', None) or e})"
    if base is not None and not real.is_relative_to(base):
        return "links to a store outside the runs folder; not read"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a FIFO, socket or device); not read"
    if base is not None and any(s.is_symlink() for s in _sidecars(real)):
        return "has a linked -wal or -shm file; not read"
    return None


# ----------------------------------------------------------------------------- writing
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


def _finite_or_none(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None  # SQLite has no NaN; NULL reads back as NaN


# ----------------------------------------------------------------------------- reading
@dataclass
class Histograms:
    """``counts[T, B]`` on ``edges[B + 1]`` at ``steps[T]`` (and ``epochs[T]``, ``splits[T]``)."""

    steps: np.ndarray
    epochs: np.ndarray
    splits: np.ndarray
    edges: np.ndarray
    counts: np.ndarray


class Run:
    """Read-only view of one run store; safe to use while the run is being written."""

    def __init__(self, path: str | Path, stale_after: float | None = None,
                 within: str | Path | None = None) -> None:
        path = Path(path)
        self.path = path / STORE_FILE if path.is_dir() else path
        if not self.path.exists() and not self.path.is_symlink():
            raise StoreError(f"no run store at {self.path}")
        why = store_problem(self.path, within)
        if why is not None:
            raise StoreError(f"{self.path} {why}")
        self.folder = self.path.parent
        self._stale_after = stale_after
        try:
            self._wal = _sidecars(self.path.resolve())[0]
            self._con, self._immutable = _connect_reader(self.path)
            self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a readable geomviz run store ({e})") from None
        try:
            meta = self._raw_meta()  # malformed metadata fails here, once, as one line
            if "schema_version" not in meta:
                raise StoreError(f"{self.path} has no schema version: not a geomviz run store")
            if meta["schema_version"] != SCHEMA_VERSION:
                raise StoreError(f"{self.path} has store schema version "
                                 f"{meta['schema_version']!r}; this geomviz reads version "
                                 f"{SCHEMA_VERSION}")
            if meta.get("status") not in STATUSES:
                raise StoreError(f"{self.path}: malformed metadata: status is "
                                 f"{meta.get('status', 'missing')!r}, not one of "
                                 f"{', '.join(STATUSES)}")
        except StoreError:
            self._con.close()
            raise

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            rows = self._con.execute(sql, args).fetchall()
            if self._immutable and self._wal.exists():
                # a writer opened the store since (a resume): read again through its log
                self._con.close()
                self._con, self._immutable = _connect_reader(self.path)
                rows = self._con.execute(sql, args).fetchall()
            return rows
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: {e}") from None

    def _series(self, select: str, name: str, split: str | None) -> list[tuple]:
        """Rows of ``select`` for ``name`` (and ``split`` if given), in step order."""
        where, args = " WHERE name = ?", (name,)
        if split is not None:
            where, args = where + " AND split = ?", (name, split)
        return self._q(select + where + " ORDER BY step, rowid", args)

    def _raw_meta(self) -> dict[str, Any]:
        meta = {}
        for key, value in self._q("SELECT key, value FROM meta"):
            try:
                meta[key] = json.loads(value)
            except (TypeError, ValueError):
                raise StoreError(f"{self.path}: malformed metadata: the value of {key!r} is "
                                 "not JSON") from None
        return meta

    @property
    def meta(self) -> dict[str, Any]:
        """Run metadata; a ``running`` run whose heartbeat went stale reads as ``crashed``."""
        meta = self._raw_meta()
        if meta.get("status") == "running":
            try:
                stale = self._stale_after or max(30.0, 6 * float(meta.get("heartbeat_s", 5.0)))
                beat = float(meta.get("heartbeat", 0.0))
            except (TypeError, ValueError):
                raise StoreError(f"{self.path}: malformed metadata: heartbeat is not a "
                                 "number") from None
            if time.time() - beat > stale:
                meta["status"] = "crashed"
        return meta

    @property
    def status(self) -> str:
        return self.meta["status"]

    def scalar_names(self) -> list[str]:
        return [r[0] for r in self._q("SELECT DISTINCT name FROM scalars ORDER BY name")]

    def scalars(self, name: str, split: str | None = None, frame: bool = False):
        """Series ``name``: dict of numpy arrays step, epoch, split, value (or a DataFrame)."""
        rows = self._series("SELECT step, epoch, split, value FROM scalars", name, split)
        out = {
            "step": np.array([r[0] for r in rows], dtype=np.int64),
            "epoch": np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64),
            "split": np.array([r[2] for r in rows], dtype=object),
            "value": np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64),
        }
        if frame:
            import pandas as pd

            return pd.DataFrame(out)
        return out

    def histograms(self, name: str, split: str | None = None) -> Histograms:
        edges = self._q("SELECT edges FROM hist_edges WHERE name = ?", (name,))
        if not edges:
            raise KeyError(f"no histogram {name!r} in {self.path}")
        rows = self._series("SELECT step, epoch, split, counts FROM histograms", name, split)
        e = np.frombuffer(edges[0][0], dtype=np.float64)
        counts = np.stack([np.frombuffer(r[3], dtype=np.int64) for r in rows]) if rows else \
            np.zeros((0, len(e) - 1), dtype=np.int64)
        return Histograms(np.array([r[0] for r in rows], dtype=np.int64),
                          np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64),
                          np.array([r[2] for r in rows], dtype=object), e, counts)

    def arrays(self, name: str) -> dict[int, np.ndarray]:
        """``{step: array}`` for array ``name``."""
        rows = self._q("SELECT step, dtype, shape, data FROM arrays WHERE name = ? "
                       "ORDER BY step, rowid", (name,))
        return {r[0]: np.frombuffer(r[3], dtype=np.dtype(r[1])).reshape(json.loads(r[2]))
                for r in rows}

    def array_names(self, prefix: str = "") -> list[str]:
        """Names of the stored arrays that start with ``prefix``, sorted, without reading them."""
        return [r[0] for r in self._q("SELECT DISTINCT name FROM arrays WHERE substr(name, 1, ?) "
                                      "= ? ORDER BY name", (len(prefix), prefix))]

    def array_steps(self, name: str) -> list[int]:
        """Steps at which array ``name`` was stored, without reading the arrays."""
        return [r[0] for r in self._q("SELECT DISTINCT step FROM arrays WHERE name = ? "
                                      "ORDER BY step", (name,))]

    def steps(self) -> np.ndarray:
        return np.array([r[0] for r in self._q("SELECT DISTINCT step FROM scalars ORDER BY step")],
                        dtype=np.int64)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_run(path: str | Path, stale_after: float | None = None,
             within: str | Path | None = None) -> Run:
    """Open a run folder (or its ``run.sqlite``) read-only; with ``within``, only a store
    that lies inside that folder once links are resolved."""
    return Run(path, stale_after, within)


def list_runs(folder: str | Path, within: str | Path | None = None,
              skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Run folders (holding ``run.sqlite``) anywhere under ``folder``, sorted. A store that
    cannot be opened safely (see :func:`store_problem`: not a regular file; with ``within``
    or inside :func:`confined`, a link out of that folder) is left out: ``(folder, why)``
    goes to ``skipped`` if given, else it is one warning line on stderr."""
    root = Path(folder)
    if not root.is_dir():
        raise StoreError(f"runs folder {root} "
                         f"{'is not a folder' if root.exists() else 'does not exist'}")
    out = []
    for p in sorted(root.rglob(STORE_FILE)):
        why = store_problem(p, within)
        if why is None:
            out.append(p.parent)
        elif skipped is not None:
            skipped.append((p.parent, f"{STORE_FILE} {why}"))
        else:
            warn_skipped(p.parent, f"{STORE_FILE} {why}")
    return out


def warn_skipped(folder: str | Path, why: str) -> None:
    """One warning line on stderr for a run left out; the others go on as usual."""
    print(f"geomviz: warning: skipping {folder}: {why}", file=sys.stderr, flush=True)
