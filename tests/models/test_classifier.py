"""Models: shapes, feature/head split, identical initialisation across objectives."""

from __future__ import annotations

import pytest
import torch

from geomviz.models import MLP, Classifier, ResNet, build_backbone, build_model
from geomviz.objectives import create_objective


def test_shapes():
    m = build_model("auto", (40,), 10, "ce", feature_dim=16)
    assert isinstance(m.backbone, MLP) and m(torch.randn(3, 40)).shape == (3, 10)
    assert m.features(torch.randn(3, 40)).shape == (3, 16)
    r = build_model("auto", (3, 32, 32), 7, "tfsd", feature_dim=24, width=8)
    assert isinstance(r.backbone, ResNet) and r(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert r.head.metric == "euclidean"
    loss = r.loss(torch.randn(2, 3, 32, 32), torch.tensor([0, 6]))
    loss.backward()
    with pytest.raises(ValueError, match="unknown model"):
        build_backbone("vit", (40,))
    with pytest.raises(ValueError, match="image inputs"):
        build_backbone("resnet", (40,))


def test_same_seed_same_backbone_and_class_vectors_for_every_objective():
    heads = {}
    for name in ("ce", "tfsd"):
        torch.manual_seed(0)
        backbone = build_backbone("mlp", (40,), 16)
        torch.manual_seed(1)
        heads[name] = Classifier(backbone, create_objective(name, 16, 10))
    a, b = heads["ce"], heads["tfsd"]
    for pa, pb in zip(a.backbone.parameters(), b.backbone.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(a.head.class_vectors, b.head.class_vectors)
