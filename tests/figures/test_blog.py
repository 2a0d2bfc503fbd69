"""Publication builders: every trace carries exactly the data given, sized for the column."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geomviz import figures as F
from geomviz.figures.blog import seed_stats
from geomviz.metrics import ood_metrics

pytest.importorskip("plotly")
COLORS = F.objective_colors(["ce", "tfsd"])


def _seeds(g, n_seeds=3, steps=(10, 20, 30, 40)):
    return [(np.array(steps), g.uniform(1, 5, len(steps))) for _ in range(n_seeds)]


@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4), min_size=1,
                max_size=5))
def test_seed_stats_is_mean_min_max_over_seeds(values):
    series = [(np.array([1, 2, 3, 4]), np.array(v)) for v in values]
    steps, mean, lo, hi = seed_stats(series)
    arr = np.array(values, dtype=np.float64)
    np.testing.assert_array_equal(steps, [1, 2, 3, 4])
    np.testing.assert_allclose(mean, arr.mean(0), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(lo, arr.min(0))
    np.testing.assert_array_equal(hi, arr.max(0))


def test_seed_stats_keeps_only_steps_every_seed_logged():
    series = [(np.array([0, 1, 2]), np.array([1.0, 2, 3])), (np.array([1, 2, 5]),
                                                             np.array([10.0, 20, 50]))]
    steps, mean, _, _ = seed_stats(series)
    np.testing.assert_array_equal(steps, [1, 2])
    np.testing.assert_allclose(mean, [6, 11.5])


def test_norm_growth_line_is_seed_mean_and_band_is_p5_p95():
    g = np.random.default_rng(0)
    p50, p5, p95 = _seeds(g), _seeds(g), _seeds(g)
    edges = np.geomspace(0.1, 100, 11)
    counts = np.r_[0, 0, 3, 5, 2, 0, 0, 0, 0, 0]
    fig = F.norm_growth({"ce": p50}, {"ce": p5}, {"ce": p95}, {"ce": (edges, counts)}, COLORS)
    band, line, hist = fig.data
    np.testing.assert_allclose(line.y, np.mean([v for _, v in p50], 0))
    hi, lo = np.mean([v for _, v in p95], 0), np.mean([v for _, v in p5], 0)
    np.testing.assert_allclose(band.y, np.r_[hi, lo[::-1]])
    assert np.isclose(np.sum(hist.y), 1.0) and line.line.color == F.OBJECTIVE_COLORS["ce"]
    assert fig.layout.width == 800 and fig.layout.yaxis.type == "log"
    assert len(fig.layout.yaxis.ticktext) >= 3  # labelled ticks, not powers of two only


def test_manifold_grid_panels_hold_every_point_with_per_column_ranges():
    g = np.random.default_rng(1)
    labels = np.r_[np.repeat([0, 1], 10), [-1] * 5]
    panels = {o: {"steps": [0, 5, 50], "xy": g.standard_normal((3, 25, 2)) * (1 + i),
                  "labels": labels} for i, o in enumerate(["ce", "tfsd"])}
    ranges = [F.common_ranges(*(p["xy"][s] for p in panels.values())) for s in range(3)]
    fig = F.manifold_grid(panels, ["a", "b"], ranges, per_step=True)
    points = [t for t in fig.data if t.x[0] is not None]
    assert len(points) == 2 * 3 * 2  # objectives × steps × (ID, OOD)
    assert sum(len(t.x) for t in points) == 2 * 3 * 25
    ce0_ind, ce0_ood = points[0], points[1]
    np.testing.assert_allclose(ce0_ind.x, panels["ce"]["xy"][0][labels >= 0, 0])
    np.testing.assert_allclose(ce0_ood.y, panels["ce"]["xy"][0][labels < 0, 1])
    assert list(ce0_ind.marker.color) == list(labels[labels >= 0])  # class index...
    assert [c for _, c in ce0_ind.marker.colorscale[::2]] == F.PALETTE  # ...through the palette
    assert fig.layout.xaxis3.range == pytest.approx(ranges[2][0])
    assert fig.layout.xaxis6.range == pytest.approx(ranges[2][0])  # row 2, same column
    assert [t.name for t in fig.data if t.showlegend is not False] == ["OOD", "a", "b"]


def test_angle_radius_degrees_and_cumulative_attribution():
    labels = np.r_[[0] * 5, [-1] * 2]
    xy = np.c_[np.linspace(1, 7, 7), np.linspace(0, np.pi, 7)]
    parts = [(np.array([1, 2, 3]), np.array([1.0, -0.5, 2.0]))]
    fig = F.angle_radius({"ce": {"xy": xy, "labels": labels}}, {"ce": parts}, {"ce": parts},
                         COLORS)
    ind, ood = fig.data[0], fig.data[1]
    np.testing.assert_allclose(ind.x, np.degrees(xy[:5, 1]))
    np.testing.assert_allclose(ood.y, xy[5:, 0])
    lines = [t for t in fig.data if t.mode == "lines"]
    np.testing.assert_allclose(lines[0].y, [1.0, 0.5, 2.5])


def test_ood_roc_matches_sklearn_and_metrics():
    sklearn = pytest.importorskip("sklearn.metrics")
    g = np.random.default_rng(2)
    cid, cood = g.normal(1, 1, 300), g.normal(0, 1, 200)
    fig = F.ood({"ce": (cid, cood)}, {"ce": "0.7"}, "msp", COLORS)
    roc = fig.data[0]
    auc = float(np.sum(np.diff(roc.x) * (np.asarray(roc.y)[1:] + np.asarray(roc.y)[:-1]) / 2))
    labels = np.r_[np.zeros(300), np.ones(200)]
    assert auc == pytest.approx(sklearn.roc_auc_score(labels, -np.r_[cid, cood]), abs=1e-12)
    assert auc == pytest.approx(ood_metrics(cid, cood)["auroc"], abs=1e-12)
    hists = [t for t in fig.data if t.type == "bar"]
    edges = np.linspace(min(cid.min(), cood.min()), max(cid.max(), cood.max()), 31)
    assert np.sum(hists[0].y) == pytest.approx(1.0) and np.sum(hists[1].y) == pytest.approx(1.0)
    np.testing.assert_allclose(hists[1].y, np.histogram(cood, edges)[0] / 200, atol=1e-12)
    assert "AUROC 0.7" in roc.name


def _axes(fig, prefix):
    return {k: fig.layout[k] for k in fig.layout.to_plotly_json() if k.startswith(prefix)}


def test_ood_and_angle_radius_grids_share_their_axes_and_title_every_axis():
    g = np.random.default_rng(3)
    scores = {"ce": (g.uniform(1, 10, 200), g.uniform(0.5, 5, 100)),
              "logitnorm": (g.uniform(0.01, 0.1, 200), g.uniform(0.01, 0.05, 100))}
    colors = {"ce": "#4C78A8", "logitnorm": "#B279A2"}
    fig = F.ood(scores, {}, "energy", colors)
    hist_x = [a for k, a in _axes(fig, "xaxis").items() if a.type == "log"]
    assert len(hist_x) == 2  # 0.01 .. 10 spans three decades: a log axis
    assert hist_x[0].range == hist_x[1].range
    every = np.concatenate([np.r_[a, b] for a, b in scores.values()])
    assert hist_x[0].range[0] <= np.log10(every.min()) + 1e-9
    assert hist_x[0].range[1] >= np.log10(every.max()) - 1e-9
    shares = [a.range for k, a in _axes(fig, "yaxis").items()
              if k != "yaxis" and a.visible is not False]
    assert len(shares) == 2 and shares[0] == shares[1]
    for a in list(_axes(fig, "xaxis").values()) + list(_axes(fig, "yaxis").values()):
        if a.visible is not False:
            assert a.title.text, a
    polar = {"ce": {"xy": np.c_[g.uniform(8, 32, 50), g.uniform(0, 3, 50)],
                    "labels": np.arange(50) % 3},
             "logitnorm": {"xy": np.c_[g.uniform(0.9, 1.1, 50), g.uniform(0, 3, 50)],
                           "labels": np.arange(50) % 3}}
    series = {k: [(np.arange(5), g.normal(size=5) * (10 if k == "ce" else 1))] for k in polar}
    fig = F.angle_radius(polar, series, series, colors)
    radius = [a for a in _axes(fig, "yaxis").values() if a.type == "log"]
    assert len(radius) == 2 and radius[0].range == radius[1].range
    radii = np.r_[polar["ce"]["xy"][:, 0], polar["logitnorm"]["xy"][:, 0]]
    assert radius[0].range[0] <= np.log10(radii.min()) <= np.log10(radii.max()) <= \
        radius[0].range[1]
    parts = [fig.get_subplot(2, c).yaxis for c in (1, 4)]
    assert parts[0].range == parts[1].range and parts[0].range[1] > parts[0].range[0]
    for a in list(_axes(fig, "xaxis").values()) + list(_axes(fig, "yaxis").values()):
        assert a.visible is False or a.title.text, a


def test_summary_table_cells_and_target_vs_bayes_traces():
    fig = F.summary_table(["objective", "acc"], [["ce", "0.9 ± 0.01"], ["tfsd", "0.8"]],
                          ["#000000", "#ffffff"])
    assert list(fig.data[0].cells.values[1]) == ["0.9<br>± 0.01", "0.8"]  # sd on line 2
    assert fig.layout.height == 90 + 50 + 2 * (8 + 18 * 2)  # every row fits
    x, y = np.array([0.1, 0.5]), np.array([0.0, 0.2])
    fig = F.target_vs_bayes({"tfsd": {"target": (x, y), "pred": (x, y * 2)}}, COLORS)
    np.testing.assert_allclose(fig.data[1].y, y * 2)
    assert fig.data[-1].name == "= Bayes"


def test_target_entropy_separates_groups_and_distance_panel():
    g = np.random.default_rng(3)
    ent = {"tfsd": {f"{a}.{b}": _seeds(g, 2) for a in ("easy", "hard")
                    for b in ("target", "pred")}}
    gaps = {"tfsd": {"anchor_gap": _seeds(g, 2), "nearest_negative": _seeds(g, 2)}}
    fig = F.target_entropy(ent, gaps, COLORS)
    lines = [t for t in fig.data if t.mode == "lines" and t.fill is None]
    assert len(lines) == 6  # 2 groups × target/pred + 2 distances
    assert {t.line.dash for t in lines} == {"solid", "dot", "dash"}
    assert fig.layout.yaxis3.type == "log"
