"""The compare page on language-model runs: token positions coloured by synonym set and
decoded to text in the hover, the class-vector manifold following the slider, and the token
time panels (truth.kl, synonym/determined entropies with H(true), classes.ratio)."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.store import open_run
from tests.lm_runs import lm_runs

pytest.importorskip("dash")


@pytest.fixture(scope="module")
def app_root(tmp_path_factory):
    from geomviz.dashboard import create_app

    root = lm_runs(tmp_path_factory)
    app = create_app(root)
    from geomviz.dashboard.pages import compare  # registers with the app just created

    with app.server.test_request_context():
        page = compare.layout(a="lm/ce-s0", b="lm/tfsd-s0")
    return app, root, page


def _arr(v) -> list:
    """A plotly array as JSON gives it: a list, or a typed array ``{dtype, bdata}``."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def _post(app, output, values, changed):
    from geomviz.dashboard.drive import callback_body

    r = app.server.test_client().post("/_dash-update-component",
                                      json=callback_body(app, output, values, changed))
    assert r.status_code == 200, r.data[:300]
    return r.get_json()["response"]


def test_token_positions_carry_their_context_and_synonym_set(app_root):
    from geomviz.dashboard.data import manifold_data

    _, root, _ = app_root
    folder = (root / "lm" / "ce-s0").resolve()
    data = manifold_data(root, [folder], "pca")
    run = data["runs"][0]
    with open_run(folder) as r:
        ctx = r.arrays("snapshot.context")[0]
        group = r.arrays("snapshot.group")[0]
        names = r.meta["class_names"]
    np.testing.assert_array_equal(run["static"]["group"], group)
    i = int(np.flatnonzero(run["labels"] >= 0)[0])
    want = " ".join(names[t] for t in ctx[i, -5:] if t >= 0) + f" → {names[run['labels'][i]]}"
    assert run["tokens"][i] == want
    ood = int(np.flatnonzero(run["labels"] < 0)[0])
    assert run["tokens"][ood].endswith("→ ?")


def test_manifold_hover_shows_tokens_and_colours_by_synonym_set(app_root):
    from geomviz.dashboard.drive import layout_values

    app, _, page = app_root
    values = layout_values(page)
    options = [o["value"] for o in values["compare-color.options"]]
    assert {"group", "freq_bucket", "kind"} <= set(options)
    values["compare-color.value"] = "group"
    out = _post(app, "compare-left-graph.figure", values, ["compare-color.value"])
    fig = out["compare-left-graph"]["figure"]
    data = [t for t in fig["data"] if t.get("customdata")]
    assert "tokens %{customdata[2]}" in data[0]["hovertemplate"]
    row = data[0]["customdata"][0]
    assert isinstance(row[2], str) and " → " in row[2] and row[2].split(" → ")[1] == row[1]
    # one trace per synonym set (96 sets, no legend), plus OOD and the selection ring
    names = {t["name"] for t in fig["data"]}
    assert "set 0" in names and "OOD" in names
    assert not any(t.get("showlegend") for t in fig["data"] if t["name"].startswith("set "))


def test_class_vector_manifold_follows_the_slider(app_root):
    from geomviz.dashboard.drive import layout_values

    app, root, page = app_root
    values = layout_values(page)
    section = next(c for c in page.children if getattr(c, "id", None) == "compare-classes")
    assert "compare-left-classes" in str(section)  # drawn for token runs
    steps = values["compare-steps.data"]
    out = _post(app, "compare-left-classes.figure", values, ["compare-runs.data"])
    left, right = out["compare-left-classes"]["figure"], out["compare-right-classes"]["figure"]
    assert left["layout"]["title"]["text"].endswith(f"class vectors · step {steps[-1]}")
    assert left["layout"]["xaxis"]["range"] == right["layout"]["xaxis"]["range"]  # shared
    assert "vector units" in left["layout"]["xaxis"]["title"]["text"]
    with open_run(root / "lm" / "ce-s0") as r:
        n_tokens = len(r.arrays("snapshot.class_ids")[0])
    pts = [t for t in left["data"] if t["name"].startswith("set ")]
    assert sum(len(_arr(t["x"])) for t in pts) == n_tokens
    assert "synonym set" in pts[0]["hovertemplate"]
    x_end = [x for t in pts for x in _arr(t["x"])]
    values["compare-shown.data"] = steps[1]
    out = _post(app, "compare-left-classes.figure", values, ["compare-shown.data"])
    patch = out["compare-left-classes"]["figure"]  # a Patch: x/y operations, no full figure
    ops = {tuple(op["location"]): op["params"]["value"] for op in patch["operations"]}
    moved = [x for loc, v in ops.items() if loc[0] == "data" and loc[-1] == "x" for x in v]
    assert len(moved) == n_tokens and moved != x_end
    assert ops[("layout", "title", "text")].endswith(f"step {steps[1]}")


def test_token_time_panels_and_the_true_entropy_reference(app_root):
    from geomviz.dashboard.drive import layout_values

    app, _, page = app_root
    values = layout_values(page)
    out = _post(app, "compare-panels.children", values, ["compare-options.value"])
    text = str(out["compare-panels"]["children"])
    for key in ("truth_kl", "synonym_entropy", "single_entropy", "tearing"):
        assert f"'panel': '{key}'" in text, key
    from geomviz.dashboard.data import time_series
    from geomviz.dashboard.views import time_panels

    _, root, _ = app_root
    sides = [{"id": s, "label": r, "color": c, "ts": [time_series(root / r)]}
             for s, r, c in (("left", "lm/ce-s0", "#4C78A8"), ("right", "lm/tfsd-s0", "#E45756"))]
    panels = {k: f for k, _, f in time_panels(sides, "overlay", True, 0)}
    syn = panels["synonym_entropy"]
    ref = [t for t in syn.data if t.name == "H(true)"]
    assert len(ref) == 1 and ref[0].line.color == "#888888"
    with open_run(root / "lm" / "ce-s0") as r:
        truth = r.scalars("entropy.synonym.truth", split="test")["value"]
        ratio = r.scalars("classes.ratio", split="test")["value"]
    np.testing.assert_allclose(ref[0].y, truth)
    tear = next(t for t in panels["tearing"].data if t.line.color == "#4C78A8")
    np.testing.assert_allclose(tear.y, ratio)
    assert panels["tearing"].layout.yaxis.title.text == "distance ratio (unitless)"
