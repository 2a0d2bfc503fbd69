"""What the writer and the readers share: names, the schema, errors, the one-writer lock,
and connections (a reader's never creates a file; :func:`confined` keeps it in one folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

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


def _finite_or_none(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None  # SQLite has no NaN; NULL reads back as NaN
