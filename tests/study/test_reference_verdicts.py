"""Paired verdicts and the ground-truth claim test against references built another way:
scipy's one-sample t-test interval, the verdict rule spelt out, an exact Mann-Whitney
enumeration and Spearman's rho from hand-computed average ranks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from geomviz.study.groundtruth import claim_test
from geomviz.study.verdicts import paired_interval, paired_verdict

FAST = settings(max_examples=40, deadline=None)
value = st.one_of(st.floats(-10, 10), st.none(), st.just(math.nan), st.just(math.inf))


@FAST
@given(st.lists(value, min_size=0, max_size=9), st.floats(0.5, 0.99))
def test_paired_interval_is_the_one_sample_t_interval_of_the_finite_values(diffs, level):
    d = np.array([v for v in diffs if v is not None and math.isfinite(v)], dtype=float)
    mean, lo, hi, n = paired_interval(diffs, level)
    assert n == len(d)
    if n == 0:
        assert math.isnan(mean) and math.isnan(lo) and math.isnan(hi)
        return
    assert mean == pytest.approx(d.mean(), abs=1e-12)
    if n == 1:
        assert math.isnan(lo) and math.isnan(hi)
        return
    if d.std() == 0:  # scipy gives nan; a zero sd is a zero-width interval here
        assert lo == hi == pytest.approx(mean, abs=1e-12)
        return
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(level)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)


@FAST
@given(st.dictionaries(st.integers(0, 6), value, max_size=7),
       st.dictionaries(st.integers(0, 6), value, max_size=7),
       st.sampled_from(["higher", "lower", ""]))
def test_paired_verdict_label_is_the_rule_spelt_out(a, b, better):
    shared = [s for s in a if s in b and a[s] is not None and b[s] is not None]
    d = [a[s] - b[s] for s in shared]
    finite = [x for x in d if math.isfinite(x)]
    v = paired_verdict(a, b, better)
    if not finite:
        assert v is None
        return
    mean, lo, hi, n = paired_interval(d)
    assert (v.mean, v.n) == (pytest.approx(mean), n) and v.level == 0.95
    if n == 1:
        want = "one seed"
    elif lo <= 0 <= hi:
        want = "no clear difference"
    elif better == "":
        want = "higher" if mean > 0 else "lower"
    else:  # a positive difference is good when higher is better
        want = "better" if (mean > 0) == (better == "higher") else "worse"
    assert v.label == want
    assert v.clear == (want not in ("one seed", "no clear difference"))


def _exact_mannwhitney_greater(x: np.ndarray, y: np.ndarray) -> float:
    """P(U >= U_obs) over every equally likely split of the pooled values (no ties)."""
    pooled = np.r_[x, y]

    def u(idx):
        xs = pooled[list(idx)]
        ys = np.delete(pooled, list(idx))
        return sum(float(a > b) for a in xs for b in ys)

    u_obs = u(range(len(x)))
    splits = list(itertools.combinations(range(len(pooled)), len(x)))
    return sum(u(s) >= u_obs for s in splits) / len(splits)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    return np.array([(v < x).sum() + ((v == x).sum() + 1) / 2 for x in v])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / math.sqrt((ra * ra).sum() * (rb * rb).sum()))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.integers(2, 5), st.integers(2, 5), st.booleans())
def test_claim_test_against_exact_enumeration_and_literal_ranks(seed, n_hard, n_easy, ties):
    g = np.random.default_rng(seed)
    n = n_hard + n_easy
    hard = np.r_[np.ones(n_hard, bool), np.zeros(n_easy, bool)]
    target = g.permutation(n).astype(float) + g.uniform(0, 0.1, n)  # distinct: exact test
    bayes = g.integers(0, 3, n).astype(float) if ties else g.uniform(size=n)
    e = {"target": target, "pred": bayes[::-1].copy(), "bayes": bayes, "hard": hard,
         "anchor": g.uniform(size=n), "negative": g.uniform(size=n)}
    t = claim_test(e)
    assert (t["n_hard"], t["n_easy"]) == (n_hard, n_easy)
    for key in ("target", "pred", "bayes"):
        assert t[f"{key}_hard"] == pytest.approx(e[key][hard].mean())
        assert t[f"{key}_easy"] == pytest.approx(e[key][~hard].mean())
    for key in ("anchor", "negative"):
        assert t[f"{key}_hard_median"] == pytest.approx(np.median(e[key][hard]))
    # "hard targets are flatter": one-sided, hard > easy
    assert t["p_flatter"] == pytest.approx(
        _exact_mannwhitney_greater(target[hard], target[~hard]), rel=1e-9)
    if np.ptp(bayes) > 0:
        assert t["rho_target_bayes"] == pytest.approx(_spearman(target, bayes), abs=1e-12)
        assert t["rho_pred_bayes"] == pytest.approx(_spearman(e["pred"], bayes), abs=1e-12)
    else:
        assert math.isnan(t["rho_target_bayes"]) and math.isnan(t["rho_pred_bayes"])
