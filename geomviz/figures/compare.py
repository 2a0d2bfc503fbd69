"""Comparison panels: two sides (A and B, each one run or a group of seeds) drawn so the eye
can compare them, on one axis (overlay) or as a pair of figures with the same ranges.

Each side's series is a ``SeedSeries`` (one ``(steps, values)`` per seed); more than one
seed is drawn as the mean with a min-max band, in the side's objective colour.
"""

from __future__ import annotations

import numpy as np

from .axes import padded_range
from .blog import SeedSeries, _rgba, seed_stats
from .panels import _go
from .theme import log_ticks

__all__ = ["overlay", "share_ranges", "y_range", "DASHES", "LEGEND_BELOW"]

DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")
# legends sit under the x-axis title, never over the plot title or a colour bar
LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.32, "yanchor": "top",
                "font": {"size": 11}}
MARGIN = {"l": 60, "r": 20, "t": 44, "b": 40}
REFERENCE_COLOR = "#888888"


def overlay(sides: list[tuple[str, str, dict[str, SeedSeries]]], title: str, ytitle: str,
            log_y: bool = False, marker_step: int | None = None,
            y2: dict[str, tuple[str, dict[str, SeedSeries]]] | None = None,
            note: str = "", reference: dict[str, SeedSeries] | None = None):
    """One axis, every side's lines: ``sides`` is ``[(label, colour, {line: SeedSeries})]``.

    Line ``j`` of every side gets dash style ``DASHES[j]`` (the title says which is which);
    the legend names the sides once. ``y2`` adds a right axis: ``{label: (title, lines)}``
    keyed by side label, drawn dotted. ``note`` (for example why a side is missing) is
    written under the title. ``reference`` lines (a property of the data, such as the true
    law's entropy) are drawn grey and dashed, once, whatever the sides; the title names them.
    """
    go = _go()
    fig = go.Figure()
    _marker(fig, marker_step)
    for name, series in (reference or {}).items():
        # named in the hover, not the legend: the title says what the grey line is
        _add(fig, series, name, REFERENCE_COLOR, "dash", name, show=False, legend_name=name)
    for label, color, lines in sides:
        for j, (name, series) in enumerate(lines.items()):
            _add(fig, series, f"{label} · {name}", color, DASHES[j % len(DASHES)], label,
                 show=j == 0, legend_name=label)
        if y2 and label in y2:
            for name, series in y2[label][1].items():
                _add(fig, series, f"{label} · {name}", color, "dot", label, show=False,
                     legend_name=label, yaxis="y2")
    layout = {"title": {"text": title, "font": {"size": 14}},
              "xaxis": {"title": {"text": "training step"}},
              "yaxis": {"title": {"text": ytitle}, "type": "log" if log_y else "linear"},
              "margin": MARGIN, "legend": LEGEND_BELOW, "showlegend": True}
    if y2:
        layout["yaxis2"] = {"title": {"text": next(iter(y2.values()))[0]}, "overlaying": "y",
                            "side": "right", "range": [0, 1.05], "showgrid": False,
                            "tickvals": [0, 0.25, 0.5, 0.75, 1.0]}
        layout["margin"] = {**MARGIN, "r": 60}
    fig.update_layout(**layout)
    if note:
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=1.0, xanchor="left",
                           yanchor="bottom", showarrow=False, font={"size": 11, "color": "#888"})
    if log_y:
        log_ticks(fig)
    return fig


def _add(fig, series: SeedSeries, name: str, color: str, dash: str, group: str, show: bool,
         legend_name: str, yaxis: str = "y") -> None:
    go = _go()
    steps, mean, lo, hi = seed_stats(series)
    if len(series) > 1 and len(steps):  # min-max band over the seeds, under the mean
        fig.add_trace(go.Scatter(x=np.r_[steps, steps[::-1]], y=np.r_[hi, lo[::-1]],
                                 fill="toself", fillcolor=_rgba(color, 0.18), mode="lines",
                                 line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=group, name=f"{name} (min-max)", yaxis=yaxis))
    # one or two logged steps: markers, or a lone point would not be drawn at all
    fig.add_trace(go.Scatter(x=steps, y=mean, mode="lines" if len(steps) > 2 else
                             "lines+markers", name=legend_name if show else name,
                             legendgroup=group, showlegend=show, yaxis=yaxis,
                             line={"color": color, "dash": dash, "width": 2},
                             hovertemplate=f"{name}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>"))


def _marker(fig, step) -> None:
    """The current-step marker: always ``layout.shapes[0]``, so a slider move patches it."""
    if step is not None:
        fig.add_vline(x=step, line={"color": "#d62728", "width": 1, "dash": "dot"})


def y_range(figs: list, log: bool = False, pad: float = 0.05) -> list[float] | None:
    """One y range (log10 units on a log axis) covering every main-axis trace of ``figs``."""
    vals = []
    for fig in figs:
        for tr in fig.data:
            if getattr(tr, "yaxis", None) in (None, "y") and tr.type in ("scatter", "bar") \
                    and tr.y is not None:
                vals.append(np.asarray(tr.y, dtype=np.float64).ravel())
            elif tr.type == "heatmap":
                vals.append(np.asarray(tr.y, dtype=np.float64).ravel())
    if not vals:
        return None
    v = np.concatenate(vals)
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if not len(v):
        return None
    return padded_range(float(v.min()), float(v.max()), log, pad)


def share_ranges(figs: list, log_y: bool = False, y_from_zero: bool = False) -> None:
    """Give ``figs`` one x range and one y range (and one colour range for heatmaps)."""
    xs = [np.asarray(tr.x, dtype=np.float64) for f in figs for tr in f.data
          if tr.x is not None and len(tr.x)]
    if xs:
        x = np.concatenate(xs)
        x = x[np.isfinite(x)]
        if len(x):
            lo, hi = float(x.min()), float(x.max())
            # one or two logged steps: a padded range, not a lone dot on 31..33
            rng = [lo, hi] if hi > lo else padded_range(lo, hi)
            for f in figs:
                f.update_xaxes(range=rng)
    yr = y_range(figs, log_y)
    if yr is not None:
        if y_from_zero and not log_y:
            yr[0] = min(0.0, yr[0])
        for f in figs:
            f.layout.yaxis.range = yr
            if log_y:  # the ticks follow the shared range: equal on every side
                f.layout.yaxis.update(tickmode=None, tickvals=None, ticktext=None)
                log_ticks(f)
    zs = [np.asarray(tr.z, dtype=np.float64) for f in figs for tr in f.data
          if tr.type == "heatmap"]
    if zs:
        zmax = max(float(np.nanmax(z)) if z.size else 0.0 for z in zs)
        for f in figs:
            f.update_traces(zmin=0.0, zmax=max(zmax, 1e-12), selector={"type": "heatmap"})
