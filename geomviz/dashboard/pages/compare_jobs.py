"""Slow projections on the compare page: read from the cache, else started in the
background while PCA is shown, with progress in the page's message line."""

from __future__ import annotations

from flask import current_app

from ..data import resolve_run
from ..jobs import SLOW, start_job
from .compare_data import load_manifold

NAMES = {"aligned_umap": "AlignedUMAP", "fast_umap": "aligned UMAP (fast)"}


def job_message(status: dict) -> str:
    name = NAMES.get(status.get("method"), status.get("method", "projection"))
    if status["state"] == "failed":
        return f"{name} failed: {status['error']}"
    if status["state"] == "done":
        return ""
    return (f"{name} is being computed in the background ({status['done']}/"
            f"{status['total']} done); showing PCA meanwhile")


def aligned_or_pca(root, runs: list[str], method: str):
    """``(data, method drawn, message, polling)``: a slow method not cached yet starts its
    job and the PCA is drawn meanwhile (``polling`` False turns the progress poll on)."""
    try:
        return load_manifold(root, runs, method), method, "", True
    except LookupError:
        if method not in SLOW:
            raise
        folders = [resolve_run(root, r) for r in runs]
        status = start_job(current_app._get_current_object(), root, folders, method)
        return load_manifold(root, runs, "pca"), "pca", job_message(status), False
