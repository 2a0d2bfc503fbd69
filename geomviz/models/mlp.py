"""A multi-layer perceptron backbone for vector data."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MLP"]


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

