"""Fused head + loss for large vocabularies: never holds all ``N×V`` logits.

``fused_tfsd_loss(features, centers, target)`` equals
``tfsd_loss(EuclideanHead(...)(features), target)`` and ``fused_ce_loss``
equals ``cross_entropy(features @ W.T + b, target)``, values and gradients.

How (as Liger-Kernel's fused linear cross-entropy does): the ``N`` rows are
processed in chunks inside a custom autograd Function. For each chunk the
forward pass computes the logits with one GEMM, the per-row loss, and
``dL/dz`` in place of the logits; two more GEMMs turn that into the gradients
of the features and of the centres/weights, which are kept for backward.
Peak extra memory is one chunk of logits (about ``chunk·V·6`` bytes in bf16),
whatever ``N`` is. ``reduction="none"`` cannot pre-scale the gradients, so it
recomputes the chunks in backward (one extra GEMM per chunk).

Euclidean gradient, with ``G = dL/dz`` and ``z_ij = -s·||x_i - c_j||²``:
``dL/dx_i = -2s·(x_i·Σ_j G_ij - Σ_j G_ij c_j)`` and
``dL/dc_j = -2s·(c_j·Σ_i G_ij - Σ_i G_ij x_i)``.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from . import fused_triton
from .heads import check_scale
from .losses import _softplus, check_reduction, check_targets, tfsd_from_stats

__all__ = ["fused_tfsd_loss", "fused_ce_loss", "default_chunk_size", "BACKENDS"]

#: "eager": plain PyTorch ops per chunk; "triton": the per-chunk elementwise work
#: in two geomviz.fused_triton kernels; "auto": triton on CUDA when Triton is
#: installed, else eager.
BACKENDS = ("auto", "eager", "triton")

#: Split the K = V reduction of the ``G @ C`` GEMM (output only ``[chunk, D]``)
#: into this many batched pieces, so that small chunks still fill the GPU.
DX_SPLIT_K = 1

#: Working-set budget of one chunk of logits, by device type (bytes). It keeps the
#: extra memory flat in V; CPUs get less, so a chunk stays closer to cache.
CHUNK_BUDGET_BYTES = {"cuda": 192 * 2**20, "cpu": 32 * 2**20}


def default_chunk_size(n_rows: int, num_classes: int, compute_dtype: torch.dtype,
                       device_type: str = "cuda", backend: str = "eager") -> int:
    """Rows per chunk: a power of two whose ``[chunk, V]`` working set fits the budget.

    Per element an eager chunk holds the fp32 logits and, briefly, the
    GEMM output or the gradient in the compute dtype (6 bytes in bf16); the
    Triton backend only the GEMM output, which it overwrites with the gradient.
    """
    budget = CHUNK_BUDGET_BYTES.get(device_type, CHUNK_BUDGET_BYTES["cuda"])
    item = torch.empty((), dtype=compute_dtype).element_size()
    per_elem = item if backend == "triton" else 4 + item
    rows = max(1, budget // (per_elem * max(1, num_classes)))
    rows = 1 << (rows.bit_length() - 1)  # floor to a power of two (GEMM-friendly)
    return max(1, min(rows, max(1, n_rows)))


# ----------------------------------------------------------------------------- per-chunk math
def _tfsd_core(
    xs: Tensor, C: Tensor, neg_c2s: Tensor, x2s: Tensor, y: Tensor, w_row: Tensor, scale: float,
    need_grad: bool, out_dtype: torch.dtype,
):
    """One chunk of TFSD. Shapes: xs[n,D], C[V,D], neg_c2s[V] = -s||c||², x2s[n] = s||x||².

    Returns ``loss[n]`` and, if ``need_grad``, ``gd[n,V]`` (``-s·w·dL/dz`` in
    ``out_dtype``), ``rowsum[n]`` and ``colsum[V]`` of ``gd`` (fp32).
    """
    xc = xs @ C.t()  # [n,V] compute dtype (the GEMM lives here so xc is freed below)
    z = torch.add(neg_c2s, xc, alpha=2.0 * scale)  # [n,V] fp32: logits + x2s
    del xc
    z.clamp_max_(x2s[:, None])  # logits <= 0 (rounding guard; gradient passes through)
    zy = z.gather(1, y[:, None]).squeeze(1) - x2s  # [n] true-class logit
    z.scatter_(1, y[:, None], float("-inf"))
    mx = z.amax(1)  # [n] max over negatives (+ x2s)
    z.sub_(mx[:, None]).exp_()  # e_j = exp(z_j - max), e_y = 0
    sum_e = z.sum(1)  # [n] >= 1
    m_neg = mx + torch.log(sum_e) - x2s  # M = logsumexp_{j≠y} z_j
    loss = tfsd_from_stats(m_neg, -zy)
    if not need_grad:
        return loss, None, None, None
    lse = torch.logaddexp(m_neg, zy)  # L
    anchor = _softplus(m_neg)  # A
    # dL/dz_j = q_j - p_j = e_j·exp(max - L)·(1 - e^{L-A}) (j≠y);  q_y - exp(-A) (j=y)
    coef = -scale * w_row * torch.exp(mx - x2s - lse) * -torch.expm1(lse - anchor)
    g_y = -scale * w_row * (torch.exp(zy - lse) - torch.exp(-anchor))
    z.mul_(coef[:, None]).scatter_(1, y[:, None], g_y[:, None])  # z is now gd
    rowsum = coef * sum_e + g_y
    colsum = z.sum(0)
    return loss, z.to(out_dtype), rowsum, colsum


def _ce_core(
    xs: Tensor, W: Tensor, bias: Tensor | None, y: Tensor, w_row: Tensor, need_grad: bool,
    out_dtype: torch.dtype,
):
    """One chunk of CE, ``xs[n,D]``, ``W[V,D]``. Returns ``loss[n]``, ``g[n,V] = w·(softmax - onehot)``,
    ``colsum[V]`` of ``g`` (fp32)."""
    acc = w_row.dtype
    xw = xs @ W.t()  # [n,V]
    z = xw.to(acc) if bias is None else torch.add(bias.to(acc), xw)  # [n,V] fp32/fp64
    del xw
    zy = z.gather(1, y[:, None]).squeeze(1)
    mx = z.amax(1)
    z.sub_(mx[:, None]).exp_()
    sum_e = z.sum(1)
    loss = mx + torch.log(sum_e) - zy
    if not need_grad:
        return loss, None, None
    z.mul_((w_row / sum_e)[:, None]).scatter_add_(1, y[:, None], -w_row[:, None])
    return loss, z.to(out_dtype), z.sum(0)


def _resolve_backend(backend: str, device: torch.device, cdt: torch.dtype) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    usable = fused_triton.triton_available() and cdt != torch.float64
    if backend == "auto":
        return "triton" if usable and device.type == "cuda" else "eager"
    if backend == "triton":
        if not fused_triton.triton_available():
            raise ValueError("backend='triton' needs Triton: pip install triton")
        if cdt == torch.float64:
            raise ValueError("backend='triton' does not support float64; use 'eager'")
        if device.type != "cuda" and not interpreted:
            raise ValueError("backend='triton' needs a CUDA device (or TRITON_INTERPRET=1)")
    return backend


def _mm_split_k(a: Tensor, b: Tensor, splits: int, acc: torch.dtype) -> Tensor:
    """``a[n, K] @ b[K, D]`` in ``acc``; with ``splits > 1`` as one batched GEMM over K pieces."""
    k_total = a.shape[1]
    if splits <= 1 or k_total % splits:
        return (a @ b).to(acc)
    k = k_total // splits
    parts = torch.bmm(a.unflatten(1, (splits, k)).transpose(0, 1), b.unflatten(0, (splits, k)))
    return parts.to(acc).sum(0)  # [S, n, D] -> [n, D]


# ----------------------------------------------------------------------------- shared plumbing
def _acc_dtype(compute: torch.dtype) -> torch.dtype:
    """Statistics (norms, softmax sums, losses) are fp32, or fp64 for fp64 inputs."""
    return torch.float64 if compute == torch.float64 else torch.float32


def _row_sq_norms(t: Tensor, acc: torch.dtype, block_bytes: int = 8 * 2**20) -> Tensor:
    """``||t_i||²`` in ``acc`` precision, upcasting a block of rows at a time (no full copy)."""
    rows = max(1, block_bytes // (t.shape[1] * torch.empty((), dtype=acc).element_size()))
    return torch.cat([t[i : i + rows].to(acc).pow(2).sum(1) for i in range(0, t.shape[0], rows)])


def _compute_dtype(x: Tensor, w: Tensor) -> torch.dtype:
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return torch.promote_types(x.dtype, w.dtype)


def _prepare(features: Tensor, vectors: Tensor, target: Tensor, ignore_index: int,
             validate: bool, reduction: str, chunk_size: int | None, name: str):
    check_reduction(reduction)
    if vectors.dim() != 2:
        raise ValueError(f"{name} must be [V, D], got shape {tuple(vectors.shape)}")
    num_classes, dim = vectors.shape
    if features.dim() < 1 or features.shape[-1] != dim:
        raise ValueError(
            f"features must be [..., {dim}] to match {name} [{num_classes}, {dim}], "
            f"got {tuple(features.shape)}"
        )
    if features.device != vectors.device:
        raise ValueError(f"features are on {features.device} but {name} on {vectors.device}")
    lead = features.shape[:-1]
    check_targets(lead, num_classes, target, ignore_index, validate)
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    x = features.reshape(-1, dim)
    y = target.reshape(-1).long()
    keep = y != ignore_index
    y_safe = torch.where(keep, y, torch.zeros_like(y))
    return x, y_safe, keep, lead


def _row_weights(keep: Tensor, reduction: str, acc: torch.dtype,
                 grad_rows: Tensor | None = None) -> Tensor:
    """Per-row loss weights ``[N]``: 1/n_kept (mean), 1 (sum) or the incoming grads (none)."""
    w = keep.to(acc)
    if grad_rows is not None:
        return w * grad_rows.to(acc)
    if reduction == "mean":
        return w / keep.sum().clamp_min(1).to(acc)
    return w


def _reduce(loss: Tensor, keep: Tensor, reduction: str) -> Tensor:
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / keep.sum().clamp_min(1).to(total.dtype)


# ----------------------------------------------------------------------------- TFSD
def _tfsd_pass(x, C, y, w_row, scale, chunk, need_dx, need_dc, backend):
    """Run all chunks; returns ``loss[N]`` and (if asked) ``dx[N,D]``, ``dC[V,D]`` (compute dtype)."""
    n_rows = x.shape[0]
    need_grad = need_dx or need_dc
    core = fused_triton.tfsd_core if backend == "triton" else _tfsd_core
    acc = _acc_dtype(x.dtype)
    neg_c2s = _row_sq_norms(C, acc).mul_(-scale)  # [V]
    loss = torch.empty(n_rows, dtype=acc, device=x.device)
    dx = torch.empty_like(x) if need_dx else None
    dC = torch.zeros_like(C) if need_dc else None
    colsum = torch.zeros(C.shape[0], dtype=acc, device=x.device) if need_dc else None
    for s in range(0, n_rows, chunk):
        xs = x[s : s + chunk]  # [n,D]
        x2s = xs.to(acc).pow(2).sum(1).mul_(scale)  # [n]
        out = core(xs, C, neg_c2s, x2s, y[s : s + chunk], w_row[s : s + chunk], scale,
                   need_grad, x.dtype)
        loss[s : s + chunk] = out[0]
        if not need_grad:
            continue
        _, gd, rowsum, cs = out
        if need_dx:  # -2s·(x·Σ_j G - G@C), the -s already in gd
            dxs = _mm_split_k(gd, C, DX_SPLIT_K, acc).mul_(-2.0)  # [n,D]
            dx[s : s + chunk] = dxs.addcmul_(xs, (2.0 * rowsum)[:, None])
        if need_dc:
            dC.addmm_(gd.t(), xs, alpha=-2.0)
            colsum += cs
        del gd
    if need_dc:
        dC.addcmul_(C, (2.0 * colsum)[:, None].to(C.dtype))
    return loss, dx, dC


class _FusedTFSD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, centers, y, keep, scale, chunk, reduction, backend):  # type: ignore[override]
        dev = features.device.type
        cdt = _compute_dtype(features, centers)
        with torch.autocast(dev, enabled=False):
            x, C = features.to(cdt), centers.to(cdt)
            eager = reduction != "none"
            need_dx = eager and ctx.needs_input_grad[0]
            need_dc = eager and ctx.needs_input_grad[1]
            w_row = _row_weights(keep, reduction, _acc_dtype(cdt))
            loss, dx, dC = _tfsd_pass(x, C, y, w_row, scale, chunk, need_dx, need_dc, backend)
        ctx.reduction, ctx.scale, ctx.chunk, ctx.backend = reduction, scale, chunk, backend
        ctx.dtypes = (features.dtype, centers.dtype, cdt)
        if eager:
            ctx.save_for_backward(dx, dC)
        else:
            ctx.save_for_backward(features, centers, y, keep)
        return _reduce(loss, keep, reduction)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        fdt, cdt_c, cdt = ctx.dtypes
        if ctx.reduction != "none":
            dx, dC = ctx.saved_tensors
            dx = None if dx is None else dx.mul_(grad_out.to(dx.dtype)).to(fdt)
            dC = None if dC is None else dC.mul_(grad_out.to(dC.dtype)).to(cdt_c)
            return dx, dC, None, None, None, None, None, None
        features, centers, y, keep = ctx.saved_tensors
        need_dx, need_dc = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(features.device.type, enabled=False):
            x, C = features.to(cdt), centers.to(cdt)
            w_row = _row_weights(keep, "none", _acc_dtype(cdt), grad_out)
            _, dx, dC = _tfsd_pass(x, C, y, w_row, ctx.scale, ctx.chunk, need_dx, need_dc,
                                   ctx.backend)
        return (None if dx is None else dx.to(fdt), None if dC is None else dC.to(cdt_c),
                None, None, None, None, None, None)


def fused_tfsd_loss(
    features: Tensor,
    centers: Tensor,
    target: Tensor,
    scale: float = 1.0,
    chunk_size: int | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    validate: bool = True,
    backend: str = "auto",
) -> Tensor:
    """TFSD loss of ``EuclideanHead(centers, scale)(features)`` without materialising the logits.

    ``features[*, D]``, ``centers[V, D]``, ``target[*]``. ``chunk_size=None``
    picks rows per chunk so that one chunk stays within ~192 MiB on GPU
    (32 MiB on CPU), so the extra memory does not grow with ``N`` or ``V``.
    ``backend``: see :data:`BACKENDS` ("auto" uses the Triton kernels on CUDA
    when Triton is installed).
    Under autocast the GEMMs run in the autocast dtype; statistics are fp32.
    """
    s = check_scale(scale)
    x, y, keep, lead = _prepare(features, centers, target, ignore_index, validate, reduction,
                                chunk_size, "centers")
    if centers.shape[0] < 2:
        raise ValueError("TFSD needs at least 2 classes (the target needs a negative class)")
    cdt = _compute_dtype(features, centers)
    backend = _resolve_backend(backend, x.device, cdt)
    chunk = int(chunk_size) if chunk_size else default_chunk_size(
        x.shape[0], centers.shape[0], cdt, x.device.type, backend)
    out = _FusedTFSD.apply(x, centers, y, keep, s, chunk, reduction, backend)
    return out.reshape(lead) if reduction == "none" else out


# ----------------------------------------------------------------------------- CE
def _ce_pass(x, W, b, y, w_row, chunk, need_dx, need_dw, need_db, backend):
    n_rows = x.shape[0]
    need_grad = need_dx or need_dw or need_db
    core = fused_triton.ce_core if backend == "triton" else _ce_core
    acc = w_row.dtype
    loss = torch.empty(n_rows, dtype=acc, device=x.device)
    dx = torch.empty_like(x) if need_dx else None
    dW = torch.zeros_like(W) if need_dw else None
    db = torch.zeros(W.shape[0], dtype=acc, device=x.device) if need_db else None
    for s in range(0, n_rows, chunk):
        xs = x[s : s + chunk]
        out = core(xs, W, b, y[s : s + chunk], w_row[s : s + chunk], need_grad, x.dtype)
        loss[s : s + chunk] = out[0]
        if not need_grad:
            continue
        _, g, cs = out
        if need_dx:
            dx[s : s + chunk] = _mm_split_k(g, W, DX_SPLIT_K, acc)
        if need_dw:
            dW.addmm_(g.t(), xs)
        if need_db:
            db += cs
        del g
    return loss, dx, dW, db


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
            loss, dx, dW, db = _ce_pass(x, W, bias, y, _row_weights(keep, reduction, _acc_dtype(cdt)), chunk,
                                        *needs, backend)
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
                _, *grads = _ce_pass(x, W, bias, y, _row_weights(keep, "none", _acc_dtype(cdt), grad_out),
                                     ctx.chunk, *needs, ctx.backend)
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
        x.shape[0], weight.shape[0], cdt, x.device.type, backend)
    out = _FusedCE.apply(x, weight, bias, y, keep, chunk, reduction, backend)
    return out.reshape(lead) if reduction == "none" else out
