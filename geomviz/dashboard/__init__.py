"""The Dash dashboard: a runs page and a CE-vs-TFSD compare page.

``create_app(runs_dir)`` builds the app; the runs folder lives in the Flask
config (``GEOMVIZ_RUNS``), not in module state, every run id is resolved
inside it (:func:`geomviz.dashboard.data.resolve_run`), and every request is confined
to it (:mod:`geomviz.dashboard.guard`).
"""

from __future__ import annotations

import threading
from pathlib import Path

__all__ = ["create_app"]

_CALLBACKS: tuple[dict, list, list] | None = None


def _page_callbacks() -> tuple[dict, list, list]:
    """The pages' callbacks and their clientside functions' scripts. Dash files them in
    global lists that the first app to start empties, so a second app in the same process
    (tests, benchmarks) would have none (its clientside callbacks then failed in the
    browser): take them once, at the pages' import, and give every app its own copy."""
    global _CALLBACKS
    if _CALLBACKS is None:
        from dash import _callback

        from .pages import compare, runs, sweep  # noqa: F401 - registers the pages, callbacks

        _CALLBACKS = (dict(_callback.GLOBAL_CALLBACK_MAP), list(_callback.GLOBAL_CALLBACK_LIST),
                      list(_callback.GLOBAL_INLINE_SCRIPTS))
        _callback.GLOBAL_CALLBACK_MAP.clear()
        _callback.GLOBAL_CALLBACK_LIST.clear()
        _callback.GLOBAL_INLINE_SCRIPTS.clear()
    return dict(_CALLBACKS[0]), list(_CALLBACKS[1]), list(_CALLBACKS[2])


def create_app(runs_dir: str | Path):
    try:
        import dash
    except ImportError:
        raise ImportError("the dashboard needs dash: pip install 'geomviz[dashboard]'") from None
    from dash import dcc, html

    from .guard import NOTE, guard_app, on_callback_error

    if not str(runs_dir).strip():  # Path("") is the current folder: never served unasked
        raise ValueError("the runs folder is empty: name a folder of runs")
    root = Path(runs_dir)
    if not root.is_dir():
        raise ValueError(f"runs folder {root} does not exist")
    assets = Path(__file__).resolve().parents[2] / "assets"
    app = dash.Dash(__name__, use_pages=True, pages_folder="", title="geomviz",
                    assets_folder=str(assets) if assets.is_dir() else "assets",
                    suppress_callback_exceptions=True, on_error=on_callback_error)
    app.server.config["GEOMVIZ_RUNS"] = str(root.resolve())
    guard_app(app, root.resolve(), assets if assets.is_dir() else None)
    # a request for a script Dash does not serve (``../`` in the path, say) is a 404, not
    # the 500 with a traceback in the log that Dash's refusal otherwise becomes
    app.server.register_error_handler(dash.exceptions.DependencyException,
                                      lambda _e: ("not found", 404))
    callbacks, chain, scripts = _page_callbacks()
    app.callback_map.update(callbacks)
    app._callback_list.extend(chain)
    app._inline_scripts.extend(scripts)

    app.layout = html.Div([
        html.Header([html.A("geomviz", href="/", className="brand"),
                     html.Nav([dcc.Link("runs", href="/", className="nav-link"),
                               dcc.Link("sweeps", href="/sweep", className="nav-link")],
                              id="app-nav"),
                     html.Span(str(root), className="runs-root")]),
        html.Div(id=NOTE, className="message"),  # why a callback changed nothing
        dash.page_container,
        dcc.Location(id="app-url"),
    ])
    # Dash sets itself up in its first request, unguarded: concurrent first requests (two
    # tabs, or a burst of callbacks, at start) raced in it ("dictionary changed size during
    # iteration", a 500). Do it here, once, before the server takes any request.
    app.server.test_client().get("/_dash-layout")
    threading.Thread(target=warm_up, name="geomviz-warm-up", daemon=True).start()
    return app


def warm_up() -> None:
    """Pay the process's one-time costs before the first page asks: plotly loads its
    property validators (a JSON file, about 0.8 s) at the first figure it builds, and
    torch initialises LAPACK (0.4-1.5 s) at the first eigendecomposition (the PCA)."""
    import numpy as np
    import plotly.graph_objects as go
    import torch

    from ..figures.theme import template

    fig = go.Figure(layout={"template": template()})
    for trace in (go.Scattergl, go.Scatter, go.Histogram, go.Heatmap):
        fig.add_trace(trace())
    fig.update_layout(title={"text": "warm"}, margin={"l": 1}, legend={"x": 0},
                      xaxis={"range": [0, 1]}, yaxis2={"overlaying": "y"}, shapes=[{}])
    fig.to_json()
    torch.linalg.eigh(torch.eye(2, dtype=torch.float64))
    np.linalg.svd(np.eye(2))
