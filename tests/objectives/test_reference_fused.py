"""Fused chunked TFSD and CE against the literal definitions in float64 on the CPU: loss and
autograd gradients, over random sizes, chunk sizes, scales, offsets and ignored rows."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geomviz.objectives.fused import fused_tfsd_loss
from geomviz.objectives.fused_ce import fused_ce_loss
from tests.helpers import literal_tfsd

IGNORE = -100


@st.composite
def problem(draw):
    n, d, v = draw(st.integers(1, 10)), draw(st.integers(1, 5)), draw(st.integers(2, 8))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    spread = draw(st.sampled_from([0.1, 1.0, 10.0]))
    offset = draw(st.sampled_from([0.0, 30.0]))  # far from the origin: norms >> distances
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * spread + offset
    c = torch.randn(v, d, generator=g, dtype=torch.float64) * spread + offset
    y = torch.randint(0, v, (n,), generator=g)
    ignored = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    y[ignored] = IGNORE
    chunk = draw(st.one_of(st.none(), st.integers(1, n + 2)))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    w = torch.rand(n, generator=g, dtype=torch.float64) + 0.5  # weights rows of "none"
    return x, c, y, chunk, reduction, w


def _reduce(rows, keep, reduction, w):
    """The documented reductions: 0 on ignored rows, mean over kept rows (0 if none)."""
    rows = torch.where(keep, rows, torch.zeros_like(rows))
    if reduction == "none":
        return rows, (rows * w).sum()
    if reduction == "sum":
        return rows.sum(), rows.sum()
    out = rows.sum() / max(int(keep.sum()), 1)
    return out, out


def _check(out, ref, params_out, params_ref, reduction, w, scale=1.0):
    obj_out = (out * w).sum() if reduction == "none" else out
    torch.testing.assert_close(out, ref[0], rtol=1e-9, atol=1e-10 * scale)
    if not (obj_out.requires_grad and ref[1].requires_grad):
        return
    got = torch.autograd.grad(obj_out, params_out, allow_unused=True)
    want = torch.autograd.grad(ref[1], params_ref, allow_unused=True)
    for a, b in zip(got, want, strict=True):
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9 * scale)


@settings(max_examples=40, deadline=None)
@given(problem(), st.sampled_from([0.05, 1.0, 4.0]))
def test_fused_tfsd_equals_the_literal_definition(p, scale):
    x, c, y, chunk, reduction, w = p
    keep = y != IGNORE
    xr, cr = x.clone().requires_grad_(), c.clone().requires_grad_()
    dist = ((xr[:, None, :] - cr[None, :, :]) ** 2).sum(-1)  # [N, V] by broadcast
    rows = literal_tfsd(-scale * dist, torch.where(keep, y, 0))
    ref = _reduce(rows, keep, reduction, w)
    xf, cf = x.clone().requires_grad_(), c.clone().requires_grad_()
    out = fused_tfsd_loss(xf, cf, y, scale=scale, chunk_size=chunk, reduction=reduction)
    _check(out, ref, (xf, cf), (xr, cr), reduction, w, scale=1.0 + float(dist.detach().max()))


@settings(max_examples=40, deadline=None)
@given(problem(), st.booleans())
def test_fused_ce_equals_the_literal_definition(p, bias):
    x, wt, y, chunk, reduction, w = p
    keep = y != IGNORE
    b = torch.linspace(-1, 1, wt.shape[0], dtype=torch.float64) if bias else None
    xr, wr = x.clone().requires_grad_(), wt.clone().requires_grad_()
    br = b.clone().requires_grad_() if bias else None
    z = xr @ wr.T + (br if bias else 0.0)
    rows = -torch.log_softmax(z, 1).gather(1, torch.where(keep, y, 0)[:, None]).squeeze(1)
    ref = _reduce(rows, keep, reduction, w)
    xf, wf = x.clone().requires_grad_(), wt.clone().requires_grad_()
    bf = b.clone().requires_grad_() if bias else None
    out = fused_ce_loss(xf, wf, y, bias=bf, chunk_size=chunk, reduction=reduction)
    params = (xf, wf, bf) if bias else (xf, wf)
    params_ref = (xr, wr, br) if bias else (xr, wr)
    _check(out, ref, params, params_ref, reduction, w, scale=1.0 + float(z.detach().abs().max()))
