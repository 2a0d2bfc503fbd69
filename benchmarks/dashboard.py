"""Dashboard speed on synthetic runs in a real store, and the aligned nonlinear view, new vs old.

Server time through Flask's test client (no browser), driving the app through its real
layout: callback ids and initial values come from the app (``geomviz.dashboard.drive``),
so a renamed component breaks this script, not its numbers. Measured:

* the compare page's first load (layout plus the first manifold callback), with the PCA
  computed on first use, then read from the cache;
* a slider move (the ``Patch`` of x/y and hover rows; median of 20) and its payload;
* the aligned nonlinear view of the two runs: the fast warm-started joint view
  (``fast_umap``) and AlignedUMAP (``aligned_umap``, the dashboard's n_epochs=100) side by
  side in this process, with trustworthiness (sklearn, 10 neighbours) per step and the mean
  displacement of points between consecutive steps (in units of the embedding's spread).

    python benchmarks/dashboard.py                 # 2 runs x 50 snapshots x 2,000 points
    python benchmarks/dashboard.py --demo RUNS     # the aligned views of a `geomviz demo`
    python benchmarks/dashboard.py --smoke         # tiny sizes (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geomviz.dashboard import create_app  # noqa: E402
from geomviz.dashboard.drive import callback_body, layout_values  # noqa: E402
from geomviz.projection import aligned_umap, fast_aligned_umap, load_snapshots  # noqa: E402
from geomviz.store import RunWriter  # noqa: E402


def make_run(folder: Path, seed: int, t_snap: int, points: int, dim: int) -> None:
    g = np.random.default_rng(seed)
    w = RunWriter(folder, {"objective": "ce" if seed == 0 else "tfsd",
                           "probes": {"metric": "dot" if seed == 0 else "euclidean"}})
    labels = g.integers(0, 10, points)
    w.array(0, "snapshot.labels", labels)
    centres = g.standard_normal((10, dim))
    for t in range(t_snap):
        step = t * 20
        f = (centres[labels] * (1 + t / 10) + g.standard_normal((points, dim))).astype(np.float16)
        w.array(step, "snapshot.features", f)
        w.array(step, "snapshot.norm", np.linalg.norm(f.astype(np.float32), axis=1))
        w.array(step, "snapshot.cos_true", g.uniform(-1, 1, points).astype(np.float32))
        w.array(step, "snapshot.entropy_pred", g.uniform(0, 2, points).astype(np.float32))
        w.scalars(step, {"loss": 1.0 / (1 + t), "acc": t / t_snap, "health.flush_spike": 0.0})
        w.flush()
    w.close()


def page_values(app, a: str, b: str) -> dict:
    """The compare page's real layout, as ``{"id.prop": value}``."""
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        return layout_values(compare.layout(a=a, b=b))


def serve(root: Path, t_snap: int, points: int) -> None:
    app = create_app(root)
    server, client = app.server, app.server.test_client()
    for label in ("first load, nothing cached (computes the joint PCA)",
                  "first load, projections cached on disk"):
        server.extensions.pop("geomviz_cache", None)  # as a freshly started server
        t0 = time.perf_counter()
        page = client.get("/compare?a=ce&b=tfsd")
        values = page_values(app, "ce", "tfsd")
        first = client.post("/_dash-update-component", json=callback_body(
            app, "compare-left-graph.figure", values, ["compare-projection.value"]))
        ms = 1e3 * (time.perf_counter() - t0)
        assert page.status_code == first.status_code == 200, first.data[:300]
        print(f"{label}: {ms:.0f} ms, first figures {len(first.data) / 1024:.0f} KiB")
    steps = values["compare-steps.data"]
    times, sizes = [], []
    for i in range(20):
        body = callback_body(app, "compare-left-graph.figure",
                             {**values, "compare-shown.data": steps[i % len(steps)]},
                             ["compare-shown.data"])
        t0 = time.perf_counter()
        r = client.post("/_dash-update-component", json=body)
        times.append(1e3 * (time.perf_counter() - t0))
        assert r.status_code == 200, r.data[:300]
        sizes.append(len(r.data))
        json.loads(r.data)
    print(f"slider move: {statistics.median(times):.1f} ms server time (median of 20), "
          f"payload {statistics.median(sizes) / 1024:.0f} KiB ({2 * points} points: x/y, "
          "hover rows)")


def quality(features: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, float]:
    """Trustworthiness of each step ``[T]`` and mean displacement between consecutive steps
    over the embedding's RMS spread."""
    from sklearn.manifold import trustworthiness

    k = min(10, features.shape[1] // 2 - 1)
    tw = np.array([trustworthiness(features[t], emb[t], n_neighbors=k)
                   for t in range(len(features))])
    centred = emb - emb.mean(1, keepdims=True)
    spread = float(np.sqrt((centred ** 2).sum(-1).mean()))
    disp = float(np.linalg.norm(np.diff(emb, axis=0), axis=-1).mean() / spread) \
        if len(emb) > 1 else 0.0
    return tw, disp


def aligned(folders: list[Path], umap_epochs: int, old_too: bool = True) -> None:
    snaps = [load_snapshots(f) for f in folders]
    shape = " + ".join(f"{s.features.shape[0]}×{s.features.shape[1]}" for s in snaps)
    t0 = time.perf_counter()
    new = fast_aligned_umap(snaps)
    t_new = time.perf_counter() - t0
    if not old_too:  # the smoke run: AlignedUMAP's numba compile alone takes about a minute
        q = [quality(s.features, e) for s, e in zip(snaps, new, strict=True)]
        tw = np.concatenate([t for t, _ in q])
        print(f"fast_umap of {shape}: {t_new:.1f} s, trustworthiness {tw.mean():.4f}, "
              f"displacement/step {np.mean([d for _, d in q]):.4f} (AlignedUMAP skipped)")
        return
    t0 = time.perf_counter()
    old = [aligned_umap(s, n_epochs=umap_epochs) for s in snaps]
    t_old = time.perf_counter() - t0
    print(f"\naligned nonlinear view of {len(snaps)} runs (steps×points: {shape}), "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}:")
    print("| method | time (s) | trustworthiness mean (min) | worst step vs old | "
          "displacement/step |")
    print("|---|---:|---:|---:|---:|")
    rows = {}
    for name, embs in (("fast_umap (new)", new),
                       (f"AlignedUMAP n_epochs={umap_epochs} (old)", old)):
        q = [quality(s.features, e) for s, e in zip(snaps, embs, strict=True)]
        rows[name] = (q, float(np.mean([d for _, d in q])))
    (qn, dn), (qo, do) = rows.values()
    worst = min(float((tn - to).min()) for (tn, _), (to, _) in zip(qn, qo, strict=True))
    for (name, (q, disp)), secs in zip(rows.items(), (t_new, t_old), strict=True):
        tw = np.concatenate([t for t, _ in q])
        gap = f"{worst:+.4f}" if "new" in name else ""
        print(f"| {name} | {secs:.1f} | {tw.mean():.4f} ({tw.min():.4f}) | {gap} | "
              f"{disp:.4f} |")
    print(f"speed-up ×{t_old / t_new:.1f}; trustworthiness within 0.02 of the old at every "
          f"step: {'yes' if worst >= -0.02 else 'NO'}; displacement no worse: "
          f"{'yes' if dn <= do * 1.0 + 1e-9 else 'NO'} (both include numba's compile)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snapshots", type=int, default=50)
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--umap-epochs", type=int, default=100)
    p.add_argument("--skip-aligned", action="store_true", help="skip the aligned views")
    p.add_argument("--demo", type=Path, help="also: the aligned views of these two runs "
                   "(a `geomviz demo` folder holding ce-s0 and tfsd-s0)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        args.snapshots, args.points, args.dim, args.umap_epochs = 4, 120, 16, 5
    print(f"# {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; 2 runs × "
          f"{args.snapshots} snapshots × {args.points} points")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed, name in enumerate(("ce", "tfsd")):
            make_run(root / name, seed, args.snapshots, args.points, args.dim)
        serve(root, args.snapshots, args.points)
        if args.demo:
            aligned([args.demo / "ce-s0", args.demo / "tfsd-s0"], args.umap_epochs)
        elif not args.skip_aligned:
            aligned([root / "ce", root / "tfsd"], args.umap_epochs, old_too=not args.smoke)


if __name__ == "__main__":
    main()
