"""Classification heads: dot-product (``LinearHead``) and metric (``EuclideanHead``).

Both heads share one small contract so that probes can read what they need
without knowing which head they are looking at:

* ``forward(features[*, D]) -> logits[*, C]`` (a forward hook sees both);
* ``class_vectors`` -> ``[C, D]``: the weight rows ``w_c`` or the centres ``c_c``;
* ``metric``: ``"dot"`` (z = w·x + b) or ``"euclidean"`` (z = -s·||x - c||²);
* ``scale``: ``s`` for Euclidean heads, ``1.0`` for linear heads;
* ``in_features`` / ``num_classes``.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["EuclideanHead", "Head", "LinearHead", "check_scale", "squared_distances"]

Metric = Literal["dot", "euclidean"]


def check_scale(scale: float) -> float:
    """Return ``scale`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a finite positive number, got {scale!r}") from None
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"scale must be a finite positive number, got {scale!r}")
    return value


class _ClampMinZeroST(torch.autograd.Function):
    """In-place ``clamp_min(0)`` whose backward is the identity.

    The clamp only guards against rounding in ``||x||² - 2x·c + ||c||²`` (which
    can dip below zero when x ≈ c); the gradient stays that of the exact squared
    distance, 2(x - c), so the fused path and this head agree everywhere.
    """

    @staticmethod
    def forward(ctx, raw: Tensor) -> Tensor:  # type: ignore[override]
        ctx.mark_dirty(raw)
        return raw.clamp_min_(0.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


class _ClampMinZeroSTOutOfPlace(torch.autograd.Function):
    """The same, out of place: torch.compile mis-traces the in-place (mark_dirty) version."""

    @staticmethod
    def forward(ctx, raw: Tensor) -> Tensor:  # type: ignore[override]
        return raw.clamp_min(0.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


def squared_distances(x: Tensor, centers: Tensor) -> Tensor:
    """Squared Euclidean distances ``[N, C]`` between rows of ``x[N, D]`` and ``centers[C, D]``.

    Uses the expansion ``||x||² - 2 x·c + ||c||²`` with a single matmul (no
    ``[N, C, D]`` broadcast, no cdist). Under bf16/fp16 autocast the matmul runs in
    low precision while the norms and the sum are kept in fp32; the result is
    fp32 (or fp64 for fp64 inputs) and clamped at 0.
    """
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    x2 = x.to(acc).pow(2).sum(-1, keepdim=True)  # [N, 1]
    c2 = centers.to(acc).pow(2).sum(-1)  # [C]
    xc = x @ centers.t()  # [N, C], autocast dtype under autocast
    if torch.compiler.is_compiling():
        # inductor (torch 2.13, CPU) miscompiles add(c2, mm, alpha=-2) fused into the
        # matmul; this form is fused correctly and needs no in-place ops
        return _ClampMinZeroSTOutOfPlace.apply(c2 - 2.0 * xc.to(acc) + x2)
    raw = torch.add(c2, xc, alpha=-2.0)  # [N, C] promoted to acc; xc is freed
    raw = raw.add_(x2)
    return _ClampMinZeroST.apply(raw)


class Head(nn.Module):
    """Base class and contract of every head (see the module docstring)."""

    metric: ClassVar[Metric]
    in_features: int
    num_classes: int

    @property
    def class_vectors(self) -> Tensor:
        """``[C, D]``: weight rows (dot heads) or centres (Euclidean heads)."""
        raise NotImplementedError

    @property
    def scale(self) -> float:
        """The logit scale s (1 for dot heads); the probes report s·d, not d."""
        return 1.0

    def _check_features(self, x: Tensor) -> None:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects features of shape [..., {self.in_features}], "
                f"got {tuple(x.shape)}"
            )


def _check_sizes(in_features: int, num_classes: int, min_classes: int = 1) -> None:
    if int(in_features) < 1:
        raise ValueError(f"in_features must be >= 1, got {in_features}")
    if int(num_classes) < min_classes:
        raise ValueError(f"num_classes must be >= {min_classes}, got {num_classes}")


class LinearHead(Head):
    """Dot-product logits ``z = W x + b``, so ``z_c = ||w_c||·||x||·cos θ_c + b_c``."""

    metric: ClassVar[Metric] = "dot"

    def __init__(self, in_features: int, num_classes: int, bias: bool = True) -> None:
        super().__init__()
        _check_sizes(in_features, num_classes)
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_features))
        self.bias = nn.Parameter(torch.empty(self.num_classes)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same initialisation as nn.Linear, so results compare with stock models.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def class_vectors(self) -> Tensor:
        """``[C, D]``: the weight rows w_c."""
        return self.weight

    def forward(self, x: Tensor) -> Tensor:
        """``x[*, D] -> logits[*, C]``."""
        self._check_features(x)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, num_classes={self.num_classes}, bias={bias}"


class EuclideanHead(Head):
    """Metric logits ``z_c = -scale·||x - c_c||²`` with learnable centres; always ``<= 0``.

    Centres are initialised like a linear layer's weight rows (uniform in
    ``±1/sqrt(D)``), so the initial geometry matches ``LinearHead``'s.
    """

    metric: ClassVar[Metric] = "euclidean"

    def __init__(self, in_features: int, num_classes: int, scale: float = 1.0) -> None:
        super().__init__()
        _check_sizes(in_features, num_classes, min_classes=2)
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self._scale = check_scale(scale)
        self.centers = nn.Parameter(torch.empty(self.num_classes, self.in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.centers, -bound, bound)

    @property
    def class_vectors(self) -> Tensor:
        """``[C, D]``: the centres c_c."""
        return self.centers

    @property
    def scale(self) -> float:
        """The logit scale s in z_j = -s·‖x - c_j‖²."""
        return self._scale

    def distances(self, x: Tensor) -> Tensor:
        """Unscaled squared distances ``x[*, D] -> d[*, C]`` (fp32 or fp64)."""
        self._check_features(x)
        lead = x.shape[:-1]
        d = squared_distances(x.reshape(-1, self.in_features), self.centers)
        return d.reshape(*lead, self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``x[*, D] -> logits[*, C] = -scale·||x - c||²`` (fp32, or fp64 for fp64 input)."""
        return self.distances(x).mul_(-self._scale)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"scale={self._scale:g}")
