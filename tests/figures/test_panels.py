"""Figure builders: the traces carry exactly the data given, and the panels add up."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz import figures as F
from geomviz.metrics import ood_metrics


def test_manifold_traces_by_class_ood_and_highlight():
    g = np.random.default_rng(0)
    xy = g.standard_normal((30, 2))
    labels = np.r_[np.repeat([0, 1, 2], 8), [-1] * 6]
    fig = F.manifold(xy, labels, class_names=["a", "b", "c"], highlight=np.array([3, 27]),
                     hover={"norm": np.arange(30.0)})
    names = [t.name for t in fig.data]
    # OOD first: drawn under the in-distribution cloud (issue 24 defect 10), ring last
    assert names == ["OOD", "a", "b", "c", "selected"]
    assert all(t.type == "scattergl" for t in fig.data)
    for t in fig.data[:4]:  # customdata rows start with the probe index: coordinates match
        idx = [row[0] for row in t.customdata]
        np.testing.assert_allclose(np.c_[t.x, t.y], xy[idx].astype(np.float32))
    assert sum(len(t.x) for t in fig.data[:4]) == 30
    assert fig.data[0].marker.symbol == "x" and list(fig.data[4].customdata) == [3, 27]
    assert list(fig.data[1].customdata[0]) == [0, "a", 0.0]
    assert "norm = %{customdata[2]" in fig.data[1].hovertemplate
    assert fig.data[0].customdata[0][1] == "OOD"
    assert fig.layout.xaxis.title.text == "PC1" and fig.layout.yaxis.title.text == "PC2"
    colored = F.manifold(xy, labels, color=np.linspace(0, 1, 30), color_name="H(p)")
    assert [t.name for t in colored.data] == ["OOD", "H(p)"]


def test_ood_markers_are_drawn_under_every_colouring():
    """Issue 24 defect 10: the OOD crosses covered the in-distribution cloud. WebGL draws
    traces in order: OOD must come first whatever the colouring, and slider patches
    address the same order (trace_masks)."""
    g = np.random.default_rng(1)
    labels = np.r_[np.arange(40) % 35, [-1] * 5]
    xy = g.standard_normal((45, 2))
    for kw in ({}, {"color": g.uniform(size=45)},
               {"color": labels.clip(0) % 3, "categories": ["x", "y", "z"]},
               {"color": labels.clip(0), "categories": [f"s{i}" for i in range(35)]}):
        fig = F.manifold(xy, labels, **kw)
        assert fig.data[0].name == "OOD" and len(fig.data[0].x) == 5
        kind = "class" if "color" not in kw else ("category" if "categories" in kw else "color")
        masks = F.trace_masks(labels, kind, kw.get("color"), kw.get("categories"))
        assert masks[0][0] == "ood" and len(masks) == len(fig.data)


def test_many_codes_get_a_colour_each_and_one_is_put_in_focus():
    """Issue 24 defect 10: 35 classes (a token run has 256) were ten colours repeating, so
    class 12 read as class 2. Each code is now its own colour on one scale, and ``focus``
    draws one code on top, in the legend, the others grey."""
    g = np.random.default_rng(2)
    labels = np.r_[np.arange(70) % 35, [-1] * 3]
    xy = g.standard_normal((73, 2))
    fig = F.manifold(xy, labels)
    many = fig.data[1]
    assert many.name == "classes" and list(many.marker.color) == list(labels[:70])
    assert many.marker.cmin == -0.5 and many.marker.cmax == 34.5
    fig = F.manifold(xy, labels, class_names=[f"t{i}" for i in range(35)], focus=12)
    assert [t.name for t in fig.data] == ["OOD", "classes", "t12"]
    assert sorted(r[0] for r in fig.data[2].customdata) == [12, 47]
    assert fig.data[2].showlegend is True and fig.data[1].showlegend is False
    assert len(fig.data[1].x) == 68 and "160,160,160" in fig.data[1].marker.color


def test_norm_heatmap_shares_and_lines():
    edges = np.r_[0.0, np.logspace(-1, 2, 7)]
    counts = np.array([[0, 4, 4, 0, 0, 0, 0], [0, 0, 2, 6, 0, 0, 0]])
    fig = F.norm_heatmap(np.array([10, 20]), edges, counts, p50=np.array([0.3, 1.0]),
                         marker_step=20)
    z = np.asarray(fig.data[0].z)
    np.testing.assert_allclose(z.sum(0), [1.0, 1.0])  # each step's shares sum to 1
    assert z.shape == (3, 2)  # only the band of bins that held samples
    assert fig.layout.yaxis.type == "log" and fig.data[1].name == "p50"
    # labelled ticks over this narrow band (not bare minor digits), inside the range
    ticks = np.asarray(fig.layout.yaxis.tickvals)
    lo, hi = 10.0 ** np.asarray(fig.layout.yaxis.range)
    assert len(ticks) >= 3 and len(fig.layout.yaxis.ticktext) == len(ticks)
    assert lo <= ticks.min() and ticks.max() <= hi


def test_decomposition_bars_sum_to_the_total():
    steps = np.array([50, 100, 150])
    parts = {"radial": np.array([1.0, -0.5, 0.2]), "angular": np.array([0.5, 0.5, -0.1]),
             "weight": np.array([0.1, 0.0, 0.0]), "bias": np.zeros(3)}
    total = sum(parts.values())
    fig = F.decomposition(steps, parts, total)
    bars = [t for t in fig.data if t.type == "bar"]
    np.testing.assert_allclose(np.sum([t.y for t in bars], axis=0), fig.data[-1].y)
    assert fig.layout.barmode == "relative"


def test_ood_roc_area_matches_the_metric():
    g = np.random.default_rng(1)
    cid, cood = g.normal(1, 1, 300), g.normal(0, 1, 200)
    fig = F.ood_scores(cid, cood, "msp")
    roc = fig.data[2]
    fpr, tpr = np.asarray(roc.x), np.asarray(roc.y)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(ood_metrics(cid, cood)["auroc"], abs=1e-9)


def test_a_long_roc_curve_is_thinned_to_what_a_screen_shows():
    """Issue 24 defect 8: 8,192 ID and OOD scores gave a 16,000-point ROC curve, 170 KB of
    the page's 1 MB per side. Thinned to the points entering a new 0.001 cell: at most
    2,000 + 1 of them, the ends kept, every point an original one, the area within 0.002."""
    g = np.random.default_rng(3)
    cid, cood = g.normal(1.0, 1.0, 8192), g.normal(0.0, 1.0, 8192)
    fig = F.ood_scores(cid, cood, "msp")
    fpr, tpr = np.asarray(fig.data[2].x), np.asarray(fig.data[2].y)
    from geomviz.metrics import roc_curve

    full_x, full_y = roc_curve(cid, cood)
    assert len(full_x) > 10_000 and len(fpr) <= 2001
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    pairs = set(zip(full_x.tolist(), full_y.tolist(), strict=True))
    assert all((x, y) in pairs for x, y in zip(fpr.tolist(), tpr.tolist(), strict=True))
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(ood_metrics(cid, cood)["auroc"], abs=2e-3)


def test_loss_accuracy_marks_spikes():
    steps = np.arange(5) * 50
    fig = F.loss_accuracy(steps, np.array([2, 1, 5, 0.8, 0.7]),
                          np.array([0.1, 0.3, 0.2, 0.5, 0.6]), spikes=np.array([0, 0, 1, 0, 0]))
    spike = [t for t in fig.data if t.name == "spike"][0]
    assert list(spike.x) == [100] and list(spike.y) == [5]


def test_fixed_ranges_cover_every_run_and_step():
    a = np.zeros((3, 4, 2))
    b = np.ones((2, 4, 2)) * 10
    (x0, x1), (y0, y1) = F.common_ranges(a, b)
    assert x0 < 0 < 10 < x1 and y0 < 0 < 10 < y1
    fig = F.manifold(a[0], np.zeros(4, int), ranges=((x0, x1), (y0, y1)))
    assert tuple(fig.layout.xaxis.range) == (x0, x1)


def test_a_manifold_of_hundreds_of_classes_has_no_legend():
    from geomviz.figures.panels import MAX_LEGEND_CLASSES, manifold

    labels = np.r_[np.arange(200) % 150, -np.ones(5, dtype=int)]
    fig = manifold(np.random.default_rng(0).normal(size=(205, 2)), labels)
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert shown == ["OOD"] and 150 > MAX_LEGEND_CLASSES
    few = manifold(np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2]))
    assert all(t.showlegend is not False for t in few.data)


def test_class_and_category_colours_are_never_an_objectives_colour():
    """A manifold's class 0 must not read as CE's blue, nor a token kind as TFSD's red."""
    from geomviz.figures.panels import CATEGORY_COLORS, PALETTE
    from geomviz.figures.theme import _SPARE, OBJECTIVE_COLORS

    objective = {c.upper() for c in [*OBJECTIVE_COLORS.values(), *_SPARE]}
    assert not objective & {c.upper() for c in PALETTE + CATEGORY_COLORS}
    assert len(set(PALETTE)) == len(PALETTE) and len(set(CATEGORY_COLORS)) == len(CATEGORY_COLORS)
