"""Sweep figures: one colour per objective (the theme's), seed bands, diverged marks, shared
axes with titled units, and the instability panels at one rate."""

import math
from pathlib import Path

import numpy as np
import pytest

from geomviz.figures.sweep import instability, lr_sensitivity
from geomviz.figures.theme import OBJECTIVE_COLORS
from geomviz.study.sweep import Cell
from geomviz.study.sweep_results import RunResult


def _r(obj, lr, seed, final, status="finished", qk=False):
    steps = np.arange(8, 72, 8)
    series = {"health.attn_logit.max": (steps, np.linspace(1, 5, len(steps)) * (1 + lr)),
              "health.max_logit": (steps, np.linspace(2, 9, len(steps)))}
    return RunResult(Cell(obj, lr, qk, seed), Path("x"), status, final, math.log(256), [],
                     series)


RES = [_r(o, lr, s, 2.0 + lr + 0.1 * s + (o == "tfsd") * 0.05, qk=q)
       for q in (False, True) for o in ("ce", "tfsd", "ce_zloss") for lr in (1e-3, 1e-2)
       for s in (0, 1)] + [_r("tfsd", 1e-1, 0, math.nan, "diverged"),
                           _r("tfsd", 1e-1, 1, 2.5)]


def test_lr_sensitivity_colours_bands_diverged_and_axes():
    fig = lr_sensitivity(RES)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    for t in lines:
        assert t.line.color == OBJECTIVE_COLORS[t.legendgroup]
    assert {t.name for t in lines if t.showlegend} == {"ce", "tfsd", "ce_zloss"}
    ce = next(t for t in lines if t.name == "ce" and t.xaxis == "x")
    assert list(ce.x) == [1e-3, 1e-2]
    assert ce.y[0] == pytest.approx(np.mean([2.001, 2.101]))  # the mean over seeds
    band = next(t for t in fig.data if t.fill == "toself" and t.legendgroup == "ce")
    assert band.mode == "lines"  # no markers in plotly's default colours
    for t in fig.data:  # every trace in its objective's colour
        want = OBJECTIVE_COLORS[t.legendgroup]
        rgb = ",".join(str(int(want[i:i + 2], 16)) for i in (1, 3, 5))
        got = t.line.color or t.marker.color
        assert got == want or got.startswith(f"rgba({rgb},"), (t.name, got)
    # min-max over seeds: max at 1e-3, 1e-2, then min at 1e-2, 1e-3
    assert list(band.y) == pytest.approx([2.101, 2.11, 2.01, 2.001])
    x = next(t for t in fig.data if t.mode == "markers")
    assert x.marker.symbol == "x" and list(x.y) == [pytest.approx(math.log(256))]
    tfsd = next(t for t in lines if t.name == "tfsd" and t.xaxis == "x")
    assert tfsd.y[-1] == pytest.approx((math.log(256) + 2.5) / 2)  # diverged counts as L0
    assert fig.layout.yaxis2.matches == "y" or fig.layout.yaxis2.showticklabels is False
    assert fig.layout.xaxis.type == "log" and "learning rate" in fig.layout.xaxis.title.text
    assert "nats" in fig.layout.yaxis.title.text


def test_instability_panels_at_one_rate():
    fig = instability(RES, 1e-2)
    assert {t.legendgroup for t in fig.data} == {"ce", "tfsd", "ce_zloss"}
    assert all(t.line.color == OBJECTIVE_COLORS[t.legendgroup] for t in fig.data)
    assert len(fig.data) == 3 * 2 * 2  # objectives x seeds x panels
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"
    assert "attention logit" in fig.layout.yaxis.title.text
    assert "output logit" in fig.layout.yaxis2.title.text
    assert "step" in fig.layout.xaxis2.title.text
    with pytest.raises(ValueError):
        instability(RES, 0.5)


@pytest.mark.parametrize("lr", [math.nan, math.inf, 0.0, -1e-3])
def test_a_rate_that_is_not_finite_and_positive_is_one_line(lr):
    with pytest.raises(ValueError, match="not a finite number > 0") as e:
        lr_sensitivity([*RES, _r("ce", lr, 0, 2.0)])
    assert len(str(e.value).splitlines()) == 1
