"""What a first walk through the dashboard in a browser found, each checked here without
one: OOD histograms on one share-of-samples scale and named by run; crashed, diverged and
live runs named as such; one objective on both sides in two shades of its colour; slider
labels that do not pile up; a key for the dash styles of many-line panels; one-value series
drawn; the loss panel's own-loss title; OOD hover named for the predicted class; the runs
page's first pair and whole warnings; refused paths as 404; status lines that follow a live
run to its end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.helpers import set_meta_raw

pytest.importorskip("dash")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny finished MNIST-1D runs (CE, TFSD), and copies of the TFSD run that read as
    crashed (a stale heartbeat) and as diverged (with the writer's message)."""
    from geomviz.cli import main

    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        assert main(["compare", "--objectives", "ce,tfsd", "--seeds", "0", "--epochs", "1",
                     "--ood-classes", "8,9", "--name", "w", "--runs-dir", str(root),
                     "--snapshots", "3", "--snapshot-size", "100", "--snapshot-ood", "20",
                     "--no-progress"]) == 0
    finally:
        mp.undo()
    for name, meta in (("crashed", {"status": "running", "heartbeat": 0.0}),
                       ("diverged", {"status": "diverged", "message": "loss is nan"})):
        shutil.copytree(root / "w" / "tfsd-s0", root / "w" / name)
        for key, value in meta.items():
            set_meta_raw(root / "w" / name, key, json.dumps(value))
    return root


def _page(root, **query):
    from geomviz.dashboard import create_app

    app = create_app(root)
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        return str(compare.layout(**query))


def test_ood_histograms_share_the_score_and_the_share_of_samples_axes():
    from geomviz import figures as F
    from geomviz.dashboard.pages.compare_extras import share_ood_scales

    g = np.random.default_rng(0)
    peaked = [np.r_[np.full(900, 0.99), g.uniform(0.2, 1, 100)], g.uniform(0.2, 1, 300)]
    spread = [g.uniform(0.1, 0.9, 1000), g.uniform(0.1, 0.9, 300)]
    figs = [F.ood_scores(i, o, "msp") for i, o in (peaked, spread)]
    share_ood_scales(figs)
    x = [tuple(f.layout.xaxis.range) for f in figs]
    y = [tuple(f.layout.yaxis.range) for f in figs]
    assert x[0] == x[1] == pytest.approx((0.1, 1.0), abs=0.01)
    assert y[0] == y[1]
    # the tallest bar (90% of the peaked side's ID scores in the last bin) fits, just
    assert 0.9 <= y[0][1] <= 0.9 * 1.1
    assert figs[0].data[0].xbins.size == figs[1].data[0].xbins.size


def test_a_crashed_or_diverged_run_is_named_as_such_on_the_compare_page(runs):
    from geomviz.store import open_run

    with open_run(runs / "w" / "crashed") as r:
        last = int(r.steps()[-1])
    page = _page(runs, a="w/crashed", b="w/ce-s0")
    assert "Cannot compare" not in page
    assert f"w/crashed crashed at step {last}" in page and "last flush" in page
    page = _page(runs, a="w/ce-s0", b="w/diverged")
    assert f"w/diverged diverged at step {last}" in page and "loss is nan" in page
    page = _page(runs, a="w/ce-s0", b="w/tfsd-s0")
    assert "crashed" not in page and "diverged" not in page


def test_one_objective_on_both_sides_keeps_its_hue_and_borrows_no_other_colour(runs):
    import colorsys

    from geomviz.dashboard import create_app
    from geomviz.figures.theme import OBJECTIVE_COLORS

    app = create_app(runs)  # before the page's import, which registers it with this app
    from geomviz.dashboard.pages.compare import _sides

    with app.server.test_request_context():
        left, right = _sides(str(runs), "w/tfsd-s0", "w/crashed", None, None)
    assert left["color"] == OBJECTIVE_COLORS["tfsd"]
    assert right["color"] != left["color"]
    assert right["color"] not in OBJECTIVE_COLORS.values()

    def hsv(c):
        return colorsys.rgb_to_hsv(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)))

    (h0, _, v0), (h1, _, v1) = hsv(left["color"]), hsv(right["color"])
    assert abs(h0 - h1) < 0.01 and v1 < 0.7 * v0  # the same hue, clearly darker


def test_slider_labels_do_not_pile_up_on_log_spaced_early_snapshots():
    from geomviz.dashboard import create_app

    create_app(".")
    from geomviz.dashboard.pages.compare import _marks

    # the demo's snapshot steps: log-spaced early, then even
    steps = sorted({0, 1, 2, 3, 4, 6, 8, 12, 16, 22, 30, 41, 55, 75, 95, 128, 162, 196, 230,
                    264, 298, 331, 365, 399, 432, 466, 500})
    marks = _marks(steps)
    assert sorted(marks) == steps  # every snapshot is still a stop
    labelled = [s for s in steps if marks[s]]
    assert labelled[0] == 0 and labelled[-1] == 500 and marks[500] == "500"
    assert min(np.diff(labelled)) >= 500 / 12  # never closer than 1/12 of the slider
    assert len(labelled) >= 8
    assert [s for s in _marks([0, 5, 10]) if _marks([0, 5, 10])[s]] == [0, 5, 10]
    assert _marks([7]) == {7: "7"}


def test_panels_with_many_lines_have_a_legend_naming_each_dash_style():
    from geomviz.dashboard import views as V
    from tests.dashboard.test_views import _ts

    sides = [{"id": "left", "label": "ce", "color": "#4C78A8", "ts": [_ts("dot", 1.0)]},
             {"id": "right", "label": "tfsd", "color": "#E45756", "ts": [_ts("euclidean", 1.0)]}]
    seen = set()
    for mode in ("overlay", "side"):
        for key, _, fig in V.time_panels(sides, mode, shared=True, step=10):
            drawn = {t.hovertemplate.split("<br>")[0].split(" · ", 1)[1]: t.line.dash
                     for t in fig.data if t.hovertemplate and " · " in t.hovertemplate
                     and t.x is not None and len(t.x) and t.line.color != "#888888"}
            legend = {t.name: t.line.dash for t in fig.data
                      if t.showlegend and t.legendgroup == "line styles"}
            if key not in V.STYLE_KEY or not drawn:
                continue
            seen.add(key)
            assert len(set(drawn.values())) == len(drawn), key  # one style per line
            assert list(legend.values()) == list(drawn.values()), key  # in the same order
            for (shown, _), name in zip(legend.items(), drawn, strict=True):  # named alike
                assert shown.split()[-1] == V.SHORT.get(name.split(".")[-1],
                                                        name.split()[-1]), key
    assert seen == {"decomp", "entropy", "anchor_gap", "true_logit"}


def test_runs_page_pairs_two_objectives_and_keeps_the_whole_warning(runs, tmp_path):
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import layout_values

    root = tmp_path / "runs"
    for name in ("ce-s0", "ce-s1", "tfsd-s0"):  # sorted: a seed pair comes first
        shutil.copytree(runs / "w" / name.replace("s1", "s0"), root / name)
    set_meta_raw(root / "ce-s1", "seed", "1")
    (root / "zz").mkdir()
    (root / "zz" / "run.sqlite").write_bytes(b"\x00garbage" * 500)
    app = create_app(root)
    from geomviz.dashboard.pages import runs as page

    with app.server.test_request_context():
        tree = page.layout()
    values = layout_values(tree)
    assert (values["runs-left.value"], values["runs-right.value"]) == ("ce-s0", "tfsd-s0")
    cell = [c for c in _cells(tree) if getattr(c, "className", "") == "warning" and c.title]
    assert len(cell) == 1 and len(cell[0].title) > 80
    assert cell[0].children.endswith("…") and cell[0].title.startswith(cell[0].children[:-1])


def _cells(node):
    children = getattr(node, "children", None)
    yield node
    for c in children if isinstance(children, list) else [children]:
        if c is not None and not isinstance(c, str | int | float):
            yield from _cells(c)


def test_each_ood_column_names_its_run_and_evaluation_step(runs):
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import callback_body
    from geomviz.store import open_run

    app = create_app(runs)
    from geomviz.dashboard.pages import compare  # noqa: F401 - registers with this app

    body = callback_body(app, "compare-left-ood.children",
                         {"compare-ood-score.value": "msp",
                          "compare-runs.data": ["w/ce-s0", "w/tfsd-s0"]},
                         ["compare-ood-score.value"])
    r = app.server.test_client().post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.data[:300]
    out = r.get_json()["response"]
    for side, run in (("compare-left-ood", "w/ce-s0"), ("compare-right-ood", "w/tfsd-s0")):
        with open_run(runs / run) as store:
            step = max(store.arrays("eval.confidence.msp.id"))
        assert f"{run} · step {step}" in json.dumps(out[side]["children"], ensure_ascii=False)


def test_a_series_of_one_value_is_drawn_as_a_marker_not_an_empty_panel():
    from geomviz.dashboard import views as V
    from tests.dashboard.test_views import _ts

    ts = _ts("euclidean", 1.0)
    one = (np.array([16]), np.array([1.5]))
    ts["decomp"] = {k: one for k in ts["decomp"]}  # a short run: one probe log so far
    sides = [{"id": "left", "label": "a", "color": "#E45756", "ts": [ts]},
             {"id": "right", "label": "b", "color": "#E45756", "ts": [ts]}]
    for mode in ("overlay", "side"):
        figs = [f for k, _, f in V.time_panels(sides, mode, shared=True, step=16)
                if k == "decomp"]
        points = [t for f in figs for t in f.data if t.x is not None and len(t.x) == 1
                  and t.x[0] is not None]
        assert points and all("markers" in t.mode for t in points), mode
        longer = [t for f in [x for k, _, x in V.time_panels(sides, mode, True, 16)
                              if k == "radial"] for t in f.data if t.x is not None
                  and len(t.x) > 1]
        assert longer and all(t.mode == "lines" for t in longer)


def test_the_loss_panel_says_each_objective_plots_its_own_loss():
    from geomviz.dashboard import views as V
    from tests.dashboard.test_views import _ts

    sides = [{"id": "left", "label": "ce", "color": "#4C78A8", "ts": [_ts("dot", 1.0)]},
             {"id": "right", "label": "tfsd", "color": "#E45756", "ts": [_ts("euclidean", 1.0)]}]
    fig = [f for k, _, f in V.time_panels(sides, "overlay", True, 10) if k == "loss"][0]
    assert "own training loss" in fig.layout.title.text and "KL" in fig.layout.title.text


def test_paths_out_of_the_served_folders_are_404_never_a_file(tmp_path):
    from geomviz.dashboard import create_app

    client = create_app(tmp_path).server.test_client()
    for path in ("/_dash-component-suites/dash/../../../../etc/passwd",
                 "/_dash-component-suites/dash/..%2f..%2f..%2f..%2fetc%2fpasswd",
                 "/assets/../../../../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert b"root:" not in r.data


def test_ood_points_hover_names_the_predicted_class_not_a_true_one():
    from geomviz import figures as F
    from geomviz.dashboard import views as V
    from tests.dashboard.test_views import _run

    run = _run("tfsd", "euclidean", 1.0)  # label -1: the first point is OOD
    for key in ("class", "norm", "correct"):
        fig, _ = V.manifold_figure(run, 1, key, 10, None, None, "pca")
        values, cats, _ = V.color_values(run, 1, key)
        kind = "class" if values is None else ("category" if cats else "color")
        kinds = [k for k, _, _ in F.trace_masks(run["labels"], kind, values, cats)]
        patch = V.manifold_patch(run, 1, key, 10).to_plotly_json()["operations"]
        patched = {op["location"][1]: op["params"]["value"] for op in patch
                   if op["location"][-1] == "hovertemplate"}
        for i, k in enumerate(kinds):
            for tmpl in (fig.data[i].hovertemplate, patched[i]):
                if k == "ood":
                    assert "θ_ŷ (predicted class)" in tmpl and "θ_y" not in tmpl, key
                    assert "ŷ as target" in tmpl
                else:
                    assert "cos θ_y" in tmpl and "ŷ" not in tmpl, key


def test_a_run_that_finishes_loses_its_still_training_line_without_a_reload(runs, tmp_path):
    import time

    from geomviz.dashboard import create_app

    shutil.copytree(runs / "w" / "ce-s0", tmp_path / "w" / "ce-s0")
    shutil.copytree(runs / "w" / "tfsd-s0", tmp_path / "w" / "live")
    set_meta_raw(tmp_path / "w" / "live", "status", json.dumps("running"))
    set_meta_raw(tmp_path / "w" / "live", "heartbeat", json.dumps(time.time()))
    app = create_app(tmp_path)
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        page = compare.layout(a="w/live", b="w/ce-s0")
        assert "w/live is still training" in str(page)
        sides = next(c.data for c in _walk(page) if getattr(c, "id", None) == "compare-sides")
        steps = next(c.data for c in _walk(page) if getattr(c, "id", None) == "compare-steps")
        out = compare._live(1, ["w/live", "w/ce-s0"], steps, sides)
        assert out[4] is False and "still training" in str(out[5])  # polling on
        set_meta_raw(tmp_path / "w" / "live", "status", json.dumps("finished"))
        out = compare._live(2, ["w/live", "w/ce-s0"], steps, sides)
        assert out[4] is True and out[5] == []  # polling off, the line gone


def _walk(component):
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            yield from _walk(child)
