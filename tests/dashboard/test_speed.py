"""Issue 24 defect 8, the page's speed by construction: a page opened again reads no store
and builds no figure (summaries and figures are kept per app, keyed by the stores' state),
a store that changes is read again, and the fast aligned view's background job waits for
the page's first draw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import set_meta_raw

pytest.importorskip("dash")


def _make_run(folder, seed: int, steps: int = 3, points: int = 60, dim: int = 8) -> None:
    from geomviz.store import RunWriter

    g = np.random.default_rng(seed)
    w = RunWriter(folder, {"objective": "ce" if seed == 0 else "tfsd"})
    labels = g.integers(0, 4, points)
    w.array(0, "snapshot.labels", labels)
    for t in range(steps):
        f = g.standard_normal((points, dim)).astype(np.float16)
        w.array(10 * t, "snapshot.features", f)
        w.array(10 * t, "snapshot.norm", np.linalg.norm(f.astype(np.float32), axis=1))
        w.scalars(10 * t, {"loss": 1.0 / (1 + t), "acc": t / steps})
        w.flush()
    w.close()


@pytest.fixture()
def app_root(tmp_path):
    from geomviz.dashboard import create_app

    for seed, name in enumerate(("ce", "tfsd")):
        _make_run(tmp_path / name, seed)
    return create_app(tmp_path), tmp_path


def _open(app) -> dict:
    """The compare page as the browser opens it: layout, then every initial callback."""
    from geomviz.dashboard.drive import callback_body, layout_values
    from geomviz.dashboard.pages import compare

    client = app.server.test_client()
    with app.server.test_request_context():
        values = layout_values(compare.layout(a="ce", b="tfsd"))
    out = {}
    for output in ("compare-left-graph.figure", "compare-panels.children",
                   "compare-left-ood.children"):
        r = client.post("/_dash-update-component", json=callback_body(app, output, values, []))
        assert r.status_code == 200, r.data[:300]
        out[output] = json.loads(r.data)
    return values, out


def _counting(monkeypatch):
    """Count store opens and plotly figures built from here on."""
    import plotly.graph_objects as go

    from geomviz.store import reader

    counts = {"opens": 0, "figures": 0}
    run_init, fig_init = reader.Run.__init__, go.Figure.__init__

    def run(self, *a, **k):
        counts["opens"] += 1
        run_init(self, *a, **k)

    def fig(self, *a, **k):
        counts["figures"] += 1
        fig_init(self, *a, **k)

    monkeypatch.setattr(reader.Run, "__init__", run)
    monkeypatch.setattr(go.Figure, "__init__", fig)
    return counts


def test_a_page_opened_again_reads_no_store_and_builds_no_figure(app_root, monkeypatch):
    app, _ = app_root
    values, first = _open(app)
    counts = _counting(monkeypatch)
    again_values, again = _open(app)
    assert counts == {"opens": 0, "figures": 0}
    assert again == first and again_values["compare-steps.data"] == [0, 10, 20]


def test_a_page_opens_each_store_once_on_first_load(app_root, monkeypatch):
    """The layout and the first callbacks share one summary of each store (metadata,
    status, steps, time series) instead of opening it for each (8 opens a run before):
    per run, the summary, the manifold's metadata and token arrays, the OOD scores, and
    the projection module's snapshot steps and features (the PCA, computed here)."""
    app, _ = app_root
    counts = _counting(monkeypatch)
    _open(app)
    assert counts["opens"] <= 2 * 6, counts


def test_a_store_that_changes_is_read_again(app_root):
    app, root = app_root
    values, _ = _open(app)
    assert "diverged" not in str(values)
    set_meta_raw(root / "tfsd", "status", json.dumps("diverged"))
    set_meta_raw(root / "tfsd", "message", json.dumps("loss is nan"))
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        page = str(compare.layout(a="ce", b="tfsd"))
    assert "tfsd diverged at step 20" in page and "loss is nan" in page


def test_the_fast_aligned_view_starts_after_the_first_draw(app_root, monkeypatch):
    """Its worker's start and numba's compile took a core from the page's first draw on a
    2-core machine: the layout starts nothing, a one-shot timer starts it later."""
    pytest.importorskip("umap")

    started = []
    monkeypatch.setattr("geomviz.dashboard.jobs.start_job", lambda *a, **k: started.append(a))
    monkeypatch.setattr("geomviz.dashboard.pages.compare_extras.start_job",
                        lambda *a, **k: started.append(a) or {"state": "running"})
    app, _ = app_root
    values, _ = _open(app)
    assert started == []
    assert values["compare-prefetch.max_intervals"] == 1
    assert values["compare-prefetch.interval"] >= 2000
    from geomviz.dashboard.drive import callback_body

    r = app.server.test_client().post("/_dash-update-component", json=callback_body(
        app, "compare-prefetch.disabled", {**values, "compare-prefetch.n_intervals": 1},
        ["compare-prefetch.n_intervals"]))
    assert r.status_code == 200 and len(started) == 1


def test_panels_below_the_fold_wait_for_the_manifolds(app_root):
    """The browser fires every initial callback at once and the time panels (a dozen
    figures) and OOD histograms held up the manifolds' first draw: they are now asked for
    only when the manifolds' first full draw sets ``compare-below`` (a slider move does not
    set it again)."""
    app, _ = app_root
    deps = app.server.test_client().get("/_dash-dependencies").get_json()

    def dep(output: str) -> dict:
        return next(d for d in deps if output in d["output"])

    for output in ("compare-panels.children", "compare-left-ood.children"):
        d = dep(output)
        assert d["prevent_initial_call"] is True, output
        assert {"id": "compare-below", "property": "data"} in d["inputs"], output
    assert "compare-below.data" in dep("compare-left-graph.figure")["output"]
    from geomviz.dashboard.drive import callback_body

    values, first = _open(app)
    assert first["compare-left-graph.figure"]["response"]["compare-below"]["data"] == 1
    client = app.server.test_client()
    moved = {**values, "compare-below.data": 1,
             "compare-shown.data": values["compare-steps.data"][0]}
    r = client.post("/_dash-update-component", json=callback_body(
        app, "compare-left-graph.figure", moved, ["compare-shown.data"])).get_json()
    assert "compare-below" not in r["response"]
    r = client.post("/_dash-update-component", json=callback_body(
        app, "compare-left-graph.figure", {**values, "compare-below.data": 1,
                                           "compare-color.value": "norm"},
        ["compare-color.value"])).get_json()
    assert "compare-below" not in r["response"]  # the panels are not asked for again
