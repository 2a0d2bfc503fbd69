"""geomviz: see the geometry of deep-learning training (CE vs TFSD and ablations)."""

from .fused import fused_ce_loss, fused_tfsd_loss
from .heads import EuclideanHead, Head, LinearHead
from .losses import (
    cross_entropy,
    label_smoothing_loss,
    logitnorm_loss,
    tfsd_loss,
    zloss_cross_entropy,
)
from .objectives import Objective, create_objective, list_objectives, objective_info

__version__ = "0.1.0"

__all__ = [
    "EuclideanHead",
    "Head",
    "LinearHead",
    "Objective",
    "create_objective",
    "cross_entropy",
    "fused_ce_loss",
    "fused_tfsd_loss",
    "label_smoothing_loss",
    "list_objectives",
    "logitnorm_loss",
    "objective_info",
    "tfsd_loss",
    "zloss_cross_entropy",
]
