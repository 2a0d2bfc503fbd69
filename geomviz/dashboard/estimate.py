"""How long a background AlignedUMAP will take here, said before it starts (the page asks
for a confirm with this figure: the job used to start unasked and take 4-17 minutes).

The cost model, per job (one new worker process, then one AlignedUMAP per run)::

    seconds = STARTUP_S + sum over runs of (PER_RUN_S + T * P * (C_GRAPH + C_EPOCH * E))

for a run of ``T`` snapshot steps of ``P`` points and ``E`` = n_epochs. AlignedUMAP runs
single-threaded (umap forces ``n_jobs=1`` when a seed is set), so on a machine busier than
its cores the figure is scaled by the share of a core the job can get (``load_factor``).

Calibrated by ``flock /work/measure.lock python benchmarks/umap_cost.py`` (commit 8f0d866,
2 cores, load 1.9-2.6 from other jobs during the run): CALIBRATION below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Estimate", "estimate", "run_sizes", "seconds", "load_factor", "duration"]

STARTUP_S = 20.0  # a new process: import umap and numba's compilation
PER_RUN_S = 0.5
C_GRAPH = 1.0e-4  # s per point-step: kNN graph, fuzzy set, spectral start
C_EPOCH = 1.5e-5  # s per point-step-epoch: the joint layout optimisation


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
