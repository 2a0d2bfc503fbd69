"""Probe statistics against float64 recomputation from raw tensors, and autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geomviz.objectives.heads import EuclideanHead, LinearHead
from geomviz.objectives.losses import label_smoothing_loss, tfsd_loss
from probes.stats import NORM_EDGES, QUANTILES, batch_stats, grad_stats, layout
from probes.summary import decompose, shapley3, summarize


def _batch(metric, seed=0, n=64, d=8, c=5, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * spread
    y = torch.randint(0, c, (n,), generator=g)
    head = (EuclideanHead(d, c, scale=0.3) if metric == "euclidean" else LinearHead(d, c)).double()
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return x, y, head


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
@pytest.mark.parametrize("target", ["onehot", "tfsd", "label_smoothing"])
def test_batch_stats_match_float64_recomputation(metric, target):
    x, y, head = _batch(metric)
    z = head(x).detach()
    if target == "tfsd" and metric == "dot":
        z = -z.abs()  # TFSD targets need logits <= 0
    bias = getattr(head, "bias", None)
    s = {k: v.double().numpy() for k, v in batch_stats(
        x, z, y, head.class_vectors.detach(), None if bias is None else bias.detach(), metric,
        target, 0.2).items()}
    fields = layout(metric, 5)
    assert [f.name for f in fields] == list(s) and all(s[f.name].size == f.size for f in fields)
    xn, zn, yn, w = x.numpy(), z.numpy(), y.numpy(), head.class_vectors.detach().numpy()
    r = np.linalg.norm(xn, axis=1)
    a = np.linalg.norm(w[yn], axis=1)
    cos = (xn * w[yn]).sum(1) / (r * a)
    n = len(yn)
    assert s["n"][0] == n and s["penultimate.norm.hist"].sum() == n
    assert s["head.cos_true.hist"].sum() == n and s["entropy.pred.hist"].sum() == n
    assert s["penultimate.norm.sum"][0] == pytest.approx(r.sum(), rel=1e-5)
    assert s["penultimate.norm.quantiles"] == pytest.approx(np.quantile(r, QUANTILES), rel=1e-5)
    assert s["head.cos_true.sum"][0] == pytest.approx(cos.sum(), rel=1e-5, abs=1e-5)
    counts, _ = np.histogram(np.clip(r, 0, NORM_EDGES[-1] - 1e-9), NORM_EDGES)
    assert s["penultimate.norm.hist"].tolist() == counts.tolist()
    per_class = np.array([r[yn == k].sum() for k in range(5)])
    assert s["penultimate.norm.class_sum"] == pytest.approx(per_class, rel=1e-5)
    zy = zn[np.arange(n), yn]
    neg = zn.copy()
    neg[np.arange(n), yn] = -np.inf
    top = neg.max(1)
    first = "head.anchor_gap" if metric == "euclidean" else "head.logit_true"
    assert s[f"{first}.sum"][0] == pytest.approx((-zy if metric == "euclidean" else zy).sum(),
                                                 rel=1e-5)
    margin = "head.gap" if metric == "euclidean" else "head.margin"
    assert s[f"{margin}.sum"][0] == pytest.approx((zy - top).sum(), rel=1e-5, abs=1e-4)
    # H(q) and, through the losses, KL(p || q) against independent implementations
    logq = torch.log_softmax(z, 1).numpy()
    assert s["entropy.all.pred"][0] == pytest.approx(-(np.exp(logq) * logq).sum(), rel=1e-5)
    if target == "tfsd":
        kl = tfsd_loss(z, y, reduction="sum").item()
    elif target == "label_smoothing":  # CE(p, q) - H(p) = KL(p || q)
        kl = label_smoothing_loss(z, y, 0.2, reduction="sum").item() - s["entropy.all.target"][0]
    else:
        kl = -logq[np.arange(n), yn].sum()
        assert s["entropy.all.target"][0] == 0
    assert s["entropy.all.kl"][0] == pytest.approx(kl, rel=1e-4, abs=1e-4)
    q_y = np.exp(logq[np.arange(n), yn])
    assert s["entropy.easy.n"][0] == (q_y >= 0.9).sum()
    assert s["entropy.hard.n"][0] == (q_y < 0.5).sum()


def test_label_smoothing_target_entropy_is_the_smoothed_distribution():
    z = torch.zeros(3, 4)
    s = batch_stats(torch.ones(3, 2), z, torch.tensor([0, 1, 2]), torch.ones(4, 2), None, "dot",
                    "label_smoothing", 0.2)
    p = np.array([0.8 + 0.05, 0.05, 0.05, 0.05])
    assert s["entropy.all.target"].item() / 3 == pytest.approx(-(p * np.log(p)).sum(), rel=1e-6)


def test_gradient_split_matches_autograd_on_a_tiny_model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh()).double()
    head = LinearHead(4, 3).double()
    inp, y = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 3, (10,))
    feats = net(inp)
    feats.retain_grad()
    torch.nn.functional.cross_entropy(head(feats), y).backward()
    got = {k: v.item() for k, v in grad_stats(feats.grad, feats.detach(), 10.0).items()
           if v.numel() == 1}
    # per-sample gradient of each sample's own loss, by autograd, in float64
    rows = []
    for i in range(10):
        f = feats[i : i + 1].detach().requires_grad_()
        (gi,) = torch.autograd.grad(torch.nn.functional.cross_entropy(head(f), y[i : i + 1]), f)
        rows.append(gi[0])
    g = torch.stack(rows).numpy()
    xh = feats.detach().numpy() / np.linalg.norm(feats.detach().numpy(), axis=1, keepdims=True)
    gr = (g * xh).sum(1)
    gt = np.linalg.norm(g - gr[:, None] * xh, axis=1)
    # the probes accumulate in fp32 on the device: fp32 tolerances
    assert got["grad.radial_abs.sum"] == pytest.approx(np.abs(gr).sum(), rel=1e-5)
    assert got["grad.radial_signed.sum"] == pytest.approx(gr.sum(), rel=1e-5, abs=1e-6)
    assert got["grad.tangential.sum"] == pytest.approx(gt.sum(), rel=1e-5)
    assert got["grad.radial_sq.sum"] / got["grad.total_sq.sum"] == pytest.approx(
        (gr**2).sum() / (g**2).sum(), rel=1e-5)


@given(st.lists(st.floats(0.1, 10.0), min_size=6, max_size=6))
def test_shapley_parts_sum_to_the_change(v):
    f0, f1 = tuple(v[:3]), tuple(v[3:])
    parts = shapley3(f0, f1)
    assert sum(parts) == pytest.approx(f1[0] * f1[1] * f1[2] - f0[0] * f0[1] * f0[2],
                                       rel=1e-9, abs=1e-9)
    assert shapley3(f0, f0) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_decomposition_is_exact_against_the_raw_logits(metric):
    x0, y0, head = _batch(metric, seed=1)
    x1, y1, _ = _batch(metric, seed=2)
    x1 = x1 * 1.7  # a radial change, plus different samples
    aggs, means = [], []
    for x, y in ((x0, y0), (x1, y1)):
        z = head(x).detach()
        bias = getattr(head, "bias", None)
        s = batch_stats(x, z, y, head.class_vectors.detach(),
                        None if bias is None else bias.detach(), metric)
        aggs.append({k: float(v.double().sum()) for k, v in s.items() if v.numel() == 1})
        means.append(z.gather(1, y[:, None]).mean().item())
    parts = decompose(aggs[0], aggs[1], metric, head.scale)
    assert parts["radial"] + parts["angular"] + parts["weight"] + parts["bias"] == \
        pytest.approx(parts["total"], rel=1e-12)
    assert parts["total"] == pytest.approx(means[1] - means[0], rel=1e-5)


def test_summary_histograms_and_per_class_norms():
    x, y, head = _batch("euclidean")
    s = batch_stats(x, head(x).detach(), y, head.centers.detach(), None, "euclidean")
    scalars, hists, arrays = summarize({k: v.double().numpy() for k, v in s.items()}, "euclidean",
                                       np.ones(5))
    r = x.norm(dim=1).numpy()
    assert scalars["penultimate.norm.mean"] == pytest.approx(r.mean(), rel=1e-5)
    assert scalars["penultimate.norm.std"] == pytest.approx(r.std(), rel=1e-4)
    assert all(c.sum() == len(y) for c, _ in hists.values())
    expect = [r[y.numpy() == k].mean() for k in range(5)]
    assert arrays["penultimate.norm.per_class"] == pytest.approx(expect, rel=1e-5)


# ----------------------------------------------------------------------------- exact entropies
def _literal_entropy_f64(z: torch.Tensor) -> torch.Tensor:
    """-Σ q log q of softmax(z) per row, by the literal definition in 60-digit decimal
    arithmetic (float64 itself rounds 1 + 1e-15 and loses the anchor's term)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 60
    out = []
    for row in z.double().tolist():
        e = [Decimal(v).exp() for v in row]
        s = sum(e)
        out.append(float(-sum((x / s) * (x / s).ln() for x in e if x > 0)))
    return torch.tensor(out, dtype=torch.float64)


@given(st.lists(st.floats(-300.0, 0.0), min_size=2, max_size=12),
       st.floats(1.0, 60.0))
def test_softmax_entropy_in_float32_matches_float64_literal(tail, gap):
    from probes.stats import softmax_entropy

    # an anchor `gap` logits above the rest: from nearly one-hot (easy samples) to flat
    z64 = torch.tensor([[0.0] + [t - gap for t in tail]], dtype=torch.float64)
    want = _literal_entropy_f64(z64)
    got = softmax_entropy(z64.float(), torch.zeros(1, dtype=torch.long)).double()
    assert torch.allclose(got, want, rtol=2e-5, atol=1e-37)


def test_easy_sample_entropy_is_not_lost_to_rounding():
    """p_y rounds to 1 in float32, but the entropy (~1e-6 nats here) is kept exactly."""
    from probes.stats import target_entropy

    z = torch.tensor([[-30.0, -18.0, -20.0, -25.0]])
    y = torch.tensor([0])
    want = _literal_entropy_f64(z.double().scatter(1, y[:, None], 0.0))
    naive_p = torch.softmax(z.scatter(1, y[:, None], 0.0), 1)
    naive = -torch.special.xlogy(naive_p, naive_p).sum(1)
    got = target_entropy(z, y, "tfsd", 0.0)
    assert abs(float(got) / float(want) - 1) < 1e-5
    assert abs(float(naive) / float(want) - 1) > 1e-3  # what the old form lost


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_ignored_positions_count_nowhere(metric):
    """Stats with padded (-100) rows equal the stats of the kept rows alone."""
    x, y, head = _batch(metric, n=40)
    z = head(x).detach()
    if metric == "dot":
        z = -z.abs()
    pad = y.clone()
    pad[::3] = -100
    keep = pad != -100
    bias = getattr(head, "bias", None)
    b = None if bias is None else bias.detach()
    v = head.class_vectors.detach()
    full = batch_stats(x, z, pad, v, b, metric, "tfsd", 0.0)
    kept = batch_stats(x[keep], z[keep], y[keep], v, b, metric, "tfsd", 0.0)
    for k in full:
        assert torch.allclose(full[k], kept[k], rtol=1e-5, atol=1e-6), k
    g = torch.randn_like(x)
    gs_full = grad_stats(g, x, keep.sum().float(), keep)
    gs_kept = grad_stats(g[keep], x[keep], float(keep.sum()))
    for k in gs_full:
        assert torch.allclose(gs_full[k], gs_kept[k], rtol=1e-5), k


def _tfsd_target_entropy_f64(gap: float, c: int) -> float:
    """Analytic H of softmax([0, -gap, ..., -gap]) (C - 1 classes at -gap), in float64:
    with k e = (C-1) e^-gap, H = log1p(k e) + gap k e / (1 + k e)."""
    import math

    ke = (c - 1) * math.exp(-gap)
    return math.log1p(ke) + gap * ke / (1 + ke)


@pytest.mark.parametrize("gap", [30.0, 104.0, 125.0, 300.0])
def test_tfsd_target_entropy_survives_float32_underflow(gap):
    """Issue 25 row 14: at anchor gaps near 125 every off-target e^z is below float32's
    smallest number, and TFSD's entropy.all.target was stored as exactly 0.0 (while the
    float64 entropy.synonym.target read 1.2e-54). Every entropy is now float64."""
    from probes.stats import softmax_entropy, target_entropy

    c, n = 256, 3
    z = torch.full((n, c), -gap)  # Euclidean logits, float32 as the probes receive them
    y = torch.tensor([0, 5, 255])
    z[torch.arange(n), y] = -1.0  # the true class's own distance: the zero anchor resets it
    want = _tfsd_target_entropy_f64(gap, c)
    assert want > 0
    got = target_entropy(z, y, "tfsd", 0.0)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    zt = z.scatter(1, y[:, None], 0.0)
    np.testing.assert_allclose(softmax_entropy(zt, y).numpy(), want, rtol=1e-12)
    s = batch_stats(torch.ones(n, 2), z, y, torch.ones(c, 2), None, "euclidean", "tfsd", 0.0)
    np.testing.assert_allclose(s["entropy.all.target"].item() / n, want, rtol=1e-12)
    assert s["entropy.all.target"].item() > 0


def _log_softmax_f64(z: np.ndarray, a: int) -> np.ndarray:
    """log softmax of one float64 row, literally, with the anchor ``a`` (the largest logit)
    kept exact: log p_a = -log1p(sum_{j != a} e^(z_j - z_a)) (a plain logsumexp rounds
    1 + 1e-26 to 1 and loses the anchor's term, as scipy's entr(p) does with p_a = 1)."""
    u = z - z[a]
    total = np.log1p(np.exp(np.delete(u, a)).sum())
    return u - total


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(60.0, 700.0), min_size=2, max_size=40), st.integers(0, 39))
def test_exact_entropies_match_a_float64_literal_reference(offsets, anchor):
    """H(softmax(z)) and TFSD's H(p) and KL(p || q) against -sum p log p and
    sum p (log p - log q) on float64 log-probabilities (0 log 0 = 0), for rows whose
    off-anchor mass is anywhere from e^-60 to e^-700."""
    from probes.stats import row_stats, softmax_entropy

    c = len(offsets) + 1
    a = anchor % c
    # float32-exact logits (the probes cast logits to float32), the anchor at 0
    z64 = np.insert(-np.asarray(offsets, np.float32), a, 0.0).astype(np.float64)
    logp = _log_softmax_f64(z64, a)
    want_h = float(-(np.exp(logp) * logp).sum())
    assert want_h > 0
    got = softmax_entropy(torch.tensor(z64[None]), torch.tensor([a]))
    assert float(got) == pytest.approx(want_h, rel=1e-9, abs=0.0)
    z = z64.copy()
    z[a] = -3.0  # TFSD's logits: the zero anchor resets the true class's to 0, giving z64
    logq = _log_softmax_f64(z, a)
    want_kl = float((np.exp(logp) * (logp - logq)).sum())
    rows = row_stats(torch.ones(1, 2), torch.tensor(z[None]), torch.tensor([a]),
                     torch.ones(c, 2), None, "euclidean", "tfsd", 0.0)
    assert float(rows["h_target"]) == pytest.approx(want_h, rel=1e-9, abs=0.0)
    assert float(rows["kl"]) == pytest.approx(want_kl, rel=1e-9, abs=1e-300)
