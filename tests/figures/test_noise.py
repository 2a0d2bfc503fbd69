"""The label-noise figure: traces carry the given series, the ratio is per seed, axes titled."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.figures import OBJECTIVE_COLORS, objective_colors
from geomviz.figures.noise import outlier_gradients, ratio_series

pytest.importorskip("plotly")


def _seeds(g, scale, n=3, steps=(50, 100, 150, 200)):
    return [(np.array(steps), g.uniform(1, 2, len(steps)) * scale) for _ in range(n)]


def test_ratio_is_taken_per_seed_on_shared_steps():
    num = [(np.array([1, 2, 3]), np.array([2.0, 4, 6])), (np.array([2, 3]), np.array([1.0, 0]))]
    den = [(np.array([2, 3, 4]), np.array([2.0, 3, 1])), (np.array([2, 3]), np.array([0.0, 2]))]
    out = ratio_series(num, den)
    np.testing.assert_array_equal(out[0][0], [2, 3])
    np.testing.assert_allclose(out[0][1], [2.0, 2.0])
    assert np.isnan(out[1][1][0]) and out[1][1][1] == 0.0  # a zero clean norm gives no ratio


def test_outlier_gradients_draws_every_objective_in_its_colour_with_titled_axes():
    g = np.random.default_rng(0)
    names = ["ce", "tfsd"]
    colors = objective_colors(names)
    noisy = {n: _seeds(g, 10 if n == "ce" else 3) for n in names}
    clean = {n: _seeds(g, 1) for n in names}
    mem = {n: _seeds(g, 0.3) for n in names}
    fig = outlier_gradients(noisy, clean, mem, colors)
    lines = [t for t in fig.data if t.fill is None and t.mode == "lines"]
    for n in names:
        mine = [t for t in lines if t.legendgroup == n]
        assert {t.line.color for t in mine} == {OBJECTIVE_COLORS[n]}
        assert len(mine) == 4  # flipped, clean, ratio, memorised
        assert sum(bool(t.showlegend) for t in mine) == 1
    ratio = next(t for t in lines if t.legendgroup == "ce" and t.xaxis == "x2")
    want = np.mean([a[1] / b[1] for a, b in zip(noisy["ce"], clean["ce"], strict=True)], 0)
    np.testing.assert_allclose(ratio.y, want)
    memo = next(t for t in lines if t.legendgroup == "tfsd" and t.xaxis == "x3")
    np.testing.assert_allclose(memo.y, np.mean([v for _, v in mem["tfsd"]], 0))
    for axis in ("xaxis", "xaxis2", "xaxis3", "yaxis", "yaxis2", "yaxis3"):
        assert fig.layout[axis].title.text, axis
    assert fig.layout.xaxis2.matches == "x" and fig.layout.xaxis3.matches == "x"
    assert fig.layout.yaxis3.range == (0, 1) and fig.layout.width == 800


def test_outlier_gradients_without_a_noise_split_still_shows_memorisation():
    g = np.random.default_rng(1)
    fig = outlier_gradients({}, {}, {"ce": _seeds(g, 0.5, n=1)}, objective_colors(["ce"]))
    assert [t.legendgroup for t in fig.data if t.fill is None] == ["ce"]
