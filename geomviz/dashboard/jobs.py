"""Background projection jobs: aligned UMAP is too slow for a request, so the page starts it
in a thread and polls its progress. Job state lives on the Flask app, not in this module."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..projection import project
from ..store import confined

__all__ = ["start_job", "job_status", "SLOW", "UMAP_EPOCHS", "start_umap", "umap_status"]

UMAP_EPOCHS = 100
SLOW = {"aligned_umap": {"n_epochs": UMAP_EPOCHS}, "fast_umap": {}}


def _jobs(app) -> dict:
    return app.extensions.setdefault("geomviz_jobs", {})


def start_job(app, root: str | Path, folders: list[Path], method: str) -> dict:
    """Start (once) the ``method`` projection of the runs in ``folders``; returns its status.
    ``fast_umap`` embeds the runs jointly (one job), ``aligned_umap`` one run at a time."""
    key = (method, tuple(str(f) for f in folders))
    jobs = _jobs(app)
    if key in jobs and jobs[key]["state"] in ("running", "done"):
        return jobs[key]
    groups = [folders] if method == "fast_umap" else [[f] for f in folders]
    status = {"state": "running", "done": 0, "total": len(groups), "error": None,
              "method": method}

    def work() -> None:
        try:
            # in a child process: numba's compiling would hold this server's GIL for seconds
            with _pool() as pool:
                for group in groups:
                    pool.submit(_confined_project, root, group, method).result()
                    status["done"] += 1
            status["state"] = "done"
        except Exception as e:  # noqa: BLE001 - reported on the page
            status.update(state="failed", error=f"{type(e).__name__}: {e}")

    jobs[key] = status
    threading.Thread(target=work, name=f"geomviz-{method}", daemon=True).start()
    return status


def _confined_project(root: str | Path, group: list[Path], method: str) -> None:
    """The worker's projection, reading stores inside the runs folder only, as requests do."""
    from .data import check_cache

    with confined(root):
        check_cache(root)
        project(group, method, cache_root=root, **SLOW[method])


def _pool() -> ProcessPoolExecutor:
    """One spawned worker that ends with the server (a killed server's worker, blocked on
    its queue, was left running for hours)."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a daemon thread that ends this process once ``parent`` is gone
    (the worker is then re-parented, so ``getppid`` changes)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="geomviz-parent-watch", daemon=True).start()


def job_status(app, folders: list[Path], method: str) -> dict | None:
    return _jobs(app).get((method, tuple(str(f) for f in folders)))


def start_umap(app, root: str | Path, folders: list[Path]) -> dict:
    """AlignedUMAP of each run (what ``geomviz demo`` and older callers start)."""
    return start_job(app, root, folders, "aligned_umap")


def umap_status(app, folders: list[Path]) -> dict | None:
    return job_status(app, folders, "aligned_umap")
