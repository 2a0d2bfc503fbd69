"""Flush summaries against float64 statistics of the pooled samples of two batches (means,
standard deviations, group entropies, the radial gradient fraction), and the Shapley split
against the literal definition: the marginal contribution averaged over all 3! orders."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax as sp_softmax
from scipy.stats import entropy as sp_entropy

from probes.stats import GRAD_FIELDS, batch_stats, grad_stats, layout
from probes.summary import shapley3, summarize


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=6, max_size=6))
def test_shapley3_is_the_average_marginal_contribution_over_all_orders(v):
    f0, f1 = v[:3], v[3:]
    prod = lambda f: f[0] * f[1] * f[2]  # noqa: E731
    want = [0.0, 0.0, 0.0]
    orders = list(itertools.permutations(range(3)))
    for order in orders:  # switch the factors from f0 to f1 in this order
        cur = list(f0)
        for i in order:
            before = prod(cur)
            cur[i] = f1[i]
            want[i] += (prod(cur) - before) / len(orders)
    assert shapley3(tuple(f0), tuple(f1)) == pytest.approx(want, rel=1e-9, abs=1e-12)


def _aggregate(parts: list[dict[str, torch.Tensor]], fields) -> dict[str, np.ndarray]:
    """What a flush does: "sum" fields add, "max" take the maximum, "local" the last batch's."""
    out = {}
    for f in fields:
        vals = [p[f.name].double().numpy() for p in parts]
        out[f.name] = (np.sum(vals, 0) if f.kind == "sum" else np.max(vals, 0)
                       if f.kind == "max" else vals[-1])
    return out


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["dot", "euclidean"]))
def test_summary_of_two_batches_equals_pooled_float64_statistics(seed, metric):
    g = np.random.default_rng(seed)
    c, d = 4, 3
    w = g.standard_normal((c, d))
    batches, pooled = [], {"x": [], "z": [], "y": [], "g": [], "noisy": []}
    for _ in range(2):
        n = int(g.integers(3, 9))
        x = g.standard_normal((n, d)) * 3
        z = -np.abs(g.standard_normal((n, c))) * 4
        y = np.where(g.random(n) < 0.25, -100, g.integers(0, c, n))
        grad = g.standard_normal((n, d))
        noisy = g.random(n) < 0.5
        keep = y != -100
        s = batch_stats(torch.tensor(x), torch.tensor(z), torch.tensor(y), torch.tensor(w), None,
                        metric, "tfsd")
        s.update(grad_stats(torch.tensor(grad), torch.tensor(x), 1.0, torch.tensor(keep),
                            torch.tensor(noisy)))
        batches.append(s)
        for k, v in (("x", x), ("z", z), ("y", y), ("g", grad), ("noisy", noisy)):
            pooled[k].append(v[keep])
    p = {k: np.concatenate(v) for k, v in pooled.items()}
    if not len(p["y"]):
        return
    agg = _aggregate(batches, layout(metric, c) + GRAD_FIELDS)
    scal, _, arrays = summarize(agg, metric)
    r = np.linalg.norm(p["x"], axis=1)
    cos = (p["x"] * w[p["y"]]).sum(1) / (r * np.linalg.norm(w[p["y"]], axis=1))
    assert scal["penultimate.norm.mean"] == pytest.approx(r.mean(), rel=1e-5)
    # std = sqrt(E r² - (E r)²) from float64 sums of float32 norms (tightly spread norms:
    # the test below)
    assert scal["penultimate.norm.std"] == pytest.approx(r.std(), rel=1e-3, abs=1e-3 * r.mean())
    assert scal["penultimate.norm.max"] == pytest.approx(r.max(), rel=1e-6)
    assert scal["head.cos_true.mean"] == pytest.approx(cos.mean(), rel=1e-4, abs=1e-5)
    assert scal["head.cos_true.std"] == pytest.approx(cos.std(), rel=1e-3, abs=1e-3)
    q = sp_softmax(p["z"], axis=1)
    q_y = q[np.arange(len(p["y"])), p["y"]]
    h_q = sp_entropy(q, axis=1)
    for group, m in (("all", np.ones(len(q_y), bool)), ("easy", q_y >= 0.9),
                     ("hard", q_y < 0.5)):
        assert scal[f"entropy.{group}.fraction"] == pytest.approx(m.mean())
        if m.any():
            assert scal[f"entropy.{group}.pred"] == pytest.approx(h_q[m].mean(), rel=1e-4)
        else:
            assert np.isnan(scal[f"entropy.{group}.pred"])
    xh = p["x"] / r[:, None]
    gr = (p["g"] * xh).sum(1)
    assert scal["grad.radial_fraction"] == pytest.approx((gr ** 2).sum() / (p["g"] ** 2).sum(),
                                                         rel=1e-4)
    assert scal["grad.radial.mean"] == pytest.approx(np.abs(gr).mean(), rel=1e-4)
    norms = np.linalg.norm(p["g"], axis=1)
    for part, m in (("noisy", p["noisy"]), ("clean", ~p["noisy"])):
        if m.any():
            assert scal[f"grad.{part}.norm.mean"] == pytest.approx(norms[m].mean(), rel=1e-4)
        else:
            assert f"grad.{part}.norm.mean" not in scal
    per_class = [r[p["y"] == k].mean() if (p["y"] == k).any() else np.nan for k in range(c)]
    np.testing.assert_allclose(arrays["penultimate.norm.per_class"], per_class, rtol=1e-5)


def test_norm_std_of_tightly_spread_norms_is_accurate():
    g = np.random.default_rng(0)
    n, d, c = 4096, 64, 5
    u = g.standard_normal((n, d))
    r = 16 + 0.01 * g.standard_normal(n)
    x = u / np.linalg.norm(u, axis=1, keepdims=True) * r[:, None]
    s = batch_stats(torch.tensor(x, dtype=torch.float32), -torch.rand(n, c),
                    torch.tensor(g.integers(0, c, n)), torch.randn(c, d), None, "dot")
    scal, _, _ = summarize({k: v.double().numpy() for k, v in s.items()}, "dot")
    assert scal["penultimate.norm.std"] == pytest.approx(r.std(), rel=0.02)
