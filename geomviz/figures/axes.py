"""Readable axes at any data range: at least three labelled ticks, a padded range.

Plotly's own log axis labels only powers of ten (or bare minor digits) and shows no
label at all on a narrow range such as 11.4–12.4; a single value or a run with one
logged step gets an axis from 31 to 33 around a lone dot. These pure helpers choose
the ticks and ranges instead, so every figure (publication set and dashboard) reads
the same way.

API (all pure; plotly is only touched by :func:`apply_ticks`):

- ``nice_ticks(lo, hi, log=False, min_ticks=3, max_ticks=8) -> (values, labels)``:
  tick values inside ``[lo, hi]`` (data units, also on a log axis) and their labels.
  Log axes: powers of ten (every k-th decade on wide ranges), then 1-3, 1-2-5 and
  1-2-3-5-7 per decade, then evenly spaced 1/2/5 steps on narrow ranges (within a
  factor of ~2). Evenly spaced labels share one number of decimals ("11.4, 11.6,
  11.8"), log labels are the shortest exact text ("0.05, 0.1, 0.2"), very large or
  small values read "2×10⁻⁵".
- ``padded_range(lo, hi, log=False, pad=0.05) -> [a, b]``: an axis range (log10 units on
  a log axis, as plotly wants) around the data; a single value gets a sensible span:
  ``[0, 1.1·v]`` on a linear axis (so a lone step 32 is not drawn on 31–33), ``v/1.25 ..
  v·1.25`` on a log axis.
- ``apply_ticks(fig, linear=True, pad=0.05, min_ticks=3)``: every visible numeric axis of
  ``fig`` gets ``tickvals``/``ticktext`` from :func:`nice_ticks` over its range: the range
  already set (e.g. shared between two figures: call it after sharing) or the padded
  extent of its traces (then set). Axes bound by ``matches`` share one range and one set
  of ticks; axes with their own ``tickvals``, hidden labels or categories are left alone.
  ``linear=False`` leaves linear axes to plotly's automatic ticks (which follow a zoom),
  only fixing a degenerate (single-value) range. Returns ``fig``.
- ``axis_extents(fig) -> {axis name: (lo, hi)}``: the data extent on every axis.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["nice_ticks", "padded_range", "apply_ticks", "axis_extents", "format_ticks"]

_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
# per-decade mantissas, coarsest first, tried after the every-k-decades powers of ten
_MANTISSAS = ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7))
_DECADE_STEPS = (10, 5, 4, 3, 2, 1)


def _pow10(e: int) -> str:
    return f"10{str(e).translate(_SUP)}"


def _exp_label(v: float, decimals: int | None = None) -> str:
    """``2×10⁻⁵`` (``10⁻⁵`` for a mantissa of 1 with no fixed ``decimals``)."""
    if v == 0:
        return "0"
    e = math.floor(math.log10(abs(v)) + 1e-12)
    m = v / 10.0 ** e
    text = f"{m:.{decimals}f}" if decimals is not None else f"{m:.3g}"
    if decimals is None and text in ("1", "-1"):
        return text[:-1] + _pow10(e)
    return f"{text}×{_pow10(e)}"


def _short(v: float) -> str:
    """The shortest text of ``v`` (three significant digits at most), no exponent."""
    if v == 0:
        return "0"
    if not 1e-3 <= abs(v) < 1e6:
        return _exp_label(v)
    return np.format_float_positional(float(f"{v:.3g}"), trim="-")


def format_ticks(values, step: float | None = None) -> list[str]:
    """Labels for ``values``: evenly spaced ticks (``step`` given) share one number of
    decimals; otherwise each is its shortest exact text. Beyond 10⁶ or below 10⁻³ the
    labels read ``m×10ᵉ``."""
    values = [float(v) for v in values]
    if step is None:
        if any(v and not 1e-3 <= abs(v) < 1e6 for v in values):  # one style for all
            return [_exp_label(v) for v in values]
        return [_short(v) for v in values]
    big = max((abs(v) for v in values), default=0.0)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if big >= 1e6 or 0 < big < 1e-3:
        e = math.floor(math.log10(big) + 1e-12)
        d = max(0, -math.floor(math.log10(step / 10.0 ** e) + 1e-9))
        return [_exp_label(v, d) if v else "0" for v in values]
    # -0.0 prints as "-0.0": add 0.0
    return [f"{round(v, decimals) + 0.0:.{decimals}f}" for v in values]


def _linear(lo: float, hi: float, min_ticks: int, max_ticks: int) -> tuple[list[float], float]:
    span = hi - lo
    if not span > 0:
        return [lo], 1.0
    e = math.floor(math.log10(span))
    steps = [m * 10.0 ** k for k in range(e + 1, e - 3, -1) for m in (5, 2, 1)]
    best: tuple[list[float], float] | None = None
    for step in steps:  # largest step first: the first with 4+ ticks, or 3 if 4+ is too many
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        ticks = [k * step for k in range(first, last + 1)]
        if len(ticks) >= min_ticks and best is None:
            best = (ticks, step)
        if len(ticks) >= max(min_ticks, 4):
            if len(ticks) <= max_ticks:
                return ticks, step
            return best if best is not None else (ticks, step)
    return best or ([lo, (lo + hi) / 2, hi], span / 2)


def _log(lo: float, hi: float, min_ticks: int, max_ticks: int) -> list[float] | None:
    a, b = math.log10(lo), math.log10(hi)
    candidates = []
    for k in _DECADE_STEPS:
        first, last = math.ceil(a / k - 1e-9), math.floor(b / k + 1e-9)
        candidates.append([10.0 ** (k * i) for i in range(first, last + 1)])
    for mant in _MANTISSAS[1:]:
        ticks = [m * 10.0 ** d for d in range(math.floor(a) - 1, math.ceil(b) + 1)
                 for m in mant]
        candidates.append([t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)])
    fallback = None
    for ticks in candidates:
        if min_ticks <= len(ticks) <= max_ticks:
            if len(ticks) >= 4:
                return ticks
            fallback = fallback or ticks
    return fallback


def nice_ticks(lo: float, hi: float, log: bool = False, min_ticks: int = 3,
               max_ticks: int = 8) -> tuple[list[float], list[str]]:
    """``(values, labels)``: at least ``min_ticks`` ticks inside ``[lo, hi]`` (data units;
    ``lo > 0`` on a log axis), at most about ``max_ticks``. A degenerate range is widened
    by :func:`padded_range` first."""
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if log and not lo > 0:
        raise ValueError(f"a log axis needs positive bounds, got {lo}..{hi}")
    if hi == lo:
        r = padded_range(lo, hi, log, 0.0)
        lo, hi = (10.0 ** r[0], 10.0 ** r[1]) if log else (r[0], r[1])
    if log:
        ticks = _log(lo, hi, min_ticks, max_ticks)
        if ticks is not None:
            return ticks, format_ticks(ticks)
    ticks, step = _linear(lo, hi, min_ticks, max_ticks)
    ticks = [round(t / step) * step for t in ticks]  # 0.30000000000000004 -> 0.3
    return ticks, format_ticks(ticks, step)


def padded_range(lo: float, hi: float, log: bool = False, pad: float = 0.05) -> list[float]:
    """``[a, b]`` around ``lo..hi`` with ``pad`` of the span on each side (log10 units on a
    log axis). A single value: ``[0, 1.1·v]`` (or ``[1.1·v, 0]``, ``[-1, 1]`` at 0) on a
    linear axis, ``v/1.25 .. v·1.25`` on a log axis."""
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if log:
        a, b = math.log10(lo), math.log10(hi)
        if b - a < 1e-12:
            return [a - math.log10(1.25), b + math.log10(1.25)]
        return [a - pad * (b - a), b + pad * (b - a)]
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1e-300):
        if lo == 0:
            return [-1.0, 1.0]
        return [0.0, 1.1 * hi] if hi > 0 else [1.1 * lo, 0.0]
    return [lo - pad * (hi - lo), hi + pad * (hi - lo)]


def _axis_name(ref: str | None, letter: str) -> str:
    ref = ref or letter
    return f"{letter}axis{ref[1:]}"


def _numbers(values) -> np.ndarray:
    if values is None or isinstance(values, str):
        return np.zeros(0)
    try:
        v = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):  # categories, None mixed in
        v = np.array([float(a) for a in np.asarray(values, dtype=object).ravel()
                      if isinstance(a, int | float | np.number) and not isinstance(a, bool)])
    return v[np.isfinite(v)]


def axis_extents(fig) -> dict[str, tuple[float, float]]:
    """``{axis name: (lo, hi)}`` over the finite values of the traces drawn on each axis
    (bars and ``rangemode="tozero"`` axes include 0; log axes only positive values)."""
    out: dict[str, list[float]] = {}
    for tr in fig.data:
        if tr.type not in ("scatter", "scattergl", "bar", "heatmap"):
            continue
        for letter in ("x", "y"):
            name = _axis_name(getattr(tr, f"{letter}axis", None), letter)
            v = _numbers(getattr(tr, letter, None))
            if tr.type == "bar" and letter == ("y" if tr.orientation != "h" else "x"):
                v = np.r_[v, 0.0]
            if tr.type == "bar" and letter == "x" and tr.width is not None and len(v):
                w = _numbers(tr.width)
                if len(w) == len(v):
                    v = np.r_[v - w / 2, v + w / 2]
            axis = fig.layout[name] if name in fig.layout else None
            log = axis is not None and axis.type == "log"
            if log:
                v = v[v > 0]
            if tr.type == "heatmap" and len(v) >= 2:  # cells reach half a cell past centres
                s = np.sort(v)
                v = (np.r_[s, s[0] * np.sqrt(s[0] / s[1]), s[-1] * np.sqrt(s[-1] / s[-2])]
                     if log else np.r_[s, s[0] - (s[1] - s[0]) / 2, s[-1] + (s[-1] - s[-2]) / 2])
            if len(v):
                lo, hi = out.get(name, [np.inf, -np.inf])
                out[name] = [min(lo, float(v.min())), max(hi, float(v.max()))]
    for name, ext in out.items():
        if name in fig.layout and fig.layout[name].rangemode == "tozero":
            out[name] = [min(ext[0], 0.0), max(ext[1], 0.0)]
    return {k: (v[0], v[1]) for k, v in out.items()}


def _axes(fig, extents) -> list[str]:
    named = [k for k in fig.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]
    return list(dict.fromkeys([*named, *extents]))


def apply_ticks(fig, linear: bool = True, pad: float = 0.05, min_ticks: int = 3):
    """Labelled ticks (at least ``min_ticks``) and a range on every visible numeric axis of
    ``fig``; see the module docstring. Returns ``fig``."""
    extents = axis_extents(fig)
    names = [n for n in _axes(fig, extents) if n in extents or fig.layout[n].range is not None]
    # axes bound by `matches` form one group: one range, one set of ticks
    group = {n: n for n in names}
    for n in names:
        m = fig.layout[n].matches
        if m:
            target = _axis_name(m, n[0])
            group[n] = group.get(target, target)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(group[n], []).append(n)
    for members in groups.values():
        axes = [fig.layout[n] for n in members]
        if any(a.type in ("category", "multicategory", "date") for a in axes):
            continue
        if all(a.visible is False or a.showticklabels is False for a in axes):
            continue
        if any(a.tickvals is not None or a.tickmode == "array" for a in axes):
            continue
        log = axes[0].type == "log"
        set_range = next((list(a.range) for a in axes if a.range is not None), None)
        if set_range is not None:
            rng = [float(set_range[0]), float(set_range[1])]
        else:
            ext = [extents[n] for n in members if n in extents]
            if not ext:
                continue
            lo, hi = min(e[0] for e in ext), max(e[1] for e in ext)
            rng = padded_range(lo, hi, log, pad)
            degenerate = hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1e-300)
            if not (log or linear or degenerate):
                continue
            for a in axes:
                a.range = rng
        if not log and not linear:
            continue
        lo, hi = (10.0 ** rng[0], 10.0 ** rng[1]) if log else (rng[0], rng[1])
        values, labels = nice_ticks(min(lo, hi), max(lo, hi), log, min_ticks)
        for a in axes:
            a.update(tickmode="array", tickvals=values, ticktext=labels)
    return fig
