"""The probes' test record of a language-model run covers every test position (issue 25 row
13: entropy.*, penultimate.norm.* and head.* saw only the first 8,192 of them), from the rows
the chunked evaluation computes, against a float64 reference over the whole split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import entr, softmax

from geomviz.training.config import resolve_config
from geomviz.training.evaluate_tokens import evaluate_tokens
from geomviz.training.probing import Probing
from tests.training.test_lm import T, V, _model, token_bundle


class _Writer:
    """Keeps what the probes write (a store's writer, in memory)."""

    def __init__(self) -> None:
        self.scalar_rows: list[tuple[int, str, dict]] = []

    def scalars(self, step, values, split="train", epoch=None) -> None:
        self.scalar_rows.append((step, split, dict(values)))

    def histogram(self, *a, **k) -> None: ...
    def array(self, *a, **k) -> None: ...
    def set_meta(self, **k) -> None: ...


@pytest.mark.parametrize("objective", ["ce", "tfsd"])
def test_the_test_record_uses_every_position(objective, monkeypatch):
    import geomviz.training.evaluate_tokens as E

    monkeypatch.setattr(E, "LOGIT_BUDGET", 64 * T * V)  # 64 sequences a chunk: 13 chunks
    bundle = token_bundle(n_test=800)  # 9,600 positions, 600 of them padding
    keep = bundle.y_test.reshape(-1) != -100
    assert int(keep.sum()) == 9000 > 8192
    model = _model(objective, torch.float32)
    cfg = resolve_config({}, {"dataset": "synonyms", "objective": objective, "snapshots": 0})
    writer = _Writer()
    with Probing(cfg, model, bundle, writer, torch.device("cpu"), 0, 10) as probing:
        evaluate_tokens(model, bundle, torch.device("cpu"), on_test=probing.on_test(10, 1))
    (step, split, got), = [r for r in writer.scalar_rows if r[1] == "test"]
    assert step == 10
    with torch.no_grad():
        f = model.features(bundle.x_test).reshape(-1, 16)[keep]
        z = model.head(f).double().numpy()
    y = bundle.y_test.reshape(-1)[keep].numpy()
    norms = f.double().norm(dim=1).numpy()
    q = softmax(z, axis=1)
    assert got["penultimate.norm.mean"] == pytest.approx(norms.mean(), rel=1e-6)
    assert got["penultimate.norm.max"] == pytest.approx(norms.max(), rel=1e-6)
    assert got["penultimate.norm.p50"] == pytest.approx(np.median(norms), rel=1e-5)
    assert got["entropy.all.pred"] == pytest.approx(entr(q).sum(1).mean(), rel=1e-6)
    cv = model.head.class_vectors.detach().double().numpy()[y]
    cos = (f.double().numpy() * cv).sum(1) / (norms * np.linalg.norm(cv, axis=1))
    assert got["head.cos_true.mean"] == pytest.approx(cos.mean(), rel=1e-5, abs=1e-7)
    hard = q[np.arange(len(y)), y] < 0.5
    assert got["entropy.hard.fraction"] == pytest.approx(hard.mean(), abs=1e-12)
