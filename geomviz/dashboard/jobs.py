"""Background projection jobs: a projection too slow for a request runs in a child process
that the page polls. Job state lives on the Flask app, not in this module.

A job can be cancelled (its process is killed, and the cache temporaries it was writing are
removed, so nothing half-written is ever read), and a job started with a ``lease`` is
cancelled by itself once no poll has renewed the lease for that long: a closed page stops
its job instead of leaving it to slow everything else for a quarter of an hour. A method in
``CONFIRM`` (AlignedUMAP, minutes) starts only with ``confirmed=True``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from ..projection import CACHE_DIR, _key, load_snapshots, project
from ..store import confined

__all__ = ["start_job", "job_status", "cancel_job", "renew", "SLOW", "UMAP_EPOCHS", "CONFIRM",
           "LEASE_S", "NeedsConfirm"]

UMAP_EPOCHS = 100
SLOW = {"aligned_umap": {"n_epochs": UMAP_EPOCHS}, "fast_umap": {}}
CONFIRM = {"aligned_umap"}  # minutes of a core: never started without the user's confirm
#: A page polls every 2 s; a hidden browser tab may be throttled to one poll a minute, so a
#: lease of 90 s outlives a background tab and still frees the machine soon after a close.
LEASE_S = 90.0


class NeedsConfirm(RuntimeError):
    """A job of a ``CONFIRM`` method was asked to start without the user's confirm."""


def _jobs(app) -> dict:
    return app.extensions.setdefault("geomviz_jobs", {})


def _handles(app) -> dict:
    """The live processes and their pipes, apart from the status dicts pages read."""
    return app.extensions.setdefault("geomviz_job_handles", {})


def _key_of(method: str, folders: list[Path]) -> tuple:
    return (method, tuple(str(f) for f in folders))


def start_job(app, root: str | Path, folders: list[Path], method: str, *,
              confirmed: bool = False, lease: float | None = None, keep: bool = False,
              estimate: float | None = None, work: Callable | None = None) -> dict:
    """Start (once) the ``method`` projection of the runs in ``folders``; returns its status.
    ``fast_umap`` embeds the runs jointly (one job), ``aligned_umap`` one run at a time.
    ``lease``: seconds without a :func:`renew` after which the job cancels itself (None:
    never); ``keep``: the page keeps it running when another view is chosen; ``work``
    replaces the per-group projection (tests give a slow fake)."""
    if method in CONFIRM and not confirmed:
        raise NeedsConfirm(f"{method} takes minutes: start it only once the user confirmed")
    key = _key_of(method, folders)
    jobs = _jobs(app)
    lock = app.extensions.setdefault("geomviz_jobs_lock", threading.Lock())
    with lock:
        state = jobs[key]["state"] if key in jobs else None
        if state == "running" or (state == "done" and not confirmed):
            return jobs[key]  # a confirmed start recomputes: the cache may have been removed
        groups = [folders] if method == "fast_umap" else [[f] for f in folders]
        now = time.time()
        status = {"state": "running", "done": 0, "total": len(groups), "error": None,
                  "method": method, "pid": None, "started": now, "estimate": estimate,
                  "lease": lease, "expires": None if lease is None else now + lease,
                  "keep": keep, "reason": None}
        ctx = multiprocessing.get_context("spawn")  # numba's compiling would hold our GIL
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, name=f"geomviz-{method}", daemon=True,
                           args=(child, os.getpid(), str(root), groups, method,
                                 work or _confined_project))
        proc.start()
        child.close()
        status["pid"] = proc.pid
        handle = {"proc": proc, "conn": parent, "lock": threading.Lock(),
                  "caches": _cache_paths(root, groups, method)}
        jobs[key], _handles(app)[key] = status, handle
    threading.Thread(target=_watch, args=(status, handle), name=f"geomviz-watch-{method}",
                     daemon=True).start()
    return status


def _watch(status: dict, handle: dict) -> None:
    """Follow the worker's messages; cancel the job when its lease runs out."""
    conn, proc = handle["conn"], handle["proc"]
    while status["state"] == "running":
        try:
            message = conn.recv() if conn.poll(0.25) else None
        except (EOFError, OSError):  # the worker is gone without a word (killed, crashed)
            proc.join(5)
            with handle["lock"]:
                if status["state"] == "running":
                    status.update(state="failed",
                                  error=f"the worker process ended (exit code {proc.exitcode})")
                    _remove_partial(handle)
            break
        with handle["lock"]:
            if status["state"] != "running":
                break
            if message and message[0] == "done":
                status["done"] += 1
            elif message and message[0] == "ok":
                status["state"] = "done"
            elif message and message[0] == "failed":
                status.update(state="failed", error=message[1])
        if status["expires"] is not None and time.time() > status["expires"]:
            _cancel(status, handle, f"no page asked for it for {status['lease']:.0f} s")
    proc.join(5)
    with suppress(OSError):
        conn.close()


def job_status(app, folders: list[Path], method: str) -> dict | None:
    return _jobs(app).get(_key_of(method, folders))


def renew(app, folders: list[Path], method: str) -> dict | None:
    """A page's poll: the job's lease starts again; returns its status."""
    status = job_status(app, folders, method)
    if status is not None and status["lease"] is not None and status["state"] == "running":
        status["expires"] = time.time() + status["lease"]
    return status


def cancel_job(app, folders: list[Path], method: str, reason: str = "cancelled") -> dict | None:
    """Kill the job's worker (if it still runs), remove what it was writing, mark it
    ``cancelled`` with ``reason``; returns its status (None: no such job)."""
    key = _key_of(method, folders)
    status, handle = _jobs(app).get(key), _handles(app).get(key)
    if status is not None and handle is not None:
        _cancel(status, handle, reason)
    return status


def _cancel(status: dict, handle: dict, reason: str) -> None:
    with handle["lock"]:
        if status["state"] != "running":
            return
        proc = handle["proc"]
        proc.kill()
        proc.join(10)
        _remove_partial(handle)
        status.update(state="cancelled", reason=reason)


def _cache_paths(root: str | Path, groups: list[list[Path]], method: str) -> list[Path]:
    """The cache files the job writes, as :func:`geomviz.projection.project` names them."""
    out = []
    for group in groups:
        with suppress(Exception):  # an unreadable run: the worker fails and says why
            snaps = [load_snapshots(f, features=False) for f in group]
            out.append(Path(root) / CACHE_DIR / f"{method}-{_key(method, SLOW[method], snaps)}.npz")
    return out


def _remove_partial(handle: dict) -> None:
    """Remove the temporaries a killed worker left (a complete file is only ever renamed into
    place, so the cache files themselves are whole or absent)."""
    for path in handle["caches"]:
        for tmp in path.parent.glob(f"{path.stem}.*.tmp.npz"):
            with suppress(OSError):
                tmp.unlink()


def _worker(conn, parent: int, root: str, groups: list[list[Path]], method: str,
            work: Callable) -> None:
    """The child process: each group's projection, a message after each."""
    _exit_with_parent(parent)
    try:
        for group in groups:
            work(root, group, method)
            conn.send(("done", None))
        conn.send(("ok", None))
    except Exception as e:  # noqa: BLE001 - reported on the page
        conn.send(("failed", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def _confined_project(root: str | Path, group: list[Path], method: str) -> None:
    """The worker's projection, reading stores inside the runs folder only, as requests do."""
    from .data import check_cache

    with confined(root):
        check_cache(root)
        project(group, method, cache_root=root, **SLOW[method])


def _exit_with_parent(parent: int) -> None:
    """In the worker: a daemon thread that ends this process once ``parent`` is gone (the
    worker is then re-parented, so ``getppid`` changes): a killed server's worker was left
    running for hours."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="geomviz-parent-watch", daemon=True).start()
