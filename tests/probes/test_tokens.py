"""Token probes against hand and scipy computations."""

import numpy as np
import torch
from scipy.spatial.distance import pdist, squareform

from probes.tokens import (
    class_group_distances,
    contexts,
    law_stats,
    select_class_subset,
    select_positions,
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
