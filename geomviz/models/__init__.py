"""Backbones (``forward_features``) and the classifier that puts an objective's head on one."""

from .classifier import MODELS, Classifier, build_backbone, build_model, tie_embeddings
from .gpt import GPT, GPT_SIZES
from .mlp import MLP
from .resnet import ResNet

__all__ = ["GPT", "GPT_SIZES", "MLP", "MODELS", "Classifier", "ResNet", "build_backbone",
           "build_model", "tie_embeddings"]
