"""A short MNIST-1D CE vs TFSD comparison through the CLI: the store holds every probe
series for both runs, and the snapshots agree with themselves."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from geomviz.store import open_run

SERIES = [
    "penultimate.norm.mean", "penultimate.norm.std", "penultimate.norm.p5",
    "penultimate.norm.p50", "penultimate.norm.p95", "penultimate.norm.max",
    "head.norm_true.mean", "head.cos_true.mean", "head.class_norm.mean",
    "grad.radial.mean", "grad.tangential.mean", "grad.radial_fraction",
    "entropy.all.pred", "entropy.all.target", "entropy.all.kl", "entropy.easy.target",
    "entropy.hard.target", "entropy.easy.fraction", "health.max_logit", "health.logsumexp",
    "health.flush_spike", "decomp.radial", "decomp.angular", "decomp.weight", "decomp.total",
    "loss", "acc", "grad_norm", "lr",
]
MARGINS = {"ce": ["head.logit_true", "head.logit_top_negative", "head.margin"],
           "tfsd": ["head.anchor_gap", "head.nearest_negative", "head.gap"]}


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    env = dict(os.environ, GEOMVIZ_CACHE=str(tmp_path_factory.mktemp("cache")))
    r = subprocess.run([sys.executable, "-m", "geomviz", "compare", "--objectives", "ce,tfsd",
                        "--seeds", "0", "--epochs", "2", "--ood-classes", "8,9", "--name", "cmp",
                        "--runs-dir", str(root), "--flush-every", "10", "--snapshots", "6",
                        "--snapshot-size", "200", "--snapshot-ood", "50", "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return root / "cmp"


@pytest.mark.parametrize("objective", ["ce", "tfsd"])
def test_every_series_is_stored(comparison, objective):
    run = open_run(comparison / f"{objective}-s0")
    names = set(run.scalar_names())
    margins = [f"{m}.{s}" for m in MARGINS[objective] for s in ("mean", "p5", "p50", "p95")]
    missing = [n for n in SERIES + margins if n not in names]
    assert not missing
    for name in ("penultimate.norm", "head.cos_true", "entropy.pred", "entropy.target",
                 *MARGINS[objective]):
        h = run.histograms(name, split="train")
        assert len(h.steps) >= 3 and (h.counts.sum(1) == 128).all()  # batch 128
        assert len(run.histograms(name, split="test").steps) == 2  # each epoch end
    test = run.histograms("penultimate.norm", split="test")
    assert (test.counts.sum(1) == 800).all()  # 1000 test examples less digits 8, 9
    assert run.meta["probes"]["easy_threshold"] == 0.9
    assert run.meta["probes"]["flush_spike_k"] == 3.0
    parts = [run.scalars(f"decomp.{k}", split="train")["value"] for k in
             ("radial", "angular", "weight", "bias")]
    np.testing.assert_allclose(sum(parts), run.scalars("decomp.total", split="train")["value"],
                               rtol=1e-9, atol=1e-12)
    if objective == "ce":
        assert (run.scalars("entropy.all.target", split="train")["value"] == 0).all()


def test_snapshots_share_the_probe_set_and_match_their_features(comparison):
    runs = [open_run(comparison / f"{o}-s0") for o in ("ce", "tfsd")]
    labels = [r.arrays("snapshot.labels")[0] for r in runs]
    assert np.array_equal(labels[0], labels[1]) and (labels[0] == -1).sum() == 50
    assert np.array_equal(runs[0].arrays("snapshot.index")[0], runs[1].arrays("snapshot.index")[0])
    for run in runs:
        feats, norms = run.arrays("snapshot.features"), run.arrays("snapshot.norm")
        assert sorted(feats) == sorted(norms) and 0 in feats and len(feats) >= 6
        last = max(feats)
        assert last == run.meta["total_steps"]
        np.testing.assert_allclose(norms[last], np.linalg.norm(
            feats[last].astype(np.float64), axis=1), rtol=1e-5)
        assert feats[last].shape == (len(labels[0]), 128)
