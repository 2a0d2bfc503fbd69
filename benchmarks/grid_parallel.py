"""A grid's wall-clock time serially and on ``--workers 2``, in one process.

Eight tiny MNIST-1D runs (4 objectives × 2 seeds, the mnist1d study preset's config at
fewer epochs) are trained once serially in this process (today's path, torch's default
thread count) and once on 2 worker processes (1 torch thread each), worker start-up
included. Prints both times, the speed-up and the target (≥ 1.6× on 2 cores), and
whether the two grids' final test losses agree.

    python benchmarks/grid_parallel.py            # 8 runs
    python benchmarks/grid_parallel.py --smoke    # 2 runs of 1 epoch: the code path only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geomviz.grid import Execution  # noqa: E402
from geomviz.store import open_run  # noqa: E402
from geomviz.study.runner import preset_config, train_grid  # noqa: E402

TARGET = 1.6


def _grid(root: Path, objectives: list[str], seeds: list[int], epochs: int,
          ex: Execution | None) -> tuple[float, dict]:
    base = preset_config("mnist1d", {"epochs": epochs, "progress": False, "snapshots": 0})
    t0 = time.perf_counter()
    grid = train_grid(base, objectives, seeds, root, execution=ex)
    seconds = time.perf_counter() - t0
    assert not grid.failed, grid.failed
    finals = {}
    for run in grid.trained:
        with open_run(run) as r:
            finals[run.name] = r.meta["final"]["test"]["nll"]
    return seconds, finals


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="2 runs of 1 epoch")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    objectives = ["ce", "tfsd"] if args.smoke else ["ce", "tfsd", "metric_ce", "ce_zloss"]
    seeds = [0] if args.smoke else [0, 1]
    epochs = 1 if args.smoke else args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GEOMVIZ_CACHE", str(Path(tmp) / "cache"))
        n = len(objectives) * len(seeds)
        print(f"{n} MNIST-1D runs of {epochs} epoch(s); {os.cpu_count()} cores; load "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        serial, a = _grid(Path(tmp) / "serial", objectives, seeds, epochs, None)
        print(f"serial (this process):  {serial:7.1f} s ({serial / n:.2f} s/run)", flush=True)
        par, b = _grid(Path(tmp) / "workers", objectives, seeds, epochs, Execution(workers=2))
        print(f"--workers 2:            {par:7.1f} s ({par / n:.2f} s/run, start-up included)")
        gap = max(abs(a[k] - b[k]) for k in a)
        print(f"largest |Δ final test NLL| serial vs workers: {gap:.2e} (serial at "
              f"{__import__('torch').get_num_threads()} torch threads, workers at 1)")
        ratio = serial / par
        met = "met" if ratio >= TARGET else "NOT met"
        print(f"speed-up ×{ratio:.2f} (target ≥ {TARGET} on 2 cores: {met}"
              f"{'; smoke size, not a measurement' if args.smoke else ''}; load "
              f"{os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
