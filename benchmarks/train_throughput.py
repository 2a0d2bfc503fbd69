"""Training throughput (samples/s) and the run store's write overhead, in one process.

Each repeat trains the same config twice, once writing the real store and once
with a writer that discards everything, interleaved; evaluation and
checkpoints are stubbed out so only training steps and store writes are timed.
The store overhead is the ratio of the medians.

    python benchmarks/train_throughput.py                       # MNIST-1D MLP on CPU
    python benchmarks/train_throughput.py --data random-cifar   # ResNet, CIFAR-shaped (GPU)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geomviz.training.resume as R  # noqa: E402
import geomviz.training.train as T  # noqa: E402
from geomviz.data import DataBundle, load_dataset  # noqa: E402
from geomviz.store import NullWriter  # noqa: E402
from geomviz.training.config import resolve_config  # noqa: E402


def random_cifar(n: int = 20_000, seed: int = 0, n_test: int = 0,
                 n_ood: int = 0) -> DataBundle:
    """CIFAR-10's sizes and dtype (uint8 [N, 3, 32, 32]) with random pixels and labels: the
    GPU machine has no dataset files, and speed does not depend on the pixels. Without
    ``n_test`` the test split is the first 1000 training images; ``n_ood`` adds OOD images
    (so the trainer's evaluation can run too)."""
    g = torch.Generator().manual_seed(seed)
    img = lambda m: torch.randint(0, 256, (m, 3, 32, 32), generator=g, dtype=torch.uint8)  # noqa: E731
    x, y = img(n), torch.randint(0, 10, (n,), generator=g)
    xt, yt = (img(n_test), torch.randint(0, 10, (n_test,), generator=g)) if n_test else \
        (x[:1000], y[:1000])
    return DataBundle("random-cifar", x, y, xt, yt, [str(i) for i in range(10)], "image",
                      x_ood=img(n_ood) if n_ood else None, ood_name="random" if n_ood else None)


def run_once(cfg_values: dict, bundle: DataBundle, store: bool, folder: Path) -> float:
    T.evaluate = lambda *a, **k: {}
    T._save_checkpoint = lambda *a, **k: None
    # the writer train() opens (through training.resume.open_writer): real, or discarding
    R.RunWriter = RealWriter if store else (lambda *a, **k: NullWriter())
    cfg = resolve_config(cfg_values, {"out": str(folder), "progress": False})
    if cfg.device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    T.train(cfg, bundle)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


RealWriter = R.RunWriter


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["mnist1d", "random-cifar"], default="mnist1d")
    p.add_argument("--objective", default="tfsd")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--flush-every", type=int, default=50)
    p.add_argument("--smoke", action="store_true", help="1 epoch, 1 repeat (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.repeats = 1, 1
    bundle = load_dataset("mnist1d") if args.data == "mnist1d" else random_cifar()
    values = {"objective": args.objective, "epochs": args.epochs, "batch_size": args.batch_size,
              "flush_every": args.flush_every}
    samples = args.epochs * len(bundle.x_train)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# {args.data}, {args.objective}, batch {args.batch_size}, {args.epochs} epochs, "
          f"{dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"flush every {args.flush_every} steps")
    with tempfile.TemporaryDirectory() as tmp:
        run_once(values, bundle, True, Path(tmp) / "warmup")
        with_store, without = [], []
        for i in range(args.repeats):
            with_store.append(run_once(values, bundle, True, Path(tmp) / f"s{i}"))
            without.append(run_once(values, bundle, False, Path(tmp) / f"n{i}"))
    a, b = statistics.median(with_store), statistics.median(without)
    print(f"with store:    {samples / a:10.0f} samples/s  ({a:.3f} s, median of {args.repeats})")
    print(f"without store: {samples / b:10.0f} samples/s  ({b:.3f} s)")
    print(f"store write overhead: ×{a / b:.3f}")


if __name__ == "__main__":
    main()
