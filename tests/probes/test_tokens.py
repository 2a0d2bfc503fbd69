"""Token probes against hand and scipy computations."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from geomviz.data import load_dataset
from geomviz.data.vectors import gaussians_hier
from probes.tokens import (
    class_group_distances,
    class_structure,
    contexts,
    law_stats,
    select_class_subset,
    select_positions,
    spearman,
)


def test_class_group_distances_against_scipy():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(12, 5, generator=g)
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5])
    d = squareform(pdist(v.double().numpy()))
    same = groups.numpy()[:, None] == groups.numpy()[None, :]
    iu = np.triu_indices(12, 1)
    want_w, want_b = d[iu][same[iu]].mean(), d[iu][~same[iu]].mean()
    got = class_group_distances(v, groups)
    assert np.isclose(got["classes.within"], want_w) and np.isclose(got["classes.between"], want_b)
    assert np.isclose(got["classes.ratio"], want_w / want_b)


def test_class_group_distances_on_a_toy_head():
    # synonyms at distance 1 from each other, sets 10 apart: within 1, between ~10
    v = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    got = class_group_distances(v, torch.tensor([0, 0, 1, 1]))
    assert got["classes.within"] == 1.0
    assert np.isclose(got["classes.between"], (10 + 11 + 9 + 10) / 4)


def test_law_stats_vanish_for_the_true_law_and_match_the_definition():
    g = torch.Generator().manual_seed(1)
    law = torch.softmax(torch.randn(20, 7, generator=g, dtype=torch.float64) * 3, 1)
    law[:5] = torch.nn.functional.one_hot(torch.arange(5), 7).double()  # determined positions
    y = torch.multinomial(law, 1, generator=g).squeeze(1)
    same = law_stats(law, torch.log(law), y)
    assert torch.allclose(same["kl"], torch.zeros(20, dtype=torch.float64), atol=1e-12)
    h = -(law * torch.log(law.clamp_min(1e-300))).sum(1)
    assert torch.allclose(same["entropy"], h)
    assert torch.equal(same["entropy"][:5], torch.zeros(5, dtype=torch.float64))
    logq = torch.log_softmax(torch.randn(20, 7, generator=g, dtype=torch.float64), 1)
    kl = law_stats(law, logq, y)["kl"]
    want = (law * (torch.log(law.clamp_min(1e-300)) - logq)).sum(1)
    assert torch.allclose(kl, want) and bool((kl > 0).all())


def test_positions_contexts_and_class_subsets():
    a, b = select_positions(np.arange(80), 30, seed=3), select_positions(np.arange(80), 30, 3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 30 and a.max() < 80
    assert select_positions(np.array([5, 9, 2]), 100, seed=0).tolist() == [2, 5, 9]
    x = torch.arange(20).reshape(2, 10)
    ctx = contexts(x, np.array([0, 3, 12]), width=4)
    assert ctx.tolist() == [[-1, -1, -1, 0], [0, 1, 2, 3], [-1, 10, 11, 12]]
    ids = select_class_subset(9, groups=[0, 0, 1, 2, 2, 2, 3, 4, 4], limit=6)
    assert ids.tolist() == [0, 1, 2, 3, 4, 5]  # whole sets only
    ids = select_class_subset(6, freq_bucket=[2, 0, 1, 0, 2, 1], limit=3)
    assert ids.tolist() == [1, 2, 3]


# classes.structure: Spearman's rho against scipy, and its known maxima ---------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(-5, 5)), min_size=2, max_size=30))
def test_spearman_equals_scipy_with_ties(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.float64)  # many ties
    b = np.array([p[1] for p in pairs], dtype=np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert np.isnan(spearman(a, b))
        return
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)


def test_class_structure_is_one_at_the_true_means_and_maximal_for_separated_groups():
    b = load_dataset("gaussians_hier", seed=0)
    centres = torch.from_numpy(gaussians_hier(seed=0)["centres"])
    assert class_structure(centres, b.class_dissimilarity) == pytest.approx(1.0, abs=1e-12)
    # a rotation and a shift keep every distance
    q, _ = torch.linalg.qr(torch.randn(32, 32, dtype=torch.float64))
    assert class_structure(centres @ q + 3.0, b.class_dissimilarity) == pytest.approx(1.0)
    # 0/1 hierarchy: vectors that put every sibling pair closer than every cousin pair reach
    # the most the ties allow, which is below 1
    groups = np.repeat(np.arange(3), 3)
    hier = (groups[:, None] != groups[None, :]).astype(float)
    v = torch.from_numpy(np.repeat(np.eye(3) * 10, 3, axis=0) + np.random.default_rng(0)
                         .standard_normal((9, 3)) * 0.1)
    got = class_structure(v, hier)
    i, j = np.triu_indices(9, 1)
    d = torch.cdist(v, v).numpy()[i, j]
    assert got == pytest.approx(spearmanr(d, hier[i, j]).statistic, abs=1e-12)
    best = spearmanr(hier[i, j] + np.arange(len(i)) * 1e-6, hier[i, j]).statistic
    assert got == pytest.approx(best, abs=1e-12) and got < 1
    shuffled = class_structure(v[torch.randperm(9, generator=torch.Generator().manual_seed(0))],
                               hier)
    assert shuffled < got


def test_class_group_distances_by_hand_and_unknown_groups_count_nowhere():
    v = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [6.0, 8.0], [100.0, 0.0]])
    g = torch.tensor([0, 0, 1, 1, -1])
    out = class_group_distances(v, g)
    # within: |v0-v1| = 5, |v2-v3| = sqrt(36+49) ; between: v0-v2 1, v0-v3 10, v1-v2
    # sqrt(9+9), v1-v3 5
    within = (5 + np.sqrt(85)) / 2
    between = (1 + 10 + np.sqrt(18) + 5) / 4
    assert out["classes.within"] == pytest.approx(within)
    assert out["classes.between"] == pytest.approx(between)
    assert out["classes.ratio"] == pytest.approx(within / between)
