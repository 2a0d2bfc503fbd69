"""The compare page's views: one colour range and one axis range for both sides, entropy
from 0, quantities a run lacks refused with the reason, hover rows, overlaid time panels."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.dashboard import views as V


def _run(name, metric, scale, T=3, P=20, seed=0):
    g = np.random.default_rng(seed)
    return {"name": name, "metric": metric, "labels": np.arange(P) % 4 - (np.arange(P) == 0),
            "class_names": ["zero", "one", "two", "three"],
            "xy": g.standard_normal((T, P, 2)) * scale,
            "extra": {"norm": np.abs(g.standard_normal((T, P))) * scale,
                      "cos_true": g.uniform(-1, 1, (T, P)),
                      "entropy_target": np.zeros((T, P)),
                      "entropy_pred": g.uniform(0, 2, (T, P)),
                      "true": g.standard_normal((T, P)) * scale,
                      "margin": g.standard_normal((T, P))}}


def test_shared_colour_and_axis_ranges_cover_both_runs():
    a, b = _run("ce", "dot", 30.0), _run("tfsd", "euclidean", 1.0, seed=1)
    lo, hi = V.color_range([a, b], "norm")
    assert lo == 0.0 and hi == pytest.approx(max(a["extra"]["norm"].max(),
                                                 b["extra"]["norm"].max()))
    ranges = V.manifold_ranges([a, b], shared=True)
    assert ranges[0] == ranges[1]
    both = np.concatenate([a["xy"].reshape(-1, 2), b["xy"].reshape(-1, 2)])
    assert ranges[0][0][0] < both[:, 0].min() and ranges[0][0][1] > both[:, 0].max()
    own = V.manifold_ranges([a, b], shared=False)
    assert own[0] != own[1]
    fit = V.manifold_ranges([a, b], shared=True, idx=0)
    assert fit[0][0][1] < ranges[0][0][1] + 1e-9


def test_entropy_colour_starts_at_zero_even_when_constant():
    a = _run("ce", "dot", 1.0)
    assert V.color_range([a], "entropy_target")[0] == 0.0
    assert V.color_range([a], "entropy_target")[1] > 0.0
    fig, _ = V.manifold_figure(a, 1, "entropy_target", 10, None, (0.0, 2.0), "pca")
    assert fig.data[0].name == "OOD"  # drawn first, under the rest
    assert fig.data[1].marker.cmin == 0.0 and fig.data[1].marker.cmax == 2.0


def test_anchor_gap_and_true_logit_are_refused_with_the_reason():
    ce, tfsd = _run("ce", "dot", 1.0), _run("tfsd", "euclidean", 1.0)
    values, _, reason = V.color_values(ce, 0, "anchor_gap")
    assert values is None and "linear head" in reason and "Euclidean" in reason
    values, _, reason = V.color_values(tfsd, 0, "anchor_gap")
    assert reason is None and np.array_equal(values, tfsd["extra"]["true"][0])
    assert V.color_values(tfsd, 0, "true_logit")[2] is not None


def test_hover_names_class_step_and_rounded_values():
    a = _run("ce", "dot", 1.0)
    fig, _ = V.manifold_figure(a, 2, "class", 700, None, None, "polar")
    tmpl = fig.data[1].hovertemplate  # data[0]: the OOD points, drawn first
    assert "step 700" in tmpl and "‖x‖" in tmpl and "H(p) nats" in tmpl and "cos θ_y" in tmpl
    row = fig.data[1].customdata[0]
    assert row[1] == "zero" and row[2] == round(float(a["extra"]["norm"][2, row[0]]), 4)
    assert fig.layout.xaxis.title.text.startswith("radius ‖x‖")
    a["extra"]["entropy_target"][:] = -0.0  # a one-hot target: H(p) is 0, never "-0"
    fig0, _ = V.manifold_figure(a, 2, "class", 700, None, None, "polar")
    assert all(str(row[4]) == "0.0" for row in fig0.data[1].customdata)
    ood = [t for t in fig.data if t.name == "OOD"][0]
    assert ood.customdata[0][1] == "OOD"


def test_slider_patch_moves_points_and_hover():
    a = _run("ce", "dot", 1.0)
    p = V.manifold_patch(a, 1, "norm", 40, ranges=((0, 1), (0, 2))).to_plotly_json()
    ops = {tuple(o["location"]): o["params"]["value"] for o in p["operations"]}
    assert ("data", 1, "marker", "color") in ops and ops[("layout", "xaxis", "range")] == [0, 1]
    assert ("data", 0, "marker", "color") not in ops  # the OOD crosses keep their colour
    assert ops[("layout", "title", "text")].endswith("step 40")
    assert "step 40" in ops[("data", 1, "hovertemplate")]


def _ts(metric, scale):
    s = np.array([0, 10, 20])
    series = (s, np.array([1.0, 2.0, 3.0]) * scale)
    return {"loss": series, "acc": (s, np.array([0.1, 0.5, 0.9])), "radial_fraction": series,
            "p50": series, "p95": series, "norm_hist": None, "metric": metric,
            "decomp": {k: series for k in ("radial", "angular", "weight", "bias", "total")},
            "entropy": {f"{g}.{k}": series for g in ("easy", "hard")
                        for k in ("target", "pred")},
            "margins": {f"{n} {q}": series for n in ("a", "b") for q in ("p5", "p50", "p95")}}


def test_time_panels_share_ranges_and_split_gap_from_logit():
    sides = [{"id": "left", "label": "ce", "color": "#4C78A8", "ts": [_ts("dot", 10.0)]},
             {"id": "right", "label": "tfsd", "color": "#E45756",
              "ts": [_ts("euclidean", 1.0), _ts("euclidean", 2.0)]}]
    side = V.time_panels(sides, "side", shared=True, step=10)
    by = {}
    for key, sid, fig in side:
        by.setdefault(key, {})[sid] = fig
    assert set(by) == {"norm", "radial", "decomp", "entropy", "anchor_gap", "true_logit", "loss"}
    for key, pair in by.items():
        if key in ("anchor_gap", "true_logit"):
            continue  # one side lacks it: a message panel (below)
        assert pair["left"].layout.yaxis.range == pair["right"].layout.yaxis.range, key
        assert pair["left"].layout.xaxis.range == pair["right"].layout.xaxis.range, key
        for f in pair.values():
            assert f.layout.xaxis.title.text and f.layout.yaxis.title.text
    assert by["radial"]["left"].layout.yaxis.range[1] >= 30.0  # covers CE's 10x values
    assert "true-logit panel" in by["anchor_gap"]["left"].layout.annotations[0].text
    band = [t for t in by["radial"]["right"].data if t.fill == "toself"]
    assert len(band) == 1  # two seeds: a min-max band under the mean
    mean = [t for t in by["radial"]["right"].data if t.fill != "toself" and t.x is not None
            and len(t.x) == 3][0]
    assert list(mean.y) == pytest.approx([1.5, 3.0, 4.5])
    over = V.time_panels(sides, "overlay", shared=True, step=10)
    assert {sid for _, sid, _ in over} == {"AB"}
    radial = [f for k, _, f in over if k == "radial"][0]
    colours = {t.line.color for t in radial.data if t.showlegend}
    assert colours == {"#4C78A8", "#E45756"}
    assert [f for k, _, f in over if k == "anchor_gap"][0].layout.annotations


def test_slider_values_land_on_the_nearest_snapshot_and_keys_step_through_them():
    steps = [0, 5, 20, 50]
    assert V.nearest_step(20, steps) == 20 and V.nearest_step(49, steps) == 50
    assert V.nearest_step(35, steps) == 20  # a tie: the earlier
    assert V.nearest_step(-3, steps) == 0 and V.nearest_step(99, steps) == 50
    assert V.next_step(50, -1, steps) == 20 and V.next_step(20, 1, steps) == 50
    assert V.next_step(21, -1, steps) == 20 and V.next_step(21, 1, steps) == 50  # off a step
    assert V.next_step(0, -1, steps) == 0 and V.next_step(50, 1, steps) == 50  # the ends


def _ranged(metric, lo, hi, steps=(0, 10, 20)):
    """A run's series with values from ``lo`` to ``hi`` (one value when equal)."""
    s = np.asarray(steps)
    v = np.linspace(lo, hi, len(s))
    t = _ts(metric, 1.0)
    for k in ("loss", "radial_fraction", "p50", "p95"):
        t[k] = (s, v.copy())
    t["acc"] = (s, np.full(len(s), 0.5))
    t["decomp"] = {k: (s, v.copy()) for k in t["decomp"]}
    t["entropy"] = {k: (s, v.copy()) for k in t["entropy"]}
    t["margins"] = {k: (s, v * 10.0) for k in t["margins"]}
    return t


@pytest.mark.parametrize("lo,hi,steps", [(11.4, 12.4, (0, 10, 20)),  # an LM's feature norms
                                         (0.95, 1.05, (0, 10, 20)),  # within ±5%
                                         (1e-3, 5e2, (0, 10, 20)),  # wide
                                         (31.0, 31.0, (32,))])  # one value, one step
def test_paired_time_panels_have_three_labelled_and_equal_ticks_at_any_range(lo, hi, steps):
    """Issue 24, defects 1 and 3: every axis of a pair has >= 3 labelled ticks inside its
    range, and both sides of a pair have the same ticks (one range, one scale)."""
    sides = [{"id": "left", "label": "ce", "color": "#4C78A8",
              "ts": [_ranged("euclidean", lo, hi, steps)]},
             {"id": "right", "label": "tfsd", "color": "#E45756",
              "ts": [_ranged("euclidean", lo * 1.01, hi * 0.99, steps)]}]
    by: dict = {}
    for key, sid, fig in V.time_panels(sides, "side", shared=True, step=steps[-1]):
        by.setdefault(key, {})[sid] = fig
    for key, pair in by.items():
        for ax in ("xaxis", "yaxis"):
            ticks = []
            for fig in pair.values():
                a = fig.layout[ax]
                rng = np.array(a.range, dtype=float)
                if a.type == "log":
                    rng = 10.0 ** rng
                vals = np.asarray(a.tickvals, dtype=float)
                inside = vals[(vals >= rng.min() * (1 - 1e-9)) & (vals <= rng.max() * (1 + 1e-9))]
                assert len(inside) >= 3 and all(a.ticktext), (key, ax, a.range, a.tickvals)
                ticks.append((tuple(a.tickvals), tuple(a.ticktext), tuple(a.range)))
            assert ticks[0] == ticks[1], (key, ax)


def test_overlay_off_titles_fit_and_a_lacking_side_is_one_line_without_axes():
    """Issue 24, defect 4: side-by-side titles are wrapped to fit half a 1280 px screen
    (they were cut: "…accuracy (right, dotte"), and a quantity a side's head lacks is a
    one-line message with no axes (not an empty plot with jumbled log labels)."""
    sides = [{"id": "left", "label": "demo-20261202-163955/ce-s0", "color": "#4C78A8",
              "ts": [_ts("dot", 10.0)]},
             {"id": "right", "label": "demo-20261202-163955/tfsd-s0", "color": "#E45756",
              "ts": [_ts("euclidean", 1.0)]}]
    panels = V.time_panels(sides, "side", shared=True, step=10)
    for key, _sid, fig in panels:
        lines = fig.layout.title.text.split("<br>")
        assert all(len(line) <= V.TITLE_CHARS for line in lines), (key, lines)
        assert fig.layout.margin.t >= 14 + 18 * len(lines)
    empty = {(k, s): f for k, s, f in panels if not f.data}
    assert set(empty) == {("anchor_gap", "left"), ("true_logit", "right")}
    for fig in empty.values():
        assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
        (note,) = fig.layout.annotations
        assert "<br>" not in note.text and len(note.text) < 100
        assert len(fig.layout.shapes) == 1  # the slider's marker patch still applies


def test_entropy_hovers_name_samples_and_quantities_in_words():
    """Issue 24, defect 10: the hover showed internal names ("hard.pred")."""
    sides = [{"id": "left", "label": "ce", "color": "#4C78A8", "ts": [_ts("dot", 1.0)]},
             {"id": "right", "label": "tfsd", "color": "#E45756", "ts": [_ts("dot", 2.0)]}]
    for mode in ("overlay", "side"):
        for key, _, fig in V.time_panels(sides, mode, shared=True, step=10):
            if key != "entropy":
                continue
            names = " ".join(str(t.name) for t in fig.data)
            assert "hard.pred" not in names and "easy.target" not in names
            assert "hard samples, prediction H(q)" in names
