"""Triton kernels for the per-chunk elementwise work of the fused losses (optional; GPU).

The eager path makes about ten fp32 passes over each ``[n, V]`` chunk; these two
kernels make two passes in the GEMM's dtype and overwrite the GEMM output with
the gradient, so a chunk costs ``2·n·V`` bytes in bf16 instead of ``6·n·V``.
Both work on ``w_j = min(mult·xc_j + offs_j, cap)`` per row:

* TFSD: ``xc = x·c_j``, ``mult = 2s``, ``offs = -s||c_j||²``, ``cap = s||x||²``, so
  ``w_j`` is the logit plus ``s||x||²`` (the cap is the ``d >= 0`` rounding guard);
  the softmax statistics skip the target (``EXCLUDE_Y``);
* CE: ``xc = x·w_j``, ``mult = 1``, ``offs = bias``, ``cap = +inf``.

``row_stats`` gives the online max ``m``, ``Σ exp(w_j - m)`` and ``w_y``;
``write_grad`` overwrites ``xc`` with ``coef·exp(w_j - m)``, then at ``j = y``
replaces (TFSD) or adds (CE) ``g_y``. The per-row scalar math between the two
stays in PyTorch. Without a GPU they run under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .losses import _softplus, tfsd_from_stats

__all__ = ["triton_available", "row_stats", "write_grad", "tfsd_core", "ce_core"]


@functools.cache
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def _row_stats(XC, stride, OFFS, CAP, Y, M_OUT, SE_OUT, WY_OUT, mult,
                   V: tl.constexpr, BLOCK: tl.constexpr, EXCLUDE_Y: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        base = XC + row * stride
        y = tl.load(Y + row)
        cap = tl.load(CAP + row)
        m = tl.full((), float("-inf"), tl.float32)
        se = tl.zeros((), tl.float32)
        for off in range(0, V, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            inside = cols < V
            xc = tl.load(base + cols, mask=inside, other=0.0).to(tl.float32)
            w = tl.minimum(mult * xc + tl.load(OFFS + cols, mask=inside, other=0.0), cap)
            keep = inside & (cols != y) if EXCLUDE_Y else inside
            w = tl.where(keep, w, float("-inf"))
            m_new = tl.maximum(m, tl.max(w, 0))
            se = se * tl.exp(m - m_new) + tl.sum(tl.exp(w - m_new), 0)
            m = m_new
        wy = tl.minimum(mult * tl.load(base + y).to(tl.float32) + tl.load(OFFS + y), cap)
        tl.store(M_OUT + row, m)
        tl.store(SE_OUT + row, se)
        tl.store(WY_OUT + row, wy)

    @triton.jit
    def _write_grad(XC, stride, OFFS, CAP, Y, M, COEF, GY, mult,
                    V: tl.constexpr, BLOCK: tl.constexpr, EXCLUDE_Y: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        base = XC + row * stride
        y = tl.load(Y + row)
        cap = tl.load(CAP + row)
        m = tl.load(M + row)
        coef = tl.load(COEF + row)
        gy = tl.load(GY + row)
        for off in range(0, V, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            inside = cols < V
            xc = tl.load(base + cols, mask=inside, other=0.0).to(tl.float32)
            w = tl.minimum(mult * xc + tl.load(OFFS + cols, mask=inside, other=0.0), cap)
            g = coef * tl.exp(w - m)
            at_y = cols == y
            g = tl.where(at_y, gy, g) if EXCLUDE_Y else tl.where(at_y, g + gy, g)
            tl.store(base + cols, g.to(XC.dtype.element_ty), mask=inside)

    return _row_stats, _write_grad


def _launch(v: int) -> tuple[int, int]:
    block = min(8192, 1 << max(1, (v - 1).bit_length()))
    return block, (16 if block >= 8192 else 8 if block >= 2048 else 4)


def row_stats(xc: Tensor, offs: Tensor, cap: Tensor, y: Tensor, mult: float, exclude_y: bool):
    """``xc[n, V]`` (row-contiguous) -> ``m[n], Σexp(w - m)[n], w_y[n]`` (fp32)."""
    n, v = xc.shape
    out = torch.empty(3, n, dtype=torch.float32, device=xc.device)
    block, warps = _launch(v)
    _kernels()[0][(n,)](xc, xc.stride(0), offs, cap, y, out[0], out[1], out[2], float(mult),
                        V=v, BLOCK=block, EXCLUDE_Y=exclude_y, num_warps=warps)
    return out[0], out[1], out[2]


def write_grad(xc: Tensor, offs: Tensor, cap: Tensor, y: Tensor, m: Tensor, coef: Tensor,
               g_y: Tensor, mult: float, exclude_y: bool) -> Tensor:
    """Overwrite ``xc[n, V]`` in place with the gradient (see the module docstring)."""
    n, v = xc.shape
    block, warps = _launch(v)
    _kernels()[1][(n,)](xc, xc.stride(0), offs, cap, y, m, coef.float().contiguous(),
                        g_y.float().contiguous(), float(mult), V=v, BLOCK=block,
                        EXCLUDE_Y=exclude_y, num_warps=warps)
    return xc


def tfsd_core(xs: Tensor, C: Tensor, neg_c2s: Tensor, x2s: Tensor, y: Tensor, w_row: Tensor,
              scale: float, need_grad: bool, out_dtype: torch.dtype):
    """``fused._tfsd_core`` with the two ``[n, V]`` passes in Triton; same returns."""
    xc = xs @ C.t()  # [n,V] compute dtype; becomes the gradient in place
    mx, sum_e, w_y = row_stats(xc, neg_c2s, x2s, y, 2.0 * scale, exclude_y=True)
    zy = w_y - x2s  # true-class logit
    m_neg = mx + torch.log(sum_e) - x2s  # logsumexp over negatives
    loss = tfsd_from_stats(m_neg, -zy)
    if not need_grad:
        return loss, None, None, None
    lse = torch.logaddexp(m_neg, zy)
    anchor = _softplus(m_neg)
    coef = -scale * w_row * torch.exp(mx - x2s - lse) * -torch.expm1(lse - anchor)
    g_y = -scale * w_row * (torch.exp(zy - lse) - torch.exp(-anchor))
    write_grad(xc, neg_c2s, x2s, y, mx, coef, g_y, 2.0 * scale, exclude_y=True)
    return loss, xc, coef * sum_e + g_y, xc.sum(0, dtype=w_row.dtype)


def ce_core(xs: Tensor, W: Tensor, bias: Tensor | None, y: Tensor, w_row: Tensor,
            need_grad: bool, out_dtype: torch.dtype):
    """``fused._ce_core`` with the two ``[n, V]`` passes in Triton; same returns."""
    xc = xs @ W.t()  # [n,V]
    n, v = xc.shape
    offs = (bias.float() if bias is not None
            else torch.zeros(v, dtype=torch.float32, device=xc.device)).contiguous()
    cap = torch.full((n,), float("inf"), dtype=torch.float32, device=xc.device)
    mx, sum_e, w_y = row_stats(xc, offs, cap, y, 1.0, exclude_y=False)
    loss = mx + torch.log(sum_e) - w_y
    if not need_grad:
        return loss, None, None
    write_grad(xc, offs, cap, y, mx, w_row / sum_e, -w_row, 1.0, exclude_y=False)
    return loss, xc, xc.sum(0, dtype=w_row.dtype)
