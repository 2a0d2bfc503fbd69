"""The compare page's reads: a per-app LRU whose concurrent misses are computed once, the
manifold data of two runs, a run's status and snapshot steps, and one-line error messages."""

from __future__ import annotations

import threading
from collections import OrderedDict

from flask import current_app

from ...store import StoreError, open_run
from ..data import PathError, manifold_data, resolve_run

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
            while len(store) > 16:
                store.popitem(last=False)
            locks.pop(key, None)
    return value


def snapshot_index(folder) -> list[int]:
    with open_run(folder) as run:
        return run.array_steps("snapshot.features")


def run_status(folder) -> str:
    with open_run(folder) as run:
        return run.meta.get("status", "unknown")


STATE = {"running": ("is still training", "the page polls every 5 s"),
         "crashed": ("crashed", "its writer stopped without closing the store; everything "
                                "up to its last flush is shown"),
         "diverged": ("diverged", "a non-finite loss stopped it")}


def status_note(run_id: str, folder) -> tuple[str, str]:
    """A run's status and one line on it when it is not ``finished`` (its status, last step
    and why), else ""."""
    with open_run(folder) as run:
        meta, steps = run.meta, run.steps()
    status = meta.get("status", "unknown")
    if status == "finished":
        return status, ""
    head, why = STATE.get(status, (f"has status {status!r}", "not a finished run"))
    last = f" at step {int(steps[-1])}" if len(steps) else " before its first step"
    detail = f" ({meta['message']})" if meta.get("message") else ""
    return status, f"{run_id} {head}{last}: {why}{detail}"


def status_notes(root, sides: list[dict]) -> tuple[bool, list[str]]:
    """Whether any run on the page still trains, and the lines on the runs that are not
    finished: what the page shows on load and at each poll (each store opened once)."""
    states = [status_note(r, resolve_run(root, r)) for s in sides for r in s["runs"]]
    return any(st == "running" for st, _ in states), [n for _, n in states if n]


def run_brief(folder) -> dict:
    """What a legend label is made of: objective, seed, learning rate (None if unknown)."""
    with open_run(folder) as run:
        meta = run.meta
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    return {"objective": meta.get("objective", "?"), "seed": meta.get("seed"),
            "lr": config.get("lr") if isinstance(config.get("lr"), int | float) else None}


def run_objective(folder) -> str:
    with open_run(folder) as run:
        return run.meta.get("objective", "?")


def load_manifold(root, runs: list[str], method: str) -> dict:
    """Manifold data of ``runs``; keyed by the snapshot steps (not the file's mtime, which
    every heartbeat of a live run changes), so slider moves hit the cache."""
    folders = [resolve_run(root, r) for r in runs]
    stamp = tuple(tuple(snapshot_index(f)) for f in folders)
    return cached(("manifold", tuple(runs), method, stamp),
                  lambda: manifold_data(current_app.config["GEOMVIZ_RUNS"], folders, method))


def safe_error(e: BaseException) -> str:
    """One short line for the page: what went wrong, never a traceback."""
    if isinstance(e, PathError | StoreError | ValueError | LookupError):
        text = str(e)
    else:
        text = f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."
