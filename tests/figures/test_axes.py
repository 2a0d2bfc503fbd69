"""Readable axes (issue 24, defect 1): at least three labelled ticks at any data range."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geomviz.figures.axes import apply_ticks, format_ticks, nice_ticks, padded_range

pytest.importorskip("plotly")


def shown_ticks(fig, name: str) -> list[str]:
    """The labels plotly shows on axis ``name``: the ``tickvals`` inside the range, or, for a
    log axis with a ``dtick`` (what the figures set before), the ticks that ``dtick`` gives
    over the data (plotly's autorange), formatted by ``tickformat``."""
    from geomviz.figures.axes import axis_extents

    a = fig.layout[name]
    log = a.type == "log"
    if a.range is not None:
        lo, hi = (10.0 ** np.asarray(a.range)) if log else np.asarray(a.range)
    else:
        lo, hi = axis_extents(fig)[name]
    if a.tickvals is not None:
        return [str(t) for v, t in zip(a.tickvals, a.ticktext or a.tickvals, strict=True)
                if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]
    if log:
        d = float(a.dtick) if a.dtick is not None else 1.0
        ks = range(math.floor(math.log10(lo) / d), math.ceil(math.log10(hi) / d) + 1)
        vals = [10 ** (k * d) for k in ks if lo <= 10 ** (k * d) <= hi]
        return [format(v, (a.tickformat or "g").replace("~", "")) for v in vals]  # d3 -> py
    return nice_ticks(lo, hi)[1]


NARROW = (11.4, 12.4)  # the LM feature norms of the walk-through: within ±5% of 11.9


@pytest.mark.parametrize("lo, hi", [NARROW, (100.0, 104.0), (0.95, 1.05), (1e-3, 1e5),
                                    (1e-12, 1e12), (0.03, 0.5), (128.0, 128.0), (1.0, 1.0),
                                    (3e-7, 3e-7)])
def test_log_axis_has_three_labelled_ticks_inside_any_range(lo, hi):
    values, labels = nice_ticks(lo, hi, log=True)
    rng = 10.0 ** np.asarray(padded_range(lo, hi, log=True))
    assert 3 <= len(values) <= 9 and len(set(labels)) == len(labels)
    if hi > lo:
        assert lo * (1 - 1e-9) <= min(values) and max(values) <= hi * (1 + 1e-9)
    else:  # a single value: ticks around it, inside the padded range
        assert rng[0] * (1 - 1e-9) <= min(values) < lo < max(values) <= rng[1] * (1 + 1e-9)


def test_labels_read_like_numbers_people_write():
    assert nice_ticks(*NARROW, log=True)[1] == ["11.4", "11.6", "11.8", "12.0", "12.2", "12.4"]
    assert nice_ticks(0.03, 0.5, log=True)[1] == ["0.05", "0.1", "0.2", "0.5"]  # not 0.0625
    assert nice_ticks(1e-6, 1e-2, log=True)[1] == ["10⁻⁶", "10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²"]
    assert nice_ticks(0.0, 1.0)[1] == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]  # one format
    assert format_ticks([1e6, 1.5e6, 2e6], 5e5) == ["1.0×10⁶", "1.5×10⁶", "2.0×10⁶"]
    assert padded_range(32, 32) == [0.0, pytest.approx(35.2)]  # not a dot on 31..33


@given(st.floats(-12, 12), st.floats(0, 24), st.booleans())
def test_three_to_nine_distinct_ticks_inside_every_range(a, decades, log):
    lo = 10.0 ** a
    hi = lo * 10.0 ** decades
    if not log:
        lo, hi = a, a + decades * abs(a or 1)
    values, labels = nice_ticks(lo, hi, log=log)
    assert 3 <= len(values) <= 9
    assert len(set(labels)) == len(labels)  # never two ticks with one label
    if hi > lo * (1 + 1e-9) if log else hi > lo + 1e-9 * max(abs(lo), 1):
        assert min(values) >= lo - 1e-9 * abs(lo) and max(values) <= hi + 1e-9 * abs(hi)


def test_apply_ticks_shares_matched_axes_and_keeps_set_ranges():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(1, 2, shared_yaxes=True)
    fig.add_trace(go.Scatter(x=[0, 1], y=[11.4, 11.9]), 1, 1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[12.0, 12.4]), 1, 2)
    fig.update_yaxes(type="log")
    fig.update_xaxes(range=[0, 10], row=1, col=2)
    apply_ticks(fig)
    assert fig.layout.yaxis.range == fig.layout.yaxis2.range  # matched: one range over both
    assert list(fig.layout.yaxis.tickvals) == list(fig.layout.yaxis2.tickvals)
    assert 10.0 ** fig.layout.yaxis.range[0] < 11.4 and 10.0 ** fig.layout.yaxis.range[1] > 12.4
    assert list(fig.layout.xaxis2.range) == [0, 10] and max(fig.layout.xaxis2.tickvals) == 10
    assert len(shown_ticks(fig, "yaxis")) >= 3 and len(shown_ticks(fig, "xaxis")) >= 3
