"""The compare page's secondary callbacks: OOD histograms (one scale for both sides),
and figure download (the background jobs' poll is in ``compare_jobs``)."""

from __future__ import annotations

import numpy as np
from dash import Input, Output, State, callback, dcc, html, no_update
from flask import current_app

from ... import figures as F
from ...figures.theme import template
from ..data import ood_data, resolve_run
from ..guard import BadInput, choice, count, run_ids
from ..jobs import start_job
from .compare_data import cached, safe_error, store_state

SCORES = ("msp", "max_logit", "energy", "min_distance")
FORMATS = ("png", "svg", "pdf", "html")
NO_SCORE = {"min_distance": "min_distance is the distance to the nearest class centre, which "
                            "only Euclidean (distance) heads have"}


def _ood_side(root, run, score):
    try:
        data = ood_data(resolve_run(root, run), score)
    except Exception as e:  # noqa: BLE001 - one bad store is a message on its side
        return None, html.P(f"{run}: {safe_error(e)}", className="note")
    if data is None:
        why = NO_SCORE.get(score, "the run has no OOD split or did not log this score")
        return None, html.P(f"{run}: no {score} score — {why}", className="note")
    return data, None


def _state(root, run: str):
    try:
        return store_state(resolve_run(root, run))
    except Exception:  # noqa: BLE001 - _ood_side says what is wrong with it
        return None


def share_ood_scales(figs: list, bins: int = 40) -> None:
    """One scale for both sides' ID/OOD histograms: the same score bins and x range, and
    the same share-of-samples y range (the tallest bin of either side, as plotly will draw
    it with ``histnorm="probability"``), so bar heights compare across the two sides."""
    scores = [np.asarray(t.x, dtype=np.float64) for f in figs for t in f.data[:2]
              if t.x is not None and len(t.x)]
    if not scores:
        return
    lo = min(float(v.min()) for v in scores)
    hi = max(float(v.max()) for v in scores)
    size = (hi - lo) / bins or 1.0
    edges = lo + size * np.arange(bins + 2)  # plotly's bins: [start + k·size, ...)
    top = max(float(np.histogram(v, edges)[0].max()) / len(v) for v in scores)
    for f in figs:
        f.update_traces(xbins={"start": lo, "end": hi, "size": size},
                        selector={"type": "histogram"})
        f.update_xaxes(range=[lo, hi], row=1, col=1)
        f.update_yaxes(range=[0.0, 1.05 * top], row=1, col=1)


@callback(Output("compare-left-ood", "children"), Output("compare-right-ood", "children"),
          Input("compare-ood-score", "value"), Input("compare-runs", "data"),
          Input("compare-below", "data"), prevent_initial_call=True)
def _ood(score, runs, _below):
    """ID vs OOD histograms of both runs on one scale; below the fold, asked for once the
    manifolds are drawn (``compare-below``)."""
    root = current_app.config["GEOMVIZ_RUNS"]
    score, runs = choice(score, SCORES, "OOD score"), run_ids(runs)
    state = tuple(_state(root, r) for r in runs)
    return cached(("ood", tuple(runs), score, state), lambda: _ood_children(root, runs, score))


def _ood_children(root, runs: list[str], score: str):
    sides = [_ood_side(root, r, score) for r in runs]
    figs = [F.ood_scores(d["id"], d["ood"], score) if d else None for d, _ in sides]
    drawn = [f for f in figs if f is not None]
    for f in drawn:
        f.update_layout(template=template())
    if len(drawn) == 2:
        share_ood_scales(drawn)
    out = []
    for run, (data, note), fig in zip(runs, sides, figs, strict=True):
        if fig is None:
            out.append(note)
            continue
        rows = [html.Tr([html.Td(k), html.Td(f"{v:.4f}")]) for k, v in data["metrics"].items()]
        # which run (for a seed group: which seed) and which evaluation these numbers are
        head = html.P(f"{run} · step {data['step']}", className="ood-run")
        out.append(html.Div([head, dcc.Graph(figure=fig, className="panel ood"),
                             html.Table([html.Tbody(rows)], className="ood-metrics")]))
    return out[0], out[1]


@callback(Output("compare-download", "data"),
          Output("compare-message", "children", allow_duplicate=True),
          Input("compare-download-button", "n_clicks"), State("compare-download-figure", "value"),
          State("compare-download-format", "value"), State("compare-runs", "data"),
          prevent_initial_call=True)
def _download(_n, figure, formats, runs):
    """The publication figures of the two runs, as `geomviz figures` writes them, zipped."""
    from ...study.figureset import FIGURES
    from ..download import figure_zip

    count(_n, "the download button's clicks")
    figure = choice(figure, ["all", *FIGURES], "figure")
    if formats is not None and (not isinstance(formats, list)
                                or not all(f in FORMATS for f in formats)):
        raise BadInput(f"formats {str(formats)[:60]} are not among {', '.join(FORMATS)}")
    runs = run_ids(runs)
    if not formats:
        return no_update, "choose at least one format to download"
    root = current_app.config["GEOMVIZ_RUNS"]
    folders = [resolve_run(root, r) for r in runs]
    data, message = figure_zip(root, folders, None if figure == "all" else [figure], formats)
    name = f"geomviz-{'-vs-'.join(f.name for f in folders)}-{figure}.zip"
    return dcc.send_bytes(data, name), message


@callback(Output("compare-prefetch", "disabled"), Input("compare-prefetch", "n_intervals"),
          State("compare-runs", "data"), prevent_initial_call=True)
def _prefetch(_n, runs):
    """The fast aligned view of finished runs, started in the background after the page's
    first draw (not during it: its worker's start and numba's compile take a core)."""
    count(_n, "the prefetch timer's ticks")
    root = current_app.config["GEOMVIZ_RUNS"]
    start_job(current_app._get_current_object(), root,
              [resolve_run(root, r) for r in run_ids(runs)], "fast_umap")
    return True
