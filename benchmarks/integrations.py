"""Cost of the Lightning and Transformers callbacks: step time with and without, one process.

The same Lightning loop (an MLP on MNIST-1D-sized random data) and the same Transformers
``Trainer`` loop (a tiny GPT-2 built from a config) run with and without the geomviz
callback at its default cadence (Lightning: a row every 50 steps; Transformers: a row every
``logging_steps``, set to 50 here as in a typical run; Transformers' own default is 500),
alternating ABBA so machine noise hits both alike. A timer callback placed before the
geomviz one reads the clock at the start of each training step, so the time measured spans
whole steps with every hook of the callback (arming, the probed step, the row's one
transfer and its store commit), after a warm-up; the run's set-up (store, provenance) and
its end are reported apart. Two ratios: of the runs' mean step times (median over runs), and
of a robust step time (the median step plus the median extra of a row step over ``every``),
which a shared machine's other jobs disturb far less; and, least disturbed, the ratio by
parts: the hooks' own cost on an unprobed step (timed directly) plus a row step's extra
over ``every``, against the median step without the callback. Target: <= 1.05 on CPU.

    python benchmarks/integrations.py            # a few minutes on 2 shared cores
    python benchmarks/integrations.py --smoke    # seconds (CI)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 1.05


def lightning_loop(steps: int, out: Path | None, every: int) -> tuple[list[float], float]:
    """(clock at the start of each step, wall seconds of the whole fit)."""
    import lightning.pytorch as L
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from geomviz.integrations.lightning import GeomvizCallback
    from geomviz.objectives import create_objective

    class Net(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Linear(40, 512), nn.ReLU(), nn.Linear(512, 512),
                                      nn.ReLU())
            self.objective = create_objective("tfsd", 512, 10, validate=False)

        def training_step(self, batch, _):
            return self.objective.loss(self.objective.head(self.body(batch[0])), batch[1])

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(steps * 128, 40, generator=g), torch.randint(10, (steps * 128,), generator=g)
    ticks: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_start(self, *a) -> None:
            ticks.append(time.perf_counter())

    cbs = [Timer()] + ([GeomvizCallback(out, head="objective.head", objective="tfsd",
                                        every=every)] if out else [])
    t0 = time.perf_counter()
    L.Trainer(max_steps=steps, callbacks=cbs, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
              devices=1).fit(Net(), DataLoader(TensorDataset(x, y), batch_size=128))
    return ticks, time.perf_counter() - t0


def gpt2(v: int, t: int):
    """A tiny GPT-2 built from a config: random weights, nothing downloaded."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=v, n_positions=t, n_embd=64, n_layer=2,
                                      n_head=4, tie_word_embeddings=False, bos_token_id=0,
                                      eos_token_id=0))


def hf_loop(steps: int, out: Path | None, every: int, tmp: Path) -> tuple[list[float], float]:
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    from geomviz.integrations.hf import GeomvizCallback

    v, t = 256, 32
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(v, (steps * 16, t), generator=g)
    data = [{"input_ids": s, "labels": s} for s in ids]
    ticks: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k) -> None:
            ticks.append(time.perf_counter())

    model = gpt2(v, t)
    args = TrainingArguments(output_dir=str(tmp / "hf"), max_steps=steps, logging_steps=every,
                             per_device_train_batch_size=16, report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True, learning_rate=1e-3)
    cbs = [Timer()] + ([GeomvizCallback(out)] if out else [])
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=cbs)
    trainer.remove_callback(PrinterCallback)  # no log lines on stdout
    t0 = time.perf_counter()
    trainer.train()
    return ticks, time.perf_counter() - t0


def step_costs(ticks: list[float], warm: int, every: int) -> tuple[float, ...]:
    """(mean step time, robust step time, median step, row-step extra) after ``warm`` steps.
    The robust one is the median step plus the median extra of the row steps (every
    ``every``-th: arming, the probed step, the row) spread over ``every`` steps: medians
    within a run, which other jobs' bursts on a shared machine move far less than a mean."""
    d = [b - a for a, b in zip(ticks[warm:-1], ticks[warm + 1:], strict=True)]
    steps = range(warm + 1, warm + 1 + len(d))  # d[i] is the duration of step steps[i]
    rows = [x for x, k in zip(d, steps, strict=True) if k % every == 0]
    rest = [x for x, k in zip(d, steps, strict=True) if k % every != 0]
    base = statistics.median(rest)
    extra = statistics.median(rows) - base if rows else 0.0
    return sum(d) / len(d), base + extra / every, base, extra


def hook_cost(name: str, tmp: Path, n: int) -> float:
    """Seconds per unprobed step spent in the callback's own hooks (arming, logging), called
    directly on stand-in trainer state: a figure the machine's load barely moves."""
    import types

    ids = torch.randint(256, (16, 32))
    model = gpt2(256, 32).train()
    state = types.SimpleNamespace(max_steps=10**6, global_step=0, epoch=0.0, current_epoch=0,
                                  sanity_checking=False, fast_dev_run=False,
                                  estimated_stepping_batches=10**6, optimizers=[
                                      torch.optim.SGD(model.parameters(), lr=0.1)])
    loss = torch.tensor(1.0)
    if name == "hf":
        from geomviz.integrations.hf import GeomvizCallback

        cb = GeomvizCallback(tmp / "hook-hf", every=10**9)
        args = types.SimpleNamespace(learning_rate=1e-3, logging_steps=10**9)
        cb.on_train_begin(args, state, None, model=model)

        def step() -> None:
            cb._before_forward(model, (), {"input_ids": ids, "labels": ids})
            cb.on_step_end(args, state, None)
    else:
        from geomviz.integrations.lightning import GeomvizCallback

        cb = GeomvizCallback(tmp / "hook-lightning", head="lm_head", every=10**9)
        cb.on_fit_start(state, model)
        batch = (ids, ids[:, 0])

        def step() -> None:
            cb.on_train_batch_start(state, model, batch, 0)
            cb.on_train_batch_end(state, model, {"loss": loss}, batch, 0)
    t0 = time.perf_counter()
    for i in range(n):
        state.global_step = i
        step()
    cost = (time.perf_counter() - t0) / n
    cb.recorder.close()
    return cost


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="Lightning steps per fit")
    p.add_argument("--hf-steps", type=int, default=150, help="Trainer steps per run")
    p.add_argument("--every", type=int, default=50, help="steps per row (the default)")
    p.add_argument("--reps", type=int, default=3, help="ABBA rounds (2 runs of each per round)")
    p.add_argument("--smoke", action="store_true", help="a few steps, one round (CI)")
    p.add_argument("--only", choices=["lightning", "hf"], default=None)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: a shared machine's other jobs stall no barrier)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.smoke:
        a.steps, a.hf_steps, a.every, a.reps = 10, 8, 3, 1
    warm = 2 if a.smoke else 20
    import lightning.pytorch  # noqa: F401 - it sets its loggers' levels on import
    import transformers  # noqa: F401

    for name in ("lightning.pytorch", "lightning.fabric", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    loops = {"lightning": lambda out, tmp: lightning_loop(a.steps, out, a.every),
             "hf": lambda out, tmp: hf_loop(a.hf_steps, out, a.every, tmp)}
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; a row every "
          f"{a.every} steps; {a.reps} ABBA round(s); warm-up {warm} steps; no probe set")
    with tempfile.TemporaryDirectory() as tmp:
        for name, loop in loops.items():
            if a.only and name != a.only:
                continue
            per, rob, wall, parts = ({True: [], False: []} for _ in range(4))
            k = 0
            if not a.smoke:
                loop(None, Path(tmp))  # warm-up: imports, first-call costs
            for _ in range(a.reps):
                for on in (False, True) if a.smoke else (False, True, True, False):
                    k += 1
                    ticks, w = loop(Path(tmp) / f"{name}{k}" if on else None, Path(tmp))
                    mean, robust, base, extra = step_costs(ticks, warm, a.every)
                    per[on].append(mean)
                    rob[on].append(robust)
                    parts[on].append((base, extra))
                    wall[on].append(w)
            off_s, on_s = statistics.median(per[False]), statistics.median(per[True])
            ratio = on_s / off_s
            robust = statistics.median(rob[True]) / statistics.median(rob[False])
            fixed = statistics.median(wall[True]) - statistics.median(wall[False]) - \
                (on_s - off_s) * (a.steps if name == "lightning" else a.hf_steps)
            print(f"{name:9s} without {1e3 * off_s:7.3f} ms/step   with {1e3 * on_s:7.3f} "
                  f"ms/step   ×{ratio:.3f} (mean steps); ×{robust:.3f} (median step + row "
                  f"extra / {a.every}); target ≤ {TARGET}: "
                  f"{'met' if max(ratio, robust) <= TARGET else 'MISSED'}; set-up and close "
                  f"{1e3 * fixed:+.0f} ms per run")
            base = {on: statistics.median(b for b, _ in parts[on]) for on in parts}
            extra = {on: statistics.median(e for _, e in parts[on]) for on in parts}
            hook = hook_cost(name, Path(tmp), 50 if a.smoke else 2000)
            added = hook + (extra[True] - extra[False]) / a.every
            print(f"{'':9s} median step {1e3 * base[False]:.3f} -> {1e3 * base[True]:.3f} ms; "
                  f"a row step's extra {1e3 * extra[False]:+.3f} -> {1e3 * extra[True]:+.3f} "
                  f"ms; the hooks of an unprobed step {1e6 * hook:.0f} µs; by these parts "
                  f"(hooks + row extra / {a.every}) ×{(base[False] + added) / base[False]:.3f}")


if __name__ == "__main__":
    main()
