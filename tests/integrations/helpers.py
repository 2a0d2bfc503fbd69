"""Tiny models, data and a recorded CE/TFSD pair shared by the integration tests."""

from __future__ import annotations

import torch
from torch import nn

import geomviz
from geomviz.objectives import create_objective

D_IN, D, C = 8, 16, 4


def blobs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of ``C`` Gaussian classes in ``D_IN`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(C, (n,), generator=g)
    means = torch.randn(C, D_IN, generator=torch.Generator().manual_seed(99)) * 2
    return means[y] + torch.randn(n, D_IN, generator=g), y


def mlp(objective) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D_IN, D), nn.ReLU(), objective.head)


def record(out, name: str = "ce", steps: int = 20, every: int = 5, **kw):
    """A plain-loop run of ``name`` on blobs, as the README shows it; returns its folder."""
    objective = create_objective(name, D, C)
    model = mlp(objective)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = blobs(256)
    xt, yt = blobs(128, seed=1)
    kw = {"objective": objective, "config": {"lr": 0.1, "seed": 0}, "every": every,
          "total_steps": steps, "probe_set": (xt[:64], yt[:64]),
          "probe_ood": torch.randn(16, D_IN) * 6, **kw}
    with geomviz.Recorder(out, model, head="2", **kw) as rec:
        for step in range(1, steps + 1):
            idx = torch.arange(32) + 32 * (step % 8)
            rec.before_step(step, y[idx])
            loss = objective.loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log(step, loss=loss, lr=0.1)
        rec.evaluate(steps, test=[(xt, yt)], ood=[torch.randn(64, D_IN) * 6])
    return out
