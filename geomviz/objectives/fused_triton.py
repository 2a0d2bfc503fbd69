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
``write_grad`` computes the per-row factors from them (for TFSD the same math as
``fused.tfsd_row_grad``), overwrites ``xc`` with ``coef·exp(w_j - m)``, then at
``j = y`` replaces (TFSD) or adds (CE) ``g_y``. The losses themselves are
computed once per batch from the statistics, in PyTorch. Without a GPU the
kernels run under ``TRITON_INTERPRET=1``.

Experimental, for ``backend="triton_tiled"``: ``write_grad_tiled`` computes the
per-row factors once (``_row_factors``, one thread per row: in a 2-D tile every thread
of a row would repeat them: twice the SASS of the tile kernel on sm_90), then does
``write_grad``'s elementwise work on a 2-D grid of ``[BM rows, BN classes]`` tiles
(:data:`TILE`, :func:`pick_tile`) and, in the same pass, writes each tile's column sums of the
gradient as stored (rounded to the compute dtype, summed in fp32) into
``colpart[cdiv(n, BM), V]``; ``colpart.sum(0)`` then replaces the separate
``gd.sum(0)`` read of the whole ``[n, V]`` gradient (TFSD's ``Σ_i G_ij``, CE's
bias gradient). No atomics, so the result is the same bits run to run. It has
been checked against the eager path and the row kernel under the interpreter
only: it has not been timed on a GPU, so whether it is faster is unknown.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["TILE", "TILE_UNALIGNED", "ce_core", "ce_core_tiled", "finalize_dc", "pick_tile",
           "row_stats", "shifted_sq_norms", "tfsd_core", "tfsd_core_tiled", "triton_available",
           "write_grad", "write_grad_tiled"]


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
                   V: tl.constexpr, BLOCK: tl.constexpr, TFSD: tl.constexpr):
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
            keep = inside & (cols != y) if TFSD else inside
            w = tl.where(keep, w, float("-inf"))
            m_new = tl.maximum(m, tl.max(w, 0))
            se = se * tl.exp(m - m_new) + tl.sum(tl.exp(w - m_new), 0)
            m = m_new
        wy = tl.minimum(mult * tl.load(base + y).to(tl.float32) + tl.load(OFFS + y), cap)
        tl.store(M_OUT + row, m)
        tl.store(SE_OUT + row, se)
        tl.store(WY_OUT + row, wy)

    @triton.jit
    def _write_grad(XC, stride, OFFS, CAP, Y, M, SE, WY, WROW, ROWSUM, mult, scale,
                    V: tl.constexpr, BLOCK: tl.constexpr, TFSD: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        base = XC + row * stride
        y = tl.load(Y + row)
        cap = tl.load(CAP + row)
        m = tl.load(M + row)
        se = tl.load(SE + row)
        w_row = tl.load(WROW + row)
        if TFSD:  # the per-row math of fused.tfsd_row_grad, in fp32
            m_neg = m + tl.log(se) - cap
            zy = tl.load(WY + row) - cap
            lse = tl.maximum(m_neg, zy) + tl.log(1.0 + tl.exp(-tl.abs(m_neg - zy)))
            anchor = tl.maximum(m_neg, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(m_neg)))
            t = lse - anchor  # <= 0; expm1(t) by Kahan's trick keeps small |t| accurate
            u = tl.exp(t)
            em1 = tl.where(u == 1.0, t, tl.where(u == 0.0, -1.0, (u - 1.0) * t / tl.log(u)))
            coef = -scale * w_row * tl.exp(m - cap - lse) * -em1
            gy = -scale * w_row * (tl.exp(zy - lse) - tl.exp(-anchor))
            tl.store(ROWSUM + row, coef * se + gy)
        else:  # CE: w·(softmax - onehot)
            coef = w_row / se
            gy = -w_row
        for off in range(0, V, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            inside = cols < V
            xc = tl.load(base + cols, mask=inside, other=0.0).to(tl.float32)
            w = tl.minimum(mult * xc + tl.load(OFFS + cols, mask=inside, other=0.0), cap)
            g = coef * tl.exp(w - m)
            at_y = cols == y
            g = tl.where(at_y, gy, g) if TFSD else tl.where(at_y, g + gy, g)
            tl.store(base + cols, g.to(XC.dtype.element_ty), mask=inside)

    @triton.jit
    def _row_factors(CAP, M, SE, WY, WROW, FAC, n, scale, BLOCK: tl.constexpr,
                     TFSD: tl.constexpr):  # FAC[3, n]: coef, g_y, (TFSD) row sum
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        r_in = rows < n
        m = tl.load(M + rows, mask=r_in, other=0.0)
        se = tl.load(SE + rows, mask=r_in, other=1.0)
        w_row = tl.load(WROW + rows, mask=r_in, other=0.0)
        if TFSD:  # the per-row math of _write_grad
            cap = tl.load(CAP + rows, mask=r_in, other=0.0)
            m_neg = m + tl.log(se) - cap
            zy = tl.load(WY + rows, mask=r_in, other=0.0) - cap
            lse = tl.maximum(m_neg, zy) + tl.log(1.0 + tl.exp(-tl.abs(m_neg - zy)))
            anchor = tl.maximum(m_neg, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(m_neg)))
            t = lse - anchor
            u = tl.exp(t)
            em1 = tl.where(u == 1.0, t, tl.where(u == 0.0, -1.0, (u - 1.0) * t / tl.log(u)))
            coef = -scale * w_row * tl.exp(m - cap - lse) * -em1
            gy = -scale * w_row * (tl.exp(zy - lse) - tl.exp(-anchor))
            tl.store(FAC + 2 * n + rows, coef * se + gy, mask=r_in)
        else:
            coef = w_row / se
            gy = -w_row
        tl.store(FAC + rows, coef, mask=r_in)
        tl.store(FAC + n + rows, gy, mask=r_in)

    @triton.jit
    def _write_grad_tiled(XC, stride, n, OFFS, CAP, Y, M, FAC, COLPART, mult,
                          V: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                          TFSD: tl.constexpr, COLSUM: tl.constexpr):
        pid_m, pid_n = tl.program_id(0), tl.program_id(1)
        rows = pid_m * BM + tl.arange(0, BM)  # [BM]
        cols = pid_n * BN + tl.arange(0, BN)  # [BN]
        r_in, c_in = rows < n, cols < V
        # per-row inputs only: replicated across the threads of a row, math here would be too
        y = tl.load(Y + rows, mask=r_in, other=-1)
        cap = tl.load(CAP + rows, mask=r_in, other=0.0)
        m = tl.load(M + rows, mask=r_in, other=0.0)
        coef = tl.load(FAC + rows, mask=r_in, other=0.0)  # 0 on padding rows: g = 0 there
        gy = tl.load(FAC + n + rows, mask=r_in, other=0.0)
        inside = r_in[:, None] & c_in[None, :]
        ptrs = XC + rows.to(tl.int64)[:, None] * stride + cols[None, :]  # [BM, BN]
        xc = tl.load(ptrs, mask=inside, other=0.0).to(tl.float32)
        offs = tl.load(OFFS + cols, mask=c_in, other=0.0)
        w = tl.minimum(mult * xc + offs[None, :], cap[:, None])
        g = coef[:, None] * tl.exp(w - m[:, None])
        at_y = cols[None, :] == y[:, None]
        g = tl.where(at_y, gy[:, None], g) if TFSD else tl.where(at_y, g + gy[:, None], g)
        g = g.to(XC.dtype.element_ty)  # what the dC / dW GEMM will read
        tl.store(ptrs, g, mask=inside)
        if COLSUM:  # column sums of the rounded tile (padding rows are 0 as coef = gy = 0)
            part = tl.sum(tl.where(inside, g.to(tl.float32), 0.0), 0)  # [BN]
            tl.store(COLPART + pid_m.to(tl.int64) * V + cols, part, mask=c_in)

    @triton.jit
    def _finalize_dc(DC, C, COLSUM, MU, G, n_elem, D: tl.constexpr, HAS_G: tl.constexpr,
                     BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < n_elem
        cs = tl.load(COLSUM + offs // D, mask=inside, other=0.0)
        mu = tl.load(MU + offs % D, mask=inside, other=0.0)
        dc = tl.load(DC + offs, mask=inside, other=0.0).to(tl.float32)
        c = tl.load(C + offs, mask=inside, other=0.0).to(tl.float32)
        out = dc + 2.0 * cs * (c - mu)
        if HAS_G:
            out = out * tl.load(G).to(tl.float32)
        tl.store(DC + offs, out.to(DC.dtype.element_ty), mask=inside)

    @triton.jit
    def _shifted_sq_norms(C, stride, MU, OUT, V, D: tl.constexpr, ROWS: tl.constexpr,
                          BLOCK: tl.constexpr):
        rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)  # [ROWS]
        r_in = rows < V
        acc = tl.zeros((ROWS, BLOCK), tl.float32)
        for off in range(0, D, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            inside = r_in[:, None] & (cols < D)[None, :]
            c = tl.load(C + rows[:, None] * stride + cols[None, :], mask=inside,
                        other=0.0).to(tl.float32)
            d = tl.where(inside, c - tl.load(MU + cols, mask=cols < D, other=0.0)[None, :],
                         0.0)
            acc += d * d
        tl.store(OUT + rows, tl.sum(acc, 1), mask=r_in)

    return (_row_stats, _write_grad, _finalize_dc, _write_grad_tiled, _row_factors,
            _shifted_sq_norms)


def _launch(v: int) -> tuple[int, int]:
    block = min(8192, 1 << max(1, (v - 1).bit_length()))
    return block, (16 if block >= 8192 else 8 if block >= 2048 else 4)


def row_stats(xc: Tensor, offs: Tensor, cap: Tensor, y: Tensor, mult: float, tfsd: bool,
              stats: Tensor) -> None:
    """Fill ``stats[3, n]`` (fp32) with ``m``, ``Σ exp(w - m)`` and ``w_y`` of ``xc[n, V]``."""
    n, v = xc.shape
    block, warps = _launch(v)
    _kernels()[0][(n,)](xc, xc.stride(0), offs, cap, y, stats[0], stats[1], stats[2],
                        float(mult), V=v, BLOCK=block, TFSD=tfsd, num_warps=warps)


def write_grad(xc: Tensor, offs: Tensor, cap: Tensor, y: Tensor, stats: Tensor, w_row: Tensor,
               mult: float, scale: float, tfsd: bool) -> Tensor | None:
    """Overwrite ``xc[n, V]`` with the gradient; for TFSD also return its row sums ``[n]``."""
    n, v = xc.shape
    block, warps = _launch(v)
    rowsum = torch.empty(n, dtype=torch.float32, device=xc.device)
    _kernels()[1][(n,)](xc, xc.stride(0), offs, cap, y, stats[0], stats[1], stats[2],
                        w_row, rowsum, float(mult), float(scale), V=v, BLOCK=block, TFSD=tfsd,
                        num_warps=warps)
    return rowsum if tfsd else None


#: Tile of ``write_grad_tiled`` when the row stride is a multiple of 16 elements (the
#: JIT then knows rows are 16-byte aligned and vectorises: in bf16 each thread holds 4 rows
#: × 8 classes). Not timed on a GPU; the benchmark may override it (``--tile``). 32×256 with
#: 8 warps: a tile moves 16 KiB in and 16 KiB out in bf16, a chunk of 512 rows at V = 131072
#: gives 16×512 programs, and BM = 32 keeps the fp32 partial column sums at 1/16 of the
#: bf16 chunk's bytes. Compiled for sm_90 by Triton 3.9's ptxas (no GPU needed): 80
#: registers, no spills, 792 SASS instructions for 32 elements a thread (64×256 or 32×512:
#: ~130 registers).
TILE = {"block_m": 32, "block_n": 256, "num_warps": 8}
#: Tile for other strides (e.g. V = 50257): unvectorised, the JIT spreads the 8 warps over
#: the classes, so every thread holds all BM rows; at BM = 32 that took 178 registers (one
#: 256-thread program per SM), at BM = 8 it takes 80 (sm_90, as above).
TILE_UNALIGNED = {"block_m": 8, "block_n": 256, "num_warps": 8}


def pick_tile(xc: Tensor) -> dict:
    """:data:`TILE` if ``xc``'s rows are 16-element aligned (as the JIT tests it), else
    :data:`TILE_UNALIGNED`."""
    aligned = xc.stride(0) % 16 == 0 and xc.data_ptr() % 16 == 0
    return TILE if aligned else TILE_UNALIGNED


def write_grad_tiled(xc: Tensor, offs: Tensor, cap: Tensor, y: Tensor, stats: Tensor,
                     w_row: Tensor, mult: float, scale: float, tfsd: bool, colsum: bool,
                     block_m: int | None = None, block_n: int | None = None,
                     num_warps: int | None = None) -> tuple[Tensor | None, Tensor | None]:
    """``write_grad`` over a 2-D grid of ``[BM, BN]`` tiles; returns ``(rowsum, colpart)``.

    ``rowsum[n]`` (TFSD only) as ``write_grad``; ``colpart[cdiv(n, BM), V]`` fp32 (only
    if ``colsum``) holds each tile's column sums of the gradient as stored (rounded to
    ``xc.dtype``), so ``colpart.sum(0)`` equals ``xc.sum(0, dtype=float32)`` up to fp32
    summation order, without another pass over ``xc``. Deterministic: no atomics.
    """
    n, v = xc.shape
    tile = pick_tile(xc)
    bm, bn = block_m or tile["block_m"], block_n or tile["block_n"]
    fac = torch.empty(3, n, dtype=torch.float32, device=xc.device)  # coef, g_y, row sum
    k = _kernels()
    k[4][(triton_cdiv(n, 1024),)](cap, stats[0], stats[1], stats[2], w_row, fac, n,
                                   float(scale), BLOCK=1024, TFSD=tfsd, num_warps=4)
    grid = (triton_cdiv(n, bm), triton_cdiv(v, bn))
    part = (torch.empty(grid[0], v, dtype=torch.float32, device=xc.device) if colsum
            else None)
    k[3][grid](xc, xc.stride(0), n, offs, cap, y, stats[0], fac,
               fac if part is None else part, float(mult), V=v, BM=bm, BN=bn, TFSD=tfsd,
               COLSUM=colsum, num_warps=num_warps or tile["num_warps"])
    rowsum = fac[2] if tfsd else None
    return rowsum, part


def finalize_dc(dC: Tensor, C: Tensor, colsum: Tensor, mu: Tensor, g: Tensor | None) -> Tensor:
    """``dC ← g·(dC + 2·(C - mu)·colsum[:, None])`` in one pass, in fp32 (contiguous ``dC``
    and ``C``; ``mu[D]`` the shift of :func:`geomviz.objectives.fused._tfsd_pass`)."""
    n_elem, block = dC.numel(), 4096
    g_arg = colsum if g is None else g.float().reshape(())
    _kernels()[2][(triton_cdiv(n_elem, block),)](dC, C, colsum.float(),
                                                 mu.float().contiguous(), g_arg, n_elem,
                                                 D=dC.shape[1], HAS_G=g is not None,
                                                 BLOCK=block, num_warps=8)
    return dC


def shifted_sq_norms(C: Tensor, mu: Tensor) -> Tensor:
    """``||c_j - mu||²`` (fp32) in one read of ``C[V, D]`` (unit stride along D)."""
    v, d = C.shape
    out = torch.empty(v, dtype=torch.float32, device=C.device)
    block = min(256, 1 << max(4, (d - 1).bit_length()))
    rows = 16  # a [16, 256] fp32 tile per program: 16 registers a thread at 4 warps
    _kernels()[5][(triton_cdiv(v, rows),)](C, C.stride(0), mu.float().contiguous(), out, v,
                                           D=d, ROWS=rows, BLOCK=block, num_warps=4)
    return out


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def tfsd_core(xs, C, neg_c2s, x2s, y, w_row, scale, need_grad, stats):
    """``fused._tfsd_core`` with the two ``[n, V]`` passes in Triton; same contract."""
    xc = xs @ C.t()  # [n,V] compute dtype; becomes -s·w·dL/dz in place
    row_stats(xc, neg_c2s, x2s, y, 2.0 * scale, True, stats)
    if not need_grad:
        return None, None
    rowsum = write_grad(xc, neg_c2s, x2s, y, stats, w_row.float(), 2.0 * scale, scale, True)
    return xc, rowsum


def _ce_logits(xs, W, bias, y, stats):
    """The chunk's logits ``[n, V]`` and their statistics; ``(xc, offs, cap)`` for the
    gradient pass (CE: ``offs`` the bias or 0, no cap)."""
    xc = xs @ W.t()  # [n,V]
    n, v = xc.shape
    offs = (bias.float() if bias is not None
            else torch.zeros(v, dtype=torch.float32, device=xc.device)).contiguous()
    cap = torch.full((n,), float("inf"), dtype=torch.float32, device=xc.device)
    row_stats(xc, offs, cap, y, 1.0, False, stats)
    return xc, offs, cap


def ce_core(xs, W, bias, y, w_row, need_grad, stats):
    """``fused._ce_core`` with the two ``[n, V]`` passes in Triton; same contract."""
    xc, offs, cap = _ce_logits(xs, W, bias, y, stats)
    if not need_grad:
        return None
    write_grad(xc, offs, cap, y, stats, w_row.float(), 1.0, 1.0, False)
    return xc


def tfsd_core_tiled(xs, C, neg_c2s, x2s, y, w_row, scale, need_grad, stats, need_colsum):
    """``tfsd_core`` with the tiled gradient pass: also ``colpart`` (or None), see above."""
    xc = xs @ C.t()  # [n,V] compute dtype; becomes -s·w·dL/dz in place
    row_stats(xc, neg_c2s, x2s, y, 2.0 * scale, True, stats)
    if not need_grad:
        return None, None, None
    rowsum, part = write_grad_tiled(xc, neg_c2s, x2s, y, stats, w_row.float(), 2.0 * scale,
                                    scale, True, need_colsum)
    return xc, rowsum, part


def ce_core_tiled(xs, W, bias, y, w_row, need_grad, stats, need_colsum):
    """``ce_core`` with the tiled gradient pass: ``(g, colpart or None)``."""
    xc, offs, cap = _ce_logits(xs, W, bias, y, stats)
    if not need_grad:
        return None, None
    _, part = write_grad_tiled(xc, offs, cap, y, stats, w_row.float(), 1.0, 1.0, False,
                               need_colsum)
    return xc, part
