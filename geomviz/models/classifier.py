"""Models: a backbone (``forward_features``) plus an objective (head + loss) from the registry.

``Classifier.features(x)`` is the penultimate representation the probes look at;
``Classifier.forward(x)`` gives logits; ``Classifier.loss(x, y)`` the objective's loss.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..objectives import Objective, create_objective
from .gpt import GPT, GPT_SIZES
from .mlp import MLP
from .resnet import ResNet

__all__ = ["Classifier", "build_backbone", "build_model", "tie_embeddings", "MODELS"]

MODELS = ("auto", "mlp", "resnet", "gpt")

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
                   hidden: tuple[int, ...] = (256, 256), width: int = 32, *,
                   vocab_size: int | None = None, gpt_size: str = "tiny", block_size: int = 256,
                   qk_layernorm: bool = False) -> nn.Module:
    """``arch`` "auto" picks the GPT for token sequences (``vocab_size`` given), the ResNet
    for ``[C, H, W]`` images and the MLP otherwise. A GPT's width is ``feature_dim``."""
    if arch not in MODELS:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(MODELS)}")
    if arch == "auto":
        arch = "gpt" if vocab_size else "resnet" if len(input_shape) == 3 else "mlp"
    if (arch == "gpt") != bool(vocab_size):
        raise ValueError("the gpt model takes token sequences, and token sequences need the "
                         "gpt model" if vocab_size else "the gpt model needs token sequences "
                         "(--dataset synonyms or text)")
    if arch == "gpt":
        if gpt_size not in GPT_SIZES:
            raise ValueError(f"unknown gpt size {gpt_size!r}; choose one of: "
                             f"{', '.join(GPT_SIZES)}")
        n_layer, n_head = GPT_SIZES[gpt_size]
        return GPT(int(vocab_size), block_size, n_layer, n_head, feature_dim, qk_layernorm)
    if arch == "resnet":
        if len(input_shape) != 3:
            raise ValueError(f"resnet needs image inputs [C, H, W], got {input_shape}")
        return ResNet(input_shape[0], width, feature_dim=feature_dim)
    in_dim = 1
    for s in input_shape:
        in_dim *= s
    return MLP(in_dim, tuple(hidden), feature_dim)


def tie_embeddings(backbone: nn.Module, objective: Objective) -> None:
    """Share the GPT's token embedding with the head's class vectors: the unembedding rows
    of a linear head, or the centres of a Euclidean head (then a token's embedding is the
    point its prediction is pulled to)."""
    if not isinstance(backbone, GPT):
        raise ValueError("tie_embeddings needs the gpt model")
    head = objective.head
    name = "centers" if head.metric == "euclidean" else "weight"
    if getattr(head, name).shape != backbone.tok.weight.shape:
        raise ValueError("tie_embeddings: the head's class vectors and the token embedding "
                         "differ in shape")
    setattr(head, name, backbone.tok.weight)


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, objective: str,
                feature_dim: int = 128, hidden: tuple[int, ...] = (256, 256), width: int = 32,
                **objective_kw) -> Classifier:
    """A backbone from :func:`build_backbone` and a registered objective on top."""
    backbone = build_backbone(arch, input_shape, feature_dim, hidden, width)
    return Classifier(backbone, create_objective(objective, feature_dim, num_classes,
                                                 **objective_kw))
