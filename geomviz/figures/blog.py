"""The publication figure set: pure builders over plain arrays, one per named figure.

Every builder takes per-objective data (``{objective: ...}``, in legend order) and a
colour per objective, and returns a themed ``Figure`` sized for an 800 px column.
A series over seeds is ``SeedSeries``: one ``(steps[T], values[T])`` per seed; it is
drawn as the seed mean with a min-max band when there is more than one seed.
What the data mean and where it is read from is ``geomviz.figureset``'s concern.
"""

from __future__ import annotations

import math

import numpy as np

from .panels import OOD_COLOR, PALETTE, _go, log_centres
from .axes import apply_ticks
from .labels import pretty_key
from .theme import WIDTH, template

__all__ = ["norm_growth", "manifold_grid", "angle_radius", "gradient_split", "target_entropy",
           "ood", "summary_table", "target_vs_bayes", "SeedSeries"]

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


HIST_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def sample_edges(samples: list[np.ndarray], min_bins: int = 15,
                 max_bins: int = 60) -> tuple[np.ndarray, bool]:
    """One set of bin edges over every sample's range (so the objectives share an axis),
    as fine as the pooled data support (Freedman–Diaconis, ``min_bins``..``max_bins``
    bins): log-spaced (then ``True``) when the positive values span more than a factor of
    ten, else linear, so 11.4–12.4 gets bins of 0.02-0.07, never one bin."""
    v = np.concatenate([np.asarray(s, np.float64).ravel() for s in samples] or [np.zeros(0)])
    v = v[np.isfinite(v)]
    if not len(v):
        return np.linspace(0.0, 1.0, min_bins + 1), False
    log = bool(v.min() > 0 and v.max() / v.min() > 10)
    w = np.log10(v) if log else v
    lo, hi = float(w.min()), float(w.max())
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1e-300):  # one value: a narrow bin around it
        half = 0.01 * abs(lo) if lo else 0.5
        lo, hi = lo - half, hi + half
    iqr = float(np.subtract(*np.percentile(w, [75, 25])))
    width = 2 * iqr / len(w) ** (1 / 3) if iqr > 0 else (hi - lo) / min_bins
    bins = int(np.clip(np.ceil((hi - lo) / width), min_bins, max_bins))
    edges = np.linspace(lo, hi + (hi - lo) * 1e-9, bins + 1)
    return (10.0 ** edges, True) if log else (edges, False)


def _coincident(lines: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, str]]:
    """Pairs of names whose ``(x, y)`` lines are equal: one is drawn exactly over the other."""
    names, out = list(lines), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (xa, ya), (xb, yb) = lines[a], lines[b]
            if len(xa) and len(xa) == len(xb) and np.allclose(xa, xb, rtol=1e-9) and \
                    np.allclose(ya, yb, rtol=1e-9, atol=1e-12, equal_nan=True):
                out.append((a, b))
    return out


def _note_coincident(fig, pairs: list[tuple[str, str]], xref: str, yref: str) -> None:
    if pairs:
        text = "; ".join(f"{a} and {b} coincide" for a, b in pairs)
        fig.add_annotation(text=text, xref=f"{xref} domain", yref=f"{yref} domain", x=0.02,
                           y=0.98, xanchor="left", yanchor="top", showarrow=False,
                           font={"size": 11, "color": "#555"},
                           bgcolor="rgba(255,255,255,0.8)")


def norm_growth(p50: dict[str, SeedSeries], p5: dict[str, SeedSeries],
                p95: dict[str, SeedSeries], final: dict[str, np.ndarray | tuple],
                colors: dict[str, str], final_title: str = "‖x‖ at the end"):
    """Median feature norm over training with its 5-95% band, and the final distribution.

    ``final[obj]`` is the per-sample ‖x‖ at the end (``[N]``): binned on edges shared by
    every objective that follow the data's range (:func:`sample_edges`); or, when no
    samples were stored, a fixed-bin histogram ``(edges[B+1], counts[B])``. Each objective's
    histogram has its own dash and the first drawn is the widest, so a line lying exactly
    under another still shows; equal lines are also named in a note."""
    go = _go()
    fig = _subplots(1, 2, column_widths=[0.62, 0.38], horizontal_spacing=0.12,
                    subplot_titles=("median ‖x‖ over training (band: p5–p95)", final_title))
    for name in p50:
        _band(fig, p50[name], name, colors[name], 1, 1, lower=p5.get(name),
              upper=p95.get(name), what="median ‖x‖")
    samples = {k: np.asarray(v, np.float64) for k, v in final.items()
               if not isinstance(v, tuple)}
    edges, log_x = sample_edges(list(samples.values()))
    hists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, v in final.items():
        if isinstance(v, tuple):  # a stored fixed-bin histogram
            e, counts = (np.asarray(a, np.float64) for a in v)
            centres = log_centres(e)
            log_x = True
        else:
            counts, e = np.histogram(v[np.isfinite(v)], edges)
            centres = np.sqrt(e[:-1] * e[1:]) if log_x else (e[:-1] + e[1:]) / 2
        share = counts / max(counts.sum(), 1)
        used = np.flatnonzero(share > 0)
        if len(used):
            sl = slice(max(used[0] - 1, 0), used[-1] + 2)
            hists[name] = (centres[sl], share[sl])
    n = max(len(hists), 1)
    for i, (name, (x, y)) in enumerate(hists.items()):
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, legendgroup=name,
                                 showlegend=name not in p50,
                                 line={"shape": "hvh", "color": colors[name],
                                       "dash": HIST_DASHES[i % len(HIST_DASHES)],
                                       "width": 2 + 1.5 * (n - 1 - i) / max(n - 1, 1)},
                                 hovertemplate=f"{name}<br>‖x‖ %{{x:.4g}}<br>share "
                                               "%{y:.3f}<extra></extra>"), 1, 2)
    medians = {}
    for name in p50:
        steps, mean, _, _ = seed_stats(p50[name])
        medians[name] = (steps, mean)
    _note_coincident(fig, _coincident(medians), "x", "y")
    _note_coincident(fig, _coincident(hists), "x2", "y2")
    fig.update_yaxes(type="log", title_text="‖x‖ (feature units, log)", row=1, col=1)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(type="log" if log_x else "linear", row=1, col=2,
                     title_text="‖x‖ (feature units" + (", log)" if log_x else ")"))
    fig.update_yaxes(title_text="share of samples", rangemode="tozero", row=1, col=2)
    return _finish(fig, "Feature-norm growth", 440)


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
                    vertical_spacing=0.16 if top == 1 else 0.1, horizontal_spacing=0.06,
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
    fig.update_yaxes(type="log", title_text="radial share of ‖∂L/∂x‖²")
    fig.update_xaxes(title_text="step")
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
        fig.update_xaxes(title_text="step", row=1, col=col)
    if not gaps:
        fig.add_annotation(text="no distance head in these runs", row=1, col=3, x=0.5, y=0.5,
                           xref="x3 domain", yref="y3 domain", showarrow=False)
    return _finish(fig, "Target entropy H(p) (solid) vs prediction entropy H(q) (dotted)", 420)


# the OOD figure's layout in px: room for tick labels, axis titles and subplot titles
# between the panels, so no text overlaps (tests/figures/test_layout.py checks it)
OOD_LAYOUT = {"margin": {"l": 70, "r": 20, "t": 85, "b": 60}, "roc": 300, "hist": 190,
              "vgap": 100, "hgap": 90}


def ood(scores: dict[str, tuple[np.ndarray, np.ndarray]], auroc: dict[str, str],
        score_name: str, colors: dict[str, str]):
    """ROC curves (OOD positive) and the ID/OOD histograms of ``score_name`` per objective.

    The histograms sit below the ROC, as many per row as there are objectives (at most
    three), so no cell is empty; panel sizes and gaps are fixed in px (:data:`OOD_LAYOUT`)."""
    go = _go()
    from ..metrics import roc_curve

    names = list(scores)
    per_row = max(1, min(len(names), 3))
    hist_rows = max(1, math.ceil(len(names) / per_row))
    lay = OOD_LAYOUT
    m = lay["margin"]
    plot_h = lay["roc"] + hist_rows * (lay["hist"] + lay["vgap"])
    specs = [[{"colspan": per_row}] + [None] * (per_row - 1)] + [[{}] * per_row] * hist_rows
    titles = [f"ROC, OOD positive; score {score_name}"] + \
        names + [""] * (hist_rows * per_row - len(names))
    fig = _subplots(1 + hist_rows, per_row, specs=specs, subplot_titles=titles,
                    row_heights=[lay["roc"]] + [lay["hist"]] * hist_rows,
                    vertical_spacing=lay["vgap"] / plot_h,
                    horizontal_spacing=lay["hgap"] / (WIDTH - m["l"] - m["r"]))
    edges, log_x = shared_edges([np.r_[tuple(np.asarray(a, np.float64) for a in scores[n])]
                                 for n in names])
    top_share = 0.0
    for i, name in enumerate(names):
        cid, cood = (np.asarray(a, dtype=np.float64) for a in scores[name])
        fpr, tpr = roc_curve(cid, cood)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", line={"color": colors[name]},
                                 name=f"{name} (AUROC {auroc.get(name, '?')})"), 1, 1)
        r, c = 2 + i // per_row, 1 + i % per_row
        for data, label, color in ((cid, "ID", colors[name]), (cood, "OOD", OOD_COLOR)):
            counts, _ = np.histogram(data[np.isfinite(data)], edges)
            share = counts / max(counts.sum(), 1)
            top_share = max(top_share, float(share.max()) if len(share) else 0.0)
            centres = np.sqrt(edges[:-1] * edges[1:]) if log_x else (edges[:-1] + edges[1:]) / 2
            fig.add_trace(go.Bar(x=centres, y=share, width=np.diff(edges),
                                 marker={"color": _rgba(color, 0.55), "line": {"width": 0}},
                                 name=f"{name} {label}", showlegend=False,
                                 hovertemplate=f"{name}, {label}<br>{score_name} %{{x:.3g}}"
                                               "<br>share %{y:.3f}<extra></extra>"), r, c)
        fig.update_xaxes(title_text=f"{score_name} score" + (" (log)" if log_x else ""),
                         type="log" if log_x else "linear", row=r, col=c,
                         range=(np.log10(edges[[0, -1]]) if log_x else edges[[0, -1]]).tolist())
        fig.update_yaxes(title_text="share of samples", row=r, col=c)
    for i in range(len(names)):  # one share axis for every histogram
        fig.update_yaxes(range=[0, 1.05 * max(top_share, 1e-9)], row=2 + i // per_row,
                         col=1 + i % per_row)
    for i in range(len(names), hist_rows * per_row):  # empty cells: no bare axes
        fig.update_xaxes(visible=False, row=2 + i // per_row, col=1 + i % per_row)
        fig.update_yaxes(visible=False, row=2 + i // per_row, col=1 + i % per_row)
    fig.update_xaxes(title_text="false positive rate (ID called OOD)", row=1, col=1)
    fig.update_yaxes(title_text="true positive rate (OOD found)", row=1, col=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line={"dash": "dash", "color": "#999", "width": 1}), 1, 1)
    # a little room around 0..1: the "0.0" labels of the two axes do not meet in the corner
    fig.update_xaxes(range=[-0.02, 1.02], row=1, col=1)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(barmode="overlay")
    fig = _finish(fig, f"OOD detection (histograms: ID coloured, OOD grey; {score_name})",
                  plot_h + m["t"] + m["b"])
    roc_bottom = fig.layout.yaxis.domain[0]  # the legend sits inside the ROC panel
    fig.update_layout(legend={"orientation": "v", "x": 0.99, "xanchor": "right",
                              "y": roc_bottom + 0.02, "yanchor": "bottom", "yref": "paper",
                              "bgcolor": "rgba(255,255,255,0.85)"},
                      margin=m)
    return fig


def shared_edges(samples: list[np.ndarray], bins: int = 30) -> tuple[np.ndarray, bool]:
    """One set of histogram edges for every sample: log-spaced when all values are positive
    and span more than two decades (then ``True``), else linear."""
    v = np.concatenate([s[np.isfinite(s)] for s in samples] or [np.zeros(1)])
    if not len(v):
        v = np.zeros(1)
    lo, hi = float(v.min()), float(v.max())
    if lo > 0 and hi / lo > 100:
        return np.logspace(np.log10(lo), np.log10(hi) + 1e-9, bins + 1), True
    return np.linspace(lo, hi + max(hi - lo, 1e-9) * 1e-6 + (1e-9 if hi == lo else 0.0),
                       bins + 1), False


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
