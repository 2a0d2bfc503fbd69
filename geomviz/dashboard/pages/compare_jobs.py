"""Slow projections on the compare page: read from the cache, else computed in the
background while PCA is shown.

The fast aligned view starts unasked (seconds). AlignedUMAP (minutes of a core) never does:
choosing it shows the estimate (sizes, "about N min on this machine") and a Start button;
only that click starts it. A running job has a Cancel button, its lease is renewed by the
page's poll (a closed page lets it lapse: the job is cancelled), and switching to another
view cancels it unless "keep computing" was ticked: an unseen job must not slow the machine
for a quarter of an hour, yet a user who asked to keep it gets it when they come back.

Two pages may show the same runs, and so the same job: each page acts on its own hold only
(its token, ``compare-page``). Its Start joins a running job, its Cancel, view switch and
closing drop its hold, and the job stops only once no page holds it; a page that does not
hold a running job is shown its progress and may join it, never told it is kept for it.
"""

from __future__ import annotations

import time

from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from flask import current_app

from ...projection import project
from ..data import resolve_run
from ..estimate import duration, estimate, run_sizes
from ..guard import choice, count, options, page_token, run_ids
from ..jobs import (
    CONFIRM,
    LEASE_S,
    SLOW,
    UMAP_EPOCHS,
    cancel_job,
    holding,
    job_status,
    release,
    renew,
    start_job,
)
from ..views import AXES
from .compare_data import load_manifold

NAMES = {"aligned_umap": "AlignedUMAP", "fast_umap": "aligned UMAP (fast)"}
HIDDEN, SHOWN = {"display": "none"}, {}
ELSEWHERE = "cancelled here; still computed for another open page"


def controls():
    """The job line under the page's message: text, Start (confirm), keep, Cancel."""
    return html.Div([
        html.Span(id="compare-job-text"),
        html.Button("start", id="compare-job-confirm", n_clicks=0, style=HIDDEN),
        dcc.Checklist([{"label": " keep computing if I switch view", "value": "keep"}], [],
                      id="compare-job-keep", inline=True, style=HIDDEN),
        html.Button("cancel", id="compare-job-cancel", n_clicks=0, style=HIDDEN),
    ], id="compare-job", className="controls", style=HIDDEN)


def job_message(status: dict) -> str:
    """One line on a job: progress and time left, or how it ended."""
    name = NAMES.get(status.get("method"), status.get("method", "projection"))
    if status["state"] == "failed":
        return f"{name} failed: {status['error']}"
    if status["state"] == "cancelled":
        return f"{name} was cancelled ({status['reason']})"
    if status["state"] == "done":
        return ""
    unit = "run" if status["method"] == "aligned_umap" else "part"
    left = ""
    if status.get("estimate"):
        rest = status["estimate"] - (time.time() - status["started"])
        left = f", {duration(rest)} left" if rest > 0 else ", taking longer than estimated"
    return (f"{name} is being computed in the background ({status['done']}/{status['total']} "
            f"{unit}s done{left}); showing PCA meanwhile")


def aligned_or_pca(root, runs: list[str], method: str):
    """``(data, method drawn, message, polling)``: a slow method not cached yet is drawn as
    PCA meanwhile; the fast view's job starts here, AlignedUMAP's only on a confirm.
    ``polling`` is always ``no_update``: the job line (``_job_line``) alone turns the poll on
    and off, as two writers raced (a kept job's poll was turned off by a redraw)."""
    try:
        return load_manifold(root, runs, method), method, "", no_update
    except LookupError:
        if method not in SLOW:
            raise
        folders = [resolve_run(root, r) for r in runs]
        app = current_app._get_current_object()
        status = job_status(app, folders, method) if method in CONFIRM else \
            start_job(app, root, folders, method)
        pca = load_manifold(root, runs, "pca")
        if status is None or status["state"] != "running":
            why = job_message(status) + ". " if status is not None and status["state"] in (
                "failed", "cancelled") else ""
            return pca, "pca", (f"{why}showing PCA: {NAMES[method]} is not computed for these "
                                "runs yet" + (" (start it below)" if method in CONFIRM else "")),\
                no_update
        return (pca, "pca", f"{NAMES[method]} is being computed in the background; showing "
                "PCA until it is ready", no_update)


def _estimate_line(root, folders) -> tuple[str, float]:
    """What a Start click would cost, for the runs not cached yet: ``(text, seconds)``."""
    todo = []
    for f, size in zip(folders, run_sizes(folders), strict=True):
        try:  # a run cached already (say, by a cancelled job's first half) costs nothing
            project([f], "aligned_umap", cache_root=root, cached_only=True, **SLOW["aligned_umap"])
        except LookupError:
            todo.append(size)
    est = estimate(todo, UMAP_EPOCHS)
    return est.text(), est.seconds


@callback(Output("compare-job-text", "children"), Output("compare-job", "style"),
          Output("compare-job-confirm", "children"), Output("compare-job-confirm", "style"),
          Output("compare-job-keep", "style"), Output("compare-job-cancel", "style"),
          Output("compare-umap-ready", "data"),
          Output("compare-jobs", "disabled", allow_duplicate=True),
          Input("compare-projection", "value"), Input("compare-runs", "data"),
          Input("compare-job-confirm", "n_clicks"), Input("compare-job-cancel", "n_clicks"),
          Input("compare-jobs", "n_intervals"), Input("compare-job-keep", "value"),
          State("compare-umap-ready", "data"), State("compare-page", "data"),
          prevent_initial_call=True)
def _job_line(method, runs, confirms, cancels, _n, keep, ready, page):
    """Everything about the page's background jobs: estimate and Start, progress and Cancel,
    the poll (which renews this page's holds), and the release of an unkept job left behind."""
    root = current_app.config["GEOMVIZ_RUNS"]
    method = choice(method, AXES, "projection")
    runs, ready = run_ids(runs), count(ready, "the projections ready")
    count(confirms, "the start button's clicks")
    count(cancels, "the cancel button's clicks")
    keep, page = "keep" in options(keep), page_token(page)
    app = current_app._get_current_object()
    folders = [resolve_run(root, r) for r in runs]
    trig, note = ctx.triggered_id, None
    hold = holding(app, folders, "aligned_umap", page)
    if hold is not None:  # this page's hold only: another page's keep is not this one's
        if trig == "compare-job-keep":
            renew(app, folders, "aligned_umap", page, keep=keep)
        if method != "aligned_umap" and not (keep if trig == "compare-job-keep" else
                                             hold["keep"]):
            release(app, folders, "aligned_umap", page, f"you switched to {method}")
    if trig == "compare-job-confirm" and method in CONFIRM and count(confirms, "") > 0 \
            and not _cached(root, runs, method):  # a job done since the click: no rerun
        _, secs = _estimate_line(root, folders)
        start_job(app, root, folders, method, confirmed=True, lease=LEASE_S, keep=keep,
                  estimate=secs, holder=page)
    if trig == "compare-job-cancel" and count(cancels, "") > 0:  # the job the line shows:
        shown = job_status(app, folders, method) if method in SLOW else None  # this view's,
        target = method if shown is not None and shown["state"] == "running" else \
            "aligned_umap"  # else the AlignedUMAP kept while another view is shown
        if target in CONFIRM:
            left = release(app, folders, target, page, "you cancelled it")
            note = ELSEWHERE if left is not None and left["state"] == "running" else None
        else:  # the fast view holds no page (its starts name none); the next redraw restarts it
            cancel_job(app, folders, target, "you cancelled it")
    for m in SLOW:  # the poll: what this page still holds is still wanted
        renew(app, folders, m, page)
    out = _render(root, app, runs, folders, method, ready, page)
    return out if note is None else (note, *out[1:])


def _cached(root, runs: list[str], method: str) -> bool:
    try:
        load_manifold(root, runs, method)
        return True
    except LookupError:
        return False


def _render(root, app, runs, folders, method, ready, page):
    """(text, line style, start label, start style, keep style, cancel style, ready, poll
    disabled) for the view chosen and the jobs of these runs, as ``page`` holds them."""
    status = job_status(app, folders, method) if method in SLOW else None
    if status is not None and status["state"] == "running":
        if method in CONFIRM and holding(app, folders, method, page) is None:  # another page's
            return (job_message(status).replace("in the background", "for another open page"),
                    SHOWN, "wait for it here too", SHOWN, SHOWN, HIDDEN, no_update, False)
        return (job_message(status), SHOWN, no_update, HIDDEN,
                SHOWN if method in CONFIRM else HIDDEN, SHOWN, no_update, False)
    if method in SLOW and _cached(root, runs, method):  # a job just done: redraw from it
        done = status is not None and status["state"] == "done"
        return "", HIDDEN, no_update, HIDDEN, HIDDEN, HIDDEN, ready + 1 if done else no_update, \
            True
    kept = job_status(app, folders, "aligned_umap")
    if method not in CONFIRM and holding(app, folders, "aligned_umap", page) is not None:
        return (job_message(kept).replace("showing PCA meanwhile", "kept while you look at "
                                          "another view"), SHOWN, no_update, HIDDEN, HIDDEN,
                SHOWN, no_update, False)
    if method in SLOW and method not in CONFIRM:  # the fast view: the redraw starts it
        if status is None:
            return "", HIDDEN, no_update, HIDDEN, HIDDEN, HIDDEN, no_update, False
        return job_message(status), SHOWN, no_update, HIDDEN, HIDDEN, HIDDEN, no_update, True
    if method in CONFIRM:
        text, _ = _estimate_line(root, folders)
        before = job_message(status) if status is not None else ""
        return (f"{before + '. ' if before else ''}{NAMES[method]} is not computed for these "
                f"runs: {text}. It runs in the background; switching view cancels it unless "
                "kept.", SHOWN, f"start {NAMES[method]} ({text.split(' on ')[0]})", SHOWN,
                SHOWN, HIDDEN, no_update, True)
    if kept is not None and kept["state"] == "done" and _cached(root, runs, "aligned_umap"):
        return ("AlignedUMAP is ready: choose it above", SHOWN, no_update, HIDDEN, HIDDEN,
                HIDDEN, no_update, True)
    return "", HIDDEN, no_update, HIDDEN, HIDDEN, HIDDEN, no_update, True
