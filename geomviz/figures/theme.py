"""The publication look: one plotly template and one colour per objective, everywhere.

Sizes are chosen for a blog column about 800 px wide (exported at scale 2), so
that tick labels stay readable when the image is shown at that width.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OBJECTIVE_COLORS", "objective_colors", "template", "log_ticks", "FONT", "WIDTH"]

WIDTH = 800
FONT = "Helvetica Neue, Helvetica, Arial, DejaVu Sans, sans-serif"

# Fixed colours for the registered objectives, so CE is the same blue in every figure,
# on every page and in every study; TFSD gets the strongest contrast to it.
OBJECTIVE_COLORS = {
    "ce": "#4C78A8", "ce_fused": "#4C78A8", "tfsd": "#E45756", "tfsd_fused": "#E45756",
    "metric_ce": "#F58518", "label_smoothing": "#54A24B", "logitnorm": "#B279A2",
    "ce_zloss": "#9D755D", "tfsd_scaled": "#E377C2",
}
_SPARE = ["#72B7B2", "#EECA3B", "#FF9DA6", "#BAB0AC", "#17BECF", "#8C564B"]


def objective_colors(names: list[str]) -> dict[str, str]:
    """A colour for each name: the fixed one if registered, else the next spare (in order)."""
    out, spare = {}, iter(_SPARE * (1 + len(names) // len(_SPARE)))
    for name in names:
        out[name] = OBJECTIVE_COLORS.get(name) or next(spare)
    return out


def template():
    """A clean white template: light grid, no plot background, readable sans-serif fonts."""
    import plotly.graph_objects as go

    axis = {"showline": True, "linecolor": "#444", "linewidth": 1, "ticks": "outside",
            "tickcolor": "#444", "ticklen": 4, "showgrid": True, "gridcolor": "#ececec",
            "zeroline": False, "title": {"font": {"size": 14}}, "tickfont": {"size": 12},
            "automargin": True}
    return go.layout.Template(layout={
        "font": {"family": FONT, "size": 13, "color": "#222"},
        "title": {"font": {"size": 16}, "x": 0.0, "xanchor": "left", "xref": "paper"},
        "paper_bgcolor": "white", "plot_bgcolor": "white",
        "xaxis": axis, "yaxis": axis,
        "legend": {"font": {"size": 12}, "bgcolor": "rgba(255,255,255,0.8)"},
        "colorway": list(OBJECTIVE_COLORS.values()),
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "hoverlabel": {"font": {"family": FONT}},
    })


def log_ticks(fig) -> None:
    """Readable log axes: ticks at powers of two (1, 2, 4, 8, ...) over up to ~2.7 decades,
    at powers of ten beyond; plotly's default labels minor ticks with a bare digit."""
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for tr in fig.data:
        for axis in ("x", "y"):
            values = getattr(tr, axis, None)
            ref = getattr(tr, f"{axis}axis", None) or axis
            if values is None or isinstance(values, str):
                continue
            v = np.asarray(values, dtype=object)
            v = np.array([float(a) for a in v.ravel() if isinstance(a, int | float | np.number)])
            v = v[np.isfinite(v) & (v > 0)]
            if len(v):
                name = ref.replace("x", "xaxis").replace("y", "yaxis")
                lo[name] = min(lo.get(name, np.inf), float(v.min()))
                hi[name] = max(hi.get(name, 0.0), float(v.max()))
    for name in lo:
        axis = fig.layout[name] if name in fig.layout else None
        if axis is None or axis.type != "log":
            continue
        decades = np.log10(hi[name] / lo[name])
        if decades <= 2.7:
            axis.update(dtick=float(np.log10(2)), tickformat=".3~g")
        else:
            axis.update(dtick=1)
