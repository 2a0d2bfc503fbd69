"""Language-model training throughput: tokens/s of a GPT step with a CE head and a TFSD head,
fused against unfused heads, and the probes' overhead on token runs.

One process. Every variant runs the trainer's own step (``geomviz.training.train._Step``:
features, head, loss; then backward and AdamW) on random tokens, in blocks of ``--every``
steps, interleaved ABBA so machine noise hits all variants alike; a ratio is of median
block times. The probe variant attaches the probes and records one step per block (the
trainer's default cadence: one record per flush), then flushes them to a store.

    python benchmarks/lm_throughput.py                     # tiny GPT, V = 256, CPU
    python benchmarks/lm_throughput.py --preset gpu        # small GPT, V = 32768 and 131072
    python benchmarks/lm_throughput.py --smoke             # seconds; what CI runs
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

from geomviz.models import Classifier, build_backbone  # noqa: E402
from geomviz.objectives import create_objective  # noqa: E402
from geomviz.store import RunWriter  # noqa: E402
from geomviz.training.train import _Step  # noqa: E402
from probes import attach, target_kind  # noqa: E402

PRESETS = {
    # probe_every: the trainer's default cadence, one probed step per flush (flush_every=50)
    "cpu": dict(size="tiny", width=128, vocabs=[256], batch=32, seq_len=64, every=10, blocks=8,
                probe_every=50, probe_blocks=4),
    "gpu": dict(size="small", width=768, vocabs=[32768, 131072], batch=16, seq_len=512,
                every=10, blocks=6, probe_every=50, probe_blocks=4),
    "smoke": dict(size="tiny", width=32, vocabs=[64], batch=4, seq_len=16, every=3, blocks=2,
                  probe_every=3, probe_blocks=1),
}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


class Variant:
    """One model + optimiser; ``block(k, probed)`` trains k steps and returns seconds."""

    def __init__(self, objective: str, vocab: int, p: dict, dev, amp, writer=None) -> None:
        torch.manual_seed(0)
        backbone = build_backbone("gpt", (p["seq_len"],), p["width"], vocab_size=vocab,
                                  gpt_size=p["size"], block_size=p["seq_len"])
        torch.manual_seed(1)
        obj = create_objective(objective, p["width"], vocab, validate=False)
        self.model = Classifier(backbone, obj).to(dev)
        self.step = _Step(self.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.dev, self.amp, self.p, self.objective = dev, amp, p, objective
        self.writer = writer
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, vocab, (p["batch"], p["seq_len"]), generator=g).to(dev)
        self.y = torch.randint(0, vocab, (p["batch"], p["seq_len"]), generator=g).to(dev)
        self.count = 0

    def _one(self, probe: bool) -> None:
        with torch.autocast(self.dev.type, dtype=self.amp or torch.bfloat16,
                            enabled=self.amp is not None):
            loss, _ = self.step(self.x, self.y, probe)
        self.last = loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def block(self, k: int, probed: bool) -> float:
        _sync(self.dev)
        t0 = time.perf_counter()
        if probed:
            with attach(self.model, writer=self.writer, every=k,
                        target=target_kind(self.objective)) as s:
                for i in range(k):
                    self.count += 1
                    s.before_step(self.count, self.y, force=i == 0)
                    self._one(s.armed)
                s.flush(self.count, 0)
                self.writer.scalars(self.count, {"loss": float(self.last.detach())},
                                    split="train", epoch=0)
                self.writer.flush()
        else:
            for _ in range(k):
                self.count += 1
                self._one(False)
            if self.writer is not None:  # the trainer's own flush, which runs either way
                self.writer.scalars(self.count, {"loss": float(self.last.detach())},
                                    split="train", epoch=0)
                self.writer.flush()
        _sync(self.dev)
        return time.perf_counter() - t0


def _peak_gib(dev, fn) -> float:
    if dev.type != "cuda":
        return float("nan")
    torch.cuda.reset_peak_memory_stats()
    fn()
    return torch.cuda.max_memory_allocated() / 2**30


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None)
    ap.add_argument("--smoke", action="store_true", help="seconds-long run (CI)")
    args = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = "smoke" if args.smoke else args.preset or ("gpu" if dev.type == "cuda" else "cpu")
    p = PRESETS[name]
    amp = torch.bfloat16 if dev.type == "cuda" else None
    tok = p["batch"] * p["seq_len"]
    print(f"# {name}: GPT {p['size']} (width {p['width']}), batch {p['batch']} × "
          f"{p['seq_len']} = {tok} tokens/step, {dev}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunWriter(Path(tmp) / "probe", {"name": "bench"})
        print("| V | head | tokens/s | × CE (same fusion) | peak GiB |")
        print("|---:|---|---:|---:|---:|")
        ratios = {}
        for vocab in p["vocabs"]:
            names = ["ce", "tfsd"] + (["ce_fused", "tfsd_fused"] if dev.type == "cuda" or
                                      args.smoke else [])
            vs = {n: Variant(n, vocab, p, dev, amp) for n in names}
            times = {n: [] for n in names}
            for v in vs.values():
                v.block(1, False)  # warm-up
            for b in range(p["blocks"]):
                order = names if b % 2 == 0 else names[::-1]
                for n in order:
                    times[n].append(vs[n].block(p["every"], False))
            med = {n: statistics.median(t) for n, t in times.items()}
            for n in names:
                base = "ce_fused" if n.endswith("_fused") else "ce"
                peak = _peak_gib(dev, lambda n=n: vs[n].block(1, False))
                print(f"| {vocab} | {n} | {p['every'] * tok / med[n]:,.0f} | "
                      f"{med[n] / med[base]:.3f} | {peak:.2f} |")
                ratios[(vocab, n)] = med[n] / med[base]
            vs.clear()  # free this vocabulary's models before the next
        for (vocab, n), r in sorted(ratios.items()):
            if n == "tfsd_fused":
                print(f"target V={vocab}: a step with the fused TFSD head takes ×{r:.3f} the "
                      f"fused CE step's time (≤ 1.1: {'met' if r <= 1.1 else 'NOT met'})")
        # probe overhead on a token run: TFSD, the smallest vocabulary, ABBA blocks
        vocab = p["vocabs"][0]
        plain = Variant("tfsd", vocab, p, dev, amp, writer)
        k = p["probe_every"]
        plain.block(1, False)
        plain.block(k, True)  # warm-up of the probed path
        off, on = [], []
        for b in range(2 * p["probe_blocks"]):
            first, second = (False, True) if b % 2 == 0 else (True, False)
            for probed in (first, second):
                (on if probed else off).append(plain.block(k, probed))
        ratio = statistics.median(on) / statistics.median(off)
        print(f"\nprobe overhead (TFSD, V = {vocab}, one probed step and its flush per {k} "
              f"steps): ×{ratio:.3f} (target ≤ {1.03 if dev.type == 'cuda' else 1.05})")
        writer.close("finished")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
