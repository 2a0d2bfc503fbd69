"""The probe session: hooks, no host syncs in the step, flushing into a store, snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geomviz.objectives import create_objective
from geomviz.store import RunWriter, open_run
from probes import attach, select_probe_set, snapshot_steps
from probes.snapshots import snapshot_arrays
from tests.helpers import spy_host_syncs


class Net(nn.Module):
    def __init__(self, objective="tfsd"):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
        self.objective = create_objective(objective, 4, 3, validate=False)

    @property
    def head(self):
        return self.objective.head

    def forward(self, x):
        return self.head(self.body(x))

    def loss(self, x, y):
        return self.objective(self.body(x), y)


def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_hooks_are_removed_even_on_error():
    net = Net()
    with pytest.raises(RuntimeError, match="boom"), attach(net, every=1):
        assert len(net.head._forward_hooks) == 1
        raise RuntimeError("boom")
    assert len(net.head._forward_hooks) == 0


def test_a_probed_step_makes_no_host_sync(monkeypatch):
    net = Net()
    x, y = _data()
    calls = spy_host_syncs(monkeypatch)
    with attach(net, every=1) as session:
        calls.clear()
        session.before_step(1, y)
        net.loss(x, y).backward()
        assert calls == []  # forward + probes + backward + gradient split: no transfer
        assert len(session._pending) == 1 and "grad.n" in session._pending[0]
        session.flush(1)  # the flush is where the one transfer happens
        assert calls.count("cpu") == 1


def test_flush_writes_every_series(tmp_path):
    net = Net()
    w = RunWriter(tmp_path, {})
    with attach(net, writer=w, every=2) as session:
        for step in range(1, 5):
            x, y = _data(seed=step)
            session.before_step(step, y)
            net.loss(x, y).backward()
            if step % 2 == 0:
                session.flush(step, epoch=0)
    w.close()
    run = open_run(tmp_path)
    for name in ("penultimate.norm.mean", "penultimate.norm.p95", "head.cos_true.mean",
                 "head.anchor_gap.mean", "head.nearest_negative.p50", "head.gap.mean",
                 "grad.radial_fraction", "grad.tangential.mean", "entropy.hard.target",
                 "entropy.easy.pred", "entropy.all.kl", "health.max_logit", "health.logsumexp",
                 "head.class_norm.mean"):
        assert run.scalars(name, split="train")["step"].tolist() == [2, 4], name
    assert run.scalars("decomp.total", split="train")["step"].tolist() == [4]
    h = run.histograms("penultimate.norm", split="train")
    assert h.counts.sum(1).tolist() == [32, 32]  # one recorded batch of 32 per flush
    assert run.arrays("train.penultimate.norm.per_class")[2].shape == (3,)


def test_foreign_model_token_sequences_and_head_by_name():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4))
    x = torch.randn(2, 6, 5)  # [B, T, D] tokens
    y = torch.randint(0, 4, (2, 6))
    with attach(model, head="2", every=1, target="onehot") as session:
        session.before_step(1, y)
        out = model(x)
        torch.nn.functional.cross_entropy(out.reshape(-1, 4), y.reshape(-1)).backward()
        rec = session._pending[0]
        assert rec["n"].item() == 12 and rec["penultimate.norm.hist"].sum().item() == 12
        assert rec["grad.n"].item() == 12
    with pytest.raises(ValueError, match="no submodule"):
        attach(model, head="fc").__enter__()


def test_snapshot_norms_equal_the_stored_features():
    x = torch.randn(50, 4) * 30
    z = -torch.rand(50, 3) * 10
    y = torch.randint(-1, 3, (50,))
    arr = snapshot_arrays(x, z, y, torch.randn(3, 4), "euclidean", "tfsd")
    assert arr["features"].dtype == np.float16
    np.testing.assert_allclose(arr["norm"], np.linalg.norm(arr["features"].astype(np.float64),
                                                           axis=1), rtol=1e-6)
    assert np.all(arr["true"] >= 0) and arr["entropy_target"].shape == (50,)


def test_snapshot_steps_and_probe_set():
    steps = snapshot_steps(10_000, 40)
    assert steps[0] == 0 and steps[-1] == 10_000 and steps == sorted(set(steps))
    assert 30 <= len(steps) <= 45 and sum(s <= 1000 for s in steps) >= 15  # dense early
    assert snapshot_steps(5, 40) == [0, 1, 2, 3, 4, 5]
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    a, oa = select_probe_set(y, n=80, n_ood=10, ood_total=25)
    b, ob = select_probe_set(y, n=80, n_ood=10, ood_total=25)
    assert np.array_equal(a, b) and np.array_equal(oa, ob)  # the same set for every run
    assert np.bincount(y[a]).tolist() == [20, 20, 20, 20] and len(oa) == 10


def test_probes_attached_before_compiling_record_the_same_statistics():
    stats = []
    for compiled in (False, True):
        torch.manual_seed(0)
        net = Net()
        x, y = _data()
        with attach(net, every=1) as session:
            loss_fn = torch.compile(net.loss) if compiled else net.loss
            session.before_step(1, y)
            try:
                loss_fn(x, y).backward()
            except Exception as e:  # noqa: BLE001 - no C++ toolchain for inductor here
                pytest.skip(f"torch.compile unavailable: {type(e).__name__}")
            stats.append({k: v.clone() for k, v in session._pending[0].items()})
    assert stats[0].keys() == stats[1].keys()
    for k in stats[0]:
        torch.testing.assert_close(stats[1][k], stats[0][k], rtol=1e-4, atol=1e-4, msg=k)
