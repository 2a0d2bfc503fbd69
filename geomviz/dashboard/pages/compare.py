"""Compare page: two runs side by side, one step slider driving both manifolds and markers.

Slider moves send ``Patch`` updates of the scatter traces' x/y (and of the time
panels' step markers) only; hovering a point on one side rings the same probe
example on the other. Projections come from the cache (``geomviz project``);
PCA and the polar view are computed once at first use if missing.
"""

from __future__ import annotations

from collections import OrderedDict

import dash
import numpy as np
from dash import Input, Output, Patch, State, callback, ctx, dcc, html, no_update
from flask import current_app

from ... import figures as F
from ...study.figureset import FIGURES
from ..data import PathError, manifold_data, ood_data, resolve_run, time_series
from ..jobs import start_umap, umap_status

SIDES = ("left", "right")
COLORS = {"class": "class", "correct": "correct (1) / wrong (0)",
          "entropy_target": "target entropy H(p)",
          "entropy_pred": "prediction entropy H(q)", "norm": "‖x‖",
          "true": "anchor gap s·d_y / true logit", "margin": "margin / gap"}
PANELS = ("norm", "radial", "decomp", "entropy", "margins", "loss")


def _cache(key, build):
    """Per-app LRU (lives on the Flask app, not in this module)."""
    store = current_app.extensions.setdefault("geomviz_cache", OrderedDict())
    if key not in store:
        store[key] = build()
        while len(store) > 8:
            store.popitem(last=False)
    store.move_to_end(key)
    return store[key]


def _manifold(root, runs, method):
    folders = [resolve_run(root, r) for r in runs]
    # keyed by the snapshot steps (not the file's mtime, which every heartbeat of a live run
    # changes), so slider moves hit this cache until a new snapshot arrives
    stamp = tuple(tuple(_snapshot_steps(f)) for f in folders)
    return _cache(("manifold", tuple(runs), method, stamp),
                  lambda: manifold_data(current_app.config["GEOMVIZ_RUNS"], folders, method))


def _snapshot_steps(folder) -> list[int]:
    from ...store import open_run

    with open_run(folder) as run:
        return run.array_steps("snapshot.features")


def _color_values(run: dict, idx: int, color: str) -> np.ndarray | None:
    """Per-point colour values at snapshot ``idx``, or None to colour by class."""
    extra = run["extra"]
    if color == "correct" and "margin" in extra:  # margin z_y - max_{j≠y} z_j > 0: correct
        return (extra["margin"][idx] > 0).astype(np.float32)
    return None if color == "class" or color not in extra else extra[color][idx]


def _marks(steps: list[int]) -> dict:
    last = len(steps) - 1
    return {i: str(s) for i, s in enumerate(steps) if i in (0, last) or i % 10 == 0}


def _status(folder) -> str:
    from ...store import open_run

    with open_run(folder) as run:
        return run.meta["status"]


def _time_figures(ts: dict, step: int) -> list:
    h = ts["norm_hist"]
    norm = (F.norm_heatmap(h.steps, h.edges, h.counts, ts["p50"][1], ts["p95"][1], step)
            if h is not None and len(h.steps) else F.series({}, "feature norm (no probes)"))
    d = ts["decomp"]
    return [
        norm,
        F.series({"radial fraction": ts["radial_fraction"]}, "radial share of ‖∂ℓ/∂x‖²",
                 marker_step=step),
        F.decomposition(d["total"][0], {k: d[k][1] for k in ("radial", "angular", "weight",
                                                             "bias")}, d["total"][1], step),
        F.entropy({k: v[0] for k, v in ts["entropy"].items()},
                  {k: v[1] for k, v in ts["entropy"].items()}, step),
        F.series(ts["margins"], "what sets the target: s·d_y vs nearest negative (p5/p50/p95)"
                 if ts["metric"] == "euclidean" else "true logit vs top negative (p5/p50/p95)",
                 marker_step=step, log_y=ts["metric"] == "euclidean"),
        F.loss_accuracy(ts["loss"][0], ts["loss"][1], ts["acc"][1], ts["spike"][1], step),
    ]


def layout(a: str | None = None, b: str | None = None, **_):
    root = current_app.config["GEOMVIZ_RUNS"]
    try:
        folders = [resolve_run(root, a), resolve_run(root, b)]
        data = _manifold(root, [a, b], "pca")
    except (PathError, ValueError) as e:
        return html.Div([html.H2("Cannot compare"), html.P(str(e), id="compare-error"),
                         dcc.Link("back to the runs", href="/")])
    steps = data["steps"]
    last = len(steps) - 1
    marks = _marks(steps)
    live = any(_status(f) == "running" for f in folders)
    cols = []
    for side, run, folder in zip(SIDES, (a, b), folders, strict=True):
        ts = time_series(folder)
        panels = [dcc.Graph(id=f"compare-{side}-{p}", figure=fig, className="panel")
                  for p, fig in zip(PANELS, _time_figures(ts, steps[last]), strict=True)]
        cols.append(html.Div([html.H3(run), dcc.Graph(id=f"compare-{side}-graph",
                                                      className="manifold"), *panels],
                             className="column"))
    return html.Div([
        dcc.Store(id="compare-runs", data=[a, b]),
        dcc.Store(id="compare-steps", data=steps),
        dcc.Interval(id="compare-live", interval=5000, disabled=not live),
        dcc.Interval(id="compare-jobs", interval=2000, disabled=True),
        dcc.Store(id="compare-umap-ready", data=0),
        html.Div([
            dcc.RadioItems([{"label": " PCA (joint)", "value": "pca"},
                            {"label": " AlignedUMAP", "value": "aligned_umap"},
                            {"label": " polar (‖x‖, θ_y)", "value": "polar"}], "pca",
                           id="compare-projection", inline=True),
            dcc.Dropdown([{"label": v, "value": k} for k, v in COLORS.items()], "class",
                         id="compare-color", clearable=False, style={"width": "260px"}),
            html.Button("play", id="compare-play", n_clicks=0),
            dcc.Interval(id="compare-ticker", interval=700, disabled=True),
            dcc.Dropdown([{"label": "all figures", "value": "all"}] +
                         [{"label": n, "value": n} for n in FIGURES], "all",
                         id="compare-download-figure", clearable=False,
                         style={"width": "190px"}),
            dcc.Checklist(["png", "svg", "pdf", "html"], ["png", "svg", "html"],
                          id="compare-download-format", inline=True),
            html.Button("download figures", id="compare-download-button", n_clicks=0),
            dcc.Download(id="compare-download"),
        ], className="controls"),
        html.Div(dcc.Slider(0, last, 1, value=last, marks=marks, id="compare-step",
                            updatemode="drag"), className="slider"),
        html.Div(id="compare-message", className="message"),
        html.Div(cols, className="columns"),
        html.H3("OOD detection (last evaluation)"),
        dcc.RadioItems(["msp", "max_logit", "energy", "min_distance"], "msp",
                       id="compare-ood-score", inline=True),
        html.Div([html.Div(id=f"compare-{side}-ood", className="column") for side in SIDES],
                 className="columns"),
    ])


@callback(Output("compare-download", "data"),
          Output("compare-message", "children", allow_duplicate=True),
          Input("compare-download-button", "n_clicks"), State("compare-download-figure", "value"),
          State("compare-download-format", "value"), State("compare-runs", "data"),
          prevent_initial_call=True)
def _download(_n, figure, formats, runs):
    """The publication figures of the two runs, as `geomviz figures` writes them, zipped."""
    from ..download import figure_zip

    if not formats:
        return no_update, "choose at least one format to download"
    root = current_app.config["GEOMVIZ_RUNS"]
    folders = [resolve_run(root, r) for r in runs]
    data, message = figure_zip(root, folders, None if figure == "all" else [figure], formats)
    name = f"geomviz-{'-vs-'.join(f.name for f in folders)}-{figure}.zip"
    return dcc.send_bytes(data, name), message


def _ood_panel(root, run, score):
    data = ood_data(resolve_run(root, run), score)
    if data is None:
        return html.P(f"{run}: no OOD split, or no {score} score (Euclidean heads only for "
                      "min_distance)")
    rows = [html.Tr([html.Td(k), html.Td(f"{v:.4f}")]) for k, v in data["metrics"].items()]
    return html.Div([dcc.Graph(figure=F.ood_scores(data["id"], data["ood"], score),
                               className="panel"),
                     html.Table([html.Tbody(rows)], className="ood-metrics")])


@callback(Output("compare-left-ood", "children"), Output("compare-right-ood", "children"),
          Input("compare-ood-score", "value"), State("compare-runs", "data"))
def _ood(score, runs):
    root = current_app.config["GEOMVIZ_RUNS"]
    return _ood_panel(root, runs[0], score), _ood_panel(root, runs[1], score)


dash.register_page(__name__, path="/compare", name="Compare", layout=layout)


def _figure(run: dict, idx: int, color: str, title: str, highlight, ranges):
    extra = run["extra"]
    c = _color_values(run, idx, color)
    hover = {k: extra[k][idx] for k in ("norm", "cos_true", "true", "entropy_target")
             if k in extra}
    return F.manifold(run["xy"][idx], run["labels"], c, COLORS.get(color, color), title, hover,
                      highlight=np.asarray(highlight, dtype=int), ranges=ranges)


@callback(Output("compare-left-graph", "figure"), Output("compare-right-graph", "figure"),
          Output("compare-message", "children"), Output("compare-jobs", "disabled"),
          Input("compare-projection", "value"), Input("compare-color", "value"),
          Input("compare-step", "value"), Input("compare-left-graph", "hoverData"),
          Input("compare-right-graph", "hoverData"), Input("compare-left-graph", "selectedData"),
          Input("compare-right-graph", "selectedData"), State("compare-runs", "data"),
          Input("compare-steps", "data"), Input("compare-umap-ready", "data"))
def _manifolds(method, color, idx, hover_left, hover_right, sel_left, sel_right, runs, steps,
               _ready):
    root = current_app.config["GEOMVIZ_RUNS"]
    message, polling = "", no_update
    try:
        data = _manifold(root, runs, method)
    except LookupError:  # AlignedUMAP not cached: compute it in the background, show PCA
        folders = [resolve_run(root, r) for r in runs]
        status = start_umap(current_app._get_current_object(), root, folders)
        data, method, polling = _manifold(root, runs, "pca"), "pca", False
        message = _job_message(status)
    idx = min(int(idx), len(data["steps"]) - 1)
    trig = ctx.triggered_id
    if trig == "compare-step":  # x/y only
        patches = []
        for run in data["runs"]:
            p = Patch()
            xy = run["xy"][idx]
            colored = _color_values(run, idx, color) is not None  # as _figure decides
            for i, (_, _, m) in enumerate(F.trace_masks(run["labels"], colored)):
                p["data"][i]["x"] = xy[m, 0].tolist()
                p["data"][i]["y"] = xy[m, 1].tolist()
            p["data"][-1]["x"], p["data"][-1]["y"] = [], []
            p["layout"]["title"]["text"] = f"step {data['steps'][idx]}"
            patches.append(p)
        return patches[0], patches[1], no_update, polling
    if trig in ("compare-left-graph", "compare-right-graph"):  # ring the same examples
        left = trig == "compare-left-graph"
        prop = ctx.triggered[0]["prop_id"].rsplit(".", 1)[-1]
        event = (hover_left if left else hover_right) if prop == "hoverData" else \
            (sel_left if left else sel_right)  # a lasso or box selection
        points = (event or {}).get("points") or []
        ids = [int(pt["customdata"]) for pt in points if "customdata" in pt]
        patches = []
        for run in data["runs"]:
            p = Patch()
            xy = run["xy"][idx]
            p["data"][-1]["x"] = xy[ids, 0].tolist()
            p["data"][-1]["y"] = xy[ids, 1].tolist()
            p["data"][-1]["customdata"] = ids
            patches.append(p)
        return patches[0], patches[1], no_update, polling
    title = f"step {data['steps'][idx]}"
    runs_xy = [run["xy"] for run in data["runs"]]
    if method == "aligned_umap":  # separate embeddings: fixed per run over time
        ranges = [F.common_ranges(xy) for xy in runs_xy]
    else:  # one basis (PCA) or absolute units (polar): the same axes on both sides
        ranges = [F.common_ranges(*runs_xy)] * 2
    figs = [_figure(run, idx, color, title, [], r)
            for run, r in zip(data["runs"], ranges, strict=True)]
    return figs[0], figs[1], message, polling


def _job_message(status: dict) -> str:
    if status["state"] == "failed":
        return f"AlignedUMAP failed: {status['error']}"
    if status["state"] == "done":
        return ""
    return (f"AlignedUMAP is being computed in the background ({status['done']}/"
            f"{status['total']} runs done); showing PCA meanwhile")


@callback(Output("compare-message", "children", allow_duplicate=True),
          Output("compare-umap-ready", "data"), Output("compare-jobs", "disabled",
                                                       allow_duplicate=True),
          Input("compare-jobs", "n_intervals"), State("compare-runs", "data"),
          State("compare-umap-ready", "data"), prevent_initial_call=True)
def _jobs(_n, runs, ready):
    root = current_app.config["GEOMVIZ_RUNS"]
    status = umap_status(current_app._get_current_object(),
                         [resolve_run(root, r) for r in runs])
    if status is None:
        return no_update, no_update, True
    if status["state"] == "running":
        return _job_message(status), no_update, False
    # done (the manifolds re-render from the cache) or failed (say so and stop polling)
    return _job_message(status), (ready or 0) + 1, True


@callback(*[Output(f"compare-{s}-{p}", "figure") for s in SIDES for p in PANELS],
          Input("compare-step", "value"), State("compare-steps", "data"),
          prevent_initial_call=True)
def _markers(idx, steps):
    step = steps[min(int(idx), len(steps) - 1)]
    out = []
    for _ in range(len(SIDES) * len(PANELS)):
        p = Patch()
        p["layout"]["shapes"][0]["x0"] = step
        p["layout"]["shapes"][0]["x1"] = step
        out.append(p)
    return out


@callback(Output("compare-steps", "data"), Output("compare-step", "max"),
          Output("compare-step", "marks"), Output("compare-step", "value", allow_duplicate=True),
          *[Output(f"compare-{s}-{p}", "figure", allow_duplicate=True) for s in SIDES
            for p in PANELS],
          Output("compare-live", "disabled"),
          Input("compare-live", "n_intervals"), State("compare-runs", "data"),
          State("compare-steps", "data"), prevent_initial_call=True)
def _live(_n, runs, steps):
    """While a run trains: new snapshot steps extend the slider, the panels redraw."""
    root = current_app.config["GEOMVIZ_RUNS"]
    folders = [resolve_run(root, r) for r in runs]
    done = all(_status(f) != "running" for f in folders)
    data = _manifold(root, runs, "pca")
    n_out = 4 + len(SIDES) * len(PANELS)
    if data["steps"] == steps:
        return (*([no_update] * n_out), done)
    new = data["steps"]
    figs = [fig for f in folders for fig in _time_figures(time_series(f), new[-1])]
    return (new, len(new) - 1, _marks(new), len(new) - 1, *figs, done)


@callback(Output("compare-ticker", "disabled"), Output("compare-play", "children"),
          Input("compare-play", "n_clicks"), prevent_initial_call=True)
def _play(n):
    playing = n % 2 == 1
    return not playing, "pause" if playing else "play"


@callback(Output("compare-step", "value"), Input("compare-ticker", "n_intervals"),
          State("compare-step", "value"), State("compare-steps", "data"),
          prevent_initial_call=True)
def _tick(_n, idx, steps):
    return (int(idx) + 1) % len(steps)
