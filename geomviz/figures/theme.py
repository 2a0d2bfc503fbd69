"""The publication look: one plotly template and one colour per objective, everywhere.

Sizes are chosen for a blog column about 800 px wide (exported at scale 2), so
that tick labels stay readable when the image is shown at that width.
"""

from __future__ import annotations

import zlib

__all__ = ["OBJECTIVE_COLORS", "objective_colors", "group_colors", "shade", "template",
           "log_ticks", "FONT", "WIDTH"]

WIDTH = 800
FONT = "Helvetica Neue, Helvetica, Arial, DejaVu Sans, sans-serif"

# Fixed colours for the registered objectives, so CE is the same blue in every figure,
# on every page and in every study; TFSD gets the strongest contrast to it.
OBJECTIVE_COLORS = {
    "ce": "#4C78A8", "ce_fused": "#4C78A8", "tfsd": "#E45756", "tfsd_fused": "#E45756",
    "metric_ce": "#F58518", "label_smoothing": "#54A24B", "logitnorm": "#B279A2",
    "ce_zloss": "#9D755D", "tfsd_scaled": "#E377C2",
}
# Colours for objectives geomviz does not ship (a user's plugin, "?"): none is a built-in's
# or a class's (figures.panels.PALETTE, CATEGORY_COLORS; tests/figures/test_panels.py).
_SPARE = ["#72B7B2", "#EECA3B", "#FF9DA6", "#BAB0AC", "#17BECF", "#8C564B", "#BCBD22",
          "#FFBB78", "#98DF8A", "#C5B0D5", "#9EDAE5", "#7F7F7F"]


def _spare_index(name: str) -> int:
    """A stable slot in ``_SPARE`` for ``name`` (crc32: the same in every process, unlike
    ``hash``), so a user's objective has one colour on every page and in every study."""
    return zlib.crc32(name.encode()) % len(_SPARE)


def objective_colors(names: list[str]) -> dict[str, str]:
    """A colour for each name: the fixed one of a built-in, else a spare chosen by the name
    alone (:func:`_spare_index`). Only when two unknown names on one figure would share a
    spare does the later one (alphabetically, so not by order given) take the next free
    one; with more unknown names than spares, colours repeat."""
    out = {n: OBJECTIVE_COLORS[n] for n in names if n in OBJECTIVE_COLORS}
    taken: set[str] = set()
    for name in sorted({n for n in names if n not in OBJECTIVE_COLORS}):
        i = _spare_index(name)
        free = [_SPARE[(i + k) % len(_SPARE)] for k in range(len(_SPARE))
                if _SPARE[(i + k) % len(_SPARE)] not in taken]
        out[name] = free[0] if free else _SPARE[i]
        taken.add(out[name])
        if len(taken) == len(_SPARE):
            taken.clear()
    return {n: out[n] for n in names}


def group_colors(objectives: dict[str, str]) -> dict[str, str]:
    """A colour per group label (``{label: objective}``, in order): the objective's colour
    (:func:`objective_colors`), and for its 2nd, 3rd, ... group (another rate, say) a darker,
    then a lighter shade of it, so one objective keeps one hue everywhere."""
    base = objective_colors(list(dict.fromkeys(objectives.values())))
    seen: dict[str, int] = {}
    out = {}
    for label, obj in objectives.items():
        k = seen.get(obj, 0)
        seen[obj] = k + 1
        out[label] = base[obj] if k == 0 else shade(base[obj], (-1) ** k * 0.3 * ((k + 1) // 2))
    return out


def shade(hex_color: str, amount: float) -> str:
    """``hex_color`` mixed with white (``amount`` > 0) or black (< 0), ``|amount|`` <= 0.9."""
    amount = max(-0.9, min(0.9, amount))
    h = hex_color.lstrip("#")
    rgb = [int(h[i:i + 2], 16) for i in (0, 2, 4)]
    target = 255 if amount > 0 else 0
    mixed = [round(c + (target - c) * abs(amount)) for c in rgb]
    return "#" + "".join(f"{c:02X}" for c in mixed)


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
    """Readable log axes: at least three labelled ticks at any range (see
    :func:`geomviz.figures.axes.apply_ticks`); linear axes keep plotly's own ticks."""
    from .axes import apply_ticks

    apply_ticks(fig, linear=False)
