"""Time and peak memory of fwd+bwd for CE and TFSD implementations, as ratios to a GEMM floor.

Methods (all on the same features ``x[N, D]`` and class matrix ``C[V, D]``):

* ``gemm_floor``   x@Cᵀ, G@C and Gᵀ@x: the three matmuls any exact fwd+bwd must do;
* ``torch_ce``     F.cross_entropy(F.linear(x, C).float(), y), the usual recipe;
* ``fused_ce``     geomviz.fused_ce_loss (chunked, gradients in forward);
* ``naive_tfsd``   Euclidean logits + the literal definition KL(softmax(z|z_y:=0) || softmax(z));
* ``tfsd``         Euclidean logits + geomviz.tfsd_loss (closed form);
* ``fused_tfsd``   geomviz.fused_tfsd_loss, eager PyTorch per chunk; ``fused_tfsd_triton``
  the same with backend="triton" (GPU; the default there). Likewise ``fused_ce_triton``;
  ``fused_tfsd_triton_tiled`` / ``fused_ce_triton_tiled``: the experimental "triton_tiled"
  backend (2-D tiled gradient kernel that also writes the column sums; unmeasured on a GPU
  so far, a candidate); ``--tile BM BN WARPS`` sets its tile;
* ``liger_fused_ce`` Liger-Kernel's fused linear cross-entropy, as a reference from the same
  process (GPU; only when ``liger_kernel`` is importable, e.g. installed from a local wheel).

``--chunks 512 1024`` adds each fused method at those rows per chunk (``fused_tfsd@1024``),
to measure the chunk size against time and memory in one process. The GPU presets carry
the issue's targets (× floor and extra memory), and the run ends with a line per target.

"extra memory" is the peak during fwd+bwd minus what the inputs and their
gradients hold, i.e. what the method needs on top of the unavoidable. On GPU it
comes from the CUDA caching allocator; on CPU from the peak RSS of a fresh
child process per method (so one method's peak cannot hide another's).

    python benchmarks/objectives.py                 # CPU preset, < 1 minute on 2 cores
    python benchmarks/objectives.py --preset gpu    # N=8192, D=4096, V in {32768, 131072}, bf16
    python benchmarks/objectives.py --preset gpu-gpt2   # a GPT-2-small head: 16384, 768, 50304
    python benchmarks/objectives.py --preset gpu-llama  # a Llama-3-8B head: 8192, 4096, 128256
    python benchmarks/objectives.py --smoke         # tiny CPU sizes: checks the script runs
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from geomviz.objectives import fused_triton
from geomviz.objectives.fused import default_chunk_size, fused_tfsd_loss
from geomviz.objectives.fused_ce import fused_ce_loss
from geomviz.objectives.heads import squared_distances
from geomviz.objectives.losses import tfsd_loss

PRESETS = {
    "smoke": dict(n=64, d=16, vs=[256], sweep=[], dtype="float32", iters=1,
                  methods=["torch_ce", "fused_ce", "tfsd", "fused_tfsd", "liger_fused_ce"],
                  chunks=[16], target=1.2),
    "cpu": dict(n=1024, d=64, vs=[16384], sweep=[4096, 16384, 65536, 262144], dtype="float32",
                iters=3, methods=["torch_ce", "fused_ce", "naive_tfsd", "tfsd", "fused_tfsd"]),
    "gpu": dict(n=8192, d=4096, vs=[32768, 131072], sweep=[], dtype="bfloat16", iters=10,
                methods=["torch_ce", "fused_ce", "fused_ce_triton", "fused_ce_triton_tiled",
                         "naive_tfsd", "tfsd", "fused_tfsd", "fused_tfsd_triton",
                         "fused_tfsd_triton_tiled", "liger_fused_ce"],
                target=1.2),
    "gpu-gpt2": dict(n=16384, d=768, vs=[50304], sweep=[], dtype="bfloat16", iters=10,
                     methods=["torch_ce", "fused_ce_triton", "fused_ce_triton_tiled",
                              "fused_tfsd_triton", "fused_tfsd_triton_tiled", "liger_fused_ce"],
                     target=1.5),
    "gpu-llama": dict(n=8192, d=4096, vs=[128256], sweep=[], dtype="bfloat16", iters=10,
                      methods=["torch_ce", "fused_ce_triton", "fused_ce_triton_tiled",
                               "fused_tfsd_triton", "fused_tfsd_triton_tiled", "liger_fused_ce"],
                      target=1.2),
}
#: issue 15's memory target for the fused methods (extra bytes over inputs and gradients)
MEMORY_TARGET = 0.25 * 2**30
LIGER_HINT = "liger_kernel not importable (pip install liger-kernel; GPU only)"
SCALE = 0.05


# ----------------------------------------------------------------------------- methods
def _naive_tfsd(x, c, y):
    z = squared_distances(x, c).mul_(-SCALE)  # [N, V], as EuclideanHead computes it
    zp = z.detach().clone().scatter_(1, y[:, None], 0.0)
    p = torch.softmax(zp, dim=1)
    return (torch.special.xlogy(p, p) - p * torch.log_softmax(z, dim=1)).sum(1).mean()


def _liger_ce(x, c, y):
    """Liger-Kernel's fused linear CE: ``loss(lin_weight, input, target)``, mean reduction."""
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import (
            LigerFusedLinearCrossEntropyLoss,
        )
    except ImportError as e:
        raise ImportError(LIGER_HINT) from e
    out = LigerFusedLinearCrossEntropyLoss()(c, x, y)
    return out[0] if isinstance(out, tuple) else out  # some versions also return z-loss


def liger_available() -> bool:
    try:
        import liger_kernel  # noqa: F401
    except ImportError:
        return False
    return True


METHODS = {
    "liger_fused_ce": _liger_ce,
    "torch_ce": lambda x, c, y: F.cross_entropy(F.linear(x, c).float(), y),
    "naive_tfsd": _naive_tfsd,
    "tfsd": lambda x, c, y: tfsd_loss(squared_distances(x, c).mul_(-SCALE), y, validate=False),
}
#: the fused methods: (loss, backend); each also runs at fixed chunk sizes as ``name@rows``
FUSED = {"fused_ce": ("ce", "eager"), "fused_ce_triton": ("ce", "triton"),
         "fused_ce_triton_tiled": ("ce", "triton_tiled"),
         "fused_tfsd": ("tfsd", "eager"), "fused_tfsd_triton": ("tfsd", "triton"),
         "fused_tfsd_triton_tiled": ("tfsd", "triton_tiled")}


def method_fn(name: str):
    """The fwd callable of a method name; ``fused_*@rows`` fixes the rows per chunk."""
    base, _, rows = name.partition("@")
    if base not in FUSED:
        return METHODS[name]
    kind, backend = FUSED[base]
    chunk = int(rows) if rows else None
    loss = fused_ce_loss if kind == "ce" else functools.partial(fused_tfsd_loss, scale=SCALE)
    return lambda x, c, y: loss(x, c, y, chunk_size=chunk, validate=False, backend=backend)


def make_inputs(n, d, v, dtype, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = (torch.randn(n, d, generator=g) / d**0.25).to(device, dtype).requires_grad_()
    c = (torch.randn(v, d, generator=g) / d**0.25).to(device, dtype).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g).to(device)
    return x, c, y


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step(method, x, c, y, gemm_grad=None):
    """One fwd+bwd; gradients are dropped first so every step allocates them afresh."""
    x.grad = c.grad = None
    if method == "gemm_floor":
        with torch.no_grad():
            x @ c.t()
            gemm_grad @ c
            gemm_grad.t() @ x
        return
    method_fn(method)(x, c, y).backward()


def time_method(method, x, c, y, iters, gemm_grad=None, warmup=2):
    dev = x.device
    for _ in range(warmup):
        step(method, x, c, y, gemm_grad)
    _sync(dev)
    times = []
    for _ in range(iters):
        if dev.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step(method, x, c, y, gemm_grad)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            step(method, x, c, y, gemm_grad)
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def cuda_extra_memory(method, x, c, y):
    x.grad = c.grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(method, x, c, y)
    torch.cuda.synchronize()
    grads = x.nbytes + c.nbytes
    return max(0, torch.cuda.max_memory_allocated() - base - grads)


def _status_bytes(field: str) -> int:
    """A ``/proc/self/status`` size field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_child(method, n, d, v, dtype):
    """Runs in a fresh process: the peak-RSS increase of one fwd+bwd, minus inputs' grads.

    The peak is VmHWM after resetting it (``5 > /proc/self/clear_refs``), so
    neither imports nor input creation count; ru_maxrss would not do, since
    Linux carries it over from the parent across exec.
    """
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    step(method, *make_inputs(8, d, 16, getattr(torch, dtype), torch.device("cpu")))  # lazy imports
    x, c, y = make_inputs(n, d, v, getattr(torch, dtype), torch.device("cpu"))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss0 = _status_bytes("VmRSS")
    step(method, x, c, y)
    extra = _status_bytes("VmHWM") - rss0 - x.nbytes - c.nbytes
    print(json.dumps({"extra": max(0, extra)}))


def cpu_extra_memory(method, n, d, v, dtype):
    cmd = [sys.executable, __file__, "--_child", method, "--n", str(n), "--d", str(d),
           "--vs", str(v), "--dtype", dtype]
    # A fixed mmap threshold makes glibc return every large block on free, so the
    # child's RSS tracks live tensors instead of malloc's cached heap.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(1 << 17))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra"]


# ----------------------------------------------------------------------------- report
def gib(b):
    return f"{b / 2**30:.3f} GiB" if b >= 2**26 else f"{b / 2**20:.1f} MiB"


def run(args) -> list[dict]:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    dtype = getattr(torch, args.dtype)
    rows = []
    cpu = f"CPU x{torch.get_num_threads()}"
    hw = torch.cuda.get_device_name() if device.type == "cuda" else cpu
    print(f"# geomviz objectives benchmark: {hw}, torch {torch.__version__}, {args.dtype}, "
          f"N={args.n}, D={args.d}, scale={SCALE}, fwd+bwd, median of {args.iters}")
    if any(FUSED.get(m.partition("@")[0], ("", ""))[1] == "triton_tiled" for m in args.methods):
        t = fused_triton.TILE
        print(f"# triton_tiled tile: {t['block_m']}×{t['block_n']} (rows × classes), "
              f"{t['num_warps']} warps")
    for v in args.vs:
        x, c, y = make_inputs(args.n, args.d, v, dtype, device)
        gemm_grad = torch.randn(args.n, v, device=device, dtype=dtype) * 1e-3
        floor = time_method("gemm_floor", x, c, y, args.iters, gemm_grad)
        chunk = default_chunk_size(args.n, v, args.d, dtype, device.type)
        chunk_t = default_chunk_size(args.n, v, args.d, dtype, device.type, "triton")
        print(f"\n## V={v} (fused chunk: {chunk} rows eager, {chunk_t} triton)\n")
        print("| method | time (ms) | × GEMM floor | extra memory |")
        print("|---|---:|---:|---:|")
        print(f"| gemm_floor | {floor:.1f} | 1.00 | |")
        rows.append(dict(V=v, method="gemm_floor", ms=floor, ratio=1.0, extra=None))
        chunked = [f"{m}@{r}" for r in args.chunks or [] for m in args.methods if m in FUSED]
        for m in [*args.methods, *chunked]:
            if m == "gemm_floor":
                continue
            if m == "liger_fused_ce" and not liger_available():
                print(f"| {m} | not run: {LIGER_HINT} | | |")
                continue
            try:
                ms = time_method(m, x, c, y, args.iters)
                extra = (cuda_extra_memory(m, x, c, y) if device.type == "cuda"
                         else cpu_extra_memory(m, args.n, args.d, v, args.dtype))
            except Exception as e:  # noqa: BLE001 - report and keep measuring the rest
                msg = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
                print(f"| {m} | failed: {type(e).__name__}: {msg} | | |")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            print(f"| {m} | {ms:.1f} | {ms / floor:.2f} | {gib(extra)} |", flush=True)
            rows.append(dict(V=v, method=m, ms=ms, ratio=ms / floor, extra=extra))
        del x, c, y, gemm_grad
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.sweep and device.type == "cpu":
        rows += memory_sweep(args)
    if getattr(args, "target", None):
        print()
        for line in target_lines(rows, args.target):
            print(line)
    ours = [r for r in rows if r["method"] == "fused_tfsd" and r["extra"] is not None]
    if len({r["V"] for r in ours}) > 1:
        lo, hi = min(ours, key=lambda r: r["V"]), max(ours, key=lambda r: r["V"])
        growth = hi["extra"] / max(lo["extra"], 1)
        print(f"\nfused_tfsd extra memory at V={hi['V']} is ×{growth:.2f}"
              f" that at V={lo['V']} (V grew ×{hi['V'] // lo['V']})")
    return rows


def target_lines(rows: list[dict], target: float) -> list[str]:
    """One line per fused method and V: × floor and extra memory against the targets,
    and against Liger's fused CE when it ran (issue 15)."""
    out = []
    by = {(r["V"], r["method"]): r for r in rows}
    for (v, m), r in sorted(by.items()):
        if m not in FUSED or r["ms"] is None:
            continue
        ok_t, ok_m = r["ratio"] <= target, r["extra"] <= MEMORY_TARGET
        line = (f"target V={v} {m}: ×{r['ratio']:.2f} floor (≤ {target}: "
                f"{'met' if ok_t else 'NOT met'}), extra {gib(r['extra'])} "
                f"(≤ 0.25 GiB: {'met' if ok_m else 'NOT met'})")
        liger = by.get((v, "liger_fused_ce"))
        if liger is not None:
            faster = r["ms"] < liger["ms"]
            line += f"; vs Liger ×{r['ms'] / liger['ms']:.2f} ({'faster' if faster else 'slower'})"
        out.append(line)
    return out


def memory_sweep(args) -> list[dict]:
    """Extra memory of fused TFSD as V grows (CPU): one fresh process per V, no timing."""
    print(f"\n## fused_tfsd extra memory vs V (N={args.n}, D={args.d}, {args.dtype})\n")
    print("| V | chunk rows | all logits would be | extra memory |")
    print("|---:|---:|---:|---:|")
    rows = []
    for v in args.sweep:
        extra = cpu_extra_memory("fused_tfsd", args.n, args.d, v, args.dtype)
        chunk = default_chunk_size(args.n, v, args.d, getattr(torch, args.dtype), "cpu")
        print(f"| {v} | {chunk} | {gib(args.n * v * 4)} | {gib(extra)} |", flush=True)
        rows.append(dict(V=v, method="fused_tfsd", ms=None, ratio=None, extra=extra))
    return rows


def profile(args) -> None:
    """Kernel-level breakdown of one fwd+bwd per method (after a warm-up step)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    dev = torch.device("cuda")
    for v in args.vs:
        x, c, y = make_inputs(args.n, args.d, v, getattr(torch, args.dtype), dev)
        for m in args.methods:
            step(m, x, c, y)
            torch.cuda.synchronize()
            with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                step(m, x, c, y)
                torch.cuda.synchronize()
            print(f"\n## {m}, V={v}\n")
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="size preset (default: gpu if CUDA is available, else cpu)")
    p.add_argument("--device", default="auto")
    p.add_argument("--n", type=int)
    p.add_argument("--d", type=int)
    p.add_argument("--vs", type=int, nargs="+", help="class counts of the timing tables")
    p.add_argument("--sweep", type=int, nargs="*", help="class counts of the CPU memory sweep")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--iters", type=int)
    p.add_argument("--methods", nargs="+", choices=["gemm_floor", *METHODS, *FUSED])
    p.add_argument("--chunks", type=int, nargs="+",
                   help="also run each fused method at these rows per chunk (name@rows)")
    p.add_argument("--tile", type=int, nargs=3, metavar=("BM", "BN", "WARPS"),
                   help="tile of the triton_tiled gradient kernel (powers of two; default "
                        f"{' '.join(str(v) for v in fused_triton.TILE.values())})")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--profile", action="store_true",
                   help="print the CUDA kernel time table of one step of each method instead")
    p.add_argument("--smoke", action="store_true", help="the tiny 'smoke' preset (CI)")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.preset = "smoke"
    preset = PRESETS[args.preset or ("gpu" if torch.cuda.is_available() else "cpu")]
    for k, v in preset.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if any(r < 1 for r in args.chunks or []):
        p.error("--chunks: rows per chunk must be positive integers")
    if args.tile:
        if any(t < 1 or t & (t - 1) for t in args.tile):
            p.error(f"--tile: BM, BN and WARPS must be powers of two, got {args.tile}")
        fused_triton.TILE.update(zip(("block_m", "block_n", "num_warps"), args.tile, strict=True))
    if args._child:
        return cpu_child(args._child, args.n, args.d, args.vs[0], args.dtype)
    if args.profile:
        return profile(args)
    rows = run(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
