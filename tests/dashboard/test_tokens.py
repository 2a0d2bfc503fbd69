"""The compare page on language-model runs: token positions coloured by synonym set and
decoded to text in the hover, the class-vector manifold following the slider, and the token
time panels (truth.kl, synonym/determined entropies with H(true), classes.ratio)."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.dashboard import views as V
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
    data = [t for t in fig["data"] if t.get("customdata") and t["name"] != "OOD"]
    assert "tokens %{text}" in data[0]["hovertemplate"]
    row, text = data[0]["customdata"][0], data[0]["text"][0]
    assert " → " in text and text.split(" → ")[1] == row[1]  # the target is the class
    # a slider move patches x/y and the numbers, never the (unchanging) token text
    values["compare-shown.data"] = values["compare-steps.data"][1]
    patch = _post(app, "compare-left-graph.figure", values, ["compare-shown.data"])
    ops = patch["compare-left-graph"]["figure"]["operations"]
    assert not any(op["location"][0] == "data" and op["location"][-1] == "text" for op in ops)
    assert any(op["location"][-1] == "hovertemplate" and "tokens %{text}" in
               op["params"]["value"] for op in ops)
    # 96 synonym sets: OOD first (drawn under the rest), then one trace with a colour of its
    # own per set (no legend; a slider patch stays small), then the selection ring
    assert [t["name"] for t in fig["data"]] == ["OOD", V.COLORINGS["group"][0], "selected"]
    sets = fig["data"][1]
    with open_run(app_root[1] / "lm" / "ce-s0") as r:
        group, labels = r.arrays("snapshot.group")[0], r.arrays("snapshot.labels")[0]
    # issue 24 defect 10: set 13 was drawn in set 3's colour (ten colours repeating)
    assert _arr(sets["marker"]["color"]) == group[labels >= 0].tolist()
    assert sets["marker"]["cmax"] == 96 - 0.5 and sets["marker"]["colorscale"]
    assert sets["showlegend"] is False


def test_one_synonym_set_is_picked_and_drawn_on_top(app_root):
    """Issue 24 defect 10: 96 sets cannot be told apart by colour; the picker lists each
    set with its tokens, and the one picked is its own trace, in the legend, the rest grey
    (on both manifolds and on the class vectors), through slider moves too."""
    from geomviz.dashboard.drive import layout_values

    app, root, page = app_root
    values = layout_values(page)
    out = _post(app, "compare-focus.options", {**values, "compare-color.value": "group"},
                ["compare-color.value"])["compare-focus"]
    assert out["style"]["display"] == "block" and out["value"] is None
    with open_run(root / "lm" / "ce-s0") as r:
        group, labels = r.arrays("snapshot.group")[0], r.arrays("snapshot.labels")[0]
        names = r.meta["class_names"]
    g = int(np.bincount(group[labels >= 0]).argmax())  # the set with the most positions
    entry = next(o for o in out["options"] if o["value"] == g)
    members = sorted({names[t] for t in labels[(group == g) & (labels >= 0)]})
    assert entry["label"].startswith(f"set {g}: ") and members[0] in entry["label"]
    picked = {**values, "compare-color.value": "group", "compare-focus.value": g}
    fig = _post(app, "compare-left-graph.figure", picked,
                ["compare-focus.value"])["compare-left-graph"]["figure"]
    by_name = {t["name"]: t for t in fig["data"]}
    focus = by_name[f"set {g}"]
    assert focus["showlegend"] is True
    chosen = [row[0] for row in focus["customdata"]]
    assert sorted(chosen) == np.flatnonzero((group == g) & (labels >= 0)).tolist()
    rest = by_name[V.COLORINGS["group"][0]]
    assert "rgba(160,160,160" in rest["marker"]["color"] and len(_arr(rest["x"])) == \
        int(((group != g) & (labels >= 0)).sum())
    cv = _post(app, "compare-left-classes.figure", picked,
               ["compare-focus.value"])["compare-left-classes"]["figure"]
    assert f"set {g}" in [t["name"] for t in cv["data"]]
    moved = _post(app, "compare-left-graph.figure",
                  {**picked, "compare-shown.data": values["compare-steps.data"][0]},
                  ["compare-shown.data"])["compare-left-graph"]["figure"]
    ops = {tuple(op["location"]): op["params"]["value"] for op in moved["operations"]}
    assert len(ops[("data", 2, "x")]) == len(chosen)  # OOD, the rest, the set, the ring
    # tokens when coloured by class (256 of them); nothing to pick for MNIST-like colourings
    out = _post(app, "compare-focus.options", {**values, "compare-color.value": "class"},
                ["compare-color.value"])["compare-focus"]
    assert out["options"][0]["label"].startswith("token ")
    out = _post(app, "compare-focus.options", {**values, "compare-color.value": "norm"},
                ["compare-color.value"])["compare-focus"]
    assert out["options"] == [] and out["style"]["display"] == "none"


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
    pts = [t for t in left["data"] if t["name"] == V.COLORINGS["group"][0]]
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


def _token_store(folder, vectors: dict[int, np.ndarray], info: dict):
    from geomviz.store import RunWriter

    w = RunWriter(folder, {"objective": "ce", "kind": "tokens", "data_info": info,
                           "class_names": [f"t{i}" for i in range(8)]})
    w.array(0, "snapshot.class_ids", np.arange(6))
    for step, v in vectors.items():
        w.array(step, "snapshot.class_vectors", v.astype(np.float16))
    w.close("finished")


def test_class_vectors_without_synonym_sets_are_coloured_by_frequency(tmp_path):
    """A text run (no synonym sets): the class vectors are coloured by frequency bucket; the
    joint projection is computed once, cached on disk, and matches float64 PCA by hand."""
    from geomviz.dashboard.data import class_vector_data
    from geomviz.dashboard.views import manifold_figure

    g = np.random.default_rng(0)
    vecs = {s: g.standard_normal((6, 4)) * (1 + s) for s in (0, 5)}
    _token_store(tmp_path / "a", vecs, {"freq_bucket": [0, 1, 1, 2, 2, 2, 1, 0]})
    _token_store(tmp_path / "b", {s: v[::-1] * 2 for s, v in vecs.items()},
                 {"freq_bucket": [0, 1, 1, 2, 2, 2, 1, 0]})
    data = class_vector_data(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert [r["steps"] for r in data["runs"]] == [[0, 5], [0, 5]]
    run = data["runs"][0]
    assert run["static"] == {"freq_bucket": run["static"]["freq_bucket"]} and not run["hover"]
    np.testing.assert_array_equal(run["static"]["freq_bucket"], [0, 1, 1, 2, 2, 2])
    fig, reason = manifold_figure(run, 1, "freq_bucket", 5, None, None, "pca",
                                  axis_titles=("PC1", "PC2"))
    assert reason is None and [t.name for t in fig.data][:3] == ["top 10%", "middle 40%",
                                                                  "rarest 50%"]
    # by hand: float64 PCA of every vector of both runs and steps; distances are basis-free
    stack = np.concatenate([np.stack([vecs[s].astype(np.float16) for s in (0, 5)]),
                            np.stack([(v[::-1] * 2).astype(np.float16)
                                      for v in vecs.values()])]).astype(np.float64)
    flat = stack.reshape(-1, 4)
    c = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    ref = (stack[1] - flat.mean(0)) @ vt[:2].T
    got = run["xy"][1]
    dist = lambda a: np.linalg.norm(a[:, None] - a[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(dist(got), dist(ref), rtol=1e-4, atol=1e-5)
    cached = list((tmp_path / ".projections").glob("class_vectors-*.npz"))
    assert len(cached) == 1
    again = class_vector_data(tmp_path, [tmp_path / "a", tmp_path / "b"])
    np.testing.assert_array_equal(again["runs"][1]["xy"], data["runs"][1]["xy"])
    from geomviz.store import RunWriter

    RunWriter(tmp_path / "mlp", {"objective": "ce"}).close("finished")  # no class vectors
    assert class_vector_data(tmp_path, [tmp_path / "a", tmp_path / "mlp"]) is None


def test_runs_page_lists_the_distance_to_the_true_law(app_root):
    from geomviz.dashboard.data import run_table
    from geomviz.dashboard.pages import runs

    app, root, _ = app_root
    rows = {r["run"]: r for r in run_table(root)}
    with open_run(root / "lm" / "tfsd-s0") as r:
        kl = r.meta["final"]["test"]["truth.kl"]
    assert rows["lm/tfsd-s0"]["kl"] == kl
    with app.server.test_request_context():
        page = str(runs.layout())
    assert "KL to true law (nats/token)" in page and f"{kl:.3f}" in page
