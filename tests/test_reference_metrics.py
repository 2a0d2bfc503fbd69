"""geomviz.metrics against references written from the definitions (float64 loops, scipy,
sklearn), with hypothesis over ties, a single class, saturated scores and bin edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import logsumexp as sp_logsumexp
from scipy.special import softmax as sp_softmax
from sklearn import metrics as skm

from geomviz import metrics as M
from tests.helpers import id_ood_scores

FAST = settings(max_examples=30, deadline=None)


@st.composite
def logits_and_labels(draw, max_n=24, max_c=6):
    """Logits [N, C] with many ties (small integers) or wide floats; C may be 1."""
    n, c = draw(st.integers(1, max_n)), draw(st.integers(1, max_c))
    vals = st.integers(-3, 3).map(float) if draw(st.booleans()) else st.floats(-30, 30)
    z = np.array(draw(st.lists(vals, min_size=n * c, max_size=n * c))).reshape(n, c)
    y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return z, y


def literal_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """ECE = sum_b |B_b|/N · |acc(B_b) - conf(B_b)| over bins B_b = (b/n, (b+1)/n] (conf = 0
    goes to the first bin), by a loop over bins."""
    n = len(conf)
    if n == 0:
        return 0.0
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(n) if (lo < conf[i] <= hi) or (b == 0 and conf[i] <= lo)]
        if members:
            acc = sum(float(correct[i]) for i in members) / len(members)
            avg = sum(float(conf[i]) for i in members) / len(members)
            total += len(members) / n * abs(acc - avg)
    return total


# n_bins whose float64 edges torch.linspace gives exactly as b/n (others differ by an ulp)
EXACT_BINS = [1, 2, 4, 5, 8, 16]


@FAST
@given(logits_and_labels(), st.sampled_from(EXACT_BINS))
def test_ece_equals_the_literal_binned_definition(batch, n_bins):
    z, y = batch
    p = sp_softmax(z, axis=1)
    pred = p.argmax(1)  # first of tied maxima, as torch's argmax
    conf = p[np.arange(len(y)), pred]
    want = literal_ece(conf, pred == y, n_bins)
    got = M.ece(torch.tensor(z), torch.tensor(y), n_bins)
    assert got == pytest.approx(want, abs=1e-12)


def test_ece_single_class_and_empty_input():
    z = torch.randn(7, 1)
    assert M.ece(z, torch.zeros(7, dtype=torch.long)) == 0.0  # conf 1, always right
    assert M.ece_from_confidence(np.zeros(0), np.zeros(0)) == 0.0


@pytest.mark.parametrize("n_bins", [10, 15])
def test_ece_bins_are_closed_on_the_right_at_the_edges(n_bins):
    """A confidence exactly b/n belongs to the bin (b-1)/n .. b/n, as documented."""
    conf = np.array([b / n_bins for b in range(n_bins + 1)])
    correct = np.arange(n_bins + 1) % 2 == 0
    want = literal_ece(conf, correct, n_bins)
    assert M.ece_from_confidence(conf, correct, n_bins) == pytest.approx(want, abs=1e-15)


def test_ece_bin_edge_at_0_55_with_20_bins():
    # both in (0.5, 0.55]: ECE = |0.5 - 0.54| = 0.04; split over two bins it would be 0.49
    conf, correct = np.array([0.55, 0.53]), np.array([True, False])
    assert literal_ece(conf, correct, 20) == pytest.approx(0.04, abs=1e-15)
    assert M.ece_from_confidence(conf, correct, 20) == pytest.approx(0.04, abs=1e-15)


@FAST
@given(logits_and_labels())
def test_accuracy_and_nll_against_scipy_with_ties(batch):
    z, y = batch
    assert M.accuracy(torch.tensor(z), torch.tensor(y)) == pytest.approx(
        float(np.mean(z.argmax(1) == y)), abs=0)
    want = float(-sp_log_softmax(z, axis=1)[np.arange(len(y)), y].mean())
    assert M.nll(torch.tensor(z).float(), torch.tensor(y)) == pytest.approx(want, rel=1e-6,
                                                                           abs=1e-6)


@FAST
@given(logits_and_labels(max_c=5), st.floats(1e-3, 1e4))
def test_confidence_scores_against_scipy_far_from_zero(batch, spread):
    """MSP, max logit, energy (logsumexp) and -min distance; logits up to ±3e5."""
    z, _ = batch
    z = z * spread
    d = np.abs(z) + 0.5
    s = M.confidence_scores(torch.tensor(z), torch.tensor(d))
    np.testing.assert_allclose(s["msp"], sp_softmax(z, axis=1).max(1), rtol=1e-12)
    np.testing.assert_array_equal(s["max_logit"], z.max(1))
    np.testing.assert_allclose(s["energy"], sp_logsumexp(z, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(s["min_distance"], -d.min(1))
    assert "min_distance" not in M.confidence_scores(torch.tensor(z))




@FAST
@given(id_ood_scores(30, 3, 5.0), st.floats(0.01, 1.0))
def test_roc_auroc_and_fpr_at_any_tpr_against_pairs_and_sklearn(batch, tpr):
    cid, cood = batch
    # AUROC by its definition: P(an OOD input looks less confident than an ID one), ties 1/2
    pairs = (cood[:, None] < cid[None, :]) + 0.5 * (cood[:, None] == cid[None, :])
    out = M.ood_metrics(cid, cood, tpr=tpr)
    assert out["auroc"] == pytest.approx(float(pairs.mean()), abs=1e-12)
    is_ood = np.r_[np.zeros(len(cid)), np.ones(len(cood))]
    fpr_ref, tpr_ref, _ = skm.roc_curve(is_ood, -np.r_[cid, cood], drop_intermediate=False)
    fpr, tpr_c = M.roc_curve(cid, cood)
    np.testing.assert_allclose(fpr, fpr_ref, atol=1e-15)
    np.testing.assert_allclose(tpr_c, tpr_ref, atol=1e-15)
    # FPR at the first threshold reaching the wanted TPR: the smallest such FPR
    assert out["fpr95"] == pytest.approx(float(fpr_ref[tpr_ref >= tpr].min()), abs=1e-12)
    assert skm.auc(fpr, tpr_c) == pytest.approx(out["auroc"], abs=1e-12)


def test_ood_metrics_all_scores_equal():
    out = M.ood_metrics(np.ones(5), np.ones(3))
    assert out["auroc"] == 0.5 and out["fpr95"] == 1.0
    # one threshold: the trapezoid from (recall 0, precision 1) to (1, base rate)
    assert out["aupr_out"] == pytest.approx((1 + 3 / 8) / 2)
    assert out["aupr_in"] == pytest.approx((1 + 5 / 8) / 2)


def literal_nc(h: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Papyan et al. (2020), per class by loops, over the classes present."""
    classes = sorted(set(y.tolist()))
    k = len(classes)
    mu_g = h.mean(0)
    mu = {c: h[y == c].mean(0) for c in classes}
    d = h.shape[1]
    sw, sb = np.zeros((d, d)), np.zeros((d, d))
    for i in range(len(h)):
        v = h[i] - mu[y[i]]
        sw += np.outer(v, v) / len(h)
    for c in classes:
        v = mu[c] - mu_g
        sb += np.outer(v, v) / k
    m = [mu[c] - mu_g for c in classes]
    norms = np.array([np.linalg.norm(v) for v in m])
    cos = [m[a] @ m[b] / (norms[a] * norms[b]) for a in range(k) for b in range(k) if a != b]
    return {"nc1": float(np.trace(sw @ np.linalg.pinv(sb)) / k),
            "nc2_equinorm": float(norms.std() / norms.mean()),
            "nc2_equiangular": float(np.std(cos)),
            "nc2_maxangle": float(np.mean([abs(c + 1 / (k - 1)) for c in cos]))}


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.integers(2, 6), st.integers(1, 5), st.integers(0, 2))
def test_neural_collapse_against_loops_with_absent_and_singleton_classes(seed, k, d, absent):
    g = np.random.default_rng(seed)
    n = 5 * k
    y = np.r_[np.arange(k), g.integers(0, k, n - k)]  # every class present ...
    y[-1] = k - 1 if k > 2 else y[-1]
    h = g.standard_normal((k, d))[y] * 3 + g.standard_normal((n, d))
    got = M.neural_collapse(torch.tensor(h), torch.tensor(y), k + absent)  # ... some absent
    want = literal_nc(h, y)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-8, abs=1e-10), key
    single = np.r_[y, k]  # a class with one sample: no within-class scatter of its own
    h1 = np.r_[h, g.standard_normal((1, d)) * 5]
    got1 = M.neural_collapse(torch.tensor(h1), torch.tensor(single), k + 1 + absent)
    want1 = literal_nc(h1, single)
    for key in want1:
        assert got1[key] == pytest.approx(want1[key], rel=1e-8, abs=1e-10), key


def test_neural_collapse_needs_two_present_classes():
    with pytest.raises(ValueError, match="two classes"):
        M.neural_collapse(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), 4)
