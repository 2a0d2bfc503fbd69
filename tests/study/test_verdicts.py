"""Paired-interval verdicts against scipy's t distribution on hand-made tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from geomviz.study.verdicts import paired_interval, paired_verdict


def test_interval_matches_scipy_t_interval():
    d = np.array([0.012, 0.021, 0.0144])  # a hand-made table of paired differences
    mean, lo, hi, n = paired_interval(d)
    ref = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert n == 3 and mean == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx(ref, rel=1e-12)
    # by hand: t_{2, 0.975} = 4.302652729911275
    half = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)
    assert hi - mean == pytest.approx(half, rel=1e-9)


def test_better_only_when_interval_excludes_zero():
    a = {0: 0.90, 1: 0.91, 2: 0.92}
    clearly = paired_verdict(a, {0: 0.88, 1: 0.89, 2: 0.90}, "higher")
    assert clearly.label == "better" and clearly.lo > 0
    assert paired_verdict(a, {0: 0.88, 1: 0.89, 2: 0.90}, "lower").label == "worse"
    # mean difference +0.01, but one seed goes the other way: interval holds 0
    noisy = paired_verdict(a, {0: 0.86, 1: 0.93, 2: 0.91}, "higher")
    assert noisy.lo < 0 < noisy.hi and noisy.label == "no clear difference"
    assert not noisy.clear and "95% CI" in noisy.interval and "3 paired seeds" in noisy.interval


def test_pairs_by_seed_not_by_position():
    # a large seed effect shared by both objectives cancels in the paired difference
    a = {0: 1.0 + 0.01, 1: 5.0 + 0.011, 2: 9.0 + 0.012, 3: 2.0}
    b = {2: 9.0, 0: 1.0, 1: 5.0}  # seed 3 has no partner: left out
    v = paired_verdict(a, b, "higher")
    assert v.n == 3 and v.label == "better" and v.mean == pytest.approx(0.011)


def test_descriptive_one_seed_and_missing():
    assert paired_verdict({0: 2.0, 1: 3.0}, {0: 1.0, 1: 1.9}, "").label == "higher"
    one = paired_verdict({0: 2.0}, {0: 1.0}, "lower")
    assert one.label == "one seed" and math.isnan(one.lo) and "no interval" in one.interval
    assert paired_verdict({0: None}, {0: 1.0}) is None
    assert paired_verdict({0: 1.0}, {1: 1.0}) is None
    with pytest.raises(ValueError, match="better"):
        paired_verdict({0: 1.0}, {0: 1.0}, "up")
    with pytest.raises(ValueError, match="level"):
        paired_interval([1.0, 2.0], level=1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=8),
       st.floats(0.5, 0.99))
def test_interval_property(diffs, level):
    d = np.array(diffs)
    mean, lo, hi, n = paired_interval(d, level)
    assert lo <= mean <= hi or math.isclose(lo, hi, abs_tol=1e-9)
    if d.std(ddof=1) > 1e-9 * max(1.0, abs(d).max()):
        ref = stats.t.interval(level, n - 1, loc=d.mean(), scale=stats.sem(d))
        assert (lo, hi) == pytest.approx(ref, rel=1e-9, abs=1e-9)
