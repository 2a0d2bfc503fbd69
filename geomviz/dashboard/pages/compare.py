"""Compare page: two sides (runs, or groups of seeds) on one scale, one step slider.

``/compare?a=RUN&b=RUN`` compares two runs; ``/compare?ga=GROUP&gb=GROUP`` two seed
groups (time panels: mean and min-max band; manifolds: one chosen seed each). Scales are
shared by default (axes and colour ranges); time series are overlaid on one axis in each
objective's colour. Slider moves send ``Patch`` updates only. Projections come from the
cache (``geomviz project``); PCA and the polar view are computed once at first use. The
slider's snap and the time panels' markers run in the browser (``compare_client``).
"""

from __future__ import annotations

import importlib.util
import uuid

import dash
from dash import Input, Output, Patch, State, callback, ctx, dcc, html, no_update
from flask import current_app

from ...figures.labels import run_labels
from ...figures.theme import objective_colors
from ...study.figureset import FIGURES
from ..data import PathError, resolve_run, run_table, seed_groups
from ..guard import BadInput, choice, count, number, options, run_ids, side_list, step_list
from ..views import (
    AXES,
    color_range,
    coloring_options,
    equal_plot_areas,
    focus_value,
    manifold_figure,
    manifold_patch,
    manifold_ranges,
    time_panels,
)
from . import compare_client  # noqa: F401 - the slider's and markers' browser callbacks
from .compare_data import (
    cached,
    load_manifold,
    marks_data,
    run_brief,
    safe_error,
    series,
    shown_steps,
    snapshot_index,
    status_notes,
    store_state,
)
from .compare_jobs import controls as job_controls
from .compare_tokens import (  # the class-vector view of token runs, and its callbacks
    focus_picker,
    section,
)

SIDES = ("left", "right")
PREFETCH_MS = 4000  # after the page's first draw: start the fast aligned view then
PROJECTIONS = [{"label": " PCA (joint)", "value": "pca"},
               {"label": " aligned UMAP (fast)", "value": "fast_umap"},
               {"label": " AlignedUMAP", "value": "aligned_umap"},
               {"label": " polar (‖x‖, θ_y)", "value": "polar"}]
OPTIONS = [{"label": " shared scales", "value": "shared"},
           {"label": " overlay time series", "value": "overlay"},
           {"label": " fit axes to current step", "value": "fit"}]


def _marks(steps: list[int], labels: int = 12) -> dict:
    """Every snapshot step is a stop; labels sit at least 1/``labels`` of the slider apart
    (snapshots are log-spaced early, so labelling every k-th one piled "0 3 6 12" up)."""
    gap = (steps[-1] - steps[0]) / labels
    shown: list[int] = []
    for s in steps:
        if not shown or s - shown[-1] >= gap:
            shown.append(s)
    if shown[-1] != steps[-1]:  # the last step is always labelled, its neighbour gives way
        if len(shown) > 1 and steps[-1] - shown[-1] < gap:
            shown.pop()
        shown.append(steps[-1])
    keep = set(shown)
    return {int(s): str(s) if s in keep else "" for s in steps}


def _sides(root, a, b, ga, gb) -> list[dict]:
    """The two sides: ids, labels, objectives, member runs (one unless a seed group)."""
    if ga or gb:
        groups = {g["group"]: g for g in seed_groups(run_table(root))}
        sides = []
        for side, group in zip(SIDES, (ga, gb), strict=True):
            if not group or len(group) > 500:
                raise PathError(f"no seed group {str(group)[:80]!r}")
            if group not in groups:
                raise PathError(f"no seed group {group[:80]!r} in the runs folder")
            g = groups[group]
            seeds = f"{g['n']} seed{'s' * (g['n'] > 1)}"
            sides.append({"id": side, "label": f"{g['label']} ({seeds})",
                          "title": f"{group} ({seeds})", "objective": g["objective"],
                          "runs": g["members"]})
    else:
        sides, briefs = [], []
        for side, run in zip(SIDES, (a, b), strict=True):
            folder = resolve_run(root, run)
            series(folder)  # reads the store: a bad one fails here, with a message
            brief = run_brief(folder)
            briefs.append({**brief, "name": run})
            sides.append({"id": side, "title": run, "runs": [run],
                          "objective": brief["objective"]})
        # legends and panel titles name the objective (plus the rate or seed where the two
        # would read the same), never a full run id; the column header keeps the id
        for s, label in zip(sides, run_labels(briefs), strict=True):
            s["label"] = label
    objs = [s["objective"] for s in sides]
    colors = objective_colors(list(dict.fromkeys(objs)))
    sides[0]["color"] = colors[objs[0]]
    # one objective on both sides: the right side takes a darker shade of its colour, never
    # another objective's colour (orange is metric-CE's everywhere else)
    sides[1]["color"] = colors[objs[1]] if objs[0] != objs[1] else darker(colors[objs[1]])
    return sides


def darker(color: str, keep: float = 0.55) -> str:
    """``#rrggbb`` scaled towards black: the same hue, told apart from the original."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c * keep):02X}" for c in rgb)


def layout(a: str | None = None, b: str | None = None, ga: str | None = None,
           gb: str | None = None, **_):
    root = current_app.config["GEOMVIZ_RUNS"]
    try:
        sides = _sides(root, a, b, ga, gb)
        shown = [s["runs"][0] for s in sides]
        data = load_manifold(root, shown, "pca")
        live, notes = status_notes(root, sides)
        if data.get("warning"):  # an MLP against a GPT: say so before anything is read
            notes = [data["warning"], *notes]
    except Exception as e:  # noqa: BLE001 - any bad store or id is a message, never a 500
        return html.Div([html.H2("Cannot compare"), html.P(safe_error(e), id="compare-error"),
                         dcc.Link("back to the runs", href="/")])
    # finished runs: the fast aligned view is started in the background once the page has
    # drawn (its worker's start and compile took a core from the first draw), so it is
    # ready when asked for
    prefetch = not live and importlib.util.find_spec("umap") is not None
    steps = data["steps"]
    pickers = []
    if ga or gb:
        for s in sides:
            pickers += [html.Label(f"{s['id']} seed"),
                        dcc.Dropdown(s["runs"], s["runs"][0], id=f"compare-{s['id']}-seed",
                                     clearable=False, style={"width": "220px"})]
    else:
        pickers = [dcc.Store(id=f"compare-{s}-seed", data=None) for s in SIDES]
    return html.Div([
        # this page's own token: a background job knows which open pages still want it
        dcc.Store(id="compare-page", data=uuid.uuid4().hex),
        dcc.Store(id="compare-runs", data=shown),
        dcc.Store(id="compare-sides", data=sides),
        dcc.Store(id="compare-steps", data=steps),
        dcc.Store(id="compare-shown", data=steps[-1]),  # the snapshot step on screen
        dcc.Store(id="compare-marks", data=marks_data(root, shown)),  # the markers' steps
        dcc.Store(id="compare-marked", data=None),  # the clientside markers' output
        dcc.Store(id="compare-keys", data=None),  # the clientside key handler's output
        dcc.Interval(id="compare-live", interval=5000, disabled=not live),
        dcc.Interval(id="compare-jobs", interval=2000, disabled=True),
        dcc.Store(id="compare-umap-ready", data=0),
        dcc.Interval(id="compare-prefetch", interval=PREFETCH_MS, max_intervals=1,
                     disabled=not prefetch),
        html.Div([
            dcc.RadioItems(PROJECTIONS, "pca", id="compare-projection", inline=True),
            dcc.Dropdown(coloring_options(data["runs"]), "class", id="compare-color",
                         clearable=False, style={"width": "300px"}),
            focus_picker(data["runs"], "class"),
            html.Button("play", id="compare-play", n_clicks=0),
            dcc.Interval(id="compare-ticker", interval=700, disabled=True),
        ], className="controls"),
        html.Div([
            dcc.Checklist(OPTIONS, ["shared", "overlay"], id="compare-options", inline=True),
            *pickers,
        ], className="controls"),
        html.Div([html.Span("training step", className="slider-label"),
                  dcc.Slider(steps[0], steps[-1], 1, value=steps[-1], marks=_marks(steps),
                             id="compare-step", updatemode="mouseup")], className="slider"),
        html.Div([html.P(n, className="note") for n in notes], id="compare-status"),
        html.Div(id="compare-message", className="message"),
        job_controls(),  # AlignedUMAP's estimate, start, keep and cancel
        html.Div([html.Div([html.H3(s.get("title", s["label"]), style={"color": s["color"]}),
                            dcc.Graph(id=f"compare-{s['id']}-graph", className="manifold")],
                           className="column") for s in sides], className="columns"),
        section(root, shown, sides),
        # below the fold: drawn once the manifolds are (compare-below), not with them
        dcc.Store(id="compare-below", data=None),
        html.Div(id="compare-panels"),
        html.H3("OOD detection (last evaluation)"),
        dcc.RadioItems(["msp", "max_logit", "energy", "min_distance"], "msp",
                       id="compare-ood-score", inline=True, className="radios"),
        html.Div([html.Div(id=f"compare-{side}-ood", className="column") for side in SIDES],
                 className="columns"),
        html.Div([
            dcc.Dropdown([{"label": "all figures", "value": "all"}] +
                         [{"label": n, "value": n} for n in FIGURES], "all",
                         id="compare-download-figure", clearable=False,
                         style={"width": "190px"}),
            dcc.Checklist(["png", "svg", "pdf", "html"], ["png", "svg", "html"],
                          id="compare-download-format", inline=True),
            html.Button("download figures", id="compare-download-button", n_clicks=0),
            dcc.Download(id="compare-download"),
        ], className="controls"),
    ])


dash.register_page(__name__, path="/compare", name="Compare", layout=layout)


def _panel_graphs(sides, options, step):
    """The time panels: one overlaid figure per row, or a pair with shared ranges. ``step``:
    the step marked, or ``{side id: step}`` when the runs' steps differ."""
    root = current_app.config["GEOMVIZ_RUNS"]
    folders = [resolve_run(root, r) for s in sides for r in s["runs"]]
    key = ("panels", repr(sides), tuple(options or []), repr(step),
           tuple(store_state(f) for f in folders))
    return cached(key, lambda: _build_panels(root, sides, options, step))


def _build_panels(root, sides, options, step):
    for s in sides:
        s["ts"] = [series(resolve_run(root, r)) for r in s["runs"]]
    mode = "overlay" if "overlay" in (options or []) else "side"
    rows: dict[str, list] = {}
    for key, side, fig in time_panels(sides, mode, "shared" in (options or []), step):
        rows.setdefault(key, []).append(dcc.Graph(
            id={"type": "compare-panel", "panel": key, "side": side}, figure=fig,
            className="panel"))
    if mode == "overlay":  # one figure per panel, two panels a row
        return [html.Div([g for graphs in rows.values() for g in graphs], className="columns")]
    return [html.Div(graphs, className="columns") for graphs in rows.values()]


def _marked(runs: list[str], step) -> int | dict[str, int]:
    """What the time panels mark at slider step ``step``: the step, or each side's own when
    the runs' steps differ (``compare_client`` moves the markers after that)."""
    own, mapping = shown_steps(current_app.config["GEOMVIZ_RUNS"], runs, step)
    return step if mapping == "step" else dict(zip(SIDES, own, strict=True))


@callback(Output("compare-panels", "children"), Input("compare-options", "value"),
          Input("compare-steps", "data"), Input("compare-below", "data"),
          State("compare-sides", "data"), State("compare-shown", "data"),
          State("compare-runs", "data"), prevent_initial_call=True)
def _panels(ticked, steps, _below, sides, step, runs):
    """The time panels, below the fold: the page asks for them once the manifolds are drawn
    (``compare-below``), so their figures do not hold up the first draw."""
    steps = step_list(steps)
    marked = _marked(run_ids(runs), step if step in steps else steps[-1])
    return _panel_graphs(side_list(sides), options(ticked), marked)


@callback(Output("compare-runs", "data"), Input("compare-left-seed", "value"),
          Input("compare-right-seed", "value"), State("compare-runs", "data"),
          prevent_initial_call=True)
def _seeds(left, right, runs):
    runs, picked = run_ids(runs), []
    for value, shown in ((left, runs[0]), (right, runs[1])):
        if value:  # a seed of the group: an id in the runs folder, else a PathError
            resolve_run(current_app.config["GEOMVIZ_RUNS"], value)
        picked.append(value or shown)
    return picked


@callback(Output("compare-left-graph", "figure"), Output("compare-right-graph", "figure"),
          Output("compare-message", "children"), Output("compare-jobs", "disabled"),
          Output("compare-below", "data"),
          Input("compare-projection", "value"), Input("compare-color", "value"),
          Input("compare-shown", "data"), Input("compare-left-graph", "hoverData"),
          Input("compare-right-graph", "hoverData"), Input("compare-left-graph", "selectedData"),
          Input("compare-right-graph", "selectedData"), Input("compare-runs", "data"),
          Input("compare-steps", "data"), Input("compare-umap-ready", "data"),
          Input("compare-options", "value"), Input("compare-focus", "value"),
          State("compare-below", "data"))
def _manifolds(method, color, step, hover_left, hover_right, sel_left, sel_right, runs, steps,
               _ready, ticked, focus, below):
    from .compare_jobs import aligned_or_pca

    root = current_app.config["GEOMVIZ_RUNS"]
    method = choice(method, AXES, "projection")
    if not isinstance(color, str) or len(color) > 100:
        raise BadInput(f"colouring {str(color)[:60]!r} is not a colouring's name")
    runs, options_, focus = run_ids(runs), options(ticked), focus_value(focus)
    step_list(steps)
    step = number(step, "the step shown", default=-1)
    data, method, message, polling = aligned_or_pca(root, runs, method)
    idx = data["steps"].index(step) if step in data["steps"] else len(data["steps"]) - 1
    step = data["steps"][idx]
    shared, fit = "shared" in options_, "fit" in options_
    trig = ctx.triggered_id
    if trig == "compare-shown":  # x/y, hover rows and colours only
        ranges = manifold_ranges(data["runs"], shared, idx) if fit else [None, None]
        p = [manifold_patch(r, idx, color, step, rg, focus)
             for r, rg in zip(data["runs"], ranges, strict=True)]
        return p[0], p[1], no_update, polling, no_update
    if trig in ("compare-left-graph", "compare-right-graph"):  # ring the same examples
        left = trig == "compare-left-graph"
        prop = ctx.triggered[0]["prop_id"].rsplit(".", 1)[-1]
        event = (hover_left if left else hover_right) if prop == "hoverData" else \
            (sel_left if left else sel_right)  # a lasso or box selection
        ids = []
        points = event.get("points") if isinstance(event, dict) else None
        for pt in points if isinstance(points, list) else []:
            cd = pt.get("customdata") if isinstance(pt, dict) else None
            if isinstance(cd, list) and cd:
                cd = cd[0]
            if isinstance(cd, int | float):
                ids.append(int(cd))
        patches = []
        for run in data["runs"]:
            p = Patch()
            xy = run["xy"][idx]
            ids_ok = [i for i in ids if 0 <= i < len(xy)]
            p["data"][-1]["x"] = xy[ids_ok, 0].tolist()
            p["data"][-1]["y"] = xy[ids_ok, 1].tolist()
            p["data"][-1]["customdata"] = ids_ok
            patches.append(p)
        return patches[0], patches[1], no_update, polling, no_update
    # the same view of the same data (keyed like the data: by the runs' snapshot steps) is
    # drawn once per app: a page opened again costs no figure building
    stamp = tuple(tuple(snapshot_index(resolve_run(root, r))) for r in runs)
    figs, reasons = cached(("manifold figures", tuple(runs), method, stamp, color, shared, fit,
                            idx, focus), lambda: _manifold_figures(data, method, color, idx,
                                                                   step, shared, fit, focus))
    message = " · ".join([m for m in (message, *reasons) if m])
    # the first full draw lets the panels below the fold load (once)
    return figs[0], figs[1], message, polling, no_update if below else 1


def _manifold_figures(data: dict, method: str, color: str, idx: int, step: int, shared: bool,
                      fit: bool, focus: int | None) -> tuple[list, list[str]]:
    """Both sides' manifold figures and the reasons a side lacks the colouring."""
    ranges = manifold_ranges(data["runs"], shared, idx if fit else None)
    crange = color_range(data["runs"], color) if shared else None
    figs, reasons = [], []
    for run, rg in zip(data["runs"], ranges, strict=True):
        cr = crange if shared else color_range([run], color)
        own = (("PC1 (this run's own basis, feature units)",
                "PC2 (this run's own basis, feature units)")
               if method == "pca" and data.get("joint") is False else None)
        fig, reason = manifold_figure(run, idx, color, step, rg, cr, method, axis_titles=own,
                                      focus=focus)
        figs.append(fig)
        if reason:
            reasons.append(reason)
    equal_plot_areas(figs)  # a colour bar on one side only must not shrink that plot
    return figs, reasons


@callback(Output("compare-steps", "data"), Output("compare-step", "max"),
          Output("compare-step", "marks"), Output("compare-step", "value", allow_duplicate=True),
          Output("compare-live", "disabled"), Output("compare-status", "children"),
          Input("compare-live", "n_intervals"), State("compare-runs", "data"),
          State("compare-steps", "data"), State("compare-sides", "data"),
          prevent_initial_call=True)
def _live(_n, runs, steps, sides):
    """While a run trains: new snapshot steps extend the slider, the panels redraw, and the
    status lines follow the runs (a run that finished loses its 'still training' line)."""
    root = current_app.config["GEOMVIZ_RUNS"]
    runs, steps, sides = run_ids(runs), step_list(steps), side_list(sides)
    live, notes = status_notes(root, sides)
    data = load_manifold(root, runs, "pca")
    lines = [html.P(n, className="note") for n in ([data["warning"]] if data.get("warning")
                                                   else []) + notes]
    new = data["steps"]
    if new == steps:
        return no_update, no_update, no_update, no_update, not live, lines
    return new, new[-1], _marks(new), new[-1], not live, lines


@callback(Output("compare-ticker", "disabled"), Output("compare-play", "children"),
          Input("compare-play", "n_clicks"), prevent_initial_call=True)
def _play(n):
    playing = count(n, "the play button's clicks") % 2 == 1
    return not playing, "pause" if playing else "play"


@callback(Output("compare-step", "value"), Input("compare-ticker", "n_intervals"),
          State("compare-step", "value"), State("compare-steps", "data"),
          prevent_initial_call=True)
def _tick(_n, step, steps):
    steps = step_list(steps)
    i = steps.index(step) if step in steps else -1
    return steps[(i + 1) % len(steps)]


from . import compare_extras  # noqa: E402,F401 - OOD and download callbacks
