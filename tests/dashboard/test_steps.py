"""Issue 24 defect 9: a pair whose snapshot steps differ (a 140-step run beside a 500-step
one). The slider stopped at the shorter run's step 140; now each side shows its own step,
matched by fraction of training, or by step when both runs have the same steps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geomviz.dashboard.steps import align_steps
from tests.helpers import set_meta_raw


def _nearest(steps, span, fraction):
    """Brute force: the first snapshot whose fraction of training is nearest."""
    best = None
    for i, s in enumerate(steps):
        d = abs(s / span - fraction)
        if best is None or d < best[0] - 1e-15:
            best = (d, i)
    return best[1]


def test_same_steps_map_by_step():
    s = np.array([0, 5, 10, 40])
    slider, pos, how = align_steps([s, s.copy()], [40, 40])
    assert how == "step" and slider == [0, 5, 10, 40] and pos == [[0, 1, 2, 3]] * 2


@pytest.mark.parametrize("seed", range(5))
def test_different_steps_map_by_fraction_of_training(seed):
    g = np.random.default_rng(seed)
    a = np.unique(np.r_[0, g.integers(1, 140, 6), 140])
    b = np.unique(np.r_[0, g.integers(1, 500, 20), 500])
    slider, pos, how = align_steps([a, b], [140, 500])
    assert how == "fraction" and slider == b.tolist()  # the run with more snapshots
    assert pos[1] == list(range(len(b)))
    assert pos[0] == [_nearest(a, 140, t / 500) for t in b]
    assert a[pos[0][-1]] == 140 and a[pos[0][0]] == 0  # ends meet, starts meet
    assert pos[0] == sorted(pos[0])  # never backwards


def test_a_run_stopped_early_stays_on_its_last_snapshot():
    a, b = np.array([0, 50, 100, 140]), np.array([0, 100, 200, 300, 400, 500])
    slider, pos, how = align_steps([a, b], [500, 500])  # both planned 500 steps
    assert how == "fraction" and slider == b.tolist()
    assert [int(a[i]) for i in pos[0]] == [0, 100, 140, 140, 140, 140]  # by step, then stays


def _make_run(folder, seed: int, steps: list[int], total: int, vectors: bool = False) -> None:
    """A run with snapshots at ``steps`` (``vectors``: a token run's class vectors too, 6
    tokens 4 wide, at the same steps)."""
    from geomviz.store import RunWriter

    g = np.random.default_rng(seed)
    w = RunWriter(folder, {"objective": "ce" if seed == 0 else "tfsd",
                           "data_info": {"freq_bucket": [0, 1, 1, 2, 2, 2]}})
    w.array(0, "snapshot.labels", g.integers(0, 3, 40))
    if vectors:
        w.array(0, "snapshot.class_ids", np.arange(6))
    for t in steps:
        w.array(t, "snapshot.features", g.standard_normal((40, 6)).astype(np.float16))
        if vectors:
            w.array(t, "snapshot.class_vectors", g.standard_normal((6, 4)).astype(np.float16))
        w.scalars(t, {"loss": 1.0})
        w.flush()
    w.close()
    set_meta_raw(folder, "total_steps", json.dumps(total))


def test_the_page_gives_each_side_its_own_step(tmp_path):
    pytest.importorskip("dash")
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import callback_body, layout_values

    short, long = [0, 20, 40, 70, 140], list(range(0, 501, 50))
    _make_run(tmp_path / "short", 0, short, 140)
    _make_run(tmp_path / "long", 1, long, 500)
    app = create_app(tmp_path)
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        page = compare.layout(a="short", b="long")
    values = layout_values(page)
    assert values["compare-steps.data"] == long  # the slider goes on to 500
    assert "each side shows its own step" in str(page)
    client = app.server.test_client()
    r = client.post("/_dash-update-component",
                    json=callback_body(app, "compare-left-graph.figure", values, []))
    out = r.get_json()["response"]
    assert out["compare-left-graph"]["figure"]["layout"]["title"]["text"].endswith("step 140")
    assert out["compare-right-graph"]["figure"]["layout"]["title"]["text"].endswith("step 500")
    moved = {**values, "compare-shown.data": 250}  # half way: step 70 of the short run
    r = client.post("/_dash-update-component", json=callback_body(
        app, "compare-left-graph.figure", moved, ["compare-shown.data"]))
    out = r.get_json()["response"]
    titles = [next(op["params"]["value"] for op in out[f"compare-{side}-graph"]["figure"][
        "operations"] if op["location"] == ["layout", "title", "text"])
        for side in ("left", "right")]
    assert titles[0].endswith("step 70") and titles[1].endswith("step 250")


def _panel_figures(children) -> dict[tuple[str, str], dict]:
    """``{(panel, side): figure}`` of the time panels' graphs in a response's children."""
    out = {}

    def walk(n):
        if isinstance(n, list):
            for c in n:
                walk(c)
        elif isinstance(n, dict):
            props = n.get("props", {})
            cid = props.get("id")
            if isinstance(cid, dict) and cid.get("type") == "compare-panel":
                out[(cid["panel"], cid["side"])] = props["figure"]
            walk(props.get("children"))
    walk(children)
    return out


@pytest.mark.parametrize("overlay", [True, False])
def test_the_time_panels_mark_each_sides_own_step(tmp_path, overlay):
    """The time panels' step marker on a mismatched pair: at each side's own step (140 and
    500 at the end; 70 and 250 half way), not at the slider's step on both."""
    pytest.importorskip("dash")
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import callback_body, layout_values

    _make_run(tmp_path / "short", 0, [0, 20, 40, 70, 140], 140)
    _make_run(tmp_path / "long", 1, list(range(0, 501, 50)), 500)
    app = create_app(tmp_path)
    from geomviz.dashboard.pages import compare  # after the app: it registers the page
    with app.server.test_request_context():
        page = compare.layout(a="short", b="long")
    values = layout_values(page)
    values["compare-options.value"] = ["shared", "overlay"] if overlay else ["shared"]
    values["compare-below.data"] = 1
    client = app.server.test_client()
    r = client.post("/_dash-update-component", json=callback_body(
        app, "compare-panels.children", values, ["compare-below.data"]))
    figs = _panel_figures(r.get_json()["response"]["compare-panels"]["children"])
    colors = [s["color"] for s in values["compare-sides.data"]]
    assert figs
    for (_, side), fig in figs.items():
        xs = [sh["x0"] for sh in fig["layout"]["shapes"]]
        if side == "AB":  # one marker per side, in its colour
            assert xs[:2] == [140, 500]
            assert [sh["line"]["color"] for sh in fig["layout"]["shapes"][:2]] == colors
        else:
            assert xs[0] == {"left": 140, "right": 500}[side]
    # what the browser moves the markers with: each side's own step at each slider step
    marks = values["compare-marks.data"]
    assert marks["mapping"] == "fraction" and marks["steps"] == values["compare-steps.data"]
    half = marks["steps"].index(250)
    assert [o[half] for o in marks["own"]] == [70, 250]
    assert [o[-1] for o in marks["own"]] == [140, 500]


def test_the_class_vectors_show_each_sides_own_step(tmp_path):
    """A mismatched token pair: the class-vector view shows each side's own step (it stuck
    at the runs' only common step, 0, for both)."""
    pytest.importorskip("dash")
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import callback_body, layout_values

    short, long = [0, 20, 40, 70, 140], list(range(0, 501, 50))
    _make_run(tmp_path / "short", 0, short, 140, vectors=True)
    _make_run(tmp_path / "long", 1, long, 500, vectors=True)
    app = create_app(tmp_path)
    from geomviz.dashboard.pages import compare  # after the app: it registers the page

    with app.server.test_request_context():
        page = compare.layout(a="short", b="long")
    assert "compare-left-classes" in str(page)
    values = layout_values(page)
    client = app.server.test_client()
    r = client.post("/_dash-update-component", json=callback_body(
        app, "compare-left-classes.figure", values, ["compare-runs.data"]))
    out = r.get_json()["response"]
    titles = [out[f"compare-{s}-classes"]["figure"]["layout"]["title"]["text"]
              for s in ("left", "right")]
    assert titles[0].endswith("step 140") and titles[1].endswith("step 500")
    r = client.post("/_dash-update-component", json=callback_body(
        app, "compare-left-classes.figure", {**values, "compare-shown.data": 250},
        ["compare-shown.data"]))
    out = r.get_json()["response"]
    titles = [next(op["params"]["value"] for op in out[f"compare-{s}-classes"]["figure"][
        "operations"] if op["location"] == ["layout", "title", "text"]) for s in ("left", "right")]
    assert titles[0].endswith("step 70") and titles[1].endswith("step 250")
