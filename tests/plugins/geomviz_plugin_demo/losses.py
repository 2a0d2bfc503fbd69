"""Focal loss (Lin et al. 2017), an objective geomviz does not ship: CE weighted by
``(1 - p_y)^gamma`` on dot-product logits."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from geomviz.objectives import LinearHead, Objective, register_objective


class FocalLoss(nn.Module):
    def __init__(self, gamma: float, reduction: str, ignore_index: int) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}")
        self.gamma, self.reduction, self.ignore_index = float(gamma), reduction, ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        z, y = logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1)
        keep = y != self.ignore_index
        log_p = F.log_softmax(z, -1).gather(1, torch.where(keep, y, 0)[:, None])[:, 0]
        rows = -(1 - log_p.exp()).pow(self.gamma) * log_p * keep
        if self.reduction == "none":
            return rows.reshape(target.shape)
        total = rows.sum()
        return total if self.reduction == "sum" else total / keep.sum().clamp_min(1)


@register_objective("focal", "linear", "-(1 - p_y)^γ · log p_y, p = softmax(W x + b)",
                    "Focal loss: cross-entropy down-weighted on easy samples (γ = gamma).")
def focal(in_features, num_classes, gamma=2.0, bias=True, reduction="mean",
          ignore_index=-100):
    return Objective("focal", LinearHead(in_features, num_classes, bias),
                     FocalLoss(gamma, reduction, ignore_index))


not_an_objective = 42


def unregistered(in_features, num_classes):
    """Has a factory's signature but was never registered."""
    return Objective("unregistered", LinearHead(in_features, num_classes),
                     FocalLoss(2.0, "mean", -100))
