"""The language-model figures read from real tiny synonym-language runs: what they draw is
what the stores hold (seed means, the true law's entropy, the class vectors' projection), and
they export; runs without token probes skip them with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.store import open_run
from geomviz.study.figureset import FIGURES, LM_FIGURES, build_figures, find_runs
from tests.conftest import CHROMIUM
from tests.lm_runs import lm_runs
from tests.study.test_export import png_size, svg_size


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    root = lm_runs(tmp_path_factory)
    runs = find_runs([root / "lm"])
    return runs, build_figures(runs, list(LM_FIGURES))


def _stored(runs, objective, name):
    vals = []
    for r in runs:
        if r.name.startswith(f"{objective}-"):
            with open_run(r) as run:
                vals.append(run.scalars(name, split="test")["value"])
    return np.asarray(vals)


def test_lm_figures_are_the_stored_series(lm):
    runs, figs = lm
    assert set(figs.figures) == set(LM_FIGURES) and not figs.skipped
    tear = figs.figures["tearing"]
    for obj in ("ce", "tfsd"):
        ratio = _stored(runs, obj, "classes.ratio")
        line = next(t for t in tear.data if t.name == obj and t.fill is None)  # 2 evals: +markers
        np.testing.assert_allclose(line.y, ratio.mean(0))
        band = next(t for t in tear.data if t.fill == "toself" and t.legendgroup == obj)
        np.testing.assert_allclose(sorted(band.y), sorted(np.r_[ratio.max(0), ratio.min(0)]))
        assert line.line.color == {"ce": "#4C78A8", "tfsd": "#E45756"}[obj]
    syn = figs.figures["synonym_entropy"]
    truth = [t for t in syn.data if t.name and t.name.startswith("H(true)")]
    assert len(truth) == 2  # synonym and determined positions, grey dashed
    np.testing.assert_allclose(truth[0].y, _stored(runs, "ce", "entropy.synonym.truth").mean(0))
    np.testing.assert_allclose(truth[1].y, 0.0, atol=1e-12)  # determined: H(true) = 0
    pred = [t for t in syn.data if t.name == "tfsd" and t.line.dash == "solid"]
    np.testing.assert_allclose(pred[0].y, _stored(runs, "tfsd", "entropy.synonym.pred").mean(0))
    for fig in figs.figures.values():
        for key in fig.layout:
            axis = fig.layout[key]
            if key.startswith(("xaxis", "yaxis")) and axis.showticklabels is not False:
                assert axis.title.text, key


def test_class_vector_grid_is_one_pca_basis_of_the_stored_vectors(lm):
    runs, figs = lm
    grid = figs.figures["class_vectors"]
    with open_run(runs[0]) as run:
        steps = run.array_steps("snapshot.class_vectors")
        vecs = run.arrays("snapshot.class_vectors")
        groups = np.asarray(run.meta["data_info"]["groups"])[run.arrays("snapshot.class_ids")[0]]
    assert [a.text for a in grid.layout.annotations[:len(steps)]] == [f"step {s}" for s in steps]
    rows = {a.text for a in grid.layout.annotations[len(steps):]}
    assert rows == {"ce", "tfsd"}
    # the first panel is CE seed 0 at step 0: its distances are those of the vectors projected
    # on the joint basis; an independent PCA (sklearn, on every step of both objectives) spans
    # the same plane, so pairwise distances agree
    from sklearn.decomposition import PCA

    first = {o: next(r for r in runs if r.name == f"{o}-s0") for o in ("ce", "tfsd")}
    stack = []
    for r in first.values():
        with open_run(r) as run:
            v = run.arrays("snapshot.class_vectors")
        stack.append(np.stack([v[s] for s in steps]).astype(np.float64))
    pca = PCA(2).fit(np.concatenate([s.reshape(-1, s.shape[-1]) for s in stack]))
    ref = pca.transform(vecs[steps[0]].astype(np.float64))
    panel = grid.data[0]
    got = np.c_[panel.x, panel.y]
    d_ref = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    d_got = np.linalg.norm(got[:, None] - got[None], axis=-1)
    np.testing.assert_allclose(d_got, d_ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(panel.marker.color), groups % 10)


def test_lm_figures_export(lm, tmp_path):
    from geomviz.study.export import export

    _, figs = lm
    formats = ["png", "svg", "html"] if CHROMIUM else ["html"]
    result = export(figs.figures, tmp_path, formats)
    for name, fig in figs.figures.items():
        assert tmp_path / f"{name}.html" in result.files
        assert 'src="plotly.min.js"' in (tmp_path / f"{name}.html").read_text()
        if CHROMIUM:
            png, svg = tmp_path / f"{name}.png", tmp_path / f"{name}.svg"
            assert png_size(png) == (1600, 2 * fig.layout.height), name  # 800 px at scale 2
            assert svg_size(svg) == (800, fig.layout.height), name
            assert png.stat().st_size > 10_000 and svg.stat().st_size > 5_000, name


def test_non_token_runs_skip_the_lm_figures_with_the_reason(tiny_study):
    out, _ = tiny_study
    figs = build_figures(find_runs([out / "runs"]), list(LM_FIGURES))
    assert set(figs.skipped) == set(LM_FIGURES) and not figs.figures
    assert all("synonyms" in why for why in figs.skipped.values())
    assert set(LM_FIGURES) <= set(FIGURES)
