"""Every loss's reductions and ignore_index against per-row references (scipy's log-softmax,
the literal TFSD KL), reduced by hand, over random shapes [*, C], ignore masks and targets;
and the analytic TFSD gradient q - p against autograd of the KL with p detached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import logsumexp as sp_logsumexp
from scipy.special import softmax as sp_softmax

from geomviz.objectives import losses as L


def _rows_tfsd(z, y):
    zp = z.copy()
    zp[np.arange(len(y)), y] = 0.0
    p = sp_softmax(zp, axis=1)
    return (p * (np.log(np.where(p > 0, p, 1.0)) - sp_log_softmax(z, axis=1))).sum(1)


def _rows_ce(z, y):
    return -sp_log_softmax(z, axis=1)[np.arange(len(y)), y]


def _rows_ls(z, y, eps=0.15):
    t = np.full_like(z, eps / z.shape[1])
    t[np.arange(len(y)), y] += 1 - eps
    return -(t * sp_log_softmax(z, axis=1)).sum(1)


def _rows_logitnorm(z, y, tau=0.3):
    return _rows_ce(z / ((np.linalg.norm(z, axis=1, keepdims=True) + 1e-7) * tau), y)


def _rows_zloss(z, y, coef=3e-3):
    return _rows_ce(z, y) + coef * sp_logsumexp(z, axis=1) ** 2


CASES = {
    "tfsd": (L.tfsd_loss, {}, _rows_tfsd),
    "ce": (L.cross_entropy, {}, _rows_ce),
    "label_smoothing": (L.label_smoothing_loss, {"smoothing": 0.15}, _rows_ls),
    "logitnorm": (L.logitnorm_loss, {"tau": 0.3}, _rows_logitnorm),
    "zloss": (L.zloss_cross_entropy, {"coef": 3e-3}, _rows_zloss),
}


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(CASES)), st.lists(st.integers(1, 4), min_size=0, max_size=2),
       st.integers(2, 7), st.integers(0, 2**16), st.sampled_from([-100, -1, 3]))
def test_reductions_and_ignore_index_against_per_row_references(name, lead, c, seed,
                                                                 ignore):
    fn, kw, ref_rows = CASES[name]
    g = np.random.default_rng(seed)
    shape = (*lead, c)
    z = -np.abs(g.standard_normal(shape)) * 10.0 ** g.uniform(-1, 2)  # <= 0: valid for TFSD
    y = g.integers(0, c, tuple(lead))
    y = np.where(g.random(tuple(lead)) < 0.3, ignore, y)
    keep = (y != ignore).reshape(-1)
    flat_z, flat_y = z.reshape(-1, c), y.reshape(-1)
    rows = np.zeros(len(flat_y))
    if keep.any():
        rows[keep] = ref_rows(flat_z[keep], flat_y[keep])
    zt, yt = torch.tensor(z), torch.tensor(y)
    none = fn(zt, yt, reduction="none", ignore_index=ignore, **kw)
    assert none.shape == tuple(lead)
    np.testing.assert_allclose(none.numpy().reshape(-1), rows, rtol=1e-9, atol=1e-12)
    assert float(fn(zt, yt, reduction="sum", ignore_index=ignore, **kw)) == pytest.approx(
        rows.sum(), rel=1e-9, abs=1e-12)
    mean = rows.sum() / keep.sum() if keep.any() else 0.0
    assert float(fn(zt, yt, reduction="mean", ignore_index=ignore, **kw)) == pytest.approx(
        mean, rel=1e-9, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(2, 8), st.integers(0, 2**16), st.floats(0.01, 300.0))
def test_tfsd_gradient_is_q_minus_p_and_autograd_of_the_detached_kl(n, c, seed, spread):
    g = torch.Generator().manual_seed(seed)
    z = -(torch.rand(n, c, generator=g, dtype=torch.float64) * spread)
    y = torch.randint(0, c, (n,), generator=g)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    zr = z.clone().requires_grad_()
    (grad,) = torch.autograd.grad((L.tfsd_loss(zr, y, reduction="none") * w).sum(), zr)
    zp = z.clone()
    zp[torch.arange(n), y] = 0.0
    p = torch.softmax(zp, 1)  # the target, a constant
    q = torch.softmax(z, 1)
    torch.testing.assert_close(grad, w[:, None] * (q - p), rtol=1e-9, atol=1e-13)
    za = z.clone().requires_grad_()
    kl = (torch.special.xlogy(p, p) - p * torch.log_softmax(za, 1)).sum(1)
    (auto,) = torch.autograd.grad((kl * w).sum(), za)
    torch.testing.assert_close(grad, auto, rtol=1e-9, atol=1e-13)
