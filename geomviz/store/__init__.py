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


from .base import (
    LOCK_FILE,
    SCHEMA_VERSION,
    STORE_FILE,
    PidLock,
    RunLock,
    RunLocked,
    StoreError,
    confined,
    store_problem,
)
from .reader import Run, list_runs, open_run, warn_skipped
from .writer import NullWriter, RunWriter

__all__ = [
    "SCHEMA_VERSION", "STORE_FILE", "LOCK_FILE", "StoreError", "RunLocked", "PidLock",
    "RunLock", "RunWriter", "NullWriter", "Run", "open_run", "list_runs", "warn_skipped",
    "confined", "store_problem",
]
