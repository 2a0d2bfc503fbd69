"""Objectives: heads, losses, fused large-vocabulary losses (and their Triton kernels), and the
registry that names each head + loss pair."""

from .fused import fused_tfsd_loss
from .fused_ce import fused_ce_loss
from .heads import EuclideanHead, Head, LinearHead, squared_distances
from .losses import (
    cross_entropy,
    label_smoothing_loss,
    logitnorm_loss,
    tfsd_loss,
    zloss_cross_entropy,
)
from .registry import (
    FusedCEObjective,
    FusedTFSDObjective,
    Objective,
    ObjectiveInfo,
    create_objective,
    list_objectives,
    objective_info,
    register_objective,
)

__all__ = [
    "EuclideanHead", "FusedCEObjective", "FusedTFSDObjective", "Head", "LinearHead", "Objective",
    "ObjectiveInfo", "create_objective", "cross_entropy", "fused_ce_loss", "fused_tfsd_loss",
    "label_smoothing_loss", "list_objectives", "logitnorm_loss", "objective_info",
    "register_objective", "squared_distances", "tfsd_loss", "zloss_cross_entropy",
]
