"""Projections: joint PCA against sklearn, the polar view, AlignedUMAP, and the cache."""

from __future__ import annotations

import numpy as np
import pytest

import geomviz.projection as P
from geomviz.store import RunWriter


def _fake_run(folder, steps=(0, 10, 20), n=60, d=6, scale=1.0, seed=0):
    g = np.random.default_rng(seed)
    w = RunWriter(folder, {})
    labels = g.integers(-1, 3, n)
    w.array(0, "snapshot.labels", labels)
    base = g.standard_normal((n, d))
    for t, s in enumerate(steps):
        f = (base * scale * (1 + t) + g.standard_normal((n, d)) * 0.1).astype(np.float16)
        w.array(s, "snapshot.features", f)
        w.array(s, "snapshot.norm", np.linalg.norm(f.astype(np.float32), axis=1))
        w.array(s, "snapshot.cos_true", np.clip(g.standard_normal(n) * 0.3, -1, 1))
    w.close()
    return folder


def test_joint_pca_matches_sklearn_on_all_runs_and_steps(tmp_path):
    from sklearn.decomposition import PCA

    a = _fake_run(tmp_path / "a", seed=0)
    b = _fake_run(tmp_path / "b", scale=3.0, seed=1)
    snaps = [P.load_snapshots(a), P.load_snapshots(b)]
    ours = P.pca_joint(snaps)
    stacked = np.concatenate([s.features.reshape(-1, 6) for s in snaps]).astype(np.float64)
    ref = PCA(2).fit(stacked)
    for s, o in zip(snaps, ours, strict=True):
        want = ref.transform(s.features.reshape(-1, 6).astype(np.float64)).reshape(o.shape)
        signs = np.sign((o.reshape(-1, 2) * want.reshape(-1, 2)).sum(0))
        np.testing.assert_allclose(o, want * signs, rtol=1e-4, atol=1e-4)
    # one basis: the 3x run really is further out
    assert np.linalg.norm(ours[1], axis=-1).mean() > 2 * np.linalg.norm(ours[0], axis=-1).mean()


def test_polar_and_cache(tmp_path, monkeypatch):
    a = _fake_run(tmp_path / "a")
    pol = P.project([a], "polar")[0]
    snap = P.load_snapshots(a)
    np.testing.assert_allclose(pol[..., 0], snap.extra["norm"], rtol=1e-6)
    np.testing.assert_allclose(np.cos(pol[..., 1]), snap.extra["cos_true"], atol=1e-5)
    first = P.project([a], "pca")
    assert len(list((tmp_path / ".projections").glob("pca-*.npz"))) == 1
    monkeypatch.setattr(P, "pca_joint", lambda *a, **k: pytest.fail("not cached"))
    np.testing.assert_array_equal(P.project([a], "pca")[0], first[0])  # from the cache
    with pytest.raises(ValueError, match="unknown projection"):
        P.project([a], "tsne")


def test_aligned_umap_moves_points_smoothly(tmp_path):
    pytest.importorskip("umap")
    a = _fake_run(tmp_path / "a", steps=(0, 10, 20), n=80)
    emb = P.project([a], "aligned_umap", n_epochs=30)[0]
    assert emb.shape == (3, 80, 2) and np.isfinite(emb).all()
    # identity relations keep each point near itself from one step to the next
    step_move = np.linalg.norm(emb[1] - emb[0], axis=1).mean()
    spread = np.linalg.norm(emb[1] - emb[1].mean(0), axis=1).mean()
    assert step_move < spread


def test_project_command_fills_the_cache(tmp_path, capsys):
    from geomviz.cli import main

    _fake_run(tmp_path / "a")
    _fake_run(tmp_path / "b", seed=3)
    assert main(["project", str(tmp_path), "--method", "pca,polar"]) == 0
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / ".projections").glob("*.npz"))
    assert cached == ["pca", "polar", "polar"]  # one joint PCA, one polar view per run
    assert main(["project", str(tmp_path), "--method", "tsne"]) == 2
    assert "unknown projection 'tsne'" in capsys.readouterr().err


def _displacement(e: np.ndarray) -> float:
    """Mean movement of a point between consecutive steps, over the layout's RMS spread."""
    spread = np.sqrt(((e - e.mean(1, keepdims=True)) ** 2).sum(-1).mean())
    return float(np.linalg.norm(np.diff(e, axis=0), axis=-1).mean() / spread)


def test_fast_aligned_umap_keeps_neighbourhoods_and_moves_little(tmp_path):
    umap = pytest.importorskip("umap")
    from sklearn.manifold import trustworthiness

    a = _fake_run(tmp_path / "a", steps=(0, 10, 20, 30), n=150, d=8, seed=0)
    b = _fake_run(tmp_path / "b", steps=(0, 10, 20, 30), n=150, d=8, seed=1)
    snaps = [P.load_snapshots(a), P.load_snapshots(b)]
    out = P.fast_aligned_umap(snaps, first_epochs=60)
    again = P.fast_aligned_umap(snaps, first_epochs=60)
    for s, e, e2 in zip(snaps, out, again, strict=True):
        assert e.shape == (4, 150, 2) and np.isfinite(e).all()
        np.testing.assert_allclose(e, e2, atol=1e-5)  # seeded: the same layout every time
        ref = umap.UMAP(n_neighbors=15, n_epochs=100, random_state=0).fit_transform(
            s.features[-1])  # a plain UMAP of the last step, from scratch
        assert trustworthiness(s.features[-1], e[-1], n_neighbors=5) >= \
            trustworthiness(s.features[-1], ref, n_neighbors=5) - 0.03
        # the features only grow (x(1+t)): steps move far less than layouts made afresh
        fresh = np.stack([umap.UMAP(n_neighbors=15, n_epochs=60, random_state=t)
                          .fit_transform(s.features[t]) for t in range(4)])
        assert _displacement(e) < 0.5 * _displacement(fresh)
    cached = P.project([a, b], "fast_umap", cache_root=tmp_path, first_epochs=60)
    assert len(list((tmp_path / P.CACHE_DIR).glob("fast_umap-*.npz"))) == 1
    np.testing.assert_allclose(cached[0], out[0], atol=1e-5)
