"""Cost of the probes: step time with probes at the default cadence against none.

One process, one model and optimiser. Training alternates between blocks of
``every`` steps with the probes attached (one recorded step, then the flush that
moves the statistics and the trainer's sums to the host and writes them) and
blocks without them (the trainer's own flush only), ABBA-ordered, so machine
noise hits both alike; the ratio of the median block times is the overhead.
Snapshots of the probe set happen between steps and are timed separately.

    python benchmarks/probe_overhead.py                                   # MNIST-1D MLP, CPU
    python benchmarks/probe_overhead.py --data random-cifar --batch-size 512   # ResNet, GPU
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

from benchmarks.train_throughput import random_cifar  # noqa: E402
from geomviz.data import load_dataset  # noqa: E402
from geomviz.models import build_model  # noqa: E402
from geomviz.store import RunWriter  # noqa: E402
from probes import attach, target_kind  # noqa: E402
from probes.snapshots import run_model, snapshot_arrays  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["mnist1d", "random-cifar"], default="mnist1d")
    p.add_argument("--objective", default="tfsd")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--blocks", type=int, default=40, help="blocks per variant")
    p.add_argument("--smoke", action="store_true", help="2 blocks of 5 steps (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        args.blocks, args.every = 2, 5
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if dev.type == "cuda" else None
    bundle = load_dataset("mnist1d", ood_classes=(8, 9)) if args.data == "mnist1d" \
        else random_cifar()
    torch.manual_seed(0)
    model = build_model("auto", bundle.input_shape, bundle.num_classes, args.objective,
                        validate=False).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x_all, y_all = bundle.x_train.to(dev), bundle.y_train.to(dev)
    g = torch.Generator().manual_seed(0)
    kind = target_kind(args.objective)

    def block(writer, step0: int, probed: bool) -> float:
        acc = torch.zeros(2, device=dev)
        ctx = attach(model, writer=writer, every=args.every, target=kind) if probed else None
        session = ctx.__enter__() if ctx else None
        _sync(dev)
        t0 = time.perf_counter()
        for s in range(args.every):
            idx = torch.randint(0, len(x_all), (args.batch_size,), generator=g).to(dev)
            xb, yb = bundle.prepare(x_all[idx]), y_all[idx]
            if session:
                session.before_step(step0 + s + 1, yb)
            with torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                loss = model.loss(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc += torch.stack([loss.detach().float(), torch.ones((), device=dev)])
        step = step0 + args.every
        if session:
            host = session.flush(step, 0, extra=acc)
        else:
            host = acc.cpu().numpy()
        writer.scalars(step, {"loss": float(host[0] / host[1])})
        writer.flush()
        _sync(dev)
        elapsed = time.perf_counter() - t0
        if ctx:
            ctx.__exit__(None, None, None)
        return elapsed

    times = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunWriter(Path(tmp) / "run", {})
        step = 0
        for i in range(2):  # warm-up
            block(writer, step, bool(i))
            step += args.every
        for i in range(2 * args.blocks):
            probed = (i % 4) in (0, 3)  # ABBA
            times[probed].append(block(writer, step, probed))
            step += args.every
        n = min(2000, len(bundle.x_test))
        probe_x = bundle.x_test[:n].to(dev)
        labels = bundle.y_test[:n].to(dev)
        snap = []
        for _ in range(1 if args.smoke else 5):
            _sync(dev)
            t0 = time.perf_counter()
            feats, logits = run_model(model, model.head, probe_x, bundle.prepare)
            for k, v in snapshot_arrays(feats, logits, labels, model.head.class_vectors.detach(),
                                        model.head.metric, kind).items():
                writer.array(step, f"snapshot.{k}", v)
            writer.flush()
            snap.append(time.perf_counter() - t0)
        writer.close()
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"# {args.data}, {args.objective}, batch {args.batch_size}, {dev}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; blocks of {args.every} "
          f"steps, {args.blocks} per variant, ABBA")
    print(f"without probes: {1e3 * off / args.every:.3f} ms/step (median block)")
    print(f"with probes:    {1e3 * on / args.every:.3f} ms/step")
    print(f"probe overhead: ×{on / off:.3f}")
    print(f"one snapshot of {n} examples: {1e3 * statistics.median(snap):.1f} ms "
          "(between steps; ~40 per run)")


if __name__ == "__main__":
    main()
