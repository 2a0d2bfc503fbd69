"""Heads: Euclidean logits against the literal definition, autocast, the shared contract."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn import functional as F

from geomviz.objectives.heads import EuclideanHead, Head, LinearHead, check_scale, squared_distances
from tests.helpers import PeakStorage, cuda


def literal_sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # [N, C] via an [N, C, D] broadcast


@given(
    n=st.integers(1, 7), c=st.integers(2, 9), d=st.integers(1, 6),
    scale=st.floats(1e-3, 1e2), seed=st.integers(0, 2**16), spread=st.floats(1e-3, 1e3),
)
def test_euclidean_logits_and_grads_match_literal_definition(n, c, d, scale, seed, spread):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, d, generator=g, dtype=torch.float64) * spread).requires_grad_()
    head = EuclideanHead(d, c, scale=scale).double()
    with torch.no_grad():
        head.centers.copy_(torch.randn(c, d, generator=g, dtype=torch.float64) * spread)
    z = head(x)
    ref = -scale * literal_sq_dist(x, head.centers)
    tol = 1e-12 * scale * spread**2 * d
    assert z.dtype == torch.float64 and z.shape == (n, c)
    assert (z <= 0).all()
    torch.testing.assert_close(z, ref, rtol=1e-9, atol=tol)
    w = torch.randn(n, c, generator=g, dtype=torch.float64)
    gx, gc = torch.autograd.grad((z * w).sum(), (x, head.centers))
    rx, rc = torch.autograd.grad((ref * w).sum(), (x, head.centers))
    gtol = 1e-9 * scale * spread * n * c
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=gtol)
    torch.testing.assert_close(gc, rc, rtol=1e-8, atol=gtol)


def test_euclidean_zero_distance_gives_zero_logit_and_zero_grad():
    head = EuclideanHead(3, 4, scale=2.0).double()
    x = head.centers.detach()[[1, 2]].clone().mul_(1e3).requires_grad_()
    with torch.no_grad():
        head.centers.mul_(1e3)  # large norms: rounding in the expansion can go negative
    z = head(x)
    assert (z <= 0).all()
    assert z[0, 1].abs() <= 1e-9 * 2e6 and z[1, 2].abs() <= 1e-9 * 2e6
    (gx,) = torch.autograd.grad(z[0, 1] + z[1, 2], x)
    assert gx.abs().max() <= 1e-6  # d/dx ||x - c||² = 2(x - c) = 0 there


def test_euclidean_head_never_materialises_n_c_d():
    n, c, d = 64, 48, 256
    head = EuclideanHead(d, c)
    x = torch.randn(n, d, requires_grad=True)
    with PeakStorage() as mode:
        head(x).sum().backward()
    # the largest op output is the [N, D] / [C, D] input-sized grads or the [N, C] logits
    assert mode.peak <= 4 * max(n * c, n * d, c * d)
    with PeakStorage() as literal:
        literal_sq_dist(x, head.centers).sum().backward()
    assert literal.peak >= 4 * n * c * d  # the tracker does see a broadcast


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_euclidean_head_under_cpu_autocast_keeps_norms_in_fp32(dtype):
    torch.manual_seed(0)
    head = EuclideanHead(32, 10, scale=0.5)
    x = torch.randn(16, 32) * 30 + 100  # big norms: ||x||² ~ 3e5 needs fp32
    ref = head(x)
    with torch.autocast("cpu", dtype=dtype):
        z = head(x)
    assert z.dtype == torch.float32 and torch.isfinite(z).all() and (z <= 0).all()
    # only the matmul is low precision: error ~ 2·eps·||x||·||c||, far below ||x||² itself
    eps = torch.finfo(dtype).eps
    bound = 0.5 * 2 * 4 * eps * x.norm(dim=1, keepdim=True) * head.centers.norm(dim=1)
    assert ((z - ref).abs() <= bound + 1e-3).all()
    z.sum().backward()
    assert torch.isfinite(head.centers.grad).all()


def test_linear_head_is_a_linear_layer():
    torch.manual_seed(0)
    head = LinearHead(5, 3)
    x = torch.randn(2, 4, 5)  # token sequences: [B, T, D]
    torch.testing.assert_close(head(x), F.linear(x, head.weight, head.bias))
    assert LinearHead(5, 3, bias=False).bias is None


@pytest.mark.parametrize("head", [LinearHead(6, 4), EuclideanHead(6, 4, scale=3.0)])
def test_heads_share_the_probe_contract(head: Head):
    assert isinstance(head, Head)
    assert head.metric in ("dot", "euclidean")
    assert head.class_vectors.shape == (4, 6) and head.class_vectors.requires_grad
    assert head.in_features == 6 and head.num_classes == 4
    assert head.scale == (3.0 if head.metric == "euclidean" else 1.0)
    seen = {}
    handle = head.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], z=out))
    try:
        z = head(torch.randn(2, 3, 6))
    finally:
        handle.remove()
    assert z.shape == (2, 3, 4) and seen["z"] is z and seen["x"].shape == (2, 3, 6)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, "a", None])
def test_bad_scale_is_rejected(bad):
    with pytest.raises(ValueError, match="scale"):
        EuclideanHead(4, 3, scale=bad)
    with pytest.raises(ValueError, match="scale"):
        check_scale(bad)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        EuclideanHead(4, 3)(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        LinearHead(4, 3)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="num_classes"):
        EuclideanHead(4, 1)
    with pytest.raises(ValueError, match="in_features"):
        LinearHead(0, 3)


def test_squared_distances_fp64_stays_fp64():
    x, c = torch.randn(3, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    d = squared_distances(x, c)
    assert d.dtype == torch.float64
    torch.testing.assert_close(d, literal_sq_dist(x, c))


@cuda
@pytest.mark.cuda
def test_euclidean_head_cuda_bf16_autocast():
    torch.manual_seed(0)
    head = EuclideanHead(256, 1000, scale=0.1).cuda()
    x = torch.randn(512, 256, device="cuda") * 4
    ref = head(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        z = head(x)
    assert z.dtype == torch.float32 and (z <= 0).all()
    rel = ((z - ref).abs() / ref.abs().clamp_min(1)).max()
    assert rel < 2e-2
    z.sum().backward()
    assert torch.isfinite(head.centers.grad).all()


def test_euclidean_head_under_torch_compile_matches_eager():
    """Regression: inductor miscompiled add(c2, x@cᵀ, alpha=-2); the head avoids that form."""
    torch.manual_seed(0)
    head = EuclideanHead(8, 5, scale=0.7)
    x = torch.randn(16, 8, requires_grad=True)
    eager = head(x)
    (g_eager,) = torch.autograd.grad((eager**2).sum(), x)
    try:
        compiled = torch.compile(head)(x)
    except Exception as e:  # noqa: BLE001 - no C++ toolchain for inductor here
        pytest.skip(f"torch.compile unavailable: {type(e).__name__}")
    (g_comp,) = torch.autograd.grad((compiled**2).sum(), x)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(g_comp, g_eager, rtol=1e-4, atol=1e-3)
