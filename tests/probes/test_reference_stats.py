"""probes.stats against float64 references written from the definitions: entropies and KL
against scipy, histograms against numpy, the radial/tangential gradient split and the
noisy/clean split against per-sample loops, with padding rows and bin edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.special import softmax as sp_softmax
from scipy.stats import entropy as sp_entropy

from probes.stats import (
    COS_EDGES,
    SAMPLE_QUANTILES,
    SYMLOG_EDGES,
    batch_stats,
    entropy_edges,
    grad_stats,
    softmax_entropy,
    target_distribution,
    target_entropy,
)

FAST = settings(max_examples=30, deadline=None)


@st.composite
def rows(draw, max_n=8, max_c=7, low=-40.0):
    n, c = draw(st.integers(1, max_n)), draw(st.integers(2, max_c))
    vals = st.integers(-3, 0).map(float) if draw(st.booleans()) else st.floats(low, 0.0)
    z = np.array(draw(st.lists(vals, min_size=n * c, max_size=n * c))).reshape(n, c)
    y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return z, y


def literal_target(z: np.ndarray, y: np.ndarray, target: str, eps: float) -> np.ndarray:
    """The objectives' targets: softmax with z_y := 0 (TFSD), (1-ε)·onehot + ε/C, onehot."""
    n, c = z.shape
    onehot = np.eye(c)[y]
    if target == "tfsd":
        zp = z.copy()
        zp[np.arange(n), y] = 0.0
        return sp_softmax(zp, axis=1)
    if target == "label_smoothing":
        return (1 - eps) * onehot + eps / c
    return onehot


@FAST
@given(rows(), st.sampled_from(["tfsd", "label_smoothing", "onehot"]), st.floats(0.0, 0.9))
def test_target_distribution_and_entropy_against_scipy(batch, target, eps):
    z, y = batch
    p = literal_target(z, y, target, eps)
    zt, yt = torch.tensor(z), torch.tensor(y)
    np.testing.assert_allclose(target_distribution(zt, yt, target, eps), p, rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_allclose(target_entropy(zt, yt, target, eps), sp_entropy(p, axis=1),
                               rtol=1e-9, atol=1e-12)


@FAST
@given(rows(low=-60.0))
def test_softmax_entropy_anchored_at_the_largest_logit_in_float64(batch):
    """The documented use (anchor = the row's largest logit): H(softmax(z)) to float64
    precision, down to near one-hot rows."""
    z, _ = batch
    got = softmax_entropy(torch.tensor(z), torch.tensor(z.argmax(1)))
    np.testing.assert_allclose(got, sp_entropy(sp_softmax(z, axis=1), axis=1), rtol=1e-9,
                               atol=1e-15)


@FAST
@given(rows(low=-15.0), st.data())
def test_softmax_entropy_with_any_anchor_in_float64(batch, data):
    """Any anchor within 15 of the largest logit gives H(softmax(z)) too. (Further below,
    M = logsumexp_{j≠a}(z_j - z_a) passes 20, where F.softplus(M) returns M and drops
    log1p(e^-M) ~ 2e-9: relative errors ~1e-7; never in the documented use, M <= log(C-1).)"""
    z, _ = batch
    anchor = np.array(data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=len(z),
                                         max_size=len(z))))
    got = softmax_entropy(torch.tensor(z), torch.tensor(anchor))
    np.testing.assert_allclose(got, sp_entropy(sp_softmax(z, axis=1), axis=1), rtol=1e-9,
                               atol=1e-12)


def _hist(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """numpy's bins ([lo, hi), the last closed) on the probes' float32 edges, values outside
    clamped to the end bins."""
    e = edges.astype(np.float32)
    return np.histogram(np.clip(np.asarray(v, np.float32), e[0], e[-1]), e)[0]


def _assert_hist(got: np.ndarray, v: np.ndarray, edges: np.ndarray, tol: float) -> None:
    """Equal counts, except that a value within ``tol`` of an edge (float32 rounding of the
    probe against this float64 reference) may sit on either side of it."""
    want = _hist(v, edges)
    near = int((np.abs(np.asarray(v)[:, None] - edges[None, 1:-1]) < tol).any(1).sum())
    assert got.sum() == want.sum()
    assert np.abs(got - want).sum() <= 2 * near, (got, want)


@FAST
@given(rows(max_n=12), st.sampled_from(["tfsd", "label_smoothing", "onehot"]),
       st.sampled_from(["dot", "euclidean"]), st.integers(0, 2**16))
def test_batch_stats_kl_entropy_and_histograms_with_padding(batch, target, metric, seed):
    z, y = batch
    n, c = z.shape
    g = np.random.default_rng(seed)
    d = 3
    w = g.standard_normal((c, d))
    x = g.standard_normal((n, d)) * 10.0 ** g.uniform(-2, 3, (n, 1))
    x[0] = w[y[0]] * 2.0  # cos exactly +1 (up to rounding) ...
    if n > 1:
        x[1] = -w[y[1]]  # ... and -1: the end bins
    pad = g.random(n) < 0.3
    yp = np.where(pad, -100, y)
    keep = ~pad
    s = {k: v.double().numpy() for k, v in batch_stats(
        torch.tensor(x), torch.tensor(z), torch.tensor(yp), torch.tensor(w), None, metric,
        target, 0.1).items()}
    if not keep.any():  # every row is padding: nothing counted, no NaN
        assert s["n"][0] == 0 and s["entropy.all.kl"][0] == 0
        assert s["health.max_logit"][0] == -np.inf and s["entropy.pred.hist"].sum() == 0
        return
    zk, yk, xk = z[keep], y[keep], x[keep]
    p = literal_target(zk, yk, target, 0.1)
    q = sp_softmax(zk, axis=1)
    kl = rel_entr(p, q).sum(1)
    h_q, h_p = sp_entropy(q, axis=1), sp_entropy(p, axis=1)
    assert s["n"][0] == keep.sum() == s["entropy.all.n"][0]
    assert s["entropy.all.kl"][0] == pytest.approx(kl.sum(), rel=1e-4, abs=1e-4)
    assert s["entropy.all.pred"][0] == pytest.approx(h_q.sum(), rel=1e-4, abs=1e-4)
    assert s["entropy.all.target"][0] == pytest.approx(h_p.sum(), rel=1e-4, abs=1e-4)
    q_y = q[np.arange(len(yk)), yk]
    # easy: q_y >= 0.9, hard: q_y < 0.5; a q_y within float32 rounding of a threshold
    # (e.g. exactly 0.5 from two tied logits) may fall either way
    for group, count in (("easy", lambda t: (q_y >= 0.9 + t).sum()),
                         ("hard", lambda t: (q_y < 0.5 + t).sum())):
        lo, hi = sorted((count(-1e-6), count(1e-6)))
        assert lo <= s[f"entropy.{group}.n"][0] <= hi
    ent = entropy_edges(c)
    _assert_hist(s["entropy.pred.hist"], h_q, ent, 1e-5)
    cos = (xk * w[yk]).sum(1) / (np.linalg.norm(xk, axis=1) * np.linalg.norm(w[yk], axis=1))
    assert s["head.cos_true.hist"].sum() == keep.sum()  # cos = ±1 rows in the end bins
    _assert_hist(s["head.cos_true.hist"], cos, COS_EDGES, 1e-5)
    zy = zk[np.arange(len(yk)), yk]
    neg = zk.copy()
    neg[np.arange(len(yk)), yk] = -np.inf
    gap = zy - neg.max(1)
    name = "head.gap" if metric == "euclidean" else "head.margin"
    _assert_hist(s[f"{name}.hist"], gap, SYMLOG_EDGES, 1e-5 * (1 + np.abs(gap).max()))
    assert s[f"{name}.sum"][0] == pytest.approx(gap.sum(), rel=1e-5, abs=1e-4)
    assert s["health.max_logit"][0] == pytest.approx(zk.max(), rel=1e-6, abs=1e-6)


def test_symlog_and_cos_histograms_at_the_bin_edges():
    """A value exactly on an edge goes to the bin above it, as numpy's [lo, hi) bins."""
    z = torch.tensor([[0.0, -1e-3], [0.0, -1.0], [0.0, -1e5], [0.0, 0.0]])
    y = torch.zeros(4, dtype=torch.long)
    s = batch_stats(torch.ones(4, 1), z, y, torch.ones(2, 1), None, "dot")
    gaps = np.array([1e-3, 1.0, 1e5, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(s["head.margin.hist"].numpy(), _hist(gaps, SYMLOG_EDGES))
    assert s["head.cos_true.hist"][-1] == 4  # cos = 1 exactly: the last bin, closed


@FAST
@given(st.integers(1, 12), st.integers(1, 5), st.integers(0, 2**16), st.booleans(),
       st.booleans())
def test_grad_stats_against_per_sample_loops(n, d, seed, with_keep, with_noisy):
    g_ = np.random.default_rng(seed)
    grad = g_.standard_normal((n, d)) * 10.0 ** g_.uniform(-3, 2, (n, 1))
    x = g_.standard_normal((n, d))
    x[0] = grad[0] * -3.0  # a purely radial gradient: no tangential part
    keep = g_.random(n) < 0.7 if with_keep else np.ones(n, bool)
    noisy = g_.random(n) < 0.4 if with_noisy else None
    scale = float(g_.integers(1, 9))
    got = {k: v.double().numpy() for k, v in grad_stats(
        torch.tensor(grad), torch.tensor(x), scale, torch.tensor(keep) if with_keep else None,
        None if noisy is None else torch.tensor(noisy)).items()}
    radial, tangential, norms = [], [], []
    for i in np.flatnonzero(keep):
        gi = grad[i] * scale
        xhat = x[i] / np.linalg.norm(x[i])
        r = float(gi @ xhat)
        radial.append(r)
        tangential.append(float(np.linalg.norm(gi - r * xhat)))
        norms.append(float(np.linalg.norm(gi)))
    radial, tangential, norms = map(np.array, (radial, tangential, norms))
    tol = dict(rel=1e-4, abs=1e-5 * (1 + (norms.max() if len(norms) else 0)))
    # g_t = sqrt(|g|² - g_r²) in float32 cancels for a nearly radial g: an absolute error up
    # to ~sqrt(2·eps32)·|g| per sample (a precision limit of the probe, not of this test)
    tol_t = dict(rel=1e-4, abs=1e-5 + 1e-3 * norms.sum())
    assert got["grad.n"][0] == keep.sum()
    assert got["grad.radial_abs.sum"][0] == pytest.approx(np.abs(radial).sum(), **tol)
    assert got["grad.radial_signed.sum"][0] == pytest.approx(radial.sum(), **tol)
    assert got["grad.tangential.sum"][0] == pytest.approx(tangential.sum(), **tol_t)
    assert got["grad.total_sq.sum"][0] == pytest.approx((norms ** 2).sum(), rel=1e-4)
    if keep.any():
        assert got["grad.sample_norm.max"][0] == pytest.approx(norms.max(), rel=1e-5)
        np.testing.assert_allclose(got["grad.sample_norm.quantiles"],
                                   np.quantile(norms, SAMPLE_QUANTILES), rtol=1e-5)
    else:
        assert np.isnan(got["grad.sample_norm.quantiles"]).all()
    kept_noisy = (noisy[keep] if noisy is not None else np.zeros(0, bool))
    if noisy is None:
        assert got["grad.noisy.n"][0] == got["grad.clean.n"][0] == 0
    else:
        assert got["grad.noisy.n"][0] == kept_noisy.sum()
        assert got["grad.clean.n"][0] == (~kept_noisy).sum()
        assert got["grad.noisy.norm.sum"][0] == pytest.approx(norms[kept_noisy].sum(), **tol)
        assert got["grad.clean.norm.sum"][0] == pytest.approx(norms[~kept_noisy].sum(), **tol)


def test_grad_stats_purely_radial_gradient_has_no_tangential_part():
    """g = c·x: g_t = sqrt(|g|² - g_r²) is 0 up to float64 rounding (float32 read 1.4e-4·|g|)."""
    g = np.random.default_rng(3)
    x = torch.tensor(g.standard_normal((256, 64)) * 7.0, dtype=torch.float32)
    grad = x * torch.tensor(g.uniform(-2, 2, (256, 1)), dtype=torch.float32)
    s = grad_stats(grad, x)
    total = float(torch.linalg.vector_norm(grad.double(), dim=1).sum())
    assert float(s["grad.tangential.sum"][0]) < 1e-6 * total
    assert float(s["grad.radial_abs.sum"][0]) == pytest.approx(total, rel=1e-6)
