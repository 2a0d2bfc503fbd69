"""Objectives: heads, losses, fused large-vocabulary losses (and their Triton kernels), and the
registry that names each head + loss pair, and the loader of users' objectives (plugins)."""

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
from .plugins import ENTRY_POINT_GROUP, available_objectives, load_objective
from .registry import (
    FusedCEObjective,
    FusedTFSDObjective,
    Objective,
    ObjectiveInfo,
    ObjectiveNameClash,
    create_objective,
    is_builtin,
    list_objectives,
    objective_info,
    register_objective,
)

__all__ = [
    "ENTRY_POINT_GROUP", "EuclideanHead", "FusedCEObjective", "FusedTFSDObjective", "Head",
    "LinearHead", "Objective", "ObjectiveInfo", "ObjectiveNameClash", "available_objectives",
    "create_objective", "cross_entropy", "fused_ce_loss", "fused_tfsd_loss", "is_builtin",
    "label_smoothing_loss", "list_objectives", "load_objective", "logitnorm_loss",
    "objective_info", "register_objective", "squared_distances", "tfsd_loss",
    "zloss_cross_entropy",
]
