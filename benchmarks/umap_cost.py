"""Calibrate the AlignedUMAP cost model of ``geomviz/dashboard/estimate.py``.

In one fresh process (as the dashboard's worker is): the import of umap, a first small call
(numba compiles), then AlignedUMAP (``geomviz.projection.aligned_umap``) on synthetic
clustered features over a few (steps T, points P, n_epochs E), and a least-squares fit of

    seconds = startup + per_run + T * P * (c_graph + c_epoch * E)

(``startup``: import and JIT in a new process, from the first call's excess over the model).
Times are the process's CPU seconds (see ``_time``): the model is for an idle machine.
The last size is held out of the fit and predicted, as a check.

    flock /work/measure.lock python benchmarks/umap_cost.py --run RUNS/demo-.../ce-s0
    flock /work/measure.lock python benchmarks/umap_cost.py --smoke   # tiny sizes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIT = [(4, 1000, 50), (8, 1000, 50), (8, 1000, 100), (16, 1000, 25), (8, 500, 100),
       (16, 500, 50)]
HELD_OUT = (37, 1000, 100)  # one run of the demo, at the dashboard's n_epochs


def _features(t: int, p: int, d: int = 128, seed: int = 0, run: str | None = None) -> np.ndarray:
    """``[T, P, D]`` float32: ``T`` evenly spaced snapshot steps and the first ``P`` points of
    ``run`` (a real run: the demo's), else 10 Gaussian clusters drifting apart."""
    if run:
        from geomviz.projection import load_snapshots

        feats = load_snapshots(run).features
        return feats[np.linspace(0, len(feats) - 1, t).round().astype(int), :p]
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, d))
    labels = rng.integers(0, 10, p)
    base = rng.normal(size=(p, d))
    return np.stack([(base + (0.2 + 0.4 * i / max(t - 1, 1)) * centres[labels])
                     for i in range(t)]).astype(np.float32)


def _time(t: int, p: int, e: int, run: str | None = None, repeat: int = 1) -> float:
    """CPU seconds of the fastest of ``repeat`` calls. AlignedUMAP runs on one thread (umap
    forces ``n_jobs=1`` with a seed), so its CPU time is its wall time on an idle machine,
    and other jobs on a shared machine barely move it (their bursts would, on a clock)."""
    from geomviz.projection import Snapshots, aligned_umap

    feats = _features(t, p, run=run)
    snap = Snapshots(Path("."), np.arange(t), np.zeros(p, np.int64), {}, feats)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        aligned_umap(snap, n_epochs=e)
        best = min(best, time.process_time() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, no held-out check")
    ap.add_argument("--run", help="a run folder whose snapshots to use (default: synthetic)")
    ap.add_argument("--repeat", type=int, default=1, help="calls per size (the fastest kept)")
    args = ap.parse_args()
    fit = [(2, 100, 10), (3, 100, 20), (2, 200, 10), (3, 200, 30)] if args.smoke else FIT
    t0 = time.process_time()
    import umap  # noqa: F401

    imp = time.process_time() - t0
    first = _time(2, 200, 10, args.run)  # compiles
    rows = []
    for t, p, e in [(2, 200, 10), *fit]:
        rows.append((t, p, e, _time(t, p, e, args.run, args.repeat)))
        print(json.dumps({"T": t, "P": p, "n_epochs": e, "seconds": round(rows[-1][3], 3)}),
              flush=True)
    a = np.array([[1.0, t * p, t * p * e] for t, p, e, _ in rows])
    y = np.array([s for *_, s in rows])
    (per_run, c_graph, c_epoch), *_ = np.linalg.lstsq(a, y, rcond=None)
    startup = imp + first - (per_run + 2 * 200 * (c_graph + c_epoch * 10))
    out = {"import_s": round(imp, 2), "first_call_s": round(first, 2),
           "startup_s": round(startup, 1), "per_run_s": round(per_run, 3),
           "c_graph": float(f"{c_graph:.3g}"), "c_epoch": float(f"{c_epoch:.3g}")}
    if not args.smoke:
        t, p, e = HELD_OUT
        out["held_out"] = {"T": t, "P": p, "n_epochs": e,
                           "seconds": round(_time(t, p, e, args.run), 1),
                           "predicted": round(per_run + t * p * (c_graph + c_epoch * e), 1)}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
