"""The compare page's reads: a per-app LRU whose concurrent misses are computed once, one
summary per run store (read in one open, kept while the store's file is unchanged), the
manifold data of two runs, and one-line error messages."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from flask import current_app

from ...store import STORE_FILE, StoreError, open_run
from ..data import PathError, _feature_size, manifold_data, read_series, resolve_run

CACHE_SIZE = 64  # entries per app: figures of a few pages, their data and store summaries
LIVE_TTL = 2.0  # s a running run's summary is kept: its status turns "crashed" when its
# heartbeat goes stale, while its file stays unchanged

_LOCK = threading.Lock()  # guards the per-app cache dict and its per-key locks


def cached(key, build):
    """Per-app LRU (on the Flask app, not in this module). Concurrent requests for one
    missing key build it once; the others wait for that result."""
    ext = current_app.extensions
    with _LOCK:
        store = ext.setdefault("geomviz_cache", OrderedDict())
        locks = ext.setdefault("geomviz_cache_locks", {})
        if key in store:
            store.move_to_end(key)
            return store[key]
        lock = locks.setdefault(key, threading.Lock())
    with lock:
        with _LOCK:
            if key in store:
                return store[key]
        value = build()
        with _LOCK:
            store[key] = value
            while len(store) > CACHE_SIZE:
                store.popitem(last=False)
            locks.pop(key, None)
    return value


def forget(key) -> None:
    """Drop ``key`` from the per-app cache (a stale entry)."""
    with _LOCK:
        current_app.extensions.get("geomviz_cache", {}).pop(key, None)


def store_state(folder) -> tuple:
    """Size and modification time of a run's store and its write-ahead log: what every
    write changes, read without opening the store."""
    out = []
    for name in (STORE_FILE, STORE_FILE + "-wal"):
        try:
            st = os.stat(Path(folder) / name)
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def _read_summary(folder) -> dict:
    with open_run(folder) as run:
        meta, steps = run.meta, run.steps()
        return {"meta": meta, "series": read_series(run), "status": meta.get("status", "unknown"),
                "last_step": int(steps[-1]) if len(steps) else None,
                "snap_steps": run.array_steps("snapshot.features"),
                "cv_steps": run.array_steps("snapshot.class_vectors"),
                "feature_size": _feature_size(run), "read_at": time.monotonic()}


def summary(folder) -> dict:
    """What the page needs of a run besides its arrays (metadata, status, last step, time
    series, snapshot and class-vector steps, feature size), read in one store open and kept, per
    app, while the store's file is unchanged; a running run's is re-read after LIVE_TTL."""
    key = ("summary", str(folder), store_state(folder))
    out = cached(key, lambda: _read_summary(folder))
    if out["status"] == "running" and time.monotonic() - out["read_at"] > LIVE_TTL:
        forget(key)
        out = cached(key, lambda: _read_summary(folder))
    return out


def snapshot_index(folder) -> list[int]:
    return summary(folder)["snap_steps"]


def run_status(folder) -> str:
    return summary(folder)["status"]


def series(folder) -> dict:
    """The run's time series (:func:`geomviz.dashboard.data.time_series`), read with its
    summary."""
    return summary(folder)["series"]


STATE = {"running": ("is still training", "the page polls every 5 s"),
         "crashed": ("crashed", "its writer stopped without closing the store; everything "
                                "up to its last flush is shown"),
         "diverged": ("diverged", "a non-finite loss stopped it")}


def status_note(run_id: str, folder) -> tuple[str, str]:
    """A run's status and one line on it when it is not ``finished`` (its status, last step
    and why), else ""."""
    info = summary(folder)
    meta, status = info["meta"], info["status"]
    if status == "finished":
        return status, ""
    head, why = STATE.get(status, (f"has status {status!r}", "not a finished run"))
    last = f" at step {info['last_step']}" if info["last_step"] is not None else \
        " before its first step"
    detail = f" ({meta['message']})" if meta.get("message") else ""
    return status, f"{run_id} {head}{last}: {why}{detail}"


def status_notes(root, sides: list[dict]) -> tuple[bool, list[str]]:
    """Whether any run on the page still trains, and the lines on the runs that are not
    finished: what the page shows on load and at each poll (each store opened once)."""
    states = [status_note(r, resolve_run(root, r)) for s in sides for r in s["runs"]]
    return any(st == "running" for st, _ in states), [n for _, n in states if n]


def run_brief(folder) -> dict:
    """What a legend label is made of: objective, seed, learning rate (None if unknown)."""
    meta = summary(folder)["meta"]
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    return {"objective": meta.get("objective", "?"), "seed": meta.get("seed"),
            "lr": config.get("lr") if isinstance(config.get("lr"), int | float) else None}


def load_manifold(root, runs: list[str], method: str) -> dict:
    """Manifold data of ``runs``; keyed by the snapshot steps (not the file's mtime, which
    every heartbeat of a live run changes), so slider moves hit the cache."""
    folders = [resolve_run(root, r) for r in runs]
    stamp = tuple(tuple(snapshot_index(f)) for f in folders)
    return cached(("manifold", tuple(runs), method, stamp),
                  lambda: manifold_data(current_app.config["GEOMVIZ_RUNS"], folders, method))


def marks_data(root, runs: list[str]) -> dict:
    """``{"steps": the slider's, "own": [per run, its own step at each], "mapping"}``: runs
    matched by step, or by fraction of training when their steps differ."""
    data = load_manifold(root, runs, "pca")
    return {"steps": data["steps"], "own": [r["steps"] for r in data["runs"]],
            "mapping": data["mapping"]}


def shown_steps(root, runs: list[str], step: int) -> tuple[list[int], str]:
    """Each run's own step on screen at slider step ``step`` (the last, off the slider) and
    the ``mapping`` (:func:`marks_data`)."""
    marks = marks_data(root, runs)
    idx = marks["steps"].index(step) if step in marks["steps"] else len(marks["steps"]) - 1
    return [int(own[idx]) for own in marks["own"]], marks["mapping"]


def safe_error(e: BaseException) -> str:
    """One short line for the page: what went wrong, never a traceback."""
    if isinstance(e, PathError | StoreError | ValueError | LookupError):
        text = str(e)
    else:
        text = f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."
