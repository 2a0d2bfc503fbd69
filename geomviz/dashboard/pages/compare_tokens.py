"""The compare page's language-model view: the class vectors of both runs (centres or
unembedding rows of a fixed token subset) on one joint PCA basis, coloured by synonym set,
following the page's step slider. Where synonyms drawing apart ("tearing") would be seen.

The projection is cached like the feature projections (``geomviz.class_vectors``); a slider
move sends x/y patches only.
"""

from __future__ import annotations

from dash import Input, Output, callback, ctx, dcc, html, no_update
from flask import current_app

from ..data import class_vector_data, resolve_run
from ..guard import number
from ..guard import options as opts
from ..views import manifold_figure, manifold_patch, manifold_ranges
from .compare_data import cached, safe_error

SIDES = ("left", "right")
AXES = ("PC1 of the class vectors (joint basis, vector units)",
        "PC2 of the class vectors (joint basis, vector units)")


def _stamp(folder) -> tuple[int, ...]:
    from ...store import open_run

    with open_run(folder) as run:
        return tuple(run.array_steps("snapshot.class_vectors"))


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


def _index(steps: list[int], step) -> int:
    """The class-vector snapshot at ``step``, or the last one before it."""
    if step in steps:
        return steps.index(step)
    before = [i for i, s in enumerate(steps) if step is not None and s <= step]
    return before[-1] if before else len(steps) - 1


@callback(Output("compare-left-classes", "figure"), Output("compare-right-classes", "figure"),
          Input("compare-shown", "data"), Input("compare-runs", "data"),
          Input("compare-options", "value"))
def _classes(step, runs, options):
    root = current_app.config["GEOMVIZ_RUNS"]
    try:
        data = load_class_vectors(root, runs)
    except Exception:  # noqa: BLE001 - the manifolds' callback reports a bad store
        return no_update, no_update
    if data is None:
        return no_update, no_update
    step = number(step, "the step shown", default=data["steps"][-1])
    key = "group" if "group" in data["runs"][0]["static"] else "freq_bucket"
    idx = _index(data["steps"], step)
    shown = data["steps"][idx]
    ticked = opts(options)
    shared, fit = "shared" in ticked, "fit" in ticked
    if ctx.triggered_id == "compare-shown":  # a slider move: x/y and hover rows only
        ranges = manifold_ranges(data["runs"], shared, idx) if fit else [None, None]
        p = [manifold_patch(r, idx, key, shown, rg)
             for r, rg in zip(data["runs"], ranges, strict=True)]
        return p[0], p[1]
    ranges = manifold_ranges(data["runs"], shared, idx if fit else None)
    figs = [manifold_figure(r, idx, key, shown, rg, None, "pca", axis_titles=AXES)[0]
            for r, rg in zip(data["runs"], ranges, strict=True)]
    return figs[0], figs[1]
