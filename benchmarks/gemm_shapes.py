"""Where does fused TFSD's time go? The chunked GEMMs and kernels vs the whole-batch GEMMs.

For each chunk size, times the three GEMMs of a chunked fwd+bwd summed over all
chunks (``x_c@Cᵀ``, ``G_c@C``, ``dC += G_cᵀ@x_c``) and
the Triton row kernels, next to the three whole-batch GEMMs (the floor).

    python benchmarks/gemm_shapes.py            # GPU: N=8192, D=4096, V=131072, bf16
    python benchmarks/gemm_shapes.py --smoke    # CPU, tiny, float32: checks the script runs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geomviz.objectives import fused_triton

DEVICE = "cuda"


def bench(fn, iters=5, warmup=2) -> float:
    for _ in range(warmup):
        fn()
    if DEVICE == "cpu":  # the smoke run: wall time, no CUDA events
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return 1e3 * (time.perf_counter() - t0) / iters
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
    p.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (CI)")
    args = p.parse_args(argv)
    global DEVICE
    if args.smoke:
        DEVICE, args.n, args.d, args.v, args.chunks = "cpu", 64, 32, 256, [16, 32]
    elif not torch.cuda.is_available():
        raise SystemExit("gemm_shapes needs CUDA (or --smoke for a tiny CPU run)")
    n, d, v = args.n, args.d, args.v
    dt = torch.float32 if DEVICE == "cpu" else torch.bfloat16
    x = torch.randn(n, d, device=DEVICE, dtype=dt)
    c = torch.randn(v, d, device=DEVICE, dtype=dt) * 0.02
    g = torch.randn(n, v, device=DEVICE, dtype=dt) * 1e-3
    dc = torch.zeros(v, d, device=DEVICE, dtype=dt)
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (smoke)"
    print(f"# {name}, N={n}, D={d}, V={v}, {dt}; ms per full batch")
    f1 = bench(lambda: x @ c.t())
    f2 = bench(lambda: g @ c)
    f3 = bench(lambda: g.t() @ x)
    print(f"whole batch: x@Cᵀ {f1:.2f} | G@C {f2:.2f} | Gᵀ@x {f3:.2f} | floor {f1 + f2 + f3:.2f}")
    offs = torch.randn(v, device=DEVICE)
    for ch in args.chunks:
        k = n // ch
        xs, gs = x[:ch], g[:ch].contiguous()
        cap = torch.full((ch,), 1e30, device=DEVICE)
        y = torch.randint(0, v, (ch,), device=DEVICE)
        one = torch.ones(ch, device=DEVICE)
        row = [f"chunk {ch:5d}:"]
        row.append(f"x@Cᵀ {k * bench(lambda: xs @ c.t()):.2f}")
        row.append(f"G@C {k * bench(lambda: gs @ c):.2f}")
        row.append(f"dC+=Gᵀ@x {k * bench(lambda: dc.addmm_(gs.t(), xs)):.2f}")
        row.append(f"Gᵀ@x {k * bench(lambda: gs.t() @ xs):.2f}")
        if DEVICE == "cuda" and fused_triton.triton_available():
            stats = torch.ones(3, ch, device=DEVICE)
            st = k * bench(lambda: fused_triton.tfsd_core(xs, c, offs, cap, y, one, 1.0, False,
                                                          stats))
            fwd_bwd = k * bench(lambda: fused_triton.tfsd_core(xs, c, offs, cap, y, one, 1.0, True,
                                                               stats))
            cs = k * bench(lambda: gs.sum(0, dtype=torch.float32))
            row.append(f"x@Cᵀ+stats {st:.2f} | x@Cᵀ+stats+grad {fwd_bwd:.2f} | colsum {cs:.2f}")
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
