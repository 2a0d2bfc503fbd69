"""Publication export speed: the full figure set in PNG + SVG, batched vs one browser per file.

Target (issue 6): the full set in PNG+SVG in <= 20 s on a 2-core machine once Chromium
is up. Measured in one process: building the figures from the runs, the batched
export (one kaleido session: browser start + every file), and, for the ratio, the
unbatched way (``plotly.io.write_image`` per file, a browser each) on a few files.

    python benchmarks/export.py [RUNS_FOLDER]   # default: a fresh 6-objective gaussians study
    python benchmarks/export.py --smoke         # 2 objectives, 1 epoch, 1 unbatched file (CI)
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geomviz.study.export import browser_path, export  # noqa: E402
from geomviz.study.figureset import build_figures, find_runs  # noqa: E402
from geomviz.study.runner import STUDY_OBJECTIVES, preset_config, train_grid  # noqa: E402

UNBATCHED_FILES = 4


def main(argv: list[str]) -> None:
    smoke = "--smoke" in argv
    argv = [a for a in argv if a != "--smoke"]
    if browser_path() is None:
        raise SystemExit("needs Chromium: apt-get install chromium (or set BROWSER_PATH)")
    with tempfile.TemporaryDirectory() as tmp:
        if argv:
            runs = find_runs(argv)
        else:
            cfg = preset_config("gaussians", {"epochs": 1 if smoke else 2, "progress": False})
            objectives = ["ce", "tfsd"] if smoke else list(STUDY_OBJECTIVES)
            runs = train_grid(cfg, objectives, [0] if smoke else [0, 1], Path(tmp) / "runs").runs
        t0 = time.perf_counter()
        figs = build_figures(runs, cache_root=Path(tmp))
        built = time.perf_counter() - t0
        res = export(figs.figures, Path(tmp) / "batched", ["png", "svg"])
        n = len(res.files)
        import plotly.io as pio

        items = [(name, fmt) for name in figs.figures
                 for fmt in ("png", "svg")][:1 if smoke else UNBATCHED_FILES]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, fmt in items:
                fig = figs.figures[name]
                pio.write_image(fig, Path(tmp) / f"u-{name}.{fmt}", width=800,
                                height=fig.layout.height, scale=2 if fmt == "png" else 1)
        per_unbatched = (time.perf_counter() - t0) / len(items)
    print(f"runs: {len(runs)}; figures: {len(figs.figures)} ({', '.join(figs.figures)})")
    print(f"build from the store: {built:.2f} s")
    print(f"batched export, PNG+SVG: {n} files in {res.static_seconds:.2f} s "
          f"({res.static_seconds / n:.2f} s/file incl. one browser start); target <= 20 s: "
          f"{'met' if res.static_seconds <= 20 else 'NOT met'}")
    print(f"unbatched (a browser per file, {len(items)} files): {per_unbatched:.2f} s/file; "
          f"whole set would take ~{per_unbatched * n:.1f} s; batched is "
          f"{per_unbatched * n / res.static_seconds:.1f}x faster")


if __name__ == "__main__":
    main(sys.argv[1:])
