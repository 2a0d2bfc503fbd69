"""Metrics against sklearn, torchmetrics and float64 literal definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from sklearn import metrics as skm

from geomviz import metrics as M
from tests.helpers import id_ood_scores


def _sklearn_ood(conf_id, conf_ood):
    conf = np.r_[conf_id, conf_ood]
    is_ood = np.r_[np.zeros(len(conf_id)), np.ones(len(conf_ood))]
    fpr, tpr, _ = skm.roc_curve(is_ood, -conf, drop_intermediate=False)
    p_in, r_in, _ = skm.precision_recall_curve(1 - is_ood, conf)
    p_out, r_out, _ = skm.precision_recall_curve(is_ood, -conf)
    return {"auroc": skm.roc_auc_score(is_ood, -conf), "aupr_in": skm.auc(r_in, p_in),
            "aupr_out": skm.auc(r_out, p_out), "fpr95": fpr[np.argmax(tpr >= 0.95)]}


@given(id_ood_scores())
def test_ood_metrics_match_sklearn_openood_convention(batch):
    conf_id, conf_ood = batch
    ours, ref = M.ood_metrics(conf_id, conf_ood), _sklearn_ood(conf_id, conf_ood)
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k


def test_ood_metrics_extremes():
    perfect = M.ood_metrics([5.0, 6.0, 7.0], [1.0, 2.0])
    assert perfect == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0}
    swapped = M.ood_metrics([1.0, 2.0], [5.0, 6.0, 7.0])
    assert swapped["auroc"] == 0.0 and swapped["fpr95"] == 1.0
    with pytest.raises(ValueError):
        M.ood_metrics([], [1.0])


def test_ece_matches_torchmetrics():
    from torchmetrics.functional.classification import multiclass_calibration_error

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 7, generator=g) * 3
    y = torch.randint(0, 7, (2000,), generator=g)
    ref = multiclass_calibration_error(torch.softmax(logits, 1), y, num_classes=7, n_bins=15,
                                       norm="l1")
    assert M.ece(logits, y) == pytest.approx(float(ref), abs=1e-6)


def test_accuracy_nll_against_sklearn():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 5, generator=g)
    y = torch.randint(0, 5, (300,), generator=g)
    probs = torch.softmax(logits.double(), 1).numpy()
    assert M.accuracy(logits, y) == pytest.approx(skm.accuracy_score(y, probs.argmax(1)))
    assert M.nll(logits, y) == pytest.approx(skm.log_loss(y, probs, labels=range(5)), rel=1e-9)


def test_confidence_scores():
    z = torch.tensor([[1.0, 3.0, 2.0]])
    d = torch.tensor([[4.0, 1.0, 9.0]])
    s = M.confidence_scores(z, d)
    assert s["max_logit"][0] == 3.0 and s["min_distance"][0] == -1.0
    assert s["energy"][0] == pytest.approx(np.log(np.exp([1, 3, 2]).sum()))
    assert s["msp"][0] == pytest.approx(np.exp(3) / np.exp([1, 3, 2]).sum())


def test_neural_collapse_against_the_literal_definition():
    g = np.random.default_rng(0)
    c, d, n = 4, 6, 400
    y = g.integers(0, c, n)
    h = g.standard_normal((c, d))[y] * 2 + g.standard_normal((n, d))
    mu = np.stack([h[y == k].mean(0) for k in range(c)])
    mg = h.mean(0)
    sw = sum(np.outer(h[i] - mu[y[i]], h[i] - mu[y[i]]) for i in range(n)) / n
    sb = sum(np.outer(mu[k] - mg, mu[k] - mg) for k in range(c)) / c
    ours = M.neural_collapse(torch.tensor(h), torch.tensor(y), c)
    assert ours["nc1"] == pytest.approx(np.trace(sw @ np.linalg.pinv(sb)) / c, rel=1e-9)
    norms = np.linalg.norm(mu - mg, axis=1)
    assert ours["nc2_equinorm"] == pytest.approx(norms.std() / norms.mean(), rel=1e-9)


def test_neural_collapse_at_a_wide_feature_size_equals_pinv_of_the_full_scatter():
    # D >> C: Σ_B is 256×256 of rank 10; the metric works in its row space instead
    g = np.random.default_rng(1)
    c, d, n = 10, 256, 2000
    y = g.integers(0, c, n)
    h = g.standard_normal((c, d))[y] * 0.5 + g.standard_normal((n, d))
    mu = np.stack([h[y == k].mean(0) for k in range(c)])
    cen, m = h - mu[y], mu - h.mean(0)
    want = np.trace((cen.T @ cen / n) @ np.linalg.pinv(m.T @ m / c)) / c
    got = M.neural_collapse(torch.tensor(h), torch.tensor(y), c)["nc1"]
    assert got == pytest.approx(want, rel=1e-9)


def test_neural_collapse_is_zero_on_a_simplex_etf():
    c = 5
    etf = np.eye(c) - 1.0 / c  # centred simplex: equal norms, cosines -1/(C-1)
    y = np.repeat(np.arange(c), 20)
    nc = M.neural_collapse(torch.tensor(etf[y]), torch.tensor(y), c)
    assert nc["nc1"] == pytest.approx(0, abs=1e-12)
    assert nc["nc2_equinorm"] == pytest.approx(0, abs=1e-12)
    assert nc["nc2_equiangular"] == pytest.approx(0, abs=1e-12)
    assert nc["nc2_maxangle"] == pytest.approx(0, abs=1e-12)


def test_max_logit_and_min_distance_rank_alike_for_distance_heads():
    """z_j = -s·d_j, so max_j z_j = -s·min_j d_j: one ranking, one AUROC (shown once)."""
    from geomviz.objectives import EuclideanHead, squared_distances

    g = torch.Generator().manual_seed(0)
    head = EuclideanHead(6, 4, scale=0.7)
    x_id, x_ood = torch.randn(50, 6, generator=g), 3 * torch.randn(40, 6, generator=g)
    with torch.no_grad():
        s_id = M.confidence_scores(head(x_id), squared_distances(x_id, head.centers))
        s_ood = M.confidence_scores(head(x_ood), squared_distances(x_ood, head.centers))
    a = M.ood_metrics(s_id["max_logit"], s_ood["max_logit"])
    b = M.ood_metrics(s_id["min_distance"], s_ood["min_distance"])
    assert a == pytest.approx(b)
