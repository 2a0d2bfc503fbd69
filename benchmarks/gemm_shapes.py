"""Where does fused TFSD's time go? The chunked GEMMs and kernels vs the whole-batch GEMMs.

For each chunk size, times the three GEMMs of a chunked fwd+bwd summed over all
chunks (``x_c@Cᵀ``, ``G_c@C``, ``dC += G_cᵀ@x_c``) and
the Triton row kernels, next to the three whole-batch GEMMs (the floor).

    python benchmarks/gemm_shapes.py            # GPU: N=8192, D=4096, V=131072, bf16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geomviz.objectives import fused_triton


def bench(fn, iters=5, warmup=2) -> float:
    for _ in range(warmup):
        fn()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / iters


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--d", type=int, default=4096)
    p.add_argument("--v", type=int, default=131072)
    p.add_argument("--chunks", type=int, nargs="+", default=[256, 512, 1024])
    args = p.parse_args(argv)
    n, d, v, dt = args.n, args.d, args.v, torch.bfloat16
    x = torch.randn(n, d, device="cuda", dtype=dt)
    c = torch.randn(v, d, device="cuda", dtype=dt) * 0.02
    g = torch.randn(n, v, device="cuda", dtype=dt) * 1e-3
    dc = torch.zeros(v, d, device="cuda", dtype=dt)
    print(f"# {torch.cuda.get_device_name()}, N={n}, D={d}, V={v}, bf16; ms per full batch")
    f1 = bench(lambda: x @ c.t())
    f2 = bench(lambda: g @ c)
    f3 = bench(lambda: g.t() @ x)
    print(f"whole batch: x@Cᵀ {f1:.2f} | G@C {f2:.2f} | Gᵀ@x {f3:.2f} | floor {f1 + f2 + f3:.2f}")
    offs = torch.randn(v, device="cuda")
    for ch in args.chunks:
        k = n // ch
        xs, gs = x[:ch], g[:ch].contiguous()
        cap = torch.full((ch,), 1e30, device="cuda")
        y = torch.randint(0, v, (ch,), device="cuda")
        one = torch.ones(ch, device="cuda")
        row = [f"chunk {ch:5d}:"]
        row.append(f"x@Cᵀ {k * bench(lambda: xs @ c.t()):.2f}")
        row.append(f"G@C {k * bench(lambda: gs @ c):.2f}")
        row.append(f"dC+=Gᵀ@x {k * bench(lambda: dc.addmm_(gs.t(), xs)):.2f}")
        row.append(f"Gᵀ@x {k * bench(lambda: gs.t() @ xs):.2f}")
        if fused_triton.triton_available():
            stats = torch.ones(3, ch, device="cuda")
            st = k * bench(lambda: fused_triton.tfsd_core(xs, c, offs, cap, y, one, 1.0, False,
                                                          stats))
            fwd_bwd = k * bench(lambda: fused_triton.tfsd_core(xs, c, offs, cap, y, one, 1.0, True,
                                                               stats))
            cs = k * bench(lambda: gs.sum(0, dtype=torch.float32))
            row.append(f"x@Cᵀ+stats {st:.2f} | x@Cᵀ+stats+grad {fwd_bwd:.2f} | colsum {cs:.2f}")
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
