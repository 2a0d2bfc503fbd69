"""The language model's probe positions against a full forward pass: features, logits and
labels gathered at the chosen flat positions, their contexts, and their position kinds from
the exact law (the documented rule, recomputed here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomviz.models import Classifier, build_backbone
from geomviz.objectives import create_objective
from geomviz.training.token_probes import CONTEXT, TokenProbeSet
from tests.data.test_reference_synonyms import _kinds


@pytest.mark.parametrize("law_budget", [2**22, 1])  # 1: the law one sequence at a time
def test_probe_positions_equal_the_full_forward_pass(monkeypatch, tmp_path, law_budget):
    from geomviz.data.synonyms import synonyms

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path))
    t = 8
    b = synonyms(seed=2, vocab_size=20, concepts=7, max_synonyms=4, order=2, seq_len=t,
                 train_tokens=256, test_tokens=320)
    b.y_test = b.y_test.clone()  # a view of the same sequences as x_test
    b.y_test[::3, -2:] = -100  # padded targets are never probe positions
    v = b.num_classes
    torch.manual_seed(0)
    model = Classifier(build_backbone("gpt", (t,), 16, vocab_size=v, block_size=t),
                       create_objective("ce", 16, v)).eval()
    import geomviz.training.token_probes as TP

    monkeypatch.setattr(TP, "LAW_BUDGET", law_budget)
    ps = TokenProbeSet(b, 30, 12, torch.device("cpu"))
    f, z, labels = ps.run(model)
    pos, ood = ps.test_pos, ps.ood_pos
    assert len(pos) == 30 and len(ood) == 12
    assert np.all(np.diff(pos) > 0) and np.all(np.diff(ood) > 0)
    y_flat = b.y_test.reshape(-1).numpy()
    assert np.all(y_flat[pos] != -100)
    with torch.no_grad():
        full = model.features(b.x_test).reshape(-1, 16)
        full_ood = model.features(b.x_ood).reshape(-1, 16)
    want = torch.cat([full[torch.from_numpy(pos)], full_ood[torch.from_numpy(ood)]])
    torch.testing.assert_close(f, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(z, model.head(want), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels.numpy(), np.r_[y_flat[pos], -np.ones(12)])
    # contexts: the last CONTEXT inputs up to each position, -1 before the sequence starts
    for row, p in zip(ps.arrays["context"][:30], pos, strict=True):
        seq, col = divmod(int(p), t)
        toks = b.x_test[seq, max(0, col - CONTEXT + 1):col + 1].tolist()
        assert row.tolist() == [-1] * (CONTEXT - len(toks)) + toks
    law = b.truth(b.x_test).reshape(-1, v).numpy()[pos]
    want_kind = _kinds(law, np.asarray(b.info["groups"]))
    np.testing.assert_array_equal(ps.arrays["kind"], np.r_[want_kind, -np.ones(12)])
    np.testing.assert_array_equal(ps.arrays["group"][:30],
                                  np.asarray(b.info["groups"])[y_flat[pos]])
