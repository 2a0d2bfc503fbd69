"""Issue 24, the figures: what they show is readable and true.

Each test guards one defect of the walk-through and fails on the figures before the fix:
log axes without labels (1), per-step manifold ranges under a "shared" title (5),
overlapping text in ``ood`` (6), and the smaller defects (10).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from geomviz import figures as F
from tests.figures.geometry import overlaps
from tests.figures.test_axes import shown_ticks

pytest.importorskip("plotly")
COLORS = F.objective_colors(["ce", "tfsd"])


def _series(lo, hi, seeds=2, steps=20, rng=None):
    g = rng or np.random.default_rng(0)
    s = np.arange(steps) * 25
    return [(s, np.linspace(lo, hi, steps) * g.uniform(0.995, 1.005, steps))
            for _ in range(seeds)]


def _visible_axes(fig):
    for name in fig.layout.to_plotly_json():
        a = fig.layout[name] if name.startswith(("xaxis", "yaxis")) else None
        if a is not None and a.visible is not False and a.showticklabels is not False:
            yield name, a


def _norm_growth(lo, hi, final):
    p50 = {o: _series(lo, hi, rng=np.random.default_rng(i)) for i, o in enumerate(COLORS)}
    p5 = {o: _series(lo * 0.97, hi * 0.97) for o in COLORS}
    p95 = {o: _series(lo * 1.03, hi * 1.03) for o in COLORS}
    return F.norm_growth(p50, p5, p95, final, COLORS)


@pytest.mark.parametrize("lo, hi", [(11.4, 12.4), (0.01, 3000.0), (12.0, 12.0)])
def test_every_axis_of_norm_growth_has_three_labelled_ticks(lo, hi):
    """Narrow (the LM walk-through: 11.4-12.4, no label shown before), wide and single."""
    g = np.random.default_rng(1)
    edges = np.r_[0.0, np.logspace(-3, 4, 57)]  # the store's fixed bins (probes.stats)
    final = {o: (edges, np.histogram(g.uniform(lo, hi, 400) if hi > lo else np.full(400, lo),
                                     edges)[0]) for o in COLORS}
    fig = _norm_growth(lo, hi, final)
    for name, _ in _visible_axes(fig):
        assert len(shown_ticks(fig, name)) >= 3, (name, shown_ticks(fig, name))


def test_anchor_gap_of_one_value_has_three_labelled_ticks():
    """The anchor-gap panel showed one tick, "128"."""
    flat = [(np.arange(0, 100, 10), np.full(10, 128.0))] * 2
    fig = F.target_entropy({}, {"tfsd": {"anchor_gap": flat, "nearest_negative": flat}},
                           COLORS)
    assert fig.layout.yaxis3.type == "log"
    assert len(shown_ticks(fig, "yaxis3")) >= 3


def test_gradient_split_ticks_read_0_05_0_1_0_2_not_powers_of_two():
    fig = F.gradient_split({"ce": _series(0.03, 0.5), "tfsd": _series(0.1, 0.3)}, COLORS)
    labels = shown_ticks(fig, "yaxis")
    assert len(labels) >= 3
    assert not {"0.0625", "0.0313", "0.125"} & set(labels), labels
    assert all(len(t.strip("0.").replace(".", "")) <= 2 for t in labels), labels


def test_final_histogram_bins_follow_the_data_and_tell_objectives_apart():
    """Every sample in 11.4-12.4 fell into one bin (11.5-15.4): now the bins span the
    data, shared by both objectives, fine enough that CE and TFSD peak apart."""
    g = np.random.default_rng(2)
    final = {"ce": g.normal(11.7, 0.08, 500), "tfsd": g.normal(12.1, 0.08, 500)}
    fig = _norm_growth(11.4, 12.4, final)
    hists = {t.name: t for t in fig.data if t.xaxis == "x2"}
    assert set(hists) == {"ce", "tfsd"}
    for t in hists.values():
        assert np.count_nonzero(t.y) >= 5  # the distribution has a shape, not one bar
        assert np.sum(t.y) == pytest.approx(1.0)
    peak = {k: t.x[int(np.argmax(t.y))] for k, t in hists.items()}
    assert peak["ce"] == pytest.approx(11.7, abs=0.1) and peak["tfsd"] == pytest.approx(12.1,
                                                                                     abs=0.1)
    step = {k: np.diff(t.x) for k, t in hists.items()}  # one set of bins for both
    assert np.allclose(step["ce"][0], step["tfsd"][0])


def test_a_line_lying_under_another_is_still_seen_and_named():
    same = np.random.default_rng(3).normal(12, 0.1, 300)
    fig = _norm_growth(11.4, 12.4, {"ce": same, "tfsd": same.copy()})
    hists = [t for t in fig.data if t.xaxis == "x2"]
    assert hists[0].line.dash != hists[1].line.dash
    assert hists[0].line.width > hists[1].line.width  # the one below is wider: a border
    notes = [a.text for a in fig.layout.annotations if "coincide" in (a.text or "")]
    assert notes == ["ce and tfsd coincide"]


def test_manifold_grid_shares_ranges_across_steps_unless_asked():
    g = np.random.default_rng(4)
    labels = np.r_[np.repeat([0, 1], 10), [-1] * 5]
    panels = {o: {"steps": [0, 50, 500], "xy": g.standard_normal((3, 25, 2)) *
                  np.array([0.5, 5, 60])[:, None, None], "labels": labels} for o in COLORS}
    fig = F.manifold_grid(panels, ["a", "b"])
    xr = {tuple(fig.layout[f"xaxis{i or ''}"].range) for i in (0, 2, 3, 4, 5, 6)}
    yr = {tuple(fig.layout[f"yaxis{i or ''}"].range) for i in (0, 2, 3, 4, 5, 6)}
    assert len(xr) == 1 and len(yr) == 1  # the step-0 cloud is drawn small
    every = np.concatenate([p["xy"].reshape(-1, 2) for p in panels.values()])
    (x0, x1), = xr
    assert x0 < every[:, 0].min() and every[:, 0].max() < x1
    assert "per-step" not in fig.layout.title.text
    per = F.manifold_grid(panels, ["a", "b"], per_step=True)
    assert per.layout.xaxis.range != per.layout.xaxis3.range
    assert per.layout.xaxis.range == per.layout.xaxis4.range  # still shared by objectives
    assert "per-step ranges" in per.layout.title.text


@pytest.mark.parametrize("names", [["ce", "tfsd"], ["ce"], ["ce", "tfsd", "logitnorm"],
                                   ["ce", "tfsd", "logitnorm", "metric_ce"]])
def test_ood_text_never_overlaps_and_no_cell_is_empty(names):
    """The ROC's x title ran across the TFSD histogram, the y titles touched the next
    panel, and a third of the bottom row was empty."""
    g = np.random.default_rng(5)
    scores = {n: (g.normal(1, 1, 300), g.normal(0, 1, 200)) for n in names}
    fig = F.ood(scores, {n: "0.712 ± 0.013" for n in names}, "msp",
                F.objective_colors(names))
    assert overlaps(fig) == []
    hist_x = [a for k, a in fig.layout.to_plotly_json().items()
              if k.startswith("xaxis") and k != "xaxis" and a.get("visible") is not False]
    assert len(hist_x) == len(names)
    assert max(a["domain"][1] for a in hist_x) == pytest.approx(1.0)  # the row is filled


def test_short_runs_are_markers_on_a_padded_step_axis():
    """A run with one logged step was a lone dot (or nothing) on an axis from 31 to 33."""
    one = [(np.array([32]), np.array([0.2]))]
    fig = F.gradient_split({"ce": one, "tfsd": [(np.array([0, 32]), np.array([0.1, 0.3]))]},
                           COLORS)
    lines = [t for t in fig.data if t.name in COLORS and t.fill is None]
    assert all("markers" in t.mode for t in lines)
    lo, hi = fig.layout.xaxis.range
    assert lo <= 0 and hi > 32 and len(shown_ticks(fig, "xaxis")) >= 3
    alone = F.gradient_split({"ce": one}, COLORS)
    lo, hi = alone.layout.xaxis.range
    assert lo <= 0 < 32 < hi and len(shown_ticks(alone, "xaxis")) >= 3


def test_hovers_name_the_line_in_words_not_store_keys():
    g = np.random.default_rng(6)
    ent = {o: {f"{a}.{b}": _series(0.5, 2, rng=g) for a in ("easy", "hard")
               for b in ("target", "pred")} for o in COLORS}
    fig = F.target_entropy(ent, {}, COLORS)
    hovers = [t.hovertemplate for t in fig.data if t.fill is None and t.name in COLORS]
    assert hovers and all(h for h in hovers)
    assert any("hard samples, prediction H(q)" in h for h in hovers)
    internal = re.compile(r"\b(hard|easy|synonym|single|head)\.[a-z_]+")
    assert not [h for h in hovers if internal.search(h)]
    panel = F.entropy({"hard.pred": np.arange(3)}, {"hard.pred": np.ones(3)})
    assert not internal.search(panel.data[0].name)


def test_labels_name_objectives_then_rate_or_seed_only_when_needed():
    runs = [{"objective": "ce", "lr": 1e-3, "seed": 0, "name": "sweep/ce-lr0.001-s0"},
            {"objective": "ce", "lr": 1e-2, "seed": 0, "name": "sweep/ce-lr0.01-s0"},
            {"objective": "tfsd", "lr": 1e-3, "seed": 0, "name": "sweep/tfsd-lr0.001-s0"}]
    assert F.run_labels(runs) == ["ce lr 0.001", "ce lr 0.01", "tfsd"]
    pair = [{"objective": "ce", "seed": 0, "name": "demo-20261202-163955/ce-s0"},
            {"objective": "ce", "seed": 1, "name": "demo-20261202-163955/ce-s1"}]
    assert F.run_labels(pair) == ["ce seed 0", "ce seed 1"]
    assert F.run_labels([{"objective": "ce", "name": "a/ce"}, {"objective": "tfsd"}]) == \
        ["ce", "tfsd"]
    base = {"objective": "ce", "lr": 1e-3, "out": "runs/a", "seed": 0}
    assert F.group_key(base) == F.group_key({**base, "seed": 3, "out": "runs/b"})
    assert F.group_key(base) != F.group_key({**base, "lr": 1e-2})


def test_table_columns_share_their_decimal_places():
    col = F.table_column([(0.91234, 0.0123, 3), (0.8, 0.0, 2), None, (0.95, 0.0, 1)], 4)
    assert col == ["0.9123 ± 0.0123", "0.8000 ± 0.0000", "–", "0.9500"]
    big = F.table_column([(12.345, 1.2, 2), (0.5, 0.01, 2)], 4)
    assert big == ["12.35 ± 1.20", "0.50 ± 0.01"]


def test_same_objective_groups_keep_its_hue():
    colors = F.group_colors({"ce lr 0.001": "ce", "ce lr 0.01": "ce", "tfsd": "tfsd"})
    assert colors["ce lr 0.001"] == F.OBJECTIVE_COLORS["ce"]
    assert colors["tfsd"] == F.OBJECTIVE_COLORS["tfsd"]
    assert colors["ce lr 0.01"] not in (colors["ce lr 0.001"], colors["tfsd"])


def _every_figure(names):
    from geomviz.figures import lm as LM
    from geomviz.figures.noise import outlier_gradients

    g = np.random.default_rng(7)
    colors = F.objective_colors(names)
    s = {o: _series(1, 3, rng=g) for o in names}
    polar = {o: {"xy": np.c_[g.uniform(8, 32, 50), g.uniform(0, 3, 50)],
                 "labels": np.arange(50) % 3} for o in names}
    ent = {o: {f"{a}.{b}": _series(0.5, 2, rng=g) for a in ("easy", "hard")
               for b in ("target", "pred")} for o in names}
    lm = {o: {f"{w}.{k}": _series(0.5, 2, rng=g) for w in ("synonym", "single")
              for k in ("target", "pred", "truth")} for o in names}
    x = np.linspace(0.1, 2, 8)
    return {
        "norm_growth": F.norm_growth(s, s, s, {o: g.normal(12, 0.2, 200) for o in names},
                                     colors),
        "gradient_split": F.gradient_split({o: _series(0.03, 0.5, rng=g) for o in names},
                                           colors),
        "target_entropy": F.target_entropy(ent, {names[-1]: {"anchor_gap": s[names[-1]]}},
                                           colors),
        "angle_radius": F.angle_radius(polar, s, s, colors),
        "outlier_gradients": outlier_gradients(s, s, s, colors),
        "target_vs_bayes": F.target_vs_bayes({o: {"target": (x, x), "pred": (x, x)}
                                              for o in names}, colors),
        "synonym_entropy": LM.synonym_entropy(lm, colors),
        "tearing": LM.tearing(s, colors)}


@pytest.mark.parametrize("names", [["ce", "tfsd"], ["ce", "tfsd", "logitnorm", "metric_ce"]])
def test_no_text_overlaps_in_any_publication_figure(names):
    for key, fig in _every_figure(names).items():
        assert overlaps(fig) == [], key
        for name, _ in _visible_axes(fig):
            assert len(shown_ticks(fig, name)) >= 3, (key, name)
