"""Projection formulas against scipy/sklearn: the orthogonal Procrustes turn of
fast_aligned_umap (scipy.linalg.orthogonal_procrustes), and the joint PCA of class vectors
(sklearn's PCA on every run and step stacked)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA

import geomviz.projection as P
from geomviz.class_vectors import _pca


@dataclass
class _Layout:
    """Stands in for Snapshots: its "features" are the layout the patched UMAP returns."""

    emb: np.ndarray

    def load_features(self) -> np.ndarray:
        return self.emb


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.integers(3, 30), st.integers(1, 4), st.booleans())
def test_runs_are_turned_by_scipys_orthogonal_procrustes(seed, n, steps, reflect):
    g = np.random.default_rng(seed)
    a = g.standard_normal((steps, n, 2)).astype(np.float32)
    theta = g.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    if reflect:
        rot = rot @ np.diag([1.0, -1.0])
    noise = 0.1 * g.standard_normal((steps, n, 2))
    b = ((a + noise) @ rot.T + g.uniform(-5, 5, 2)).astype(np.float32)  # turned, moved
    other = g.standard_normal((steps, n + 1, 2)).astype(np.float32)  # other probe set

    out = _aligned([a, b, other])
    np.testing.assert_array_equal(out[0], a)
    np.testing.assert_array_equal(out[2], other)  # nothing to align on: left as it is
    ref_last = a[-1].astype(np.float64) - a[-1].mean(0)
    last = b[-1].astype(np.float64) - b[-1].mean(0)
    r, _ = orthogonal_procrustes(last, ref_last)  # argmin_R ||last·R - ref||, R orthogonal
    want = (b - b[-1].mean(0)) @ r  # turned about the centre of its last step
    got = out[1] - out[1][-1].mean(0)  # (where the centre goes: the test below)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the turn undoes the rotation (and a reflection) up to the noise
    assert np.abs(got[-1] - ref_last).mean() < 0.5


def _aligned(layouts: list[np.ndarray]) -> list[np.ndarray]:
    """fast_aligned_umap with UMAP replaced by the given layouts."""
    mp = pytest.MonkeyPatch()
    mp.setattr(P, "_warm_umap", lambda features, *args: features)
    try:
        return P.fast_aligned_umap([_Layout(e) for e in layouts], threads=1)
    finally:
        mp.undo()


def test_an_identical_second_run_is_left_where_the_first_is():
    a = np.random.default_rng(0).standard_normal((2, 10, 2)).astype(np.float32) + 5.0
    out = _aligned([a, a.copy()])
    np.testing.assert_allclose(out[1], out[0], atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 3), st.integers(2, 4), st.integers(3, 6))
def test_class_vector_pca_is_sklearns_pca_of_every_run_and_step(seed, runs, steps, d):
    g = np.random.default_rng(seed)
    k = 5
    scales = np.linspace(3.0, 0.5, d)  # distinct variances: a well-defined plane
    stacks = [(g.standard_normal((steps, k, d)) * scales + g.standard_normal(d)).astype(
        np.float32) for _ in range(runs)]
    out = _pca(stacks)
    flat = np.concatenate([s.reshape(-1, d) for s in stacks]).astype(np.float64)
    pca = PCA(2, svd_solver="full").fit(flat)
    basis = pca.components_
    sign = np.sign(basis[np.arange(2), np.abs(basis).argmax(1)])  # largest loading positive
    for s, o in zip(stacks, out, strict=True):
        want = (s.reshape(-1, d).astype(np.float64) - pca.mean_) @ (basis * sign[:, None]).T
        assert o.shape == (steps, k, 2)
        np.testing.assert_allclose(o.reshape(-1, 2), want, rtol=1e-4, atol=1e-4)
