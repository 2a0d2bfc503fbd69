"""``--compile`` against eager: training time per epoch, and a compiled run to its end
with a ragged last batch (issue 15: the compiled trainer once died at the first flush).

One process. The same config trains twice through the trainer (``geomviz.training.train``,
probes, store and evaluation included), eager first, then compiled; each epoch's training
loop (``_run_epoch``: steps, probes, flushes; not the evaluation) is timed. Compilation
spreads over the first two epochs of the compiled run (the first graphs, then the ragged
last batch's and the probe steps' variants), so the speed-up is of the medians of epochs
3 and later.

    python benchmarks/compile_speed.py                # gaussians MLP, CPU (inductor)
    python benchmarks/compile_speed.py --preset gpu   # ResNet on CIFAR-sized random images
    python benchmarks/compile_speed.py --smoke        # seconds; aot_eager backend (CI)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geomviz.training.train as T  # noqa: E402
from benchmarks.train_throughput import random_cifar  # noqa: E402
from geomviz.data import DataBundle  # noqa: E402
from geomviz.store import open_run  # noqa: E402
from geomviz.training.config import resolve_config  # noqa: E402

PRESETS = {
    # gaussians: 96 does not divide the training set, so every epoch ends on a ragged batch
    "cpu": dict(data="gaussians", values=dict(batch_size=96, epochs=6, objective="tfsd",
                                              label_noise=0.2), backend="inductor"),
    # 50,000 = 195 × 256 + 80: the ragged last batch of the H200 crash
    "gpu": dict(data="random-cifar", values=dict(batch_size=256, epochs=6, objective="tfsd",
                                                 model="resnet"), backend="inductor"),
    "smoke": dict(data="gaussians", values=dict(batch_size=96, epochs=3, objective="tfsd",
                                                label_noise=0.2, flush_every=7),
                  backend="aot_eager"),
}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_timed(values: dict, bundle: DataBundle | None, out: Path) -> tuple[list[float], dict]:
    """Train one run; returns the seconds of each epoch's training loop and the run's meta."""
    epochs: list[float] = []
    run_epoch = T._run_epoch

    def timed(*a, **k):
        _sync()
        t0 = time.perf_counter()
        step = run_epoch(*a, **k)
        _sync()
        epochs.append(time.perf_counter() - t0)
        return step

    T._run_epoch = timed
    try:
        T.train(resolve_config(values, {"out": str(out), "progress": False}), bundle)
    finally:
        T._run_epoch = run_epoch
    return epochs, open_run(out).meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="default: gpu when CUDA is available, else cpu")
    ap.add_argument("--epochs", type=int, help="override the preset's epochs (>= 3)")
    ap.add_argument("--smoke", action="store_true", help="the tiny 'smoke' preset (CI)")
    args = ap.parse_args(argv)
    name = "smoke" if args.smoke else args.preset or ("gpu" if torch.cuda.is_available()
                                                      else "cpu")
    p = PRESETS[name]
    values = dict(p["values"], dataset="gaussians" if p["data"] == "gaussians" else "cifar10")
    if args.epochs is not None:
        if args.epochs < 3:
            ap.error("--epochs must be >= 3 (epochs 1 and 2 of the compiled run compile)")
        values["epochs"] = args.epochs
    bundle = (random_cifar(50_000, n_test=10_000, n_ood=10_000) if p["data"] == "random-cifar"
              else None)
    n_train = len(bundle.x_train) if bundle is not None else len(
        T.load_bundle(resolve_config(values)).x_train)
    ragged = n_train % values["batch_size"]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    hw = torch.cuda.get_device_name() if dev == "cuda" else f"CPU x{torch.get_num_threads()}"
    print(f"# {name}: {p['data']}, {values['objective']}, batch {values['batch_size']} "
          f"({n_train} samples: last batch {ragged or values['batch_size']}), "
          f"{values['epochs']} epochs, {hw}, torch {torch.__version__}, "
          f"compile backend {p['backend']}")
    real_compile = torch.compile
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("eager", "compiled"):
            torch._dynamo.reset()
            torch.compile = functools.partial(real_compile, backend=p["backend"])
            try:
                results[mode] = train_timed({**values, "compile": mode == "compiled"}, bundle,
                                            Path(tmp) / mode)
            finally:
                torch.compile = real_compile
    print("\n| mode | epochs 1, 2 (s) | epochs 3+, median (s) | samples/s | status |")
    print("|---|---:|---:|---:|---|")
    med = {}
    for mode, (epochs, meta) in results.items():
        med[mode] = statistics.median(epochs[2:])
        print(f"| {mode} | {epochs[0]:.2f}, {epochs[1]:.2f} | {med[mode]:.2f} | "
              f"{n_train / med[mode]:,.0f} | "
              f"{meta['status']} |")
    finished = all(meta["status"] == "finished" for _, meta in results.values())
    print(f"\n--compile per epoch: ×{med['eager'] / med['compiled']:.2f} the eager speed; "
          f"compile cost in epochs 1-2: "
          f"{sum(results['compiled'][0][:2]) - 2 * med['compiled']:.1f} s; "
          f"ragged last batch: {'yes' if ragged else 'no'}; both runs finished: "
          f"{'yes' if finished else 'NO'}")
    return 0 if finished else 1


if __name__ == "__main__":
    raise SystemExit(main())
