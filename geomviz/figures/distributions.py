"""Publication figures of distributions: the feature norms' growth and final spread
(``norm_growth``) and OOD detection (``ood``), with the binning they share.

Conventions as in :mod:`.blog`: per-objective data in legend order, one colour per
objective, themed ``Figure`` sized for an 800 px column. Histogram bins are shared by the
objectives (one axis) and follow the data's range, so two objectives that differ are told
apart; a line lying exactly under another is still seen (its own dash, wider) and named.
"""

from __future__ import annotations

import math

import numpy as np

from .blog import SeedSeries, _band, _finish, _rgba, _subplots, seed_stats
from .panels import OOD_COLOR, _go, log_centres
from .theme import WIDTH

__all__ = ["norm_growth", "ood", "sample_edges", "shared_edges", "OOD_LAYOUT", "HIST_DASHES"]


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
