"""Reading runs: read-only connections that create no file, one clear error per bad store.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    SCHEMA_VERSION,
    STATUSES,
    STORE_FILE,
    StoreError,
    _connect_reader,
    _sidecars,
    store_problem,
)


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
        """``running``, ``finished``, ``crashed`` (also a stale heartbeat) or ``diverged``."""
        return self.meta["status"]

    def scalar_names(self) -> list[str]:
        """Every stored scalar name, sorted (the probes reference defines each)."""
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
        """Histogram series ``name`` on its fixed bins: steps, epochs, splits, ``edges[B+1]``
        and ``counts[T, B]``; ``KeyError`` when the run has none of that name."""
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
        """Every step with a stored scalar, ascending."""
        return np.array([r[0] for r in self._q("SELECT DISTINCT step FROM scalars ORDER BY step")],
                        dtype=np.int64)

    def close(self) -> None:
        """Close the read-only connection (``with open_run(...)`` does it for you)."""
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
