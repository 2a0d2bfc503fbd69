"""Snapshot geometry (radius, angle to the true class vector, anchor / nearest negative,
margin, entropies) against float64 recomputation from the stored fp16 features, with OOD rows
(label -1: geometry against the predicted class)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax as sp_softmax
from scipy.stats import entropy as sp_entropy

from probes.snapshots import snapshot_arrays


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 20), st.integers(2, 6), st.integers(1, 5), st.integers(0, 2**16),
       st.sampled_from(["dot", "euclidean"]), st.sampled_from(["onehot", "tfsd",
                                                               "label_smoothing"]))
def test_snapshot_geometry_against_float64_recomputation(n, c, d, seed, metric, target):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d)) * 10.0 ** g.uniform(-1, 2)
    w = g.standard_normal((c, d))
    z = -np.abs(g.standard_normal((n, c))) * 5  # <= 0 so the TFSD target is defined
    labels = np.where(g.random(n) < 0.3, -1, g.integers(0, c, n))
    arr = snapshot_arrays(torch.tensor(x, dtype=torch.float32), torch.tensor(z),
                          torch.tensor(labels), torch.tensor(w), metric, target, 0.2)
    xs = arr["features"].astype(np.float64)  # what is stored: the geometry is of these
    np.testing.assert_array_equal(arr["features"], x.astype(np.float32).astype(np.float16))
    z32 = z.astype(np.float32).astype(np.float64)
    y = np.where(labels >= 0, labels, z32.argmax(1))  # OOD: against the predicted class
    r = np.linalg.norm(xs, axis=1)
    cos = (xs * w[y]).sum(1) / np.maximum(r * np.linalg.norm(w[y], axis=1), 1e-12)
    np.testing.assert_allclose(arr["norm"], r, rtol=1e-6)
    np.testing.assert_allclose(arr["cos_true"], cos, rtol=1e-5, atol=1e-6)
    zy = z32[np.arange(n), y]
    neg = z32.copy()
    neg[np.arange(n), y] = -np.inf
    top = neg.max(1)
    sign = -1.0 if metric == "euclidean" else 1.0  # Euclidean: s·d_y and s·min_{j≠y} d_j
    np.testing.assert_allclose(arr["true"], sign * zy, rtol=1e-6)
    np.testing.assert_allclose(arr["top_negative"], sign * top, rtol=1e-6)
    np.testing.assert_allclose(arr["margin"], zy - top, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(arr["entropy_pred"], sp_entropy(sp_softmax(z32, axis=1), axis=1),
                               rtol=1e-5, atol=1e-6)
    if target == "tfsd":
        zp = z32.copy()
        zp[np.arange(n), y] = 0.0
        p = sp_softmax(zp, axis=1)
    else:
        eps = 0.2 if target == "label_smoothing" else 0.0
        p = np.full((n, c), eps / c)
        p[np.arange(n), y] += 1 - eps
    np.testing.assert_allclose(arr["entropy_target"], sp_entropy(p, axis=1), rtol=1e-5,
                               atol=1e-6)
    assert "logits" in arr and "logits" not in snapshot_arrays(
        torch.tensor(x, dtype=torch.float32), torch.tensor(z), torch.tensor(labels),
        torch.tensor(w), metric, keep_logits=False)
