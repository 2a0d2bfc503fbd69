"""Background projection jobs: AlignedUMAP is too slow for a request, so the page starts it in
a thread and polls its progress. Job state lives on the Flask app, not in this module."""

from __future__ import annotations

import threading
from pathlib import Path

from ..projection import project

__all__ = ["start_umap", "umap_status", "UMAP_EPOCHS"]

UMAP_EPOCHS = 100


def _jobs(app) -> dict:
    return app.extensions.setdefault("geomviz_jobs", {})


def start_umap(app, root: str | Path, folders: list[Path]) -> dict:
    """Start (once) the AlignedUMAP projection of each run in ``folders``; returns its status."""
    key = ("aligned_umap", tuple(str(f) for f in folders))
    jobs = _jobs(app)
    if key in jobs and jobs[key]["state"] in ("running", "done"):
        return jobs[key]
    status = {"state": "running", "done": 0, "total": len(folders), "error": None}

    def work() -> None:
        try:
            for folder in folders:
                project([folder], "aligned_umap", cache_root=root, n_epochs=UMAP_EPOCHS)
                status["done"] += 1
            status["state"] = "done"
        except Exception as e:  # noqa: BLE001 - reported on the page
            status.update(state="failed", error=f"{type(e).__name__}: {e}")

    jobs[key] = status
    threading.Thread(target=work, name="geomviz-umap", daemon=True).start()
    return status


def umap_status(app, folders: list[Path]) -> dict | None:
    return _jobs(app).get(("aligned_umap", tuple(str(f) for f in folders)))
