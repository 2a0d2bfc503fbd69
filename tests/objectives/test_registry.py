"""Every registered objective: forward, backward, finiteness, reduction semantics, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from geomviz.objectives import (
    Objective,
    create_objective,
    list_objectives,
    objective_info,
    register_objective,
)
from geomviz.objectives.heads import EuclideanHead, LinearHead

ALL = list_objectives()


def test_registry_has_the_objectives_users_ask_for():
    assert {"ce", "tfsd", "metric_ce", "label_smoothing", "logitnorm", "ce_zloss",
            "tfsd_fused", "ce_fused"} <= set(ALL)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 8, generator=g)  # [B, T, D]: token sequences work too
    y = torch.randint(0, 5, (3, 4), generator=g)
    y[0, 0] = y[2, 3] = -100
    return x, y


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_finite(name):
    torch.manual_seed(0)
    obj = create_objective(name, in_features=8, num_classes=5)
    assert isinstance(obj, Objective) and obj.name == name
    head_kind = objective_info(name).head
    assert isinstance(obj.head, LinearHead if head_kind == "linear" else EuclideanHead)
    x, y = _batch()
    x.requires_grad_()
    loss = obj(x, y)
    assert loss.shape == () and torch.isfinite(loss) and loss >= 0
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in obj.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert obj.logits(x).shape == (3, 4, 5)


@pytest.mark.parametrize("name", ALL)
def test_reduction_semantics(name):
    torch.manual_seed(0)
    x, y = _batch(1)
    objs = {}
    for red in ("none", "sum", "mean"):
        torch.manual_seed(1)
        objs[red] = create_objective(name, 8, 5, reduction=red)
    rows = objs["none"](x, y)
    assert rows.shape == (3, 4) and rows[0, 0] == 0 and rows[2, 3] == 0
    torch.testing.assert_close(objs["sum"](x, y), rows.sum())
    torch.testing.assert_close(objs["mean"](x, y), rows.sum() / 10)


@pytest.mark.parametrize("fused, plain", [("tfsd_fused", "tfsd"), ("ce_fused", "ce")])
def test_fused_objectives_equal_their_plain_twins(fused, plain):
    torch.manual_seed(0)
    a = create_objective(plain, 8, 5)
    b = create_objective(fused, 8, 5)
    b.load_state_dict(a.state_dict())
    x, y = _batch(2)
    torch.testing.assert_close(b(x, y), a(x, y), rtol=1e-5, atol=1e-6)


def test_deepcopy_gives_an_independent_fused_objective():
    a = create_objective("tfsd_fused", 8, 5)
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.head.centers.add_(10.0)
    x, y = _batch()
    assert not torch.allclose(a(x, y), b(x, y))


def test_unknown_objective_and_hyperparameters_are_clear_errors():
    with pytest.raises(ValueError, match="unknown objective 'cee'; choose one of: ce,"):
        create_objective("cee", 8, 5)
    with pytest.raises(ValueError, match="does not take temperature; it takes: scale"):
        create_objective("tfsd", 8, 5, temperature=2.0)
    with pytest.raises(ValueError, match="scale"):
        create_objective("tfsd", 8, 5, scale=float("nan"))
    with pytest.raises(ValueError, match="smoothing"):
        create_objective("label_smoothing", 8, 5, smoothing=1.5)
    with pytest.raises(ValueError, match="chunk_size"):
        create_objective("tfsd_fused", 8, 5, chunk_size=-3)
    with pytest.raises(ValueError, match="already registered"):
        register_objective("ce", "linear", "", "")(lambda i, c: None)


def test_info_lists_hyperparameters():
    info = objective_info("tfsd")
    assert info.head == "euclidean" and "zero" not in info.params
    assert info.params["scale"] == 1.0 and info.params["reduction"] == "mean"
    assert objective_info("logitnorm").params["tau"] == 0.04
    assert objective_info("ce_zloss").params["coef"] == 1e-4
