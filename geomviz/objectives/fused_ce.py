"""Fused linear head + cross-entropy for large vocabularies (the CE twin of
:mod:`.fused`, which holds the shared chunking, backends and plumbing).

``fused_ce_loss(features, weight, target, bias)`` equals
``cross_entropy(features @ weight.T + bias, target)``, values and gradients, without
holding the ``N×V`` logits: per chunk one GEMM for the logits, the softmax statistics,
the gradient written over the logits, and two GEMMs for the feature and weight gradients.
Dot-product logits need no shift (their statistics do not cancel the way squared
distances do).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import fused_triton
from .fused import (
    _acc_dtype,
    _compute_dtype,
    _prepare,
    _reduce,
    _resolve_backend,
    _row_weights,
    default_chunk_size,
)

__all__ = ["fused_ce_loss"]


def _ce_core(xs, W, bias, y, w_row, need_grad, stats):
    """Eager CE chunk. xs[n,D], W[V,D], bias[V] or None."""
    xw = xs @ W.t()  # [n,V]
    z = xw.to(stats.dtype) if bias is None else torch.add(bias.to(stats.dtype), xw)
    del xw
    stats[2].copy_(z.gather(1, y[:, None]).squeeze(1))
    torch.amax(z, 1, out=stats[0])
    z.sub_(stats[0][:, None]).exp_()
    torch.sum(z, 1, out=stats[1])
    if not need_grad:
        return None
    z.mul_((w_row / stats[1])[:, None]).scatter_add_(1, y[:, None], -w_row[:, None])
    return z.to(xs.dtype)  # w·(softmax - onehot)


def _ce_pass(x, W, b, y, w_row, chunk, need_dx, need_dw, need_db, backend):
    n_rows = x.shape[0]
    need_grad = need_dx or need_dw or need_db
    core = fused_triton.ce_core if backend == "triton" else _ce_core
    acc = w_row.dtype
    stats = torch.empty(3, n_rows, dtype=acc, device=x.device)
    dx = torch.empty_like(x) if need_dx else None
    dW = torch.empty_like(W) if need_dw else None  # the first chunk overwrites it (beta=0)
    db = torch.zeros(W.shape[0], dtype=acc, device=x.device) if need_db else None
    for s in range(0, n_rows, chunk):
        e = min(s + chunk, n_rows)
        xs = x[s:e]
        args = (xs, W, b, y[s:e], w_row[s:e], need_grad, stats[:, s:e])
        if backend == "triton_tiled":  # part[cdiv(n, BM), V]: the kernel's column sums of g
            g, part = fused_triton.ce_core_tiled(*args, need_db)
        else:
            g, part = core(*args), None
        if not need_grad:
            continue
        if need_dx:
            dx[s:e] = g @ W
        if need_dw:
            dW.addmm_(g.t(), xs, beta=0.0 if s == 0 else 1.0)
        if need_db:
            db += g.sum(0, dtype=acc) if part is None else part.sum(0)
        del g
    return stats[0] + torch.log(stats[1]) - stats[2], dx, dW, db


class _FusedCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, bias, y, keep, chunk, reduction, backend):  # type: ignore[override]
        dev = features.device.type
        cdt = _compute_dtype(features, weight)
        with torch.autocast(dev, enabled=False):
            x, W = features.to(cdt), weight.to(cdt)
            eager = reduction != "none"
            needs = [eager and ctx.needs_input_grad[i] for i in range(3)]
            needs[2] = needs[2] and bias is not None
            w_row = _row_weights(keep, reduction, _acc_dtype(cdt))
            loss, dx, dW, db = _ce_pass(x, W, bias, y, w_row, chunk, *needs, backend)
        ctx.reduction, ctx.chunk, ctx.backend = reduction, chunk, backend
        ctx.dtypes = (features.dtype, weight.dtype, None if bias is None else bias.dtype, cdt)
        if eager:
            ctx.save_for_backward(dx, dW, db)
        else:
            ctx.save_for_backward(features, weight, bias, y, keep)
        return _reduce(loss, keep, reduction)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        fdt, wdt, bdt, cdt = ctx.dtypes
        if ctx.reduction != "none":
            grads = [None if t is None else t.mul_(grad_out.to(t.dtype)) for t in ctx.saved_tensors]
        else:
            features, weight, bias, y, keep = ctx.saved_tensors
            needs = list(ctx.needs_input_grad[:3])
            needs[2] = needs[2] and bias is not None
            with torch.autocast(features.device.type, enabled=False):
                x, W = features.to(cdt), weight.to(cdt)
                w_row = _row_weights(keep, "none", _acc_dtype(cdt), grad_out)
                _, *grads = _ce_pass(x, W, bias, y, w_row, ctx.chunk, *needs, ctx.backend)
        dx, dW, db = grads
        return (None if dx is None else dx.to(fdt), None if dW is None else dW.to(wdt),
                None if db is None else db.to(bdt), None, None, None, None, None)


def fused_ce_loss(
    features: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    chunk_size: int | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    validate: bool = True,
    backend: str = "auto",
) -> Tensor:
    """Cross-entropy of ``features @ weight.T + bias`` without materialising the logits.

    ``features[*, D]``, ``weight[V, D]``, ``bias[V]`` or None, ``target[*]``.
    ``backend``: as for :func:`fused_tfsd_loss`.
    """
    x, y, keep, lead = _prepare(features, weight, target, ignore_index, validate, reduction,
                                chunk_size, "weight")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must be [{weight.shape[0]}], got {tuple(bias.shape)}")
    cdt = _compute_dtype(features, weight)
    backend = _resolve_backend(backend, x.device, cdt)
    chunk = int(chunk_size) if chunk_size else default_chunk_size(
        x.shape[0], weight.shape[0], x.shape[1], cdt, x.device.type, backend)
    out = _FusedCE.apply(x, weight, bias, y, keep, chunk, reduction, backend)
    return out.reshape(lead) if reduction == "none" else out
