"""Backbones (``forward_features``) and the classifier that puts an objective's head on one."""

from .classifier import MODELS, Classifier, build_backbone, build_model
from .mlp import MLP
from .resnet import ResNet

__all__ = ["MLP", "MODELS", "Classifier", "ResNet", "build_backbone", "build_model"]
