"""The publication figure set: pure builders over plain arrays, one per named figure.

Every builder takes per-objective data (``{objective: ...}``, in legend order) and a
colour per objective, and returns a themed ``Figure`` sized for an 800 px column.
A series over seeds is ``SeedSeries``: one ``(steps[T], values[T])`` per seed; it is
drawn as the seed mean with a min-max band when there is more than one seed.
``norm_growth`` and ``ood`` live in :mod:`.distributions`. What the data mean and where
it is read from is ``geomviz.study.figureset``'s concern.
"""

from __future__ import annotations

import math

import numpy as np

from .axes import apply_ticks
from .labels import pretty_key
from .panels import OOD_COLOR, PALETTE, _go
from .theme import WIDTH, template

__all__ = ["manifold_grid", "angle_radius", "gradient_split", "target_entropy",
           "summary_table", "target_vs_bayes", "SeedSeries"]

SeedSeries = list[tuple[np.ndarray, np.ndarray]]


def _subplots(rows: int, cols: int, **kw):
    from plotly.subplots import make_subplots

    return make_subplots(rows=rows, cols=cols, **kw)


def _step_grid(panels: dict[str, dict]):
    """``(fig, row names, columns)``: a row per entry of ``panels``, a column per step
    (titled by the first entry's ``steps``), for the manifold-style grids."""
    names = list(panels)
    cols = max(len(p["steps"]) for p in panels.values())
    fig = _subplots(len(names), cols, horizontal_spacing=0.015, vertical_spacing=0.03,
                    column_titles=[f"step {s}" for s in panels[names[0]]["steps"]],
                    row_titles=names)
    return fig, names, cols


def _stepped_scale() -> list:
    """A stepped colour scale over :data:`PALETTE`: colour index ``i`` (a number in
    ``[-0.5, k - 0.5]``) maps to ``PALETTE[i]``, so points carry numbers, not colour strings."""
    k = len(PALETTE)
    return [[v, PALETTE[i]] for i in range(k) for v in (i / k, (i + 1) / k)]


def _grid_axes(fig, ranges: list[tuple] | None) -> None:
    """Bare axes, and column ``c``'s x/y ranges shared by every row (``ranges[c]``)."""
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False)
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False)
    for c, rng in enumerate(ranges or [], start=1):
        fig.update_xaxes(range=list(rng[0]), col=c)
        fig.update_yaxes(range=list(rng[1]), col=c)


def _finish(fig, title: str, height: int, legend: bool = True):
    fig.update_layout(template=template(), width=WIDTH, height=height, showlegend=legend,
                      title={"text": title, "y": 0.985, "yref": "container", "yanchor": "top"},
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 0.005,
                              "yref": "container", "yanchor": "bottom"},
                      margin={"t": 85, "b": 105 if legend else 50})
    fig.update_annotations(font_size=14)  # subplot titles
    apply_ticks(fig)  # 3+ labelled ticks on every axis, a padded range around a lone value
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def seed_stats(series: SeedSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean, lo, hi)`` over the seeds, on the steps every seed logged."""
    series = [(np.asarray(s), np.asarray(v, dtype=np.float64)) for s, v in series if len(s)]
    if not series:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    common = series[0][0]
    for s, _ in series[1:]:
        common = np.intersect1d(common, s)
    stack = np.stack([v[np.searchsorted(s, common)] for s, v in series])  # [seeds, T]
    return common, stack.mean(0), stack.min(0), stack.max(0)


def _band(fig, series: SeedSeries, name: str, color: str, row=None, col=None,
          dash: str = "solid", showlegend: bool = True, lower: SeedSeries | None = None,
          upper: SeedSeries | None = None, what: str = ""):
    """Seed-mean line of ``series`` with a shaded band: min-max over seeds, or the seed means
    of ``lower``/``upper`` when given (e.g. the p5-p95 spread of a distribution). The hover
    names the line (``name``, then ``what`` it shows in words) and the number of seeds."""
    go = _go()
    steps, mean, lo, hi = seed_stats(series)
    if lower is not None and upper is not None:
        (sl, lo, _, _), (su, hi, _, _) = seed_stats(lower), seed_stats(upper)
        keep = np.intersect1d(sl, su)
        lo, hi = lo[np.searchsorted(sl, keep)], hi[np.searchsorted(su, keep)]
        band_steps = keep
    else:
        band_steps = steps if len(series) > 1 else np.zeros(0)
    where = {} if row is None else {"row": row, "col": col}
    if len(band_steps):
        fig.add_trace(go.Scatter(x=np.r_[band_steps, band_steps[::-1]], y=np.r_[hi, lo[::-1]],
                                 fill="toself", fillcolor=_rgba(color, 0.12), mode="lines",
                                 line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=name), **where)
    # one or two logged steps: markers, or a lone point would not be drawn at all
    fig.add_trace(go.Scatter(x=steps, y=mean, mode="lines" if len(steps) > 2 else
                             "lines+markers", name=name, legendgroup=name,
                             showlegend=showlegend, line={"color": color, "width": 2,
                                                          "dash": dash},
                             hovertemplate=f"{name}{', ' + what if what else ''}<br>step %{{x}}"
                                           f"<br>%{{y:.4g}} (mean of {len(series)} "
                                           f"seed{'s' if len(series) != 1 else ''})"
                                           "<extra></extra>"), **where)


def manifold_grid(panels: dict[str, dict], class_names: list[str] | None = None,
                  ranges: list[tuple] | None = None, per_step: bool = False):
    """The probe set on one shared PCA basis: a row per objective, a column per step.
    ``panels[obj]`` holds ``steps[S]``, ``xy[S, P, 2]`` and ``labels[P]`` (-1: OOD).

    By default every panel has one x range and one y range, over all steps and objectives,
    so the growth of the cloud across steps is seen (``ranges``, if given per column, are
    merged). ``per_step=True`` keeps a range per column (``ranges[s]``, or computed),
    shared by the objectives only, and the title says "per-step ranges"."""
    go = _go()
    from .panels import common_ranges

    if ranges is None:
        ranges = [common_ranges(*(np.asarray(p["xy"])[s] for p in panels.values()
                                  if s < len(p["xy"])))
                  for s in range(max(len(p["xy"]) for p in panels.values()))]
    if not per_step:  # one range for every column: the union of the columns' ranges
        x = (min(r[0][0] for r in ranges), max(r[0][1] for r in ranges))
        y = (min(r[1][0] for r in ranges), max(r[1][1] for r in ranges))
        ranges = [(x, y)] * len(ranges)
    fig, names, _ = _step_grid(panels)
    # one trace per panel and marker kind (points coloured by class): far fewer traces to
    # render than one per class and panel; the legend comes from marker-less key traces
    all_labels: set[int] = set()
    for r, name in enumerate(names, start=1):
        p = panels[name]
        labels = np.asarray(p["labels"])
        all_labels |= set(np.unique(labels).tolist())
        ind, ood = labels >= 0, labels < 0
        # class index through a stepped colour scale: numbers, not 15k colour strings
        k = len(PALETTE)
        colours = {"color": labels[ind] % k, "colorscale": _stepped_scale(), "cmin": -0.5,
                   "cmax": k - 0.5}
        for c, xy in enumerate(np.asarray(p["xy"]), start=1):
            fig.add_trace(go.Scatter(x=xy[ind, 0], y=xy[ind, 1], mode="markers",
                                     showlegend=False, name=name, hoverinfo="skip",
                                     marker={"size": 3, "opacity": 0.7, **colours}),
                          r, c)
            if ood.any():
                fig.add_trace(go.Scatter(x=xy[ood, 0], y=xy[ood, 1], mode="markers",
                                         showlegend=False, name=f"{name} OOD", hoverinfo="skip",
                                         marker={"size": 4, "symbol": "x", "color": OOD_COLOR,
                                                 "opacity": 0.7}), r, c)
    for cls in sorted(all_labels, key=lambda c: (c >= 0, c)):  # legend keys: OOD, classes
        label = "OOD" if cls < 0 else (class_names[cls] if class_names and
                                       cls < len(class_names) else str(cls))
        marker = ({"size": 8, "symbol": "x", "color": OOD_COLOR} if cls < 0 else
                  {"size": 8, "color": PALETTE[int(cls) % len(PALETTE)]})
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label,
                                 marker=marker), 1, 1)
    _grid_axes(fig, ranges)
    title = "The manifold on a shared PCA basis, " + (
        "per-step ranges (sizes not comparable across steps)" if per_step else
        "one range for every step")
    fig = _finish(fig, title, 200 + 150 * len(names))
    fig.update_layout(legend={"itemsizing": "constant"})
    return fig


def angle_radius(polar: dict[str, dict], radial: dict[str, SeedSeries],
                 angular: dict[str, SeedSeries], colors: dict[str, str]):
    """Top: each objective's probe set at the end as (angle to the true class, ‖x‖).
    Bottom: the cumulative radial and angular parts of the mean true-class logit's change."""
    go = _go()
    names = list(polar)
    per_row = 3
    top = max(1, math.ceil(len(names) / per_row))
    specs = [[{"colspan": 2}, None] * per_row for _ in range(top)]
    specs.append([{"colspan": 3}, None, None] * 2)
    titles = [f"{n}: end of training" for n in names] + [""] * (top * per_row - len(names))
    titles += ["cumulative radial part", "cumulative angular part"]
    fig = _subplots(top + 1, 2 * per_row, specs=specs, subplot_titles=titles,
                    vertical_spacing=0.16 if top == 1 else 0.1, horizontal_spacing=0.085,
                    row_heights=[1.0] * top + [1.3])
    radii = np.concatenate([np.asarray(polar[n]["xy"])[:, 0] for n in names] or [np.ones(1)])
    radii = radii[np.isfinite(radii) & (radii > 0)]
    lo, hi = (np.log10(radii.min()), np.log10(radii.max())) if len(radii) else (0.0, 1.0)
    r_range = [lo - 0.05 * max(hi - lo, 0.1), hi + 0.05 * max(hi - lo, 0.1)]  # log10 units
    for i, name in enumerate(names):
        r, c = 1 + i // per_row, 1 + 2 * (i % per_row)
        xy, labels = np.asarray(polar[name]["xy"]), np.asarray(polar[name]["labels"])
        for ood in (False, True):
            m = (labels < 0) == ood
            if m.any():
                fig.add_trace(go.Scatter(
                    x=np.degrees(xy[m, 1]), y=xy[m, 0], mode="markers", showlegend=False,
                    name=f"{name} {'OOD' if ood else 'ID'}",
                    marker={"size": 3, "opacity": 0.5, "color": OOD_COLOR if ood else
                            colors[name], "symbol": "x" if ood else "circle"}), r, c)
        # one radius range for every objective: equal heights are equal norms
        fig.update_xaxes(title_text="θ_y to true class (deg)", range=[0, 180],
                         tickvals=[0, 45, 90, 135, 180], ticktext=["0", "45", "90", "135", "180"],
                         row=r, col=c)
        fig.update_yaxes(type="log", title_text="‖x‖ (feature units, log)", range=r_range,
                         row=r, col=c)
    for i in range(len(names), top * per_row):  # empty cells: no bare axes
        fig.update_xaxes(visible=False, row=1 + i // per_row, col=1 + 2 * (i % per_row))
        fig.update_yaxes(visible=False, row=1 + i // per_row, col=1 + 2 * (i % per_row))
    for col, parts in ((1, radial), (4, angular)):
        for name, series in parts.items():
            cum = [(s, np.cumsum(np.nan_to_num(v))) for s, v in series]
            _band(fig, cum, name, colors[name], top + 1, col, showlegend=col == 1,
                  what="cumulative " + ("radial" if col == 1 else "angular") + " part")
        fig.update_xaxes(title_text="training step", row=top + 1, col=col)
        fig.update_yaxes(title_text="Δ mean true logit (logit units)", row=top + 1, col=col)
    share_axes(fig, [(top + 1, 1), (top + 1, 4)], "y")
    return _finish(fig, "Radius or angle? Where the true-class logit comes from",
                   260 * top + 420)


def gradient_split(fraction: dict[str, SeedSeries], colors: dict[str, str]):
    """Share of the feature gradient's energy along x (radial) over training."""
    fig = _go().Figure()
    for name, series in fraction.items():
        _band(fig, series, name, colors[name], what="radial share")
    fig.update_yaxes(type="log", title_text="radial share of ‖∂L/∂x‖² (fraction, log)")
    fig.update_xaxes(title_text="training step")
    return _finish(fig, "Gradient split: radial energy fraction", 400)


def target_entropy(entropy: dict[str, dict[str, SeedSeries]],
                   gaps: dict[str, dict[str, SeedSeries]], colors: dict[str, str]):
    """Target H(p) (solid) vs prediction H(q) (dotted) for hard and easy samples, with the
    anchor gap s·d_y (solid) and nearest-negative distance (dashed) of the distance heads."""
    fig = _subplots(1, 3, horizontal_spacing=0.1,
                    subplot_titles=("hard samples", "easy samples", "distances (median)"))
    for name, parts in entropy.items():
        for col, group in ((1, "hard"), (2, "easy")):
            for kind, dash in (("target", "solid"), ("pred", "dot")):
                if f"{group}.{kind}" in parts:
                    _band(fig, parts[f"{group}.{kind}"], name, colors[name], 1, col, dash=dash,
                          showlegend=col == 1 and kind == "target",
                          what=pretty_key(f"{group}.{kind}"))
    for name, parts in gaps.items():
        for key, dash in (("anchor_gap", "solid"), ("nearest_negative", "dash")):
            if key in parts:
                _band(fig, parts[key], name, colors[name], 1, 3, dash=dash,
                      showlegend=name not in entropy and key == "anchor_gap",
                      what=pretty_key(key))
    fig.update_yaxes(title_text="entropy (nats)", row=1, col=1)
    fig.update_yaxes(type="log", title_text="s·d_y —, s·d_neg - -", row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="training step", row=1, col=col)
    if not gaps:
        fig.add_annotation(text="no distance head in these runs", row=1, col=3, x=0.5, y=0.5,
                           xref="x3 domain", yref="y3 domain", showarrow=False)
    return _finish(fig, "Target entropy H(p) (solid) vs prediction entropy H(q) (dotted)", 420)


def share_axes(fig, cells: list[tuple[int, int]], axis: str) -> None:
    """Give the subplots at ``cells`` one ``axis`` ("x" or "y") range over all their traces."""
    refs = set()
    for r, c in cells:
        sub = fig.get_subplot(r, c)
        refs.add(sub.xaxis.plotly_name if axis == "x" else sub.yaxis.plotly_name)
    vals = []
    for tr in fig.data:
        ref = (getattr(tr, f"{axis}axis", None) or axis).replace(axis, f"{axis}axis")
        if ref in refs and getattr(tr, axis, None) is not None:
            v = np.asarray(tr[axis], dtype=np.float64).ravel()
            vals.append(v[np.isfinite(v)])
    v = np.concatenate(vals) if vals else np.zeros(0)
    if not len(v):
        return
    lo, hi = float(v.min()), float(v.max())
    pad = 0.05 * max(hi - lo, 1e-9)
    for r, c in cells:
        (fig.update_xaxes if axis == "x" else fig.update_yaxes)(range=[lo - pad, hi + pad],
                                                               row=r, col=c)


def summary_table(columns: list[str], rows: list[list[str]], colors: list[str]):
    """A results table (already formatted cells, ``mean ± sd`` shown on two lines); the
    first column is tinted per row. The height fits every row, so nothing is cut off."""
    go = _go()
    rows = [[c.replace(" ± ", "<br>± ") for c in r] for r in rows]
    cells = list(map(list, zip(*rows, strict=True))) if rows else [[] for _ in columns]
    fill = [[_rgba(c, 0.18) for c in colors]] + [["white"] * len(rows)] * (len(columns) - 1)
    lines = max([c.count("<br>") + 1 for r in rows for c in r] or [1])
    row_h = 8 + 18 * lines
    fig = go.Figure(go.Table(
        columnwidth=[1.6] + [1.0] * (len(columns) - 1),
        header={"values": [f"<b>{c}</b>" for c in columns], "fill_color": "#f2f2f2",
                "align": "left", "font": {"size": 12}, "height": 44},
        cells={"values": cells, "fill_color": fill, "align": "left", "font": {"size": 12},
               "height": row_h}))
    fig = _finish(fig, "Summary: mean ± sd over seeds", 90 + 50 + row_h * len(rows),
                  legend=False)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def target_vs_bayes(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
                    colors: dict[str, str]):
    """Ground truth: mean target entropy H(p) and prediction entropy H(q) at each level of
    the Bayes posterior's entropy. ``curves[obj]["target"|"pred"] = (bayes_bins, mean)``."""
    go = _go()
    fig = _subplots(1, 2, horizontal_spacing=0.1, shared_yaxes=True,
                    subplot_titles=("target H(p)", "prediction H(q)"))
    top = 0.0
    for name, parts in curves.items():
        for col, key in ((1, "target"), (2, "pred")):
            if key in parts:
                x, y = parts[key]
                top = max(top, float(np.nanmax(np.r_[x, 0.0])))
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name,
                                         legendgroup=name, showlegend=col == 1,
                                         line={"color": colors[name]}), 1, col)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="= Bayes",
                                 showlegend=col == 1, line={"dash": "dash", "color": "#999"}),
                      1, col)
        fig.update_xaxes(title_text="Bayes posterior entropy (nats)", row=1, col=col)
    fig.update_yaxes(title_text="entropy (nats)", row=1, col=1)
    return _finish(fig, "Targets and predictions against the true posterior's entropy", 420)
