"""Label-noise flips against their definition over any sizes, rates and class counts: exactly
round(rate·N) samples change, each to another class (its partner (k+1) mod K for pairs),
nothing else changes, and the symmetric flips spread evenly over the other classes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from geomviz.data.noise import flip_labels


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300), st.integers(2, 9), st.floats(0.0, 0.99),
       st.sampled_from(["symmetric", "pairs"]), st.integers(0, 2**31))
def test_flips_follow_the_definition(n, k, rate, mode, seed):
    y = np.random.default_rng(seed).integers(0, k, n)
    noisy, mask = flip_labels(y, k, rate, mode, seed)
    assert mask.dtype == bool and mask.sum() == round(rate * n)
    assert np.array_equal(noisy != y, mask)  # every chosen label changed, no other one
    assert noisy.min(initial=0) >= 0 and noisy.max(initial=0) < k
    if mode == "pairs":
        assert np.array_equal(noisy[mask], (y[mask] + 1) % k)
    again = flip_labels(y, k, rate, mode, seed)
    assert np.array_equal(again[0], noisy) and np.array_equal(again[1], mask)


def test_symmetric_flip_targets_pass_a_chi_square_test_for_uniformity():
    k, n = 5, 20_000
    y = np.zeros(n, dtype=np.int64)  # all class 0: targets must be uniform over 1..4
    noisy, mask = flip_labels(y, k, 0.6, "symmetric", seed=11)
    counts = np.bincount(noisy[mask], minlength=k)
    assert counts[0] == 0
    assert chisquare(counts[1:]).pvalue > 1e-3
    # and the chosen samples are a uniform draw: flipped share in each half close to 0.6
    halves = mask.reshape(2, -1).mean(1)
    assert np.abs(halves - 0.6).max() < 5 * np.sqrt(0.24 / (n / 2))
