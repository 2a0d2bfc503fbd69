"""Dashboard speed on two pairs, an MNIST-1D pair and a language-model pair, against issue
24's targets (first load <= 3 s, cached <= 1 s, slider move <= 100 ms); and the aligned
nonlinear view, new vs old.

Server time through Flask's test client (no browser), driving the app through its real
layout: callback ids and initial values come from the app (``geomviz.dashboard.drive``),
so a renamed component breaks this script, not its numbers. Per pair:

* first load: the page, its layout and every callback the browser fires when it first
  draws (manifolds, time panels, OOD histograms, class vectors), one after another, on a
  started server with nothing cached (no projection on disk either);
* the page opened again (the server's caches warm), and a restarted server (projections
  on disk, nothing in memory);
* a slider move: every server callback it fires (manifold and class-vector patches; the
  snap and the time panels' markers run in the browser), median of 20, and its payload;
* with ``--browser``: Chromium's time from navigation to both manifolds drawn and to every
  plot drawn, cold and on a reload, and a slider move until the manifold shows its step
  (the fast aligned view's background job, which the page starts 4 s after it draws, is
  kept from starting: its worker would take a core while the rest is timed).

The MNIST-1D pair is synthetic (a real store, 50 snapshots × 2,000 points × 128 features,
MNIST-1D's shapes) unless ``--mnist DIR`` names real runs; the LM pair is trained here
(CE and TFSD, a tiny GPT on the synonym language: 2,500 probe positions, 256 tokens, 96
synonym sets) unless ``--lm DIR`` names real runs. Then the aligned nonlinear view of the
two runs: the fast warm-started joint view (``fast_umap``) and AlignedUMAP
(``aligned_umap``, the dashboard's n_epochs=100) side by side in this process, with
trustworthiness (sklearn, 10 neighbours) per step and the mean displacement of points
between consecutive steps (in units of the embedding's spread).

    python benchmarks/dashboard.py --skip-aligned      # the two pairs' load and slider times
    python benchmarks/dashboard.py --browser           # and the browser's times
    python benchmarks/dashboard.py --lm runs/lm        # a real LM pair (ce-s0, tfsd-s0)
    python benchmarks/dashboard.py --demo RUNS         # the aligned views of a `geomviz demo`
    python benchmarks/dashboard.py --smoke             # tiny sizes (CI)
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


TARGETS = {"first": 3000.0, "cached": 1000.0, "slider": 100.0}  # ms, issue 24 defect 8


def page_values(app, a: str, b: str) -> dict:
    """The compare page's real layout, as ``{"id.prop": value}``."""
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        return layout_values(compare.layout(a=a, b=b))


def initial_outputs(values: dict) -> list[str]:
    """One output of each callback the browser fires when the page first draws: manifolds,
    time panels, OOD histograms, and the class vectors where the page has them."""
    outs = ["compare-left-graph.figure", "compare-panels.children", "compare-left-ood.children"]
    if any(k.startswith("compare-left-classes.") for k in values):
        outs.append("compare-left-classes.figure")
    return outs


def open_page(app, a: str, b: str) -> tuple[float, dict, dict[str, float]]:
    """The page's server time as the browser asks for it, one request after another: the
    page, its layout, then every initial callback. ``(ms, values, ms per callback)``."""
    client = app.server.test_client()
    t0 = time.perf_counter()
    page = client.get(f"/compare?a={a}&b={b}")
    assert page.status_code == 200
    values = page_values(app, a, b)
    assert "compare-steps.data" in values, "the compare page did not open"
    parts = {"layout": 1e3 * (time.perf_counter() - t0)}
    for out in initial_outputs(values):
        t = time.perf_counter()
        r = client.post("/_dash-update-component", json=callback_body(app, out, values, []))
        assert r.status_code == 200, r.data[:300]
        json.loads(r.data)
        parts[out.split(".")[0].removeprefix("compare-").removeprefix("left-")] = \
            1e3 * (time.perf_counter() - t)
    return 1e3 * (time.perf_counter() - t0), values, parts


def slider_moves(app, values: dict, moves: int = 20) -> tuple[float, float]:
    """Median server time and payload of a slider move: every server callback it fires (the
    manifolds' and the class vectors' patches), summed; the snap to a snapshot and the time
    panels' markers run in the browser."""
    client = app.server.test_client()
    steps = values["compare-steps.data"]
    outs = ["compare-left-graph.figure"] + (
        ["compare-left-classes.figure"] if any(k.startswith("compare-left-classes.")
                                               for k in values) else [])
    times, sizes = [], []
    for i in range(moves):
        step = steps[i % len(steps)]
        moved = {**values, "compare-step.value": step, "compare-shown.data": step}
        t0 = time.perf_counter()
        size = 0
        for out in outs:
            r = client.post("/_dash-update-component",
                            json=callback_body(app, out, moved, ["compare-shown.data"]))
            assert r.status_code == 200, r.data[:300]
            size += len(r.data)
        times.append(1e3 * (time.perf_counter() - t0))
        sizes.append(size)
    return statistics.median(times), statistics.median(sizes)


def _verdict(ms: float, target: str) -> str:
    return f"{ms:7.0f} ms (target <= {TARGETS[target]:.0f} ms: " \
           f"{'met' if ms <= TARGETS[target] else 'NOT met'})"


def serve(root: Path, a: str, b: str, name: str) -> dict[str, float]:
    """First load (nothing cached, not even the projections on disk), the page opened
    again (the server's caches warm), a restarted server (projections on disk), a slider
    move. Each server is started, and its warm-up done, before the clock starts."""
    import shutil

    from geomviz.dashboard import warm_up
    from geomviz.projection import CACHE_DIR

    shutil.rmtree(root / CACHE_DIR, ignore_errors=True)
    app = create_app(root)
    warm_up()  # what create_app starts in the background: done before the first request
    first, values, parts = open_page(app, a, b)
    cached, _, _ = open_page(app, a, b)
    restart_app = create_app(root)
    warm_up()
    restart, _, _ = open_page(restart_app, a, b)
    slider, size = slider_moves(app, values)
    steps, points = len(values["compare-steps.data"]), None
    print(f"\n{name} ({a} vs {b}, {steps} snapshot steps), server time (Flask test client):")
    print(f"  first load, nothing cached:            {_verdict(first, 'first')}  ["
          + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()) + "]")
    print(f"  page opened again (cached):            {_verdict(cached, 'cached')}")
    print(f"  restarted server, projections on disk: {_verdict(restart, 'cached')}")
    print(f"  slider move (median of 20):            {_verdict(slider, 'slider')}, payload "
          f"{size / 1024:.0f} KiB")
    del points
    return {"first": first, "cached": cached, "restart": restart, "slider": slider}


GD = "document.querySelector('#compare-{side}-graph .js-plotly-plot')"
DRAWN = ("() => [...document.querySelectorAll('.js-plotly-plot')].length >= {n} && "
         "[...document.querySelectorAll('.js-plotly-plot')].every(g => g._fullData)")


def browser_times(root: Path, a: str, b: str, name: str, moves: int = 5) -> None:
    """The browser's view (Chromium via Playwright, headless, 1400×1000): from navigation
    to both manifolds drawn (first draw) and to every plot on the page drawn, with nothing
    cached and then on a reload; a slider move (arrow key) until both titles show the new
    step (median of ``moves``)."""
    import shutil
    import threading

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from geomviz.dashboard import warm_up
    from geomviz.projection import CACHE_DIR

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("  browser: skipped (no Chromium)")
        return
    shutil.rmtree(root / CACHE_DIR, ignore_errors=True)
    app = create_app(root)
    warm_up()
    from geomviz.dashboard.pages import compare

    # the fast aligned view's background job (started 4 s after a page draws) would still
    # be running, its worker on a core, when the reload and the next pair are timed
    compare.PREFETCH_MS = 10**9
    values = page_values(app, a, b)
    plots = 2 + 2 * any(k.startswith("compare-left-classes.") for k in values)
    moves = min(moves, len(values["compare-steps.data"]) - 1)  # leftwards from the last
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/compare?a={a}&b={b}"
    both = " && ".join(f"{GD.format(side=s)} && {GD.format(side=s)}._fullData" for s in
                       ("left", "right"))
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for label in ("first load, nothing cached", "reload (cached)"):
                t0 = time.perf_counter()
                page.goto(url) if not rows else page.reload()
                page.wait_for_function(f"() => {both}", timeout=120_000)
                first = 1e3 * (time.perf_counter() - t0)
                page.wait_for_function("() => document.querySelector('#compare-panels') && "
                                       "document.querySelector('#compare-panels .js-plotly-plot')"
                                       " && document.querySelector('#compare-left-ood')"
                                       ".children.length", timeout=120_000)
                page.wait_for_function(DRAWN.format(n=plots), timeout=120_000)
                rows.append((label, first, 1e3 * (time.perf_counter() - t0)))
            times = []
            page.focus("#compare-step [role=slider]")
            for _ in range(moves):
                before = page.evaluate(f"() => {GD.format(side='left')}.layout.title.text")
                t0 = time.perf_counter()
                page.keyboard.press("ArrowLeft")
                page.wait_for_function(f"() => {GD.format(side='left')}.layout.title.text "
                                       f"!== {json.dumps(before)}", timeout=30_000)
                times.append(1e3 * (time.perf_counter() - t0))
            browser.close()
    finally:
        srv.shutdown()
    print(f"  browser ({name.split(' (')[0]}):")
    for label, first, every in rows:
        target = "first" if "nothing" in label else "cached"
        print(f"    {label}: manifolds drawn {_verdict(first, target)}; every plot drawn "
              f"{every:.0f} ms")
    print(f"    slider move until the left manifold shows the new step (median of {moves}): "
          f"{_verdict(statistics.median(times), 'slider')}")


def lm_pair(root: Path, smoke: bool) -> tuple[str, str]:
    """A real language-model pair (CE and TFSD on the synonym language, a tiny GPT),
    trained here: ``(a, b)`` run ids under ``root``."""
    from geomviz.cli import main as cli

    size = (["--epochs", "1", "--train-tokens", "8192", "--test-tokens", "2048", "--snapshots",
             "4", "--snapshot-size", "200", "--snapshot-ood", "40"] if smoke else
            ["--epochs", "2", "--train-tokens", "65536", "--test-tokens", "8192"])
    os.environ.setdefault("GEOMVIZ_CACHE", str(root / ".data-cache"))
    assert cli(["compare", "--dataset", "synonyms", "--model", "gpt", "--objectives", "ce,tfsd",
                "--name", "lm", "--runs-dir", str(root), "--no-progress", *size]) == 0
    return "lm/ce-s0", "lm/tfsd-s0"


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


def _pair(folder: Path) -> tuple[Path, str, str]:
    """``(runs root, a, b)`` of a folder holding ``ce-s0`` and ``tfsd-s0`` (a compare's)."""
    for a, b in (("ce-s0", "tfsd-s0"),):
        if (folder / a).is_dir() and (folder / b).is_dir():
            return folder.parent, f"{folder.name}/{a}", f"{folder.name}/{b}"
    raise SystemExit(f"{folder} holds no ce-s0 and tfsd-s0 runs")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snapshots", type=int, default=50)
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--umap-epochs", type=int, default=100)
    p.add_argument("--skip-aligned", action="store_true", help="skip the aligned views")
    p.add_argument("--demo", type=Path, help="also: the aligned views of these two runs "
                   "(a `geomviz demo` folder holding ce-s0 and tfsd-s0)")
    p.add_argument("--mnist", type=Path, help="time this MNIST-1D pair (a `geomviz compare` "
                   "folder holding ce-s0 and tfsd-s0; it is copied) instead of synthetic runs")
    p.add_argument("--lm", type=Path, help="time this language-model pair (a folder holding "
                   "ce-s0 and tfsd-s0; copied) instead of training a small one here")
    p.add_argument("--browser", action="store_true",
                   help="also the browser's time to first draw (Chromium via Playwright)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        args.snapshots, args.points, args.dim, args.umap_epochs = 4, 120, 16, 5
    print(f"# {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; targets: first load "
          f"<= {TARGETS['first']:.0f} ms, cached <= {TARGETS['cached']:.0f} ms, slider <= "
          f"{TARGETS['slider']:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        root = Path(tmp)
        pairs = []
        if args.mnist:
            shutil.copytree(args.mnist, root / "mnist" / args.mnist.name)
            pairs.append(("MNIST-1D pair (real runs)",
                          *_pair(root / "mnist" / args.mnist.name)))
        else:
            for seed, name in enumerate(("ce", "tfsd")):
                make_run(root / "mnist" / name, seed, args.snapshots, args.points, args.dim)
            pairs.append((f"MNIST-1D-shaped synthetic pair ({args.snapshots} snapshots × "
                          f"{args.points} points × {args.dim} features)",
                          root / "mnist", "ce", "tfsd"))
        if args.lm:
            shutil.copytree(args.lm, root / "lm-given" / args.lm.name)
            pairs.append(("LM pair (real runs)", *_pair(root / "lm-given" / args.lm.name)))
        else:
            a, b = lm_pair(root / "lm", args.smoke)
            pairs.append(("LM pair (tiny GPT on the synonym language, trained here)",
                          root / "lm", a, b))
        for name, runs, a, b in pairs:
            serve(runs, a, b, name)
            if args.browser:
                browser_times(runs, a, b, name)
        if args.demo:
            aligned([args.demo / "ce-s0", args.demo / "tfsd-s0"], args.umap_epochs)
        elif not args.skip_aligned:
            aligned([root / "mnist" / "ce", root / "mnist" / "tfsd"], args.umap_epochs,
                    old_too=not args.smoke) if not args.mnist else None


if __name__ == "__main__":
    main()
