"""Models: a backbone (``forward_features``) plus an objective (head + loss) from the registry.

``Classifier.features(x)`` is the penultimate representation the probes look at;
``Classifier.forward(x)`` gives logits; ``Classifier.loss(x, y)`` the objective's loss.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..objectives import Objective, create_objective
from .mlp import MLP
from .resnet import ResNet

__all__ = ["Classifier", "build_backbone", "build_model", "MODELS"]

MODELS = ("auto", "mlp", "resnet")

class Classifier(nn.Module):
    """Backbone + objective. The objective's head is ``self.head`` (probes read it)."""

    def __init__(self, backbone: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.backbone = backbone
        self.objective = objective

    @property
    def head(self):
        return self.objective.head

    def features(self, x: Tensor) -> Tensor:
        return self.backbone.forward_features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.objective.logits(self.features(x))

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        return self.objective(self.features(x), y)


def build_backbone(arch: str, input_shape: tuple[int, ...], feature_dim: int = 128,
                   hidden: tuple[int, ...] = (256, 256), width: int = 32) -> nn.Module:
    """``arch`` "auto" picks the MLP for vectors and the ResNet for ``[C, H, W]`` images."""
    if arch not in MODELS:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(MODELS)}")
    if arch == "auto":
        arch = "resnet" if len(input_shape) == 3 else "mlp"
    if arch == "resnet":
        if len(input_shape) != 3:
            raise ValueError(f"resnet needs image inputs [C, H, W], got {input_shape}")
        backbone: nn.Module = ResNet(input_shape[0], width, feature_dim=feature_dim)
    else:
        in_dim = 1
        for s in input_shape:
            in_dim *= s
        backbone = MLP(in_dim, tuple(hidden), feature_dim)
    return backbone


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, objective: str,
                feature_dim: int = 128, hidden: tuple[int, ...] = (256, 256), width: int = 32,
                **objective_kw) -> Classifier:
    """A backbone from :func:`build_backbone` and a registered objective on top."""
    backbone = build_backbone(arch, input_shape, feature_dim, hidden, width)
    return Classifier(backbone, create_objective(objective, feature_dim, num_classes,
                                                 **objective_kw))
