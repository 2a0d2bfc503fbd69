"""Background projection jobs: a projection too slow for a request runs in a child process
that the page polls. Job state lives on the Flask app, not in this module.

A job can be cancelled (its process is killed, and the cache temporaries it was writing are
removed, so nothing half-written is ever read), and a job started with a ``lease`` is
cancelled by itself once no poll has renewed the lease for that long: a closed page stops
its job instead of leaving it to slow everything else for a quarter of an hour. A method in
``CONFIRM`` (AlignedUMAP, minutes) starts only with ``confirmed=True``.

A job is shared by every page that shows the same runs, so it keeps a set of *holders*
(the pages' tokens, :data:`ANON` for a caller that names none), each with its own lease and
its own keep flag: one page leaving it (:func:`release`, or its lease lapsing) must not kill
what another page still waits for; the job is cancelled only when no holder is left.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from ..projection import cache_path, load_snapshots, project, temporaries
from ..store import confined

__all__ = ["start_job", "job_status", "cancel_job", "renew", "release", "holding", "SLOW",
           "UMAP_EPOCHS", "CONFIRM", "LEASE_S", "ANON", "NeedsConfirm"]

UMAP_EPOCHS = 100
SLOW = {"aligned_umap": {"n_epochs": UMAP_EPOCHS}, "fast_umap": {}}
CONFIRM = {"aligned_umap"}  # minutes of a core: never started without the user's confirm
#: A page polls every 2 s; a hidden browser tab may be throttled to one poll a minute, so a
#: lease of 90 s outlives a background tab and still frees the machine soon after a close.
LEASE_S = 90.0
#: The holder of a caller that names none (the CLI, the fast view's start, tests): one page.
ANON = "anonymous"


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
              estimate: float | None = None, work: Callable | None = None,
              holder: str = ANON) -> dict:
    """Start (once) the ``method`` projection of the runs in ``folders``; returns its status.
    ``fast_umap`` embeds the runs jointly (one job), ``aligned_umap`` one run at a time.
    ``holder`` (a page's token) holds the job with its own ``lease`` (seconds without a
    :func:`renew` after which its hold lapses; None: never) and ``keep`` (the page keeps it
    running when another view is chosen); on a running job it joins the holders instead of
    starting another. ``work`` replaces the per-group projection (tests give a slow fake).

    The status's ``lease`` is the lease the job was started with, ``expires`` the latest of
    its holders' expiries (None: a holder never lapses) and ``keep`` whether any holder keeps
    it; ``holders`` maps each holder to its own ``{"lease", "expires", "keep"}``."""
    if method in CONFIRM and not confirmed:
        raise NeedsConfirm(f"{method} takes minutes: start it only once the user confirmed")
    key = _key_of(method, folders)
    jobs = _jobs(app)
    lock = app.extensions.setdefault("geomviz_jobs_lock", threading.Lock())
    with lock:
        status = jobs.get(key)
        if status is not None and status["state"] == "running":
            with _handles(app)[key]["lock"]:
                if status["state"] == "running":  # not ended meanwhile: join it
                    _hold(status, holder, lease, keep)
                    return status
        if status is not None and status["state"] == "done" and not confirmed:
            return status  # a confirmed start recomputes: the cache may have been removed
        groups = [folders] if method == "fast_umap" else [[f] for f in folders]
        status = {"state": "running", "done": 0, "total": len(groups), "error": None,
                  "method": method, "pid": None, "started": time.time(), "estimate": estimate,
                  "lease": lease, "expires": None, "keep": keep, "reason": None,
                  "holders": {}}
        _hold(status, holder, lease, keep)
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


def _hold(status: dict, holder: str, lease: float | None, keep: bool) -> None:
    """Add or refresh ``holder``'s hold (the job's lock held, or the job not shared yet)."""
    expires = None if lease is None else time.time() + lease
    status["holders"][holder] = {"lease": lease, "expires": expires, "keep": keep}
    _derive(status)


def _derive(status: dict) -> None:
    """The job-wide ``expires``/``keep`` the page reads, from its holders' own."""
    holds = status["holders"].values()
    ends = [h["expires"] for h in holds]
    status["expires"] = None if not ends or None in ends else max(ends)
    status["keep"] = any(h["keep"] for h in holds)


def _watch(status: dict, handle: dict) -> None:
    """Follow the worker's messages; drop the holders whose lease ran out, and cancel the job
    once none is left."""
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
            if status["state"] == "running":
                _lapse(status, handle)
    proc.join(5)
    with suppress(OSError):
        conn.close()


def _lapse(status: dict, handle: dict) -> None:
    """Drop the holds whose lease ran out; the last one's lapse cancels the job (lock held)."""
    now, holders = time.time(), status["holders"]
    lapsed = [h for h, hold in holders.items()
              if hold["expires"] is not None and now > hold["expires"]]
    if not lapsed:
        return
    lease = max(holders[h]["lease"] for h in lapsed)
    for h in lapsed:
        del holders[h]
    _derive(status)
    if not holders:
        _kill(status, handle, f"no page asked for it for {lease:.0f} s")


def job_status(app, folders: list[Path], method: str) -> dict | None:
    return _jobs(app).get(_key_of(method, folders))


def holding(app, folders: list[Path], method: str, holder: str) -> dict | None:
    """``holder``'s own hold on the running job (a copy: lease, expires, keep), or None: a
    page acts on its own hold only, and shows as kept only what it keeps."""
    status = job_status(app, folders, method)
    if status is None or status["state"] != "running":
        return None
    hold = status["holders"].get(holder)
    return dict(hold) if hold is not None else None


def renew(app, folders: list[Path], method: str, holder: str = ANON, *,
          keep: bool | None = None) -> dict | None:
    """A page's poll: ``holder``'s lease starts again (and its keep flag becomes ``keep``
    unless None); a page that does not hold the job renews nothing, so its polls keep alive
    only what it asked for. Returns the job's status."""
    key = _key_of(method, folders)
    status, handle = _jobs(app).get(key), _handles(app).get(key)
    if status is None or handle is None:
        return status
    with handle["lock"]:
        hold = status["holders"].get(holder)
        if status["state"] == "running" and hold is not None:
            if hold["lease"] is not None:
                hold["expires"] = time.time() + hold["lease"]
            if keep is not None:
                hold["keep"] = keep
            _derive(status)
    return status


def release(app, folders: list[Path], method: str, holder: str = ANON,
            reason: str = "cancelled") -> dict | None:
    """``holder`` no longer wants the job (its page cancelled it, or switched view): its hold
    is dropped, and the job is cancelled with ``reason`` only if no other holder is left.
    Returns its status (None: no such job); still ``running`` when another page holds it."""
    key = _key_of(method, folders)
    status, handle = _jobs(app).get(key), _handles(app).get(key)
    if status is None or handle is None:
        return status
    with handle["lock"]:
        if status["state"] == "running" and holder in status["holders"]:
            del status["holders"][holder]
            _derive(status)
            if not status["holders"]:
                _kill(status, handle, reason)
    return status


def cancel_job(app, folders: list[Path], method: str, reason: str = "cancelled") -> dict | None:
    """Kill the job's worker (if it still runs) whoever holds it, remove what it was writing,
    mark it ``cancelled`` with ``reason``; returns its status (None: no such job)."""
    key = _key_of(method, folders)
    status, handle = _jobs(app).get(key), _handles(app).get(key)
    if status is not None and handle is not None:
        with handle["lock"]:
            _kill(status, handle, reason)
    return status


def _kill(status: dict, handle: dict, reason: str) -> None:
    """Cancel the running job (its handle's lock held)."""
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
            out.append(cache_path(root, method, SLOW[method], snaps))
    return out


def _remove_partial(handle: dict) -> None:
    """Remove the temporaries a killed worker left (a complete file is only ever renamed into
    place, so the cache files themselves are whole or absent)."""
    for path in handle["caches"]:
        for tmp in temporaries(path):
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
