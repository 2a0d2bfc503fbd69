"""Issue 24, the figure set read from runs: groups differ only by seed, legends name
objectives (plus the rate when needed), ranges and bins follow the data, one decimal
count per table column. Each test fails on the figure set before the fix."""

from __future__ import annotations

import re

import numpy as np
import pytest

from geomviz.store import open_run
from geomviz.study.figureset import build_figures, find_runs


@pytest.fixture(scope="module")
def rates(tmp_path_factory):
    """CE at two learning rates and TFSD, all seed 0 (a small sweep's cells)."""
    from geomviz.training.config import resolve_config
    from geomviz.training.train import train

    root = tmp_path_factory.mktemp("rates")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(root / "cache"))
    runs = []
    for obj, lr in (("ce", 1e-3), ("ce", 1e-2), ("tfsd", 1e-3)):
        cfg = resolve_config({"objective": obj, "dataset": "gaussians", "epochs": 1,
                              "lr": lr, "snapshots": 0, "progress": False, "flush_every": 10,
                              "out": str(root / "runs" / f"{obj}-lr{lr:g}-s0")})
        runs.append(train(cfg))
    yield runs
    mp.undo()


def test_runs_at_two_rates_are_two_groups_named_by_rate(rates):
    figs = build_figures(rates, ["gradient_split", "summary_table"])
    lines = [t for t in figs.figures["gradient_split"].data if t.fill is None]
    assert [t.name for t in lines] == ["ce lr 0.001", "ce lr 0.01", "tfsd"]
    for t, folder in zip(lines, rates, strict=True):  # each its own run, never averaged
        with open_run(folder) as run:
            np.testing.assert_allclose(t.y, run.scalars("grad.radial_fraction")["value"])
    assert len({t.line.color for t in lines}) == 3  # CE's two rates: two shades of its blue
    table = figs.figures["summary_table"].data[0]
    assert list(table.cells.values[0]) == ["ce lr 0.001", "ce lr 0.01", "tfsd"]
    assert list(table.cells.values[1]) == ["1", "1", "1"]  # seeds: not "2 seeds"
    for t in figs.figures["gradient_split"].data:  # never a run id in a legend
        assert "/" not in (t.name or "") and "-s0" not in (t.name or "")


def test_study_figures_share_manifold_ranges_bin_the_norms_and_align_decimals(tiny_study):
    out, _ = tiny_study
    figs = build_figures(find_runs([out / "runs"]), ["manifold_grid", "norm_growth",
                                                     "summary_table"])
    grid = figs.figures["manifold_grid"]
    ranges = {(tuple(a.range)) for k, a in grid.layout.to_plotly_json().items()
              if k.startswith("xaxis") for a in [grid.layout[k]]}
    assert len(ranges) == 1  # one x range for every step and objective
    # the probe set's final norms on bins that follow the data: finer than the store's
    # fixed 8 bins per decade (ratio 1.33), shared by every objective
    hists = [t for t in figs.figures["norm_growth"].data if t.xaxis == "x2"]
    assert len(hists) == 6
    for t in hists:
        x = np.asarray(t.x)
        assert np.all(x[1:] / x[:-1] < 1.2)
    table = figs.figures["summary_table"].data[0]
    for column in table.cells.values[2:]:
        places = set()
        for cell in column:
            for number in re.findall(r"\d+(?:\.\d+)?", cell.replace("<br>", " ")):
                places.add(len(number.split(".")[1]) if "." in number else 0)
        assert len(places) <= 1, column  # one number of decimals per column
