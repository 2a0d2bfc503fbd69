"""Losses on logits: TFSD (closed form), cross-entropy and the baselines.

Every loss takes ``logits[*, C]`` (class dimension last, language-model style)
and an integer ``target[*]``, and has ``reduction`` in {"mean", "sum", "none"}
and ``ignore_index``. Rows whose target equals ``ignore_index`` contribute 0;
``"mean"`` divides by the number of kept rows (as ``F.cross_entropy`` does),
and gives 0 rather than NaN when every row is ignored.

Low-precision logits (bf16/fp16) are upcast to fp32 inside each loss.

``validate=True`` (the default) checks shapes, target range and, for TFSD, that
no logit is positive. The value checks synchronise with the device; pass
``validate=False`` in a hot loop once the inputs are known to be good.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "REDUCTIONS",
    "CrossEntropyLoss",
    "LabelSmoothingLoss",
    "LogitNormLoss",
    "TFSDLoss",
    "ZLossCrossEntropy",
    "cross_entropy",
    "label_smoothing_loss",
    "logitnorm_loss",
    "tfsd_from_stats",
    "tfsd_loss",
    "zloss_cross_entropy",
]

REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- checks
def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_targets(
    lead_shape: torch.Size, num_classes: int, target: Tensor, ignore_index: int, validate: bool
) -> None:
    """Shape and dtype checks always; the range check (a device sync) only if ``validate``."""
    if target.dtype.is_floating_point or target.dtype == torch.bool or target.is_complex():
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    if tuple(target.shape) != tuple(lead_shape):
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match the logits' leading shape "
            f"{tuple(lead_shape)} (logits are [..., C] with classes last)"
        )
    if validate and target.numel():
        kept = target[target != ignore_index]
        if kept.numel() and bool(((kept < 0) | (kept >= num_classes)).any()):
            bad = kept[(kept < 0) | (kept >= num_classes)][0]
            raise ValueError(
                f"target {int(bad)} is out of range for {num_classes} classes "
                f"(valid: 0..{num_classes - 1}, or ignore_index={ignore_index})"
            )


def _flatten(logits: Tensor, target: Tensor, ignore_index: int, validate: bool):
    """``logits[*, C], target[*] -> z[N, C] (>= fp32), y_safe[N], keep[N] (bool), lead shape``."""
    if logits.dim() < 1:
        raise ValueError("logits must have a class dimension: shape [..., C]")
    lead, num_classes = logits.shape[:-1], logits.shape[-1]
    check_targets(lead, num_classes, target, ignore_index, validate)
    z = logits.reshape(-1, num_classes)
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    y = target.reshape(-1).long()
    keep = y != ignore_index
    y_safe = torch.where(keep, y, torch.zeros_like(y))  # gather-safe index for ignored rows
    return z, y_safe, keep, lead


def reduce_rows(per_row: Tensor, keep: Tensor, reduction: str, lead: torch.Size) -> Tensor:
    """Apply ``reduction`` to per-row losses ``[N]`` (already 0 on ignored rows)."""
    if reduction == "none":
        return per_row.reshape(lead)
    total = per_row.sum()
    if reduction == "sum":
        return total
    return total / keep.sum().clamp_min(1).to(total.dtype)


# ----------------------------------------------------------------------------- TFSD
def _softplus(x: Tensor) -> Tensor:
    """``log(1 + e^x)`` without torch's threshold approximation."""
    return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs()))


def tfsd_from_stats(m_neg: Tensor, d_true: Tensor) -> Tensor:
    """TFSD loss from ``M = logsumexp_{j≠y} z_j`` and the scaled true distance ``d = -z_y >= 0``.

    With ``A = logaddexp(M, 0)`` and ``L = logsumexp_j z_j`` the closed form is
    ``L - A + d·exp(-A)``. Since ``L = logaddexp(M, -d)`` this is exactly the
    Bregman divergence of softplus,

        loss = softplus(M + d) - softplus(M) - d·sigmoid(M) >= 0,

    which avoids the cancellation of ``L`` against ``A`` when distances are
    large (|L| up to s·1e4). It is evaluated in the branch that is stable:

    * ``M + d <= 0``: ``log1p(sigmoid(M)·expm1(d)) - d·sigmoid(M)``, the product
      formed in log space so it cannot overflow;
    * ``M + d > 0``: ``softplus(-M-d) - softplus(-M) + d·sigmoid(-M)``.
    """
    s = torch.sigmoid(m_neg)
    # Branch A; log u = log sigmoid(M) + log expm1(d) <= M + d <= 0 where it is used.
    log_u = F.logsigmoid(m_neg) + d_true + torch.log(-torch.expm1(-d_true))
    branch_a = torch.log1p(torch.exp(log_u.clamp_max(0.0))) - d_true * s
    branch_b = _softplus(-m_neg - d_true) - _softplus(-m_neg) + d_true * torch.sigmoid(-m_neg)
    return torch.where(m_neg + d_true > 0, branch_b, branch_a).clamp_min(0.0)


class _TFSDRows(torch.autograd.Function):
    """Per-row TFSD loss with the exact detached-target gradient ``q - p``.

    forward: ``z[N, C], y[N], keep[N] -> loss[N]``. The target ``p`` is
    ``softmax(z with z_y := 0)``; because p is detached, d loss/dz = q - p, where
    for j≠y ``p_j = q_j·exp(L - A)`` and ``p_y = exp(-A)``. Only ``z`` (the input,
    no copy) and two ``[N]`` vectors are saved.
    """

    @staticmethod
    def forward(ctx, z: Tensor, y: Tensor, keep: Tensor) -> Tensor:  # type: ignore[override]
        zy = z.gather(1, y[:, None]).squeeze(1)  # [N]
        m_neg = torch.logsumexp(z.scatter(1, y[:, None], float("-inf")), dim=1)  # [N]
        loss = tfsd_from_stats(m_neg, -zy)
        lse = torch.logaddexp(m_neg, zy)  # L
        anchor = _softplus(m_neg)  # A
        ctx.save_for_backward(z, y, keep, lse, anchor)
        return torch.where(keep, loss, torch.zeros_like(loss))

    @staticmethod
    def backward(ctx, grad_rows: Tensor):  # type: ignore[override]
        z, y, keep, lse, anchor = ctx.saved_tensors
        g = torch.where(keep, grad_rows, torch.zeros_like(grad_rows))  # [N]
        # j != y: (q_j - p_j) = q_j·(1 - e^{L-A}); L <= A because z_y <= 0.
        coef = g * -torch.expm1(lse - anchor)  # [N]
        grad = torch.sub(z, lse[:, None]).exp_().mul_(coef[:, None])  # [N, C]
        q_y = torch.exp(z.gather(1, y[:, None]).squeeze(1) - lse)
        grad.scatter_(1, y[:, None], ((q_y - torch.exp(-anchor)) * g)[:, None])
        return grad, None, None


def tfsd_loss(
    logits: Tensor,
    target: Tensor,
    reduction: str = "mean",
    ignore_index: int = -100,
    validate: bool = True,
) -> Tensor:
    """Teacher-Free Self-Distillation loss ``KL(p || q)``, exact closed form.

    ``logits[*, C]`` are negative (scaled) squared distances, ``z_j = -s·d_j <= 0``.
    ``q = softmax(z)``; the target ``p = softmax(z with z_y := 0)`` is detached
    (the "zero anchor"). See :func:`tfsd_from_stats` for the formula.

    Raises ``ValueError`` if any logit is positive (the anchor would be
    meaningless) unless ``validate=False``.
    """
    check_reduction(reduction)
    z, y, keep, lead = _flatten(logits, target, ignore_index, validate)
    if z.shape[1] < 2:
        raise ValueError("TFSD needs at least 2 classes (the target needs a negative class)")
    if validate and z.numel() and bool((z > 0).any()):
        raise ValueError(
            "TFSD logits must be <= 0 (negative scaled squared distances, e.g. from "
            "EuclideanHead); got a positive logit, so the zero anchor is meaningless"
        )
    per_row = _TFSDRows.apply(z, y, keep)
    return reduce_rows(per_row, keep, reduction, lead)


# ----------------------------------------------------------------------------- CE family
def _ce_rows(z: Tensor, y: Tensor, keep: Tensor, label_smoothing: float = 0.0) -> Tensor:
    rows = F.cross_entropy(z, y, reduction="none", label_smoothing=label_smoothing)
    return torch.where(keep, rows, torch.zeros_like(rows))


def cross_entropy(
    logits: Tensor, target: Tensor, reduction: str = "mean", ignore_index: int = -100,
    validate: bool = True,
) -> Tensor:
    """Plain cross-entropy. On ``EuclideanHead`` logits this is the ``metric_ce`` ablation."""
    check_reduction(reduction)
    z, y, keep, lead = _flatten(logits, target, ignore_index, validate)
    return reduce_rows(_ce_rows(z, y, keep), keep, reduction, lead)


def check_unit_interval(name: str, value: float, high_open: bool = True) -> float:
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v and (v < 1.0 if high_open else v <= 1.0)):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def check_positive(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v


def check_nonnegative(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def label_smoothing_loss(
    logits: Tensor, target: Tensor, smoothing: float = 0.1, reduction: str = "mean",
    ignore_index: int = -100, validate: bool = True,
) -> Tensor:
    """CE against ``(1 - ε)·onehot + ε/C`` (Szegedy et al. 2016)."""
    check_reduction(reduction)
    eps = check_unit_interval("smoothing", smoothing)
    z, y, keep, lead = _flatten(logits, target, ignore_index, validate)
    return reduce_rows(_ce_rows(z, y, keep, eps), keep, reduction, lead)


def logitnorm_loss(
    logits: Tensor, target: Tensor, tau: float = 0.04, reduction: str = "mean",
    ignore_index: int = -100, validate: bool = True,
) -> Tensor:
    """LogitNorm (Wei et al. 2022): ``CE(z / (τ·(||z||₂ + 1e-7)), y)``.

    This is cross-entropy, i.e. it *includes* the log-softmax (pytorch-ood's
    version omits it). τ = 0.04 is the paper's CIFAR-10 setting.
    """
    check_reduction(reduction)
    t = check_positive("tau", tau)
    z, y, keep, lead = _flatten(logits, target, ignore_index, validate)
    zn = z / ((torch.linalg.vector_norm(z, dim=1, keepdim=True) + 1e-7) * t)
    return reduce_rows(_ce_rows(zn, y, keep), keep, reduction, lead)


def zloss_cross_entropy(
    logits: Tensor, target: Tensor, coef: float = 1e-4, reduction: str = "mean",
    ignore_index: int = -100, validate: bool = True,
) -> Tensor:
    """CE plus the PaLM z-loss ``coef·logsumexp(z)²`` (Chowdhery et al. 2022)."""
    check_reduction(reduction)
    c = check_nonnegative("coef", coef)
    z, y, keep, lead = _flatten(logits, target, ignore_index, validate)
    lse = torch.logsumexp(z, dim=1)
    rows = F.cross_entropy(z, y, reduction="none") + c * lse.square()
    rows = torch.where(keep, rows, torch.zeros_like(rows))
    return reduce_rows(rows, keep, reduction, lead)


# ----------------------------------------------------------------------------- modules
class _LossModule(nn.Module):
    """Holds the validated common arguments; subclasses add their hyperparameters."""

    def __init__(self, reduction: str = "mean", ignore_index: int = -100, validate: bool = True):
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.ignore_index = int(ignore_index)
        self.validate = bool(validate)

    def _common(self) -> dict:
        return {"reduction": self.reduction, "ignore_index": self.ignore_index,
                "validate": self.validate}

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"


class TFSDLoss(_LossModule):
    """Module form of :func:`tfsd_loss`."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return tfsd_loss(logits, target, **self._common())


class CrossEntropyLoss(_LossModule):
    """Module form of :func:`cross_entropy`."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target, **self._common())


class LabelSmoothingLoss(_LossModule):
    """Module form of :func:`label_smoothing_loss`."""

    def __init__(self, smoothing: float = 0.1, **kw) -> None:
        super().__init__(**kw)
        self.smoothing = check_unit_interval("smoothing", smoothing)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_loss(logits, target, self.smoothing, **self._common())


class LogitNormLoss(_LossModule):
    """Module form of :func:`logitnorm_loss`."""

    def __init__(self, tau: float = 0.04, **kw) -> None:
        super().__init__(**kw)
        self.tau = check_positive("tau", tau)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return logitnorm_loss(logits, target, self.tau, **self._common())


class ZLossCrossEntropy(_LossModule):
    """Module form of :func:`zloss_cross_entropy`."""

    def __init__(self, coef: float = 1e-4, **kw) -> None:
        super().__init__(**kw)
        self.coef = check_nonnegative("coef", coef)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return zloss_cross_entropy(logits, target, self.coef, **self._common())
