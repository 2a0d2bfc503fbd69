"""Token-level class probes against scipy over random inputs: within/between synonym-set
distances by pdist (unknown groups and singleton sets), and the structure score as
scipy's Spearman rho over the pairs whose dissimilarity is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from probes.tokens import class_group_distances, class_structure


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.lists(st.integers(-1, 3), min_size=2, max_size=12))
def test_class_group_distances_against_pdist(seed, groups):
    g = np.random.default_rng(seed)
    v = g.standard_normal((len(groups), 3))
    grp = np.array(groups)
    d = pdist(v)  # condensed, pairs i < j in row order
    i, j = np.triu_indices(len(grp), 1)
    known = (grp[i] >= 0) & (grp[j] >= 0)
    same = known & (grp[i] == grp[j])
    diff = known & (grp[i] != grp[j])
    out = class_group_distances(torch.tensor(v), torch.tensor(grp))
    w = d[same].mean() if same.any() else math.nan
    b = d[diff].mean() if diff.any() else math.nan
    for key, want in (("classes.within", w), ("classes.between", b)):
        assert (math.isnan(out[key]) and math.isnan(want)) or out[key] == pytest.approx(want)
    ratio = w / b if diff.any() else math.nan
    assert (math.isnan(out["classes.ratio"]) and math.isnan(ratio)) or \
        out["classes.ratio"] == pytest.approx(ratio)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.integers(3, 9), st.floats(0.0, 0.5), st.booleans())
def test_class_structure_is_spearman_over_the_known_pairs(seed, c, unknown, binary):
    g = np.random.default_rng(seed)
    v = g.standard_normal((c, 4))
    truth = g.integers(0, 2, (c, c)).astype(float) if binary else g.uniform(size=(c, c))
    truth = np.triu(truth, 1) + np.triu(truth, 1).T
    holes = np.triu(g.random((c, c)) < unknown, 1)
    truth[holes | holes.T] = np.nan
    i, j = np.triu_indices(c, 1)
    ok = np.isfinite(truth[i, j])
    a, b = pdist(v)[ok], truth[i, j][ok]
    got = class_structure(torch.tensor(v), truth)
    if len(a) < 2 or np.ptp(b) == 0:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
