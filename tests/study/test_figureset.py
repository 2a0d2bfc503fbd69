"""The named figure set read from runs: what each figure shows is what the store holds."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.cli import main
from geomviz.store import StoreError, open_run
from geomviz.study.figureset import _pick_steps, build_figures, find_runs
from geomviz.study.results import run_record


def test_series_in_figures_are_the_stored_ones(tiny_study):
    out, _ = tiny_study
    runs = find_runs([out / "runs"])
    figs = build_figures(runs, ["gradient_split", "manifold_grid", "summary_table"])
    tfsd = [r for r in runs if r.name.startswith("tfsd")]
    vals = []
    for r in tfsd:
        with open_run(r) as run:
            vals.append(run.scalars("grad.radial_fraction", split="train")["value"])
    line = next(t for t in figs.figures["gradient_split"].data if t.name == "tfsd")
    np.testing.assert_allclose(line.y, np.mean(vals, 0))
    grid = figs.figures["manifold_grid"]
    assert grid.layout.annotations[-1].text == "tfsd"  # row titles: one row per objective
    table = figs.figures["summary_table"].data[0]
    assert list(table.cells.values[0]) == ["ce", "ce_zloss", "label_smoothing", "logitnorm",
                                           "metric_ce", "tfsd"]


def test_figures_skip_what_runs_cannot_show(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--dataset", "mnist1d", "--epochs", "1", "--snapshots", "0",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    figs = build_figures([tmp_path / "r"])
    assert {"manifold_grid", "angle_radius", "ood", "target_vs_bayes", "synonym_entropy",
            "tearing", "class_vectors", "outlier_gradients"} <= set(figs.skipped)
    assert {"norm_growth", "gradient_split", "summary_table"} <= set(figs.figures)
    assert run_record(tmp_path / "r")["final_norm"] is None  # no snapshots, no probe-set norm
    assert main(["figures", str(tmp_path / "r"), "--only", "ood", "--format", "html",
                 "--out", str(tmp_path / "f")]) == 2
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        build_figures([tmp_path / "r"], ["nope"])
    with pytest.raises(StoreError, match="no runs"):
        find_runs([tmp_path / "cache"])


def test_pick_steps_spreads_in_log_space():
    steps = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987]
    picked = _pick_steps(steps, 5)
    assert picked[0] == 0 and picked[-1] == 987 and len(picked) == 5
    assert _pick_steps([0, 4], 5) == [0, 4]


def test_outlier_gradients_from_noisy_runs(tmp_path, monkeypatch):
    """Two objectives trained with label noise: the figure holds their stored series."""
    from geomviz.study.figureset import build_figures
    from geomviz.training.config import resolve_config
    from geomviz.training.train import train

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    runs = []
    for obj in ("ce", "tfsd"):
        cfg = resolve_config({"objective": obj, "dataset": "gaussians", "epochs": 2,
                              "label_noise": 0.3, "snapshots": 0, "progress": False,
                              "flush_every": 10, "out": str(tmp_path / obj)})
        runs.append(train(cfg))
    figs = build_figures(runs, ["outlier_gradients"])
    fig = figs.figures["outlier_gradients"]
    from geomviz.store import open_run

    with open_run(runs[1]) as run:
        want = run.scalars("grad.noisy.norm.mean", split="train")["value"]
    ys = [np.asarray(t.y, float) for t in fig.data if t.y is not None and len(t.y) == len(want)]
    assert any(np.allclose(y, want) for y in ys)
    assert all(ax.title.text for ax in (fig.layout.xaxis, fig.layout.yaxis))
