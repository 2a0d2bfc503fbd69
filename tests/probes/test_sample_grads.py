"""Per-sample gradient tails and the flipped/clean split, against per-sample autograd (fp64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from geomviz.objectives import create_objective
from geomviz.store import RunWriter, open_run
from probes import attach
from probes.stats import SAMPLE_QUANTILES, grad_stats, masked_quantiles


class Net(nn.Module):
    def __init__(self, objective: str):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
        self.objective = create_objective(objective, 4, 3, validate=False)

    @property
    def head(self):
        return self.objective.head

    def loss(self, x, y):
        return self.objective(self.body(x), y)


def _reference_norms(net: Net, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """‖∂ℓ_i/∂x_i‖ of each sample's own loss, one autograd call per sample, float64."""
    out = []
    for i in range(len(x)):
        f = net.body(x[i : i + 1]).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(net.objective(f, y[i : i + 1]), f)
        out.append(float(g.norm()))
    return np.asarray(out)


@pytest.mark.parametrize("objective", ["ce", "tfsd", "label_smoothing", "ce_zloss"])
def test_sample_norms_and_the_noisy_split_match_per_sample_autograd(tmp_path, objective):
    torch.manual_seed(0)
    net = Net(objective).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (40,), generator=g)
    noisy = torch.rand(40, generator=g) < 0.3
    ref = _reference_norms(net, x, y)
    w = RunWriter(tmp_path, {})
    with attach(net, writer=w, every=1) as session:
        session.before_step(1, y, noisy=noisy)
        net.loss(x, y).backward()  # a batch mean: the probe scales by the 40 rows back
        session.flush(1, epoch=0)
    w.close()
    run = open_run(tmp_path)

    def got(name):
        return float(run.scalars(name, split="train")["value"][-1])

    # the batch-mean loss's gradient is ∂ℓ_i/∂x_i / 40; the probe reports ∂ℓ_i/∂x_i itself
    np.testing.assert_allclose(got("grad.sample_norm.max"), ref.max(), rtol=1e-5)
    for q in SAMPLE_QUANTILES:
        np.testing.assert_allclose(got(f"grad.sample_norm.p{round(q * 100)}"),
                                   np.quantile(ref, q), rtol=1e-5)
    m = noisy.numpy()
    np.testing.assert_allclose(got("grad.noisy.norm.mean"), ref[m].mean(), rtol=1e-5)
    np.testing.assert_allclose(got("grad.clean.norm.mean"), ref[~m].mean(), rtol=1e-5)


def test_without_a_noisy_mask_the_split_is_not_recorded(tmp_path):
    net = Net("tfsd")
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    w = RunWriter(tmp_path, {})
    with attach(net, writer=w, every=1) as session:
        session.before_step(1, y)
        net.loss(x, y).backward()
        session.flush(1, epoch=0)
        session.before_step(2, y, noisy=torch.zeros(16, dtype=torch.bool))  # nothing flipped
        net.loss(x, y).backward()
        session.flush(2, epoch=0)
    w.close()
    run = open_run(tmp_path)
    assert run.scalars("grad.sample_norm.p99", split="train")["step"].tolist() == [1, 2]
    assert run.scalars("grad.clean.norm.mean", split="train")["step"].tolist() == [2]
    assert len(run.scalars("grad.noisy.norm.mean", split="train")["step"]) == 0


def test_ignored_rows_count_nowhere():
    g = torch.randn(6, 3, dtype=torch.float64)
    x = torch.randn(6, 3, dtype=torch.float64)
    keep = torch.tensor([True, True, False, True, False, True])
    noisy = torch.tensor([True, False, True, False, False, True])
    out = grad_stats(g, x, 4.0, keep, noisy)
    norms = (g * 4).norm(dim=1).numpy()
    k, m = keep.numpy(), noisy.numpy()
    assert out["grad.sample_norm.max"].item() == pytest.approx(norms[k].max())
    np.testing.assert_allclose(out["grad.sample_norm.quantiles"].numpy(),
                               np.quantile(norms[k], SAMPLE_QUANTILES), rtol=1e-6)
    assert out["grad.noisy.n"].item() == 2 and out["grad.clean.n"].item() == 2
    assert out["grad.noisy.norm.sum"].item() == pytest.approx(norms[k & m].sum(), rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e3, 1e3), st.just(float("nan"))), min_size=1, max_size=40),
       st.integers(0, 2**32 - 1))
def test_masked_quantiles_equal_nanquantile(values, seed):
    v = torch.tensor(values, dtype=torch.float64)
    keep = torch.rand(len(v), generator=torch.Generator().manual_seed(seed)) < 0.7
    qs = (0.0, 0.05, 0.5, 0.95, 0.99, 1.0)
    ref = torch.nanquantile(torch.where(keep, v, torch.nan), torch.tensor(qs, dtype=v.dtype))
    torch.testing.assert_close(masked_quantiles(v, keep, qs), ref.float(), equal_nan=True,
                               rtol=1e-5, atol=1e-4)


def test_masked_quantiles_trace_with_a_dynamic_batch_size():
    """Issue 15: torch.quantile met a dynamic batch dimension under torch.compile."""
    fn = torch.compile(masked_quantiles, backend="aot_eager", dynamic=True)
    for n in (17, 33, 5):  # ragged sizes, one compiled graph
        v, keep = torch.randn(n), torch.rand(n) > 0.3
        torch.testing.assert_close(fn(v, keep), masked_quantiles(v, keep))
