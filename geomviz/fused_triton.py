"""Triton kernels for the per-chunk elementwise work of fused TFSD (optional; GPU).

The eager path makes about ten fp32 passes over each ``[n, V]`` chunk; these two
kernels make two bf16 passes and reuse the GEMM output's buffer for the
gradient, so a chunk costs ``2·n·V`` bytes in bf16 instead of ``6·n·V``:

* ``row_stats``: per row, the online max ``m`` and sum ``Σ_{j≠y} exp(w_j - m)``
  of ``w_j = min(2s·(x·c_j) - s||c_j||², s||x||²)`` (the logit plus ``s||x||²``),
  and ``w_y``;
* ``write_grad``: overwrites ``x·c_j`` with ``coef·exp(w_j - m)`` (``g_y`` at y).

The per-row scalar math between them stays in PyTorch (``fused._tfsd_core_triton``).
Without a GPU the kernels run under ``TRITON_INTERPRET=1`` (the tests do this).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["triton_available", "row_stats", "write_grad"]


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
    def _row_stats(XC, stride, NEG_C2S, X2S, Y, M_OUT, SE_OUT, WY_OUT, two_s, V,
                   BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        base = XC + row * stride
        y = tl.load(Y + row)
        x2s = tl.load(X2S + row)
        m = tl.full((), float("-inf"), tl.float32)
        se = tl.zeros((), tl.float32)
        for off in range(0, V, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            inside = cols < V
            xc = tl.load(base + cols, mask=inside, other=0.0).to(tl.float32)
            nc = tl.load(NEG_C2S + cols, mask=inside, other=0.0)
            w = tl.minimum(two_s * xc + nc, x2s)
            w = tl.where(inside & (cols != y), w, float("-inf"))
            m_new = tl.maximum(m, tl.max(w, 0))
            se = se * tl.exp(m - m_new) + tl.sum(tl.exp(w - m_new), 0)
            m = m_new
        wy = tl.minimum(two_s * tl.load(base + y).to(tl.float32) + tl.load(NEG_C2S + y), x2s)
        tl.store(M_OUT + row, m)
        tl.store(SE_OUT + row, se)
        tl.store(WY_OUT + row, wy)

    @triton.jit
    def _write_grad(XC, stride, NEG_C2S, X2S, Y, M, COEF, GY, two_s, V, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        base = XC + row * stride
        y = tl.load(Y + row)
        x2s = tl.load(X2S + row)
        m = tl.load(M + row)
        coef = tl.load(COEF + row)
        gy = tl.load(GY + row)
        for off in range(0, V, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            inside = cols < V
            xc = tl.load(base + cols, mask=inside, other=0.0).to(tl.float32)
            nc = tl.load(NEG_C2S + cols, mask=inside, other=0.0)
            w = tl.minimum(two_s * xc + nc, x2s)
            g = tl.where(cols == y, gy, coef * tl.exp(w - m))
            tl.store(base + cols, g.to(XC.dtype.element_ty), mask=inside)

    return _row_stats, _write_grad


def _launch(v: int) -> tuple[int, int]:
    block = min(8192, 1 << max(1, (v - 1).bit_length()))
    return block, (16 if block >= 8192 else 8 if block >= 2048 else 4)


def row_stats(xc: Tensor, neg_c2s: Tensor, x2s: Tensor, y: Tensor, scale: float):
    """``xc[n, V]`` (any float dtype, row-contiguous) -> ``m[n], se[n], w_y[n]`` (fp32)."""
    n, v = xc.shape
    out = torch.empty(3, n, dtype=torch.float32, device=xc.device)
    block, warps = _launch(v)
    _kernels()[0][(n,)](xc, xc.stride(0), neg_c2s, x2s, y, out[0], out[1], out[2],
                        2.0 * scale, v, BLOCK=block, num_warps=warps)
    return out[0], out[1], out[2]


def write_grad(xc: Tensor, neg_c2s: Tensor, x2s: Tensor, y: Tensor, m: Tensor, coef: Tensor,
               g_y: Tensor, scale: float) -> Tensor:
    """Overwrite ``xc[n, V]`` in place with ``coef·exp(w - m)`` (``g_y`` at the target)."""
    n, v = xc.shape
    block, warps = _launch(v)
    _kernels()[1][(n,)](xc, xc.stride(0), neg_c2s, x2s, y, m, coef, g_y, 2.0 * scale, v,
                        BLOCK=block, num_warps=warps)
    return xc
