"""Dashboard panels: pure builders, data in, ``plotly.graph_objects.Figure`` out.

The dashboard and the static export both build their figures here, from what
the reader API returns (``geomviz.store.Run``) and the cached projections. No
function reads files or keeps state; each takes plain arrays.
"""

from __future__ import annotations

import numpy as np

from .labels import pretty_key
from .theme import log_ticks

__all__ = [
    "manifold", "trace_masks", "hover_rows", "hover_template", "common_ranges", "norm_heatmap",
    "series", "decomposition",
    "entropy", "loss_accuracy", "ood_scores", "PALETTE",
]

# Classes and categories get colours no objective has (theme.OBJECTIVE_COLORS): Paul Tol's
# colour-blind-safe "muted" set, so class 0 is never read as CE's blue or class 3 as TFSD's red.
PALETTE = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677",
           "#882255", "#AA4499", "#6699CC"]
OOD_COLOR = "#222222"


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("figures need plotly: pip install plotly") from None
    return go


def manifold(xy: np.ndarray, labels: np.ndarray, color: np.ndarray | None = None,
             color_name: str = "class", title: str = "", hover: dict | None = None,
             class_names: list[str] | None = None, highlight: np.ndarray | None = None,
             ranges: tuple | None = None, categories: list[str] | None = None,
             crange: tuple[float, float] | None = None,
             axis_titles: tuple[str, str] = ("PC1", "PC2"), step: int | None = None,
             text: np.ndarray | None = None, text_label: str = "tokens",
             focus: int | None = None):
    """Scatter of one snapshot ``xy[P, 2]``.

    Traces: OOD points (label -1) first, as a dark 'x' trace drawn under the others; then
    one WebGL trace per class, or per category of a categorical ``color[P]`` (codes into
    ``categories``, a discrete legend), or one trace coloured by a continuous ``color[P]``
    (a colour bar over ``crange``); an optional ``highlight`` ring trace last. More than
    ``MAX_LEGEND_CLASSES`` classes or categories (a language model's 256 tokens or 96
    synonym sets) are one trace with a colour of its own per code (never ten colours
    repeating), and ``focus`` (one such code) is drawn on top in its own trace, named in
    the legend, with the others grey. ``customdata`` rows are ``[probe index, class,
    *hover values]`` so a hover or selection on one run maps onto the same examples on
    another, and the hover names class, step and the ``hover`` values (``{label: [P]}``).
    ``text[P]`` (a token run's context and target) goes into each trace's ``text``, shown
    under ``text_label``: it does not change with the step, so slider patches leave it be.
    """
    go = _go()
    xy = np.asarray(xy, dtype=np.float32)
    labels = np.asarray(labels)
    fig = go.Figure()
    kind = "class" if color is None else ("category" if categories else "color")
    # a legend of hundreds of classes (a language model's tokens) hides the plot: none then
    legend = (len(categories) <= MAX_LEGEND_CLASSES if kind == "category" else
              kind != "class" or len(np.unique(labels[labels >= 0])) <= MAX_LEGEND_CLASSES)
    masks = trace_masks(labels, kind, color, categories, focus)
    for tkind, c, m in masks:
        if tkind in ("classes", "categories"):  # many: one trace, a colour per code
            codes = labels[m] if tkind == "classes" else np.asarray(color).astype(int)[m]
            name = "classes" if tkind == "classes" else color_name
            n = len(categories) if tkind == "categories" else int(labels.max(initial=0)) + 1
            marker = ({"size": 4, "color": FADED} if any(t == "focus" for t, _, _ in masks)
                      else {"size": 5, "color": codes, "colorscale": "Turbo", "cmin": -0.5,
                            "cmax": max(n, 1) - 0.5})
        elif tkind == "focus":
            names = categories if kind == "category" else class_names
            name = names[c] if names and 0 <= c < len(names) else str(c)
            marker = {"size": 8, "color": FOCUS_COLOR, "line": {"width": 1, "color": "white"}}
        elif tkind == "class":
            name = class_names[c] if class_names and c < len(class_names) else str(c)
            marker = {"size": 5, "color": PALETTE[int(c) % 10]}
        elif tkind == "category":
            name = categories[c]
            marker = {"size": 5, "color": CATEGORY_COLORS[c % len(CATEGORY_COLORS)]}
        elif tkind == "color":
            name = color_name
            lo, hi = crange if crange is not None else (None, None)
            marker = {"size": 5, "color": np.asarray(color, np.float32)[m],
                      "colorscale": "Viridis", "showscale": True, "cmin": lo, "cmax": hi,
                      "colorbar": {"title": {"text": color_name, "side": "right"},
                                   "thickness": 14, "x": 1.02, "len": 0.9}}
        else:
            name, marker = "OOD", {"size": 6, "symbol": "x", "color": OOD_COLOR}
        fig.add_trace(go.Scattergl(x=xy[m, 0], y=xy[m, 1], mode="markers", name=name,
                                   showlegend=legend or tkind in ("ood", "focus"),
                                   # object arrays, not lists of lists: plotly checks
                                   # a list element by element (a 2,000-point trace
                                   # took 17 ms to build instead of 0.3)
                                   customdata=_rows_array(
                                       hover_rows(m, labels, class_names, hover)),
                                   text=None if text is None else
                                   np.asarray(text, dtype=object)[m].astype(str)
                                   .astype(object),
                                   hovertemplate=hover_template(
                                       hover, step, None if text is None else text_label),
                                   marker=marker))
    if highlight is not None:  # always last, possibly empty, so it can be patched
        h = np.asarray(highlight, dtype=int)
        fig.add_trace(go.Scattergl(x=xy[h, 0], y=xy[h, 1], mode="markers", name="selected",
                                   customdata=h.tolist(), hoverinfo="skip", showlegend=False,
                                   marker={"size": 13, "color": "rgba(0,0,0,0)",
                                           "line": {"width": 2, "color": "#d62728"}}))
    fig.update_layout(title={"text": title, "font": {"size": 14}}, uirevision="manifold",
                      legend={"itemsizing": "constant", "orientation": "h", "x": 0,
                              "xanchor": "left", "y": -0.2, "yanchor": "top",
                              "font": {"size": 11}},
                      xaxis={"title": {"text": axis_titles[0]}},
                      yaxis={"title": {"text": axis_titles[1]}},
                      margin={"l": 60, "r": 20, "t": 44, "b": 40})
    if ranges is not None:  # fixed axes: comparable across runs and steps
        fig.update_xaxes(range=list(ranges[0]))
        fig.update_yaxes(range=list(ranges[1]))
    return fig


MAX_LEGEND_CLASSES = 30
FADED = "rgba(160,160,160,0.35)"  # the other codes when one is in focus
FOCUS_COLOR = "#332288"  # the code in focus: PALETTE[0], dark on the grey
CATEGORY_COLORS = ["#CC6677", "#117733", "#332288", "#DDCC77", "#AA4499", "#44AA99"]


def hover_rows(points: np.ndarray, labels: np.ndarray, class_names: list[str] | None,
               hover: dict | None) -> list[list]:
    """``customdata`` rows ``[index, class name, *values]`` (values rounded to 4 digits)."""
    points = np.asarray(points, dtype=int)

    def cname(y: int) -> str:
        if y < 0:
            return "OOD"
        return class_names[y] if class_names and y < len(class_names) else str(y)

    cols = [[int(i) for i in points], [cname(int(y)) for y in labels[points]]]
    for v in (hover or {}).values():
        # + 0.0 turns -0.0 into 0.0: a one-hot target's entropy reads "0", not "-0"
        cols.append((np.round(np.asarray(v, dtype=np.float64)[points], 4) + 0.0).tolist())
    return [list(r) for r in zip(*cols, strict=True)]


def _rows_array(rows: list[list]) -> np.ndarray:
    """``rows`` as a 2-D object array (an empty one keeps two dimensions)."""
    out = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
    if rows:
        out[:] = rows
    return out


def hover_template(hover: dict | None, step: int | None, text_label: str | None = None) -> str:
    """Class, step, the trace's per-point ``text`` under ``text_label`` (if given) and each
    hover value (its label carries the unit), rounded."""
    lines = ["class %{customdata[1]}"] + ([f"step {step}"] if step is not None else [])
    if text_label:
        lines.append(f"{text_label} %{{text}}")
    lines += [f"{label} = %{{customdata[{i + 2}]:.3~g}}" for i, label in enumerate(hover or {})]
    return "<br>".join(lines) + "<extra></extra>"


def trace_masks(labels: np.ndarray, kind: str | bool = "class", color: np.ndarray | None = None,
                categories: list[str] | None = None,
                focus: int | None = None) -> list[tuple[str, int | None, np.ndarray]]:
    """``(kind, class or category, point indices)`` of each data trace :func:`manifold`
    draws, in order: "ood" first (drawn under the in-distribution points), then one per
    class, one per category (all of them, possibly empty) or one "color" trace; more than
    ``MAX_LEGEND_CLASSES`` classes or categories (a language model's tokens or synonym
    sets) are one "classes" or "categories" trace, so a slider patch stays small, and the
    ``focus`` code among them (if any) a "focus" trace after it; the "selected" trace comes
    last. Callers that patch a manifold's x/y address its traces through this."""
    if kind is True:
        kind = "color"
    elif kind is False:
        kind = "class"
    labels = np.asarray(labels)
    ood = labels < 0
    out = [("ood", None, np.flatnonzero(ood))] if ood.any() else []
    if kind == "color":
        out.append(("color", None, np.flatnonzero(~ood)))
    elif (kind == "category" and len(categories or []) > MAX_LEGEND_CLASSES) or \
            (kind == "class" and len(np.unique(labels[~ood])) > MAX_LEGEND_CLASSES):
        codes = np.asarray(color).astype(int) if kind == "category" else labels
        many = "categories" if kind == "category" else "classes"
        if focus is None:
            out.append((many, None, np.flatnonzero(~ood)))
        else:
            chosen = ~ood & (codes == focus)
            out += [(many, None, np.flatnonzero(~ood & ~chosen)),
                    ("focus", int(focus), np.flatnonzero(chosen))]
    elif kind == "category":
        codes = np.asarray(color).astype(int)
        out += [("category", k, np.flatnonzero(~ood & (codes == k)))
                for k in range(len(categories or []))]
    else:
        out += [("class", int(c), np.flatnonzero(labels == c)) for c in np.unique(labels[~ood])]
    return out


def common_ranges(*arrays: np.ndarray, pad: float = 0.05) -> tuple:
    """Axis ranges covering every point of every ``[..., 2]`` array, padded."""
    pts = np.concatenate([np.asarray(a, np.float64).reshape(-1, 2) for a in arrays])
    pts = pts[np.isfinite(pts).all(1)]
    lo, hi = pts.min(0), pts.max(0)
    span = np.maximum(hi - lo, 1e-9)
    return ((lo[0] - pad * span[0], hi[0] + pad * span[0]),
            (lo[1] - pad * span[1], hi[1] + pad * span[1]))


def norm_heatmap(steps: np.ndarray, edges: np.ndarray, counts: np.ndarray,
                 p50: np.ndarray | None = None, p95: np.ndarray | None = None,
                 marker_step: int | None = None, title: str = "feature norm ‖x‖"):
    """Histograms over time ``counts[T, B]`` on ``edges[B+1]`` as a heatmap (share of the batch
    per bin, log-spaced y), with optional p50/p95 lines and a step marker."""
    go = _go()
    counts = np.asarray(counts, dtype=np.float64)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    centres = log_centres(edges)
    used = counts.sum(0) > 0
    if used.any():  # only the band of bins that ever held a sample
        first, last = np.flatnonzero(used)[[0, -1]]
        centres, share = centres[first : last + 1], share[:, first : last + 1]
    fig = go.Figure(go.Heatmap(x=steps, y=centres, z=share.T, colorscale="Blues",
                               colorbar={"title": {"text": "share of batch", "side": "right"},
                                         "thickness": 14},
                               name="histogram"))
    for name, values, dash in (("p50", p50, "solid"), ("p95", p95, "dot")):
        if values is not None:
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=name,
                                     line={"color": "#222", "dash": dash}))
    _marker(fig, marker_step)
    fig.update_layout(title={"text": title, "font": {"size": 14}},
                      yaxis={"type": "log", "title": {"text": "‖x‖ (feature units, log)"}},
                      xaxis={"title": {"text": "training step"}},
                      margin={"l": 60, "r": 10, "t": 44, "b": 40},
                      legend={"orientation": "h", "x": 0, "y": -0.32, "yanchor": "top",
                              "xanchor": "left", "font": {"size": 11}})
    log_ticks(fig)
    return fig


def log_centres(edges: np.ndarray) -> np.ndarray:
    """Geometric centres of histogram bins ``edges[B + 1]``; a bin starting at 0 is taken
    to start a decade below its upper edge."""
    edges = np.asarray(edges, dtype=np.float64)
    lo = np.where(edges[:-1] > 0, edges[:-1], edges[1] / 10)
    return np.sqrt(lo * edges[1:])


def _marker(fig, step):
    if step is not None:
        fig.add_vline(x=step, line={"color": "#d62728", "width": 1, "dash": "dot"})


def series(lines: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "", yaxis: str = "",
           marker_step: int | None = None, log_y: bool = False):
    """Line chart of named ``(steps, values)`` series."""
    go = _go()
    fig = go.Figure([go.Scatter(x=s, y=v, mode="lines+markers", name=name, marker={"size": 4})
                     for name, (s, v) in lines.items()])
    _marker(fig, marker_step)
    fig.update_layout(title=title, xaxis={"title": "step"},
                      yaxis={"title": yaxis, "type": "log" if log_y else "linear"},
                      margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def decomposition(steps: np.ndarray, parts: dict[str, np.ndarray], total: np.ndarray,
                  marker_step: int | None = None):
    """Stacked (relative) bars of the radial / angular / weight / bias attribution of the
    true-class logit change between logs, with the total as a line."""
    go = _go()
    fig = go.Figure([go.Bar(x=steps, y=v, name=k) for k, v in parts.items()])
    fig.add_trace(go.Scatter(x=steps, y=total, mode="lines+markers", name="total",
                             line={"color": "black"}))
    _marker(fig, marker_step)
    fig.update_layout(barmode="relative", title="Δ mean true-class logit, attributed",
                      xaxis={"title": "step"}, margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def entropy(steps: dict[str, np.ndarray], values: dict[str, np.ndarray],
            marker_step: int | None = None):
    """Target and prediction entropy over time, easy vs hard (names like 'hard.target')."""
    go = _go()
    fig = go.Figure()
    for name, v in values.items():
        dash = "solid" if name.endswith("target") else "dot"
        fig.add_trace(go.Scatter(x=steps[name], y=v, mode="lines", name=pretty_key(name),
                                 line={"dash": dash}))
    _marker(fig, marker_step)
    fig.update_layout(title="entropy (nats): target H(p) solid, prediction H(q) dotted",
                      xaxis={"title": "step"}, margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def loss_accuracy(steps: np.ndarray, loss: np.ndarray, acc: np.ndarray,
                  spikes: np.ndarray | None = None, marker_step: int | None = None):
    """Training loss (left axis) and accuracy (right axis); spikes as red markers."""
    go = _go()
    fig = go.Figure([go.Scatter(x=steps, y=loss, name="loss", mode="lines"),
                     go.Scatter(x=steps, y=acc, name="accuracy", mode="lines", yaxis="y2")])
    if spikes is not None and np.any(spikes > 0):
        m = np.asarray(spikes) > 0
        fig.add_trace(go.Scatter(x=np.asarray(steps)[m], y=np.asarray(loss)[m], mode="markers",
                                 name="spike", marker={"color": "#d62728", "size": 9}))
    _marker(fig, marker_step)
    fig.update_layout(title="training loss and accuracy", xaxis={"title": "step"},
                      yaxis2={"overlaying": "y", "side": "right", "range": [0, 1]},
                      margin={"l": 50, "r": 50, "t": 40, "b": 40})
    return fig


def thin_curve(x: np.ndarray, y: np.ndarray, cell: float = 1e-3) -> tuple[np.ndarray, ...]:
    """The points of a curve in the unit square that enter a new ``cell``-sized grid cell,
    plus the last: a pixel is about 0.003 of a half-screen plot, so nothing visible is
    lost (a 16,000-point ROC curve was 170 KB of a page's 1 MB, twice per side)."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) < 3:
        return x, y
    q = np.floor(np.c_[x, y] / cell)
    keep = np.r_[True, (q[1:] != q[:-1]).any(1)]
    keep[-1] = True
    return x[keep], y[keep]


def ood_scores(conf_id: np.ndarray, conf_ood: np.ndarray, score_name: str = "msp"):
    """ID vs OOD histograms of an ID-confidence score and the ROC curve (OOD positive),
    thinned to what a screen shows (:func:`thin_curve`)."""
    go = _go()
    from plotly.subplots import make_subplots

    from ..metrics import roc_curve

    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{score_name}: ID vs OOD", "ROC"))
    # neutral colours: the objective colours belong to the runs, OOD is dark as everywhere
    fig.add_trace(go.Histogram(x=conf_id, name="ID", opacity=0.6, histnorm="probability",
                               marker={"color": "#72B7B2"}), 1, 1)
    fig.add_trace(go.Histogram(x=conf_ood, name="OOD", opacity=0.5, histnorm="probability",
                               marker={"color": OOD_COLOR}), 1, 1)
    fpr, tpr = thin_curve(*roc_curve(conf_id, conf_ood))
    fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name="ROC",
                             line={"color": "#222"}), 1, 2)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line={"dash": "dash", "color": "grey"}), 1, 2)
    fig.update_layout(barmode="overlay", margin={"l": 50, "r": 10, "t": 40, "b": 40})
    fig.update_xaxes(title_text=f"{score_name} score (ID-confidence)", row=1, col=1)
    fig.update_yaxes(title_text="share of samples", row=1, col=1)
    fig.update_xaxes(title_text="false positive rate (ID called OOD)", row=1, col=2)
    fig.update_yaxes(title_text="true positive rate (OOD found)", row=1, col=2)
    fig.update_layout(legend={"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top"})
    return fig
