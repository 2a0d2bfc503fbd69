"""Dashboard speed with 2 runs × 50 snapshots × 2,000 points (synthetic runs, real store).

Measured through Flask's test client, so it is server time (no browser): the
compare page's first load (layout plus the first manifold callback, with the
PCA computed and cached on first use, then from the cache), a slider move (the
``Patch`` of x/y; median of 20) and its payload, and the AlignedUMAP precompute.

    python benchmarks/dashboard.py [--umap-epochs 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geomviz.dashboard import create_app  # noqa: E402
from geomviz.projection import project  # noqa: E402
from geomviz.store import RunWriter  # noqa: E402

T_SNAP, P_POINTS, DIM = 50, 2000, 128


def make_run(folder: Path, seed: int) -> None:
    g = np.random.default_rng(seed)
    w = RunWriter(folder, {"objective": "ce" if seed == 0 else "tfsd", "probes": {"metric": "dot"}})
    labels = g.integers(0, 10, P_POINTS)
    w.array(0, "snapshot.labels", labels)
    centres = g.standard_normal((10, DIM))
    for t in range(T_SNAP):
        step = t * 20
        f = (centres[labels] * (1 + t / 10) + g.standard_normal((P_POINTS, DIM))).astype(np.float16)
        w.array(step, "snapshot.features", f)
        w.array(step, "snapshot.norm", np.linalg.norm(f.astype(np.float32), axis=1))
        w.array(step, "snapshot.cos_true", g.uniform(-1, 1, P_POINTS).astype(np.float32))
        w.scalars(step, {"loss": 1.0 / (1 + t), "acc": t / T_SNAP, "health.spike": 0.0})
        w.flush()
    w.close()


def callback_body(idx: int, trigger: str) -> dict:
    state = [{"id": "compare-runs", "property": "data", "value": ["ce", "tfsd"]},
             {"id": "compare-steps", "property": "data", "value": [t * 20 for t in range(T_SNAP)]}]
    inputs = [{"id": "compare-projection", "property": "value", "value": "pca"},
              {"id": "compare-color", "property": "value", "value": "class"},
              {"id": "compare-step", "property": "value", "value": idx},
              {"id": "compare-left-graph", "property": "hoverData", "value": None},
              {"id": "compare-right-graph", "property": "hoverData", "value": None}]
    outputs = [{"id": "compare-left-graph", "property": "figure"},
               {"id": "compare-right-graph", "property": "figure"},
               {"id": "compare-message", "property": "children"}]
    return {"output": "..compare-left-graph.figure...compare-right-graph.figure..."
                      "compare-message.children..", "outputs": outputs, "inputs": inputs,
            "state": state, "changedPropIds": [trigger]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--umap-epochs", type=int, default=50)
    p.add_argument("--skip-umap", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed, name in enumerate(("ce", "tfsd")):
            make_run(root / name, seed)
        server = create_app(root).server
        client = server.test_client()
        for label in ("first load, nothing cached (computes the joint PCA)",
                      "first load, projections cached on disk"):
            server.extensions.pop("geomviz_cache", None)  # as a freshly started server
            t0 = time.perf_counter()
            page = client.get("/compare?a=ce&b=tfsd")
            layout = client.get("/_dash-layout")
            first = client.post("/_dash-update-component",
                                json=callback_body(T_SNAP - 1, "compare-projection.value"))
            ms = 1e3 * (time.perf_counter() - t0)
            assert page.status_code == layout.status_code == first.status_code == 200
            print(f"{label}: {ms:.0f} ms, first figures {len(first.data) / 1024:.0f} KiB")
        times, sizes = [], []
        for i in range(20):
            t0 = time.perf_counter()
            r = client.post("/_dash-update-component",
                            json=callback_body(i % T_SNAP, "compare-step.value"))
            times.append(1e3 * (time.perf_counter() - t0))
            assert r.status_code == 200, r.data[:300]
            sizes.append(len(r.data))
            json.loads(r.data)
        print(f"slider move: {statistics.median(times):.1f} ms server time (median of 20), "
              f"payload {statistics.median(sizes) / 1024:.0f} KiB "
              f"({2 * P_POINTS} points, x/y only)")
        if not args.skip_umap:
            t0 = time.perf_counter()
            project([root / "ce"], "aligned_umap", cache_root=root, n_epochs=args.umap_epochs)
            print(f"AlignedUMAP precompute, one run ({T_SNAP} × {P_POINTS} points, "
                  f"n_epochs={args.umap_epochs}): {time.perf_counter() - t0:.0f} s "
                  "(includes numba's compile)")


if __name__ == "__main__":
    main()
