"""Losses against independent references: the literal TFSD definition (float64, autograd)
and scipy's log-softmax for the cross-entropy family."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import logsumexp as sp_logsumexp

from geomviz.objectives import losses as L
from tests.helpers import issue_closed_form, literal_tfsd


@st.composite
def tfsd_batch(draw, max_rows=6, max_classes=12):
    """Scaled squared distances from 1e-6 to 1e4 (log-uniform), some exactly 0."""
    n = draw(st.integers(1, max_rows))
    c = draw(st.integers(2, max_classes))
    log_d = draw(st.lists(st.floats(-6, 4), min_size=n * c, max_size=n * c))
    d = torch.tensor(10.0 ** np.array(log_d), dtype=torch.float64).reshape(n, c)
    zero_mask = draw(st.lists(st.booleans(), min_size=n * c, max_size=n * c))
    if draw(st.booleans()):
        d[torch.tensor(zero_mask).reshape(n, c)] = 0.0
    y = torch.tensor(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return -d, y


@given(tfsd_batch())
def test_tfsd_value_and_gradient_match_literal_definition(batch):
    z, y = batch
    z = z.requires_grad_()
    ours = L.tfsd_loss(z, y, reduction="none")
    ref = literal_tfsd(z, y)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours, issue_closed_form(z.detach(), y), rtol=1e-9, atol=1e-9)
    w = torch.linspace(0.5, 1.5, len(y), dtype=torch.float64)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), z)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), z)  # autograd of the definition, p detached
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)


@given(tfsd_batch())
def test_tfsd_is_a_nonnegative_kl_that_vanishes_at_zero_distance(batch):
    z, y = batch
    loss = L.tfsd_loss(z, y, reduction="none")
    assert (loss >= 0).all() and torch.isfinite(loss).all()
    z0 = z.clone()
    z0[torch.arange(len(y)), y] = 0.0  # true class at distance 0: target == prediction
    assert L.tfsd_loss(z0, y, reduction="none").abs().max() < 1e-12


@given(tfsd_batch(max_rows=4, max_classes=64))
def test_tfsd_fp32_is_accurate_where_the_textbook_form_cancels(batch):
    """In fp32, L - A cancels when |L| ~ 1e4; our Bregman form keeps ~1e-5 relative accuracy."""
    z, y = batch
    ours = L.tfsd_loss(z.float(), y, reduction="none").double()
    ref = literal_tfsd(z, y)
    assert ((ours - ref).abs() <= 2e-5 * ref.abs() + 5e-6).all()


def test_tfsd_gradient_is_q_minus_p():
    z = -torch.tensor([[0.5, 2.0, 3.0], [4.0, 0.1, 9.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1])
    (g,) = torch.autograd.grad(L.tfsd_loss(z, y, reduction="sum"), z)
    zp = z.detach().clone()
    zp[[0, 1], y] = 0
    torch.testing.assert_close(g, torch.softmax(z.detach(), 1) - torch.softmax(zp, 1))


def test_tfsd_rejects_positive_logits_unless_told_not_to_check():
    z = torch.tensor([[-1.0, 0.5], [-2.0, -1.0]])
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="must be <= 0"):
        L.tfsd_loss(z, y)
    with pytest.raises(ValueError, match="must be <= 0"):
        L.TFSDLoss()(z, y)
    assert torch.isfinite(L.tfsd_loss(z, y, validate=False))  # fast path, user's choice


@pytest.mark.parametrize("fn", [L.tfsd_loss, L.cross_entropy, L.label_smoothing_loss,
                                L.logitnorm_loss, L.zloss_cross_entropy])
def test_bad_inputs_get_clear_errors(fn):
    z = -torch.rand(4, 3)
    with pytest.raises(ValueError, match="out of range"):
        fn(z, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="out of range"):
        fn(z, torch.tensor([0, -2, 1, 0]))
    with pytest.raises(ValueError, match="does not match"):
        fn(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        fn(z, torch.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        fn(z, torch.tensor([0, 1, 2, 0]), reduction="avg")
    assert torch.isfinite(fn(z, torch.tensor([0, -100, 2, 1])))  # ignore_index is in range


@pytest.mark.parametrize("fn", [L.tfsd_loss, L.cross_entropy, L.label_smoothing_loss,
                                L.logitnorm_loss, L.zloss_cross_entropy])
def test_reduction_and_ignore_index_semantics(fn):
    torch.manual_seed(0)
    z = (-torch.rand(2, 5, 7, dtype=torch.float64) * 5).requires_grad_()  # [B, T, C]
    y = torch.randint(0, 7, (2, 5))
    y[0, 1] = y[1, 3] = -1
    rows = fn(z, y, reduction="none", ignore_index=-1)
    assert rows.shape == (2, 5)
    assert rows[0, 1] == 0 and rows[1, 3] == 0
    torch.testing.assert_close(fn(z, y, reduction="sum", ignore_index=-1), rows.sum())
    torch.testing.assert_close(fn(z, y, reduction="mean", ignore_index=-1), rows.sum() / 8)
    flat = fn(z.reshape(10, 7), y.reshape(10), reduction="none", ignore_index=-1)
    torch.testing.assert_close(flat, rows.reshape(10))
    (g,) = torch.autograd.grad(fn(z, y, ignore_index=-1), z)
    assert g[0, 1].abs().max() == 0 and g[1, 3].abs().max() == 0
    everything_ignored = torch.full((2, 5), -1)
    out = fn(z, everything_ignored, ignore_index=-1)  # 0, not NaN as in torch
    assert out == 0
    (g0,) = torch.autograd.grad(out, z)
    assert g0.abs().max() == 0


@pytest.mark.parametrize("fn", [L.tfsd_loss, L.cross_entropy, L.label_smoothing_loss,
                                L.logitnorm_loss, L.zloss_cross_entropy])
def test_low_precision_logits_are_upcast(fn):
    torch.manual_seed(0)
    z = -torch.rand(16, 10) * 4
    y = torch.randint(0, 10, (16,))
    out = fn(z.bfloat16(), y)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fn(z.bfloat16().float(), y))


# ----------------------------------------------------------------------------- CE family vs scipy
@st.composite
def logits_batch(draw):
    n, c = draw(st.integers(1, 6)), draw(st.integers(2, 10))
    z = np.array(draw(st.lists(st.floats(-50, 50), min_size=n * c, max_size=n * c))).reshape(n, c)
    y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return z, y


def _t(z, y):
    return torch.tensor(z, dtype=torch.float64), torch.tensor(y)


@given(logits_batch())
def test_cross_entropy_matches_scipy(batch):
    z, y = batch
    ref = -sp_log_softmax(z, axis=1)[np.arange(len(y)), y]
    np.testing.assert_allclose(L.cross_entropy(*_t(z, y), reduction="none"), ref, rtol=1e-10,
                               atol=1e-12)


@given(logits_batch(), st.floats(0.0, 0.99))
def test_label_smoothing_matches_scipy(batch, eps):
    z, y = batch
    c = z.shape[1]
    t = np.full_like(z, eps / c)
    t[np.arange(len(y)), y] += 1 - eps
    ref = -(t * sp_log_softmax(z, axis=1)).sum(1)
    out = L.label_smoothing_loss(*_t(z, y), smoothing=eps, reduction="none")
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


@given(logits_batch(), st.floats(1e-3, 10.0))
def test_logitnorm_is_cross_entropy_on_normalised_logits(batch, tau):
    z, y = batch
    zn = z / ((np.linalg.norm(z, axis=1, keepdims=True) + 1e-7) * tau)
    ref = -sp_log_softmax(zn, axis=1)[np.arange(len(y)), y]  # includes the log-softmax
    out = L.logitnorm_loss(*_t(z, y), tau=tau, reduction="none")
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-12)
    assert (out >= 0).all()


@given(logits_batch(), st.floats(0.0, 1e-2))
def test_zloss_matches_scipy(batch, coef):
    z, y = batch
    ref = -sp_log_softmax(z, axis=1)[np.arange(len(y)), y] + coef * sp_logsumexp(z, axis=1) ** 2
    out = L.zloss_cross_entropy(*_t(z, y), coef=coef, reduction="none")
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: L.LabelSmoothingLoss(smoothing=1.0), lambda: L.LabelSmoothingLoss(smoothing=-0.1),
    lambda: L.LogitNormLoss(tau=0.0), lambda: L.LogitNormLoss(tau=float("nan")),
    lambda: L.ZLossCrossEntropy(coef=-1.0), lambda: L.TFSDLoss(reduction="avg"),
])
def test_bad_hyperparameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_modules_match_functions():
    torch.manual_seed(0)
    z, y = -torch.rand(6, 5), torch.randint(0, 5, (6,))
    pairs = [(L.TFSDLoss(), L.tfsd_loss), (L.CrossEntropyLoss(), L.cross_entropy),
             (L.LabelSmoothingLoss(0.2), lambda a, b: L.label_smoothing_loss(a, b, 0.2)),
             (L.LogitNormLoss(0.5), lambda a, b: L.logitnorm_loss(a, b, 0.5)),
             (L.ZLossCrossEntropy(1e-3), lambda a, b: L.zloss_cross_entropy(a, b, 1e-3))]
    for module, fn in pairs:
        torch.testing.assert_close(module(z, y), fn(z, y))
