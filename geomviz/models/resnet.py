"""A CIFAR-style ResNet backbone for images."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ResNet"]


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

