"""How long a background AlignedUMAP will take here, said before it starts (the page asks
for a confirm with this figure: the job used to start unasked and take 4-17 minutes).

The cost model, per job (one new worker process, then one AlignedUMAP per run)::

    seconds = STARTUP_S + sum over runs of (PER_RUN_S + T * P * (C_GRAPH + C_EPOCH * E))

for a run of ``T`` snapshot steps of ``P`` points and ``E`` = n_epochs. AlignedUMAP runs
single-threaded (umap forces ``n_jobs=1`` when a seed is set), so on a machine busier than
its cores the figure is scaled by the share of a core the job can get (``load_factor``).

Calibrated by ``flock /work/measure.lock python benchmarks/umap_cost.py --run
RUNS/demo-.../ce-s0 --repeat 2`` (commit 016a9b1, the script as in 656cf12; a fresh
``geomviz demo`` run's snapshots, 37 steps x 1,000 points x 128 features, subsets of steps
and points; CPU seconds, the fastest of 2; 2 cores, load 4.2 from other jobs at the start,
1.4 at the end): 7.0 s for 4 steps x 1,000 points x 50 epochs, 17.1 s (8 x 1,000 x 50), 24.4
s (8 x 1,000 x 100), 22.8 s (16 x 1,000 x 25), 12.6 s (8 x 500 x 100), 14.9 s (16 x 500 x
50); first call in the process 14.7 s (umap's import 1.4 s). Held out of the fit, one whole
demo run at n_epochs 100: 116.9 s measured, 112.5 s predicted. Other checks
(tests/dashboard/test_estimate.py): the README's 708.6 s for both demo runs at n_epochs 100,
load 6.1, is predicted as 852 s; the environment notes' 233 s for both at n_epochs 200 on
idle cores as 400 s (that machine, or that demo, was faster: the model errs on the long side
there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Estimate", "estimate", "run_sizes", "seconds", "load_factor", "duration"]

STARTUP_S = 15.4  # a new process: import umap and numba's compilation
PER_RUN_S = 0.21
C_GRAPH = 8.72e-4  # s per point-step: each step's own UMAP fit (graph, spectral start)
C_EPOCH = 2.16e-5  # s per point-step-epoch: the layout optimisations


def seconds(sizes: list[tuple[int, int]], n_epochs: int, startup: bool = True) -> float:
    """Idle-machine seconds for AlignedUMAP of runs of ``(steps, points)`` each."""
    runs = sum(PER_RUN_S + t * p * (C_GRAPH + C_EPOCH * n_epochs) for t, p in sizes)
    return (STARTUP_S if startup and sizes else 0.0) + runs


def load_factor(load: float | None = None, cores: int | None = None) -> float:
    """How much longer a single-threaded job takes now: 1 while a core is free, else
    ``(load + 1) / cores`` (the run queue shared fairly); ``load`` is the 1-minute mean."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return 1.0
    cores = cores or os.cpu_count() or 1
    return max(1.0, (load + 1.0) / cores)


def duration(secs: float) -> str:
    """``"under a minute"``, ``"about 1 min"``, ``"about 12 min"``."""
    if secs < 60:
        return "under a minute"
    return f"about {round(secs / 60)} min"


@dataclass(frozen=True)
class Estimate:
    """The figure the page shows before a start: seconds now, and what it is made of."""

    seconds: float
    sizes: tuple[tuple[int, int], ...]  # (steps, points) of each run still to compute
    n_epochs: int
    factor: float  # the load factor folded into ``seconds``

    def text(self) -> str:
        """``about 4 min on this machine (2 runs × 37 steps × 1,000 points, n_epochs 100)``."""
        if not self.sizes:
            return "already computed"
        shapes = sorted(set(self.sizes))
        if len(shapes) == 1:
            t, p = shapes[0]
            what = (f"{len(self.sizes)} run{'s' * (len(self.sizes) > 1)} × {t} steps × "
                    f"{p:,} points")
        else:
            what = " + ".join(f"{t} steps × {p:,} points" for t, p in self.sizes)
        busy = (f"; the machine is busy, ×{self.factor:.1f} included"
                if self.factor > 1.05 else "")
        return f"{duration(self.seconds)} on this machine ({what}, n_epochs {self.n_epochs}{busy})"


def estimate(sizes: list[tuple[int, int]], n_epochs: int,
             load: float | None = None, cores: int | None = None) -> Estimate:
    """The estimate for runs of ``sizes``, scaled to the machine's load now."""
    factor = load_factor(load, cores)
    return Estimate(seconds(sizes, n_epochs) * factor, tuple(sizes), n_epochs, factor)


def run_sizes(folders: list[Path]) -> list[tuple[int, int]]:
    """``(snapshot steps, points)`` of each run, from its store (no feature is read)."""
    from ..projection import load_snapshots

    out = []
    for f in folders:
        snap = load_snapshots(f, features=False)
        out.append((len(snap.steps), len(snap.labels)))
    return out
