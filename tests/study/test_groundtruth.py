"""Ground truth of the gaussians data, and the claim test, against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from geomviz.data import DataError, bayes_posterior
from geomviz.data.vectors import gaussians as _gaussians
from geomviz.study.groundtruth import binned_mean, claim_test, probe_entropies


@pytest.mark.parametrize("held", [(), (4, 7)])
def test_bayes_posterior_matches_scipy_densities(held):
    raw = _gaussians(seed=3)
    keep = [c for c in range(10) if c not in held]
    rows = np.flatnonzero(np.isin(raw["y_test"], keep))
    index = np.array([0, 5, 17, 40])
    post = bayes_posterior("gaussians", 3, index, held)
    x = raw["x_test"][rows[index]].astype(np.float64)
    logpdf = np.stack([stats.multivariate_normal(raw["centres"][c], np.eye(32)).logpdf(x)
                       for c in keep], 1)  # equal priors: the posterior is the softmax
    np.testing.assert_allclose(post, np.exp(logpdf - np.logaddexp.reduce(logpdf, 1,
                                                                          keepdims=True)),
                               rtol=1e-9, atol=1e-12)
    with pytest.raises(DataError, match="no known posterior"):
        bayes_posterior("mnist1d", 0, index)


def test_overlapping_pairs_are_the_uncertain_ones():
    raw = _gaussians(seed=0)
    post = bayes_posterior("gaussians", 0, np.arange(len(raw["y_test"])))
    h = stats.entropy(post, axis=1)
    hard = np.isin(raw["y_test"], [0, 1, 2, 3])
    assert h[hard].mean() > 0.3 > 0.05 > h[~hard].mean()


@given(st.lists(st.floats(0, 10, allow_subnormal=False), min_size=20, max_size=200),
       st.integers(1, 10))
def test_binned_mean_matches_scipy(xs, bins):
    # entropies to 1e-6 nats: scipy's own bin assignment rounds positions by the bin width's
    # decimals, which breaks down for bins only a few subnormals wide
    x = np.round(np.array(xs), 6)
    y = np.sin(x) + x
    mx, my = binned_mean(x, y, bins)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        assert my == pytest.approx([y.mean()])
        return
    ref = stats.binned_statistic(x, y, "mean", bins=edges).statistic
    np.testing.assert_allclose(my, ref[np.isfinite(ref)], rtol=1e-9, atol=1e-9)
    assert len(mx) == len(my)


def test_claim_test_decides_both_ways():
    g = np.random.default_rng(0)
    hard = np.r_[np.ones(100, bool), np.zeros(200, bool)]
    bayes = np.where(hard, 0.6, 0.02) + g.uniform(0, 0.01, 300)
    flat = {"bayes": bayes, "target": bayes * 0.5, "pred": bayes, "hard": hard,
            "anchor": g.uniform(size=300), "negative": g.uniform(size=300)}
    t = claim_test(flat)
    assert t["p_flatter"] < 1e-10 and t["target_hard"] > t["target_easy"]
    assert t["rho_target_bayes"] == pytest.approx(stats.spearmanr(flat["target"],
                                                                  bayes).statistic)
    sharp = {**flat, "target": np.where(hard, 1e-9, 1e-3)}  # easy samples flatter
    assert claim_test(sharp)["p_flatter"] > 0.99
    onehot = {**flat, "target": np.zeros(300)}
    t = claim_test(onehot)
    assert t["p_flatter"] == 1.0 and np.isnan(t["rho_target_bayes"])


def test_probe_entropies_of_a_run(tiny_study):
    out, _ = tiny_study
    e = probe_entropies(out / "runs" / "tfsd-s1")
    assert e is not None and len(e["bayes"]) == len(e["target"]) > 0
    from geomviz.store import open_run

    with open_run(out / "runs" / "tfsd-s1") as run:
        index = run.arrays("snapshot.index")[0]
        labels = run.arrays("snapshot.labels")[0]
        last = run.array_steps("snapshot.entropy_target")[-1]
        target = run.arrays("snapshot.entropy_target")[last]
    ind = labels >= 0
    post = bayes_posterior("gaussians", 1, index[: ind.sum()])
    np.testing.assert_allclose(e["bayes"], stats.entropy(post, axis=1), atol=1e-9)
    np.testing.assert_allclose(e["target"], target[ind])
    np.testing.assert_array_equal(e["hard"], np.isin(labels[ind], [0, 1, 2, 3]))
    assert probe_entropies(out / "runs" / "ce-s0")["target"].max() == 0  # one-hot target
