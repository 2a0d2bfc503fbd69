"""Fused head + loss for large vocabularies: never holds all ``N×V`` logits.

``fused_tfsd_loss(features, centers, target)`` equals
``tfsd_loss(EuclideanHead(...)(features), target)``, values and gradients;
:mod:`.fused_ce`'s ``fused_ce_loss`` is its CE twin and shares this module's chunking,
backends and plumbing.

How (as Liger-Kernel's fused linear cross-entropy does): the ``N`` rows are
processed in chunks inside a custom autograd Function. For each chunk the
forward pass computes the logits with one GEMM, the per-row loss, and
``dL/dz`` in place of the logits; two more GEMMs turn that into the gradients
of the features and of the centres/weights, which are kept for backward.
Peak extra memory is one chunk of logits (``chunk·V·6`` bytes in bf16, or
``chunk·V·2`` with the Triton kernels), whatever ``N`` is. The per-row losses are
computed once, after the loop, from three statistics each chunk leaves behind.
``reduction="none"`` cannot pre-scale the gradients, so it
recomputes the chunks in backward (one extra GEMM per chunk).

``backend="triton_tiled"`` (experimental, never timed on a GPU): "triton" with a 2-D
tiled gradient kernel that also writes the gradient's column sums, saving one read of
each chunk's ``[n, V]`` gradient; ``benchmarks/gpu_check.sh`` compares the two.

Euclidean gradient, with ``G = dL/dz`` and ``z_ij = -s·||x_i - c_j||²``:
``dL/dx_i = -2s·(x_i·Σ_j G_ij - Σ_j G_ij c_j)`` and
``dL/dc_j = -2s·(c_j·Σ_i G_ij - Σ_i G_ij x_i)``.

Everything is measured from a shift ``mu`` (the features' mean): distances do not
change, but features and centres far from the origin no longer cancel in the compute
dtype (see :func:`_tfsd_pass`; tested in bf16 against float64 with ``||x||²`` 100× the
squared distances). A residual: ``dL/dx`` keeps an error of the order of ``|mu|`` times
the rounding of ``Σ_j G_ij`` (cosine 0.996 to float64 at ``||x||²`` ~ 1e5 in bf16).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from . import fused_triton
from .heads import check_scale
from .losses import _softplus, check_reduction, check_targets, tfsd_from_stats

__all__ = ["BACKENDS", "default_chunk_size", "fused_tfsd_loss"]

#: "eager": plain PyTorch ops per chunk; "triton": the per-chunk elementwise work
#: in two geomviz.fused_triton kernels; "triton_tiled" (experimental, unmeasured on a
#: GPU): "triton" with a 2-D tiled gradient kernel that also writes the column sums;
#: "auto": triton on CUDA when Triton is installed, else eager.
BACKENDS = ("auto", "eager", "triton", "triton_tiled")
TRITON = ("triton", "triton_tiled")

#: Working-set budget of one chunk of logits, by device type (bytes). It keeps the
#: extra memory flat in V; CPUs get less, so a chunk stays closer to cache.
CHUNK_BUDGET_BYTES = {"cuda": 192 * 2**20, "cpu": 32 * 2**20}


def default_chunk_size(n_rows: int, num_classes: int, dim: int, compute_dtype: torch.dtype,
                       device_type: str = "cuda", backend: str = "eager") -> int:
    """Rows per chunk: a power of two whose working set fits the budget.

    Per row, an eager chunk holds ``V`` fp32 logits and, briefly, the GEMM
    output or the gradient in the compute dtype (6 bytes each in bf16); the
    Triton backend only the GEMM output, which it overwrites with the gradient.
    The ``[chunk, D]`` temporaries of the feature gradient are counted as
    two fp32 + compute-dtype rows.
    """
    budget = CHUNK_BUDGET_BYTES.get(device_type, CHUNK_BUDGET_BYTES["cuda"])
    item = torch.empty((), dtype=compute_dtype).element_size()
    # triton_tiled adds 4/BM bytes of partial column sums per logit (1/16 of bf16 at BM=32),
    # left out so it chunks exactly like triton and the two time the same GEMMs
    per_logit = item if backend in TRITON else 4 + item
    per_row = per_logit * max(1, num_classes) + 2 * (4 + item) * max(1, dim)
    rows = max(1, budget // per_row)
    rows = 1 << (rows.bit_length() - 1)  # floor to a power of two (GEMM-friendly)
    return max(1, min(rows, max(1, n_rows)))


# ----------------------------------------------------------------------------- per-chunk math
# A core processes one chunk of rows. It writes three statistics per row into
# ``stats[3, n]``: ``m`` = max_{j≠y} w_j, ``Σ_{j≠y} exp(w_j - m)`` and ``w_y``, where
# ``w_j = z_j + s||x||²`` (TFSD) or ``z_j`` (CE, over all j); and, if gradients are
# wanted, returns the chunk's gradient w.r.t. the GEMM output in the compute dtype.
def tfsd_row_grad(mx: Tensor, sum_e: Tensor, w_y: Tensor, x2s: Tensor, w_row: Tensor,
                  scale: float) -> tuple[Tensor, Tensor]:
    """Per-row factors of ``-s·w·dL/dz``: ``coef`` (times ``exp(w_j - m)``, j≠y) and ``g_y``.

    ``dL/dz_j = q_j - p_j = q_j·(1 - e^{L-A})`` for j≠y and ``q_y - e^{-A}`` at y.
    """
    m_neg = mx + torch.log(sum_e) - x2s  # M = logsumexp_{j≠y} z_j
    zy = w_y - x2s
    lse = torch.logaddexp(m_neg, zy)  # L
    anchor = _softplus(m_neg)  # A
    coef = -scale * w_row * torch.exp(mx - x2s - lse) * -torch.expm1(lse - anchor)
    g_y = -scale * w_row * (torch.exp(zy - lse) - torch.exp(-anchor))
    return coef, g_y


def _tfsd_core(xs, C, neg_c2s, x2s, y, w_row, scale, need_grad, stats):
    """Eager TFSD chunk. xs[n,D], C[V,D], neg_c2s[V] = -s||c||², x2s[n] = s||x||²."""
    xc = xs @ C.t()  # [n,V] compute dtype (the GEMM lives here so xc is freed below)
    z = torch.add(neg_c2s, xc, alpha=2.0 * scale)  # [n,V] fp32: w = logits + x2s
    del xc
    z.clamp_max_(x2s[:, None])  # logits <= 0 (rounding guard; gradient passes through)
    stats[2].copy_(z.gather(1, y[:, None]).squeeze(1))
    z.scatter_(1, y[:, None], float("-inf"))
    torch.amax(z, 1, out=stats[0])
    z.sub_(stats[0][:, None]).exp_()  # e_j = exp(w_j - m), e_y = 0
    torch.sum(z, 1, out=stats[1])
    if not need_grad:
        return None, None
    coef, g_y = tfsd_row_grad(stats[0], stats[1], stats[2], x2s, w_row, scale)
    z.mul_(coef[:, None]).scatter_(1, y[:, None], g_y[:, None])  # z is now -s·w·dL/dz
    return z.to(xs.dtype), coef * stats[1] + g_y


def _resolve_backend(backend: str, device: torch.device, cdt: torch.dtype) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    usable = fused_triton.triton_available() and cdt != torch.float64
    if backend == "auto":
        return "triton" if usable and device.type == "cuda" else "eager"
    if backend in TRITON:
        if not fused_triton.triton_available():
            raise ValueError(f"backend={backend!r} needs Triton: pip install triton")
        if cdt == torch.float64:
            raise ValueError(f"backend={backend!r} does not support float64; use 'eager'")
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(f"backend={backend!r} needs a CUDA device (or TRITON_INTERPRET=1)")
    return backend


# ----------------------------------------------------------------------------- shared plumbing
def check_chunk_size(chunk_size: int | None) -> int | None:
    """``None`` (pick per batch) or a positive integer; anything else is a ``ValueError``."""
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return chunk_size


def _acc_dtype(compute: torch.dtype) -> torch.dtype:
    """Statistics (norms, softmax sums, losses) are fp32, or fp64 for fp64 inputs."""
    return torch.float64 if compute == torch.float64 else torch.float32


#: rows of ``[V, D]`` upcast at a time by the shifted passes over the centres (bytes)
SHIFT_BLOCK_BYTES = 64 * 2**20


def _blocks(t: Tensor, acc: torch.dtype):
    """Row slices of ``t`` whose ``acc`` copy fits :data:`SHIFT_BLOCK_BYTES`."""
    rows = max(1, SHIFT_BLOCK_BYTES // (max(1, t.shape[1]) * torch.empty((), dtype=acc)
                                        .element_size()))
    return (slice(i, i + rows) for i in range(0, t.shape[0], rows))


def _shifted_sq_norms(C: Tensor, mu: Tensor) -> Tensor:
    """``||c_j - mu||²`` in ``mu``'s dtype, by row blocks (no full upcast copy of ``C``)."""
    out = torch.empty(C.shape[0], dtype=mu.dtype, device=C.device)
    for b in _blocks(C, mu.dtype):
        out[b] = (C[b].to(mu.dtype) - mu).square_().sum(1)
    return out


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
    check_chunk_size(chunk_size)
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
    """All chunks: ``loss[N]`` and (if asked) ``dx[N,D]``, ``dC[V,D]`` in the compute dtype."""
    n_rows = x.shape[0]
    need_grad = need_dx or need_dc
    core = fused_triton.tfsd_core if backend == "triton" else _tfsd_core
    acc = _acc_dtype(x.dtype)
    # Distances do not change under a common shift, so everything is measured from mu, the
    # features' mean (rounded to the compute dtype: the shift itself is exact). Features and
    # centres far from the origin otherwise cancel: x·c and ||c||² of ~8000 keep ±32 in
    # bf16, against squared distances of ~60. The GEMMs see x - mu, and the correction
    # terms are fp32.
    mu = x.mean(0, dtype=acc).to(x.dtype).to(acc)  # [D]
    fast = backend in TRITON and C.stride(1) == 1 and acc == torch.float32
    neg_c2s = (fused_triton.shifted_sq_norms(C, mu) if fast  # one read of C, as ||c||² was
               else _shifted_sq_norms(C, mu)).mul_(-scale)  # [V] -s||c - mu||²
    x2s = torch.empty(n_rows, dtype=acc, device=x.device)  # s(||x'||² + 2x'·mu), x' = x - mu
    stats = torch.empty(3, n_rows, dtype=acc, device=x.device)
    dx = torch.empty_like(x) if need_dx else None
    dC = torch.empty_like(C) if need_dc else None  # the first chunk overwrites it (beta=0)
    colsum = torch.zeros(C.shape[0], dtype=acc, device=x.device) if need_dc else None
    for s in range(0, n_rows, chunk):
        e = min(s + chunk, n_rows)
        xa = x[s:e].to(acc) - mu  # [n,D] acc: x' (exact: x and mu are compute-dtype values)
        xs = xa.to(x.dtype)  # [n,D] x' for the GEMMs (rounded once, relative to |x'|)
        xa = xs.to(acc)  # the x' used, so that x2s, dx and dC describe the same point
        x2s[s:e] = (xa.square().sum(1) + 2.0 * (xa @ mu)) * scale  # w_j = z_j + x2s
        args = (xs, C, neg_c2s, x2s[s:e], y[s:e], w_row[s:e], scale, need_grad, stats[:, s:e])
        if backend == "triton_tiled":  # part[cdiv(n, BM), V]: the kernel's column sums of gd
            gd, rowsum, part = fused_triton.tfsd_core_tiled(*args, need_dc)
        else:
            (gd, rowsum), part = core(*args), None
        if not need_grad:
            continue
        if need_dx:  # -2s·(x·Σ_j G - G@C), the -s already in gd; x = x' + mu
            dxs = (gd @ C).to(acc).mul_(-2.0)  # [n,D]
            dx[s:e] = dxs.addcmul_(xa + mu, (2.0 * rowsum)[:, None])  # xa may alias xs
        if need_dc:  # -2s·(c'·Σ_i G - Gᵀx'): the Gᵀx' part here, c' = c - mu at the end
            dC.addmm_(gd.t(), xs, beta=0.0 if s == 0 else 1.0, alpha=-2.0)
            colsum += gd.sum(0, dtype=acc) if part is None else part.sum(0)
        del gd
    loss = tfsd_from_stats(stats[0] + torch.log(stats[1]) - x2s, x2s - stats[2])
    return loss, dx, dC, colsum, mu


def _finalize_dc(dC: Tensor, C: Tensor, colsum: Tensor, mu: Tensor, g: Tensor | None,
                 backend: str) -> Tensor:
    """``dC ← g·(dC + 2·(C - mu)·colsum)`` in place: the ``c'_j·Σ_i G_ij`` term and the
    incoming grad, in ``mu``'s dtype by row blocks (``C - mu`` in bf16 would round ``c`` at
    its own, large, magnitude).

    Deferred to backward so the two passes over ``[V, D]`` become one.
    """
    if backend in TRITON and dC.is_contiguous() and C.is_contiguous():
        return fused_triton.finalize_dc(dC, C, colsum, mu, g)
    scale = 2.0 * colsum if g is None else 2.0 * colsum * g.to(colsum.dtype)
    gain = None if g is None else g.to(mu.dtype)
    for b in _blocks(C, mu.dtype):
        d = dC[b].to(mu.dtype)
        if gain is not None:
            d.mul_(gain)
        dC[b] = d.addcmul_(C[b].to(mu.dtype) - mu, scale[b, None])
    return dC


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
            loss, dx, dC, colsum, mu = _tfsd_pass(x, C, y, w_row, scale, chunk, need_dx,
                                                  need_dc, backend)
        ctx.reduction, ctx.scale, ctx.chunk, ctx.backend = reduction, scale, chunk, backend
        ctx.dtypes = (features.dtype, centers.dtype, cdt)
        if eager:
            ctx.save_for_backward(dx, dC, colsum, mu, centers)
        else:
            ctx.save_for_backward(features, centers, y, keep)
        return _reduce(loss, keep, reduction)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        fdt, cdt_c, cdt = ctx.dtypes
        if ctx.reduction != "none":
            dx, dC, colsum, mu, centers = ctx.saved_tensors
            dx = None if dx is None else dx.mul_(grad_out.to(dx.dtype)).to(fdt)
            if dC is not None:
                dC = _finalize_dc(dC, centers.to(cdt), colsum, mu, grad_out,
                                  ctx.backend).to(cdt_c)
            return dx, dC, None, None, None, None, None, None
        features, centers, y, keep = ctx.saved_tensors
        need_dx, need_dc = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(features.device.type, enabled=False):
            x, C = features.to(cdt), centers.to(cdt)
            w_row = _row_weights(keep, "none", _acc_dtype(cdt), grad_out)
            _, dx, dC, colsum, mu = _tfsd_pass(x, C, y, w_row, ctx.scale, ctx.chunk, need_dx,
                                               need_dc, ctx.backend)
            if dC is not None:
                dC = _finalize_dc(dC, C, colsum, mu, None, ctx.backend)
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
        x.shape[0], centers.shape[0], x.shape[1], cdt, x.device.type, backend)
    out = _FusedTFSD.apply(x, centers, y, keep, s, chunk, reduction, backend)
    return out.reshape(lead) if reduction == "none" else out
