"""Print the probe summary table of a comparison: feature norm at the first and last log,
radial gradient fraction, and target entropy of easy vs hard samples (mean ± sd over seeds).

    python benchmarks/study_table.py runs/study
    python benchmarks/study_table.py --smoke     # on a tiny study trained for the purpose (CI)
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geomviz.store import list_runs, open_run  # noqa: E402

COLUMNS = [
    ("‖x‖ first", "penultimate.norm.mean", "train", 0),
    ("‖x‖ last", "penultimate.norm.mean", "train", -1),
    ("radial grad frac first", "grad.radial_fraction", "train", 0),
    ("radial grad frac last", "grad.radial_fraction", "train", -1),
    ("H(p) easy", "entropy.easy.target", "test", -1),
    ("H(p) hard", "entropy.hard.target", "test", -1),
    ("hard frac", "entropy.hard.fraction", "test", -1),
    ("test acc", "acc", "test", -1),
    ("AUROC msp", "msp.auroc", "ood", -1),
]


def fmt(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.3g}"
    return f"{v.mean():.3g} ± {v.std(ddof=1):.2g}"


def main(folder: str) -> None:
    groups: dict[str, list] = defaultdict(list)
    for run_dir in list_runs(folder):
        groups[run_dir.name.rsplit("-s", 1)[0]].append(open_run(run_dir))
    print("| run | seeds | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for name, runs in sorted(groups.items()):
        cells = []
        for _, key, split, idx in COLUMNS:
            vals = [r.scalars(key, split=split)["value"] for r in runs]
            cells.append(fmt([v[idx] for v in vals if len(v)]) if all(len(v) for v in vals)
                         else "")
        print(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")


def smoke() -> None:
    import tempfile

    from geomviz.study.runner import preset_config, train_grid

    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset_config("gaussians", {"epochs": 1, "progress": False})
        train_grid(cfg, ["ce", "tfsd"], [0, 1], Path(tmp) / "runs")
        main(str(Path(tmp) / "runs"))


if __name__ == "__main__":
    if sys.argv[1:] == ["--smoke"]:
        smoke()
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "runs")
