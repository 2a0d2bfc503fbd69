"""Models: a backbone (``forward_features``) plus an objective (head + loss) from the registry.

``Classifier.features(x)`` is the penultimate representation the probes look at;
``Classifier.forward(x)`` gives logits; ``Classifier.loss(x, y)`` the objective's loss.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .objectives import Objective, create_objective

__all__ = ["MLP", "ResNet", "Classifier", "build_backbone", "build_model", "MODELS"]

MODELS = ("auto", "mlp", "resnet")


class MLP(nn.Module):
    """``x[N, in_dim] -> features[N, feature_dim]``: Linear-ReLU blocks, then a linear map."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (256, 256),
                 feature_dim: int = 128) -> None:
        super().__init__()
        if in_dim < 1 or feature_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError("MLP sizes must be >= 1")
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, feature_dim))
        self.body = nn.Sequential(*layers)
        self.feature_dim = feature_dim

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x.flatten(1))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(out)) + self.skip(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (3×3 stem, no max-pool): ``blocks`` per stage at widths w, 2w, 4w, 8w.

    ``blocks=(2, 2, 2, 2), width=64`` is ResNet-18; the default is a small ResNet-10.
    Features are the pooled last stage, linearly mapped to ``feature_dim``.
    """

    def __init__(self, in_channels: int = 3, width: int = 32,
                 blocks: tuple[int, ...] = (1, 1, 1, 1), feature_dim: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                stages.append(_Block(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Linear(cin, feature_dim)
        self.feature_dim = feature_dim

    def forward_features(self, x: Tensor) -> Tensor:
        h = self.stages(self.stem(x))
        return self.proj(F.adaptive_avg_pool2d(h, 1).flatten(1))


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
