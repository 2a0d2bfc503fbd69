"""Where a figure's text lands, computed from its layout (no browser needed).

Plot areas come from the axis domains and margins exactly; text boxes are estimated
generously from font sizes (a character is taken as 0.62 of the font size wide, a line
1.3 high) and plotly's placement rules: tick labels outside the plot area past the tick,
axis titles past the tick labels, subplot titles on top of their domain. Figures must set
their ticks (``tickvals``/``ticktext``, as :func:`geomviz.figures.axes.apply_ticks` does)
so the tick labels are known. Used to check that no text overlaps other text, a plot area
or the figure's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geomviz.figures.axes import axis_extents, nice_ticks, padded_range

CHAR = 0.62
LINE = 1.3


@dataclass
class Box:
    what: str
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box, tol: float = 0.5) -> bool:
        return (self.x0 < other.x1 - tol and other.x0 < self.x1 - tol and
                self.y0 < other.y1 - tol and other.y0 < self.y1 - tol)


def _size(font, default: float) -> float:
    return float(font.size) if font is not None and font.size else default


def _width(text: str, size: float) -> float:
    plain = text.replace("<b>", "").replace("</b>", "")
    return max(len(line) for line in plain.split("<br>")) * CHAR * size


def _axes(fig, letter: str) -> list[str]:
    names = [k for k in fig.layout.to_plotly_json() if k.startswith(f"{letter}axis")]
    return names or [f"{letter}axis"]


def _ref(name: str) -> str:
    return name[0] + name[5:]


def _ticks(fig, name: str) -> tuple[float, float, np.ndarray, list[str]]:
    """``(range lo, hi, tick positions, labels)`` in axis units (log10 on a log axis); ticks
    plotly chooses itself are estimated as :func:`nice_ticks` would place them."""
    a = fig.layout[name]
    log = a.type == "log"
    rng = a.range
    if rng is None:
        lo, hi = axis_extents(fig).get(name, (1.0, 10.0) if log else (0.0, 1.0))
        rng = padded_range(lo, hi, log)
    lo, hi = float(rng[0]), float(rng[1])
    if a.tickvals is not None:
        vals, labels = list(a.tickvals), [str(t) for t in (a.ticktext or a.tickvals)]
    else:
        vals, labels = nice_ticks(*((10 ** lo, 10 ** hi) if log else (lo, hi)), log=log)
    vals = np.asarray(vals, dtype=np.float64)
    return lo, hi, np.log10(vals) if log else vals, labels


def layout_boxes(fig) -> tuple[list[Box], list[Box]]:
    """``(plot areas, text boxes)`` in px from the top-left corner of the figure."""
    W, H = float(fig.layout.width), float(fig.layout.height)
    m, tm = fig.layout.margin, fig.layout.template.layout.margin
    left, right, top, bottom = (float(getattr(m, k) if getattr(m, k) is not None else
                                      getattr(tm, k) if getattr(tm, k) is not None else 80)
                                for k in ("l", "r", "t", "b"))
    pw, ph = W - left - right, H - top - bottom

    def px(p):
        return left + p * pw

    def py(p):
        return top + (1 - p) * ph

    plots, texts = [], []
    for xname in _axes(fig, "x"):
        xa = fig.layout[xname]
        ya = fig.layout[f"yaxis{xname[5:]}"]
        if xa.visible is False:
            continue
        xd, yd = xa.domain or (0, 1), ya.domain or (0, 1)
        plots.append(Box(f"plot {xname}", px(xd[0]), py(yd[1]), px(xd[1]), py(yd[0])))
    for name in _axes(fig, "x") + _axes(fig, "y"):
        a = fig.layout[name]
        if a.visible is False:
            continue
        other = fig.layout[("yaxis" if name[0] == "x" else "xaxis") + name[5:]]
        dom, odom = a.domain or (0, 1), other.domain or (0, 1)
        tick = _size(a.tickfont, 12.0)
        ticklen = float(a.ticklen if a.ticklen is not None else 4)
        if a.showticklabels is not False:
            lo, hi, vals, labels = _ticks(fig, name)
            depth = 0.0
            for v, text in zip(vals, labels, strict=True):
                if not min(lo, hi) - 1e-9 <= v <= max(lo, hi) + 1e-9:
                    continue
                f = (v - lo) / (hi - lo)
                w = _width(str(text), tick)
                if name[0] == "x":
                    c = px(dom[0] + f * (dom[1] - dom[0]))
                    y0 = py(odom[0]) + ticklen + 2
                    texts.append(Box(f"{name} tick {text}", c - w / 2, y0, c + w / 2,
                                     y0 + LINE * tick))
                    depth = ticklen + 2 + LINE * tick
                else:
                    c = py(dom[0] + f * (dom[1] - dom[0]))
                    x1 = px(odom[0]) - ticklen - 2
                    texts.append(Box(f"{name} tick {text}", x1 - w, c - LINE * tick / 2, x1,
                                     c + LINE * tick / 2))
                    depth = max(depth, ticklen + 2 + w)
        else:
            depth = 0.0
        if a.title and a.title.text:
            size = _size(a.title.font, 14.0)
            w = _width(a.title.text, size)
            if name[0] == "x":
                c = px((dom[0] + dom[1]) / 2)
                y0 = py(odom[0]) + depth + 4
                texts.append(Box(f"{name} title", c - w / 2, y0, c + w / 2, y0 + LINE * size))
            else:
                c = py((dom[0] + dom[1]) / 2)
                x1 = px(odom[0]) - depth - 4
                texts.append(Box(f"{name} title", x1 - LINE * size, c - w / 2, x1, c + w / 2))
    for ann in fig.layout.annotations:
        if not ann.text or ann.xref != "paper" or ann.yref != "paper":
            continue
        size = _size(ann.font, 14.0)
        w, h = _width(ann.text, size), LINE * size * (ann.text.count("<br>") + 1)
        x, y = px(ann.x), py(ann.y)
        x0 = {"left": x, "right": x - w}.get(ann.xanchor, x - w / 2)
        y0 = {"top": y, "bottom": y - h}.get(ann.yanchor, y - h / 2)
        texts.append(Box(f"annotation {ann.text[:30]}", x0, y0, x0 + w, y0 + h))
    if fig.layout.title and fig.layout.title.text:
        size = _size(fig.layout.title.font, 16.0)
        y0 = (1 - (fig.layout.title.y or 0.985)) * H
        texts.append(Box("title", left, y0, left + _width(fig.layout.title.text, size),
                         y0 + LINE * size))
    return plots, texts


def overlaps(fig) -> list[str]:
    """Every pair of overlapping text boxes, text over a plot area, or text past the edge."""
    plots, texts = layout_boxes(fig)
    W, H = float(fig.layout.width), float(fig.layout.height)
    bad = []
    for i, a in enumerate(texts):
        if a.x0 < -0.5 or a.y0 < -0.5 or a.x1 > W + 0.5 or a.y1 > H + 0.5:
            bad.append(f"{a.what} leaves the figure")
        for b in texts[i + 1:]:
            if a.overlaps(b):
                bad.append(f"{a.what} overlaps {b.what}")
        for p in plots:
            if a.overlaps(p):
                bad.append(f"{a.what} overlaps {p.what}")
    return bad
