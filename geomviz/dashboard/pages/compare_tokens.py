"""The compare page's language-model view: the class vectors of both runs (centres or
unembedding rows of a fixed token subset) on one joint PCA basis, coloured by synonym set,
following the page's step slider. Where synonyms drawing apart ("tearing") would be seen.

The projection is cached like the feature projections (``geomviz.class_vectors``); a slider
move sends x/y patches only.
"""

from __future__ import annotations

from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from flask import current_app

from ..data import class_vector_data, class_vector_index, resolve_run
from ..guard import BadInput, number, run_ids
from ..guard import options as opts
from ..views import focus_options, focus_value, manifold_figure, manifold_patch, manifold_ranges
from .compare_data import cached, load_manifold, safe_error, shown_steps, summary

SIDES = ("left", "right")
AXES = ("PC1 of the class vectors (joint basis, vector units)",
        "PC2 of the class vectors (joint basis, vector units)")


def _stamp(folder) -> tuple[int, ...]:
    return tuple(summary(folder)["cv_steps"])


def load_class_vectors(root, runs: list[str]) -> dict | None:
    """The class-vector manifold of ``runs`` (None unless both are token runs), per-app
    cached by the runs' class-vector steps."""
    folders = [resolve_run(root, r) for r in runs]
    stamp = tuple(_stamp(f) for f in folders)
    if not all(stamp):
        return None
    return cached(("class_vectors", tuple(runs), stamp),
                  lambda: class_vector_data(current_app.config["GEOMVIZ_RUNS"], folders))


def section(root, runs: list[str], sides: list[dict]) -> html.Div:
    """The class-vector row of the layout: empty unless both runs store class vectors (its
    callback then has no outputs on the page, and Dash never calls it)."""
    try:
        shown = load_class_vectors(root, runs) is not None
    except Exception as e:  # noqa: BLE001 - a bad store is a note, the rest of the page works
        return html.Div(html.P(f"class vectors: {safe_error(e)}", className="note"),
                        id="compare-classes")
    if not shown:
        return html.Div(id="compare-classes")
    return html.Div([
        html.H3("class vectors (token subset), coloured by synonym set (or frequency where "
                "the data has none)"),
        html.P("Synonyms drifting apart over training would be tearing; the ratio of their "
               "distances is the tearing panel below.", className="note"),
        html.Div([html.Div(dcc.Graph(id=f"compare-{s}-classes", className="manifold"),
                           className="column") for s in SIDES], className="columns"),
    ], id="compare-classes")


def focus_picker(runs: list[dict], color: str) -> dcc.Dropdown:
    """Pick one token or synonym set to draw on top (the others grey): with 256 tokens or
    96 sets, colours alone cannot tell one apart. Hidden where the colouring has a legend."""
    choices = focus_options(runs, color)
    return dcc.Dropdown(choices, None, id="compare-focus", clearable=True,
                        placeholder="highlight one token or synonym set",
                        style={"width": "340px", "display": "block" if choices else "none"})


@callback(Output("compare-focus", "options"), Output("compare-focus", "value"),
          Output("compare-focus", "style"), Input("compare-color", "value"),
          State("compare-runs", "data"), prevent_initial_call=True)
def _focus_choices(color, runs):
    """The picker follows the colouring: sets for the synonym-set colouring, tokens for the
    class colouring of a token run, hidden otherwise."""
    if not isinstance(color, str) or len(color) > 100:
        raise BadInput(f"colouring {str(color)[:60]!r} is not a colouring's name")
    data = load_manifold(current_app.config["GEOMVIZ_RUNS"], run_ids(runs), "pca")
    choices = focus_options(data["runs"], color)
    return choices, None, {"width": "340px", "display": "block" if choices else "none"}


@callback(Output("compare-left-classes", "figure"), Output("compare-right-classes", "figure"),
          Input("compare-shown", "data"), Input("compare-runs", "data"),
          Input("compare-options", "value"), Input("compare-focus", "value"),
          State("compare-color", "value"))
def _classes(step, runs, options, focus, color):
    """Each side shows the class vectors of its own step on screen (the manifolds' step:
    by fraction of training when the runs' lengths differ)."""
    root = current_app.config["GEOMVIZ_RUNS"]
    runs, step = run_ids(runs), number(step, "the step shown", default=-1)
    try:
        data = load_class_vectors(root, runs)
        own = None if data is None else shown_steps(root, runs, step)[0]
    except Exception:  # noqa: BLE001 - the manifolds' callback reports a bad store
        return no_update, no_update
    if data is None:
        return no_update, no_update
    idxs = [class_vector_index(r["steps"], s) for r, s in zip(data["runs"], own, strict=True)]
    key = "group" if "group" in data["runs"][0]["static"] else "freq_bucket"
    # a picked synonym set is drawn on top here too (the points are tokens, by set)
    focus = focus_value(focus) if color == key == "group" else None
    ticked = opts(options)
    shared, fit = "shared" in ticked, "fit" in ticked
    if ctx.triggered_id == "compare-shown":  # a slider move: x/y and hover rows only
        ranges = manifold_ranges(data["runs"], shared, idxs) if fit else [None, None]
        p = [manifold_patch(r, i, key, r["steps"][i], rg, focus)
             for r, i, rg in zip(data["runs"], idxs, ranges, strict=True)]
        return p[0], p[1]
    stamp = tuple(_stamp(resolve_run(root, r)) for r in runs)

    def build() -> list:
        ranges = manifold_ranges(data["runs"], shared, idxs if fit else None)
        return [manifold_figure(r, i, key, r["steps"][i], rg, None, "pca", axis_titles=AXES,
                                focus=focus)[0]
                for r, i, rg in zip(data["runs"], idxs, ranges, strict=True)]

    figs = cached(("class figures", tuple(runs), stamp, tuple(idxs), shared, fit, focus), build)
    return figs[0], figs[1]
