"""The patched Hugging Face loss (apply_tfsd) against the unpatched one, on CPU.

One training step (forward + backward, labels given) of a one-layer tiny Llama with
``hidden_size=D`` and ``vocab_size=V`` on ``N = batch × seq`` tokens, per variant:

* ``hf_ce``        the stock model: ``lm_head`` logits [N, V] + the stock CE;
* ``tfsd_logits``  ``apply_tfsd(model, fused=False)``: TFSD on distance logits [N, V];
* ``tfsd_fused``   ``apply_tfsd(model, fused=True, backend="eager")``: the chunked PyTorch
  fused loss from the hidden states and the centres, no [N, V] tensor;
* ``trunk``        the decoder alone (its output's mean square as a loss): what the loss
  variants share, so ``step - trunk`` is the head + loss.

Time: the median of ``--reps`` steps per variant, variants interleaved, in this process.
Memory: on CPU, the peak RSS above the process's RSS just before the step (``VmHWM`` after
``5 > /proc/self/clear_refs``), in a fresh child process per variant pinned to one CPU
(the kernel's per-CPU RSS counters then lag by at most one batch, printed as the
resolution), with a fixed glibc mmap threshold so that RSS follows live tensors;
on CUDA, the caching allocator's peak above what was allocated before the step.
The parameters' gradients are allocated inside the step, alike for every variant.

    python benchmarks/hf_tfsd.py              # N=2048 (8×256), D=256, V=32768, fp32 CPU
    python benchmarks/hf_tfsd.py --smoke      # tiny sizes: checks the script runs
    python benchmarks/hf_tfsd.py --preset gpu # N=8192, D=1024, V=128256, bf16 on CUDA
                                              # (prepared for issue 22 part 5; not yet run)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

VARIANTS = ("hf_ce", "tfsd_logits", "tfsd_fused", "trunk")
PRESETS = {"default": dict(batch=8, seq=256, d=256, v=32768, reps=5, device="cpu",
                           dtype="float32"),
           # big enough that the CE's [N, V] logits (4 MiB) dwarf the RSS counters' lag
           "smoke": dict(batch=4, seq=64, d=32, v=4096, reps=1, device="cpu", dtype="float32"),
           "gpu": dict(batch=8, seq=1024, d=1024, v=128256, reps=5, device="cuda",
                       dtype="bfloat16")}


def build(variant: str, d: int, v: int, device: str = "cpu", dtype: str = "float32",
          chunk: int | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    from geomviz.integrations.hf_tfsd import apply_tfsd

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=v, hidden_size=d, intermediate_size=2 * d, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                      tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(cfg).to(device, getattr(torch, dtype)).train()
    if variant in ("tfsd_logits", "tfsd_fused"):
        apply_tfsd(model, fused=variant == "tfsd_fused",
                   backend="eager" if device == "cpu" else "auto", chunk_size=chunk)
    return model


def inputs(batch: int, seq: int, v: int, device: str = "cpu"):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, v, (batch, seq), generator=g).to(device)


def step(variant: str, model, ids) -> float:
    """One forward + backward; returns the loss (after the step, outside the timing)."""
    if variant == "trunk":
        loss = model.model(input_ids=ids).last_hidden_state.square().mean()
    else:
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_resolution_b() -> int:
    """How far the kernel's RSS counters may lag, for a process on one CPU, in bytes.

    Since Linux 6.2 ``VmRSS`` and ``VmHWM`` read per-CPU counters without folding in each
    CPU's pending delta, which is below the counter's batch: max(32, 2 × CPUs) pages per
    CPU the process ran on. The child is pinned to one CPU, so one batch bounds the error.
    """
    return max(32, 2 * (os.cpu_count() or 1)) * os.sysconf("SC_PAGE_SIZE")


def child(args) -> None:
    """Fresh process, pinned to one CPU: peak RSS of one step above the RSS just before it.

    A reading below zero is counter lag, not memory: it is reported as 0 (the parent
    prints the resolution next to the numbers).
    """
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one CPU's pending delta only
    torch.set_num_threads(1)  # no timing here; one thread on the one CPU
    model = build(args.child, args.d, args.v, chunk=args.chunk)
    step(args.child, model, inputs(1, 8, args.v))  # lazy imports and one-off allocations
    model.zero_grad(set_to_none=True)
    ids = inputs(args.batch, args.seq, args.v)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss0 = _status_bytes("VmRSS")
    step(args.child, model, ids)
    print(json.dumps({"extra": max(0, _status_bytes("VmHWM") - rss0)}))


def cuda_peak_extras(args) -> dict[str, int]:
    """Per variant, in this process: the allocator's peak above what the step starts with."""
    out = {}
    for v in VARIANTS:
        model = build(v, args.d, args.v, "cuda", args.dtype, args.chunk)
        step(v, model, inputs(1, 8, args.v, "cuda"))
        model.zero_grad(set_to_none=True)
        ids = inputs(args.batch, args.seq, args.v, "cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(v, model, ids)
        torch.cuda.synchronize()
        out[v] = torch.cuda.max_memory_allocated() - base
        del model, ids
        torch.cuda.empty_cache()
    return out


def peak_extras(args) -> dict[str, int]:
    """One child per variant, all at once (each measures its own RSS; no timing there)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(1 << 17))
    procs = {v: subprocess.Popen(
        [sys.executable, __file__, "--_child", v, "--batch", str(args.batch), "--seq",
         str(args.seq), "--d", str(args.d), "--v", str(args.v)]
        + (["--chunk", str(args.chunk)] if args.chunk else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for v in VARIANTS}
    out = {}
    for v, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"memory child {v} failed:\n{stderr[-2000:]}")
        out[v] = json.loads(stdout.strip().splitlines()[-1])["extra"]
    return out


def timings(args) -> tuple[dict[str, float], dict[str, float]]:
    models = {v: build(v, args.d, args.v, args.device, args.dtype, args.chunk)
              for v in VARIANTS}
    ids = inputs(args.batch, args.seq, args.v, args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    losses = {}
    for v in VARIANTS:  # warm-up
        losses[v] = float(step(v, models[v], ids).detach())
    for _ in range(args.reps):
        for v in VARIANTS:
            models[v].zero_grad(set_to_none=True)
            sync()
            t0 = time.perf_counter()
            step(v, models[v], ids)
            sync()
            times[v].append(time.perf_counter() - t0)
    return {v: statistics.median(t) for v, t in times.items()}, losses


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None)
    for k in ("batch", "seq", "d", "v", "reps"):
        p.add_argument(f"--{k}", type=int, default=None)
    p.add_argument("--chunk", type=int, default=None,
                   help="rows per chunk of the fused loss (default: its memory budget's)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--_child", dest="child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    preset = "smoke" if args.smoke else (args.preset or "default")
    for k, val in PRESETS[preset].items():
        if getattr(args, k) is None:
            setattr(args, k, val)
    if args.child:
        child(args)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    n = args.batch * args.seq
    t, losses = timings(args)
    mem = cuda_peak_extras(args) if args.device == "cuda" else peak_extras(args)
    load = os.getloadavg()
    info = dict(commit=_commit(), n=n, d=args.d, v=args.v, threads=torch.get_num_threads(),
                load=[round(x, 2) for x in load], reps=args.reps, time_s=t, peak_extra_b=mem,
                loss=losses, logits_b=n * args.v * 4, device=args.device, dtype=args.dtype,
                chunk=args.chunk,
                peak_resolution_b=0 if args.device == "cuda" else rss_resolution_b())
    if args.json:
        print(json.dumps(info))
        return 0
    hw = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU x{info['threads']}"
    print(f"hf_tfsd: one-layer Llama train step, N={n} ({args.batch}x{args.seq}), D={args.d}, "
          f"V={args.v}, {args.dtype}, fused chunk {args.chunk or 'auto'}, {hw}, "
          f"load {load[0]:.2f}, commit {info['commit']}; one fp32 [N, V] tensor is "
          f"{mib(info['logits_b'])}" + (f"; peaks read to ±{mib(info['peak_resolution_b'])}"
                                        if info["peak_resolution_b"] else ""))
    print(f"{'variant':12s} {'step s':>8s} {'x hf_ce':>8s} {'peak extra':>11s} {'x hf_ce':>8s}"
          f" {'loss':>9s}")
    for v in VARIANTS:
        print(f"{v:12s} {t[v]:8.3f} {t[v] / t['hf_ce']:8.2f} {mib(mem[v]):>11s} "
              f"{mem[v] / max(1, mem['hf_ce']):8.2f} {losses[v]:9.5f}")
    return 0


def mib(b: int) -> str:
    return f"{b / 2**20:.1f} MiB"


if __name__ == "__main__":
    sys.exit(main())
