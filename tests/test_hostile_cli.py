"""Hostile input from the command line: every case is one line on stderr and exit status 2,
raised before anything is written (no folder, no data cache); and ``geomviz project``
goes on past one unreadable store or one run without snapshots, naming each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from geomviz.store import RunWriter
from tests.helpers import cli_many

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp: Path) -> dict:
    return dict(os.environ, GEOMVIZ_CACHE=str(tmp / "cache"), OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _many(argvs: list[list[str]], cwd: Path) -> list[tuple[int, str]]:
    return cli_many(argvs, _env(cwd), cwd)


def _fake_run(folder: Path, snapshots: bool = True) -> Path:
    """A finished store with (or without) three snapshots of 40 points in 6-D (with the
    norms and cosines the polar view reads)."""
    g = np.random.default_rng(0)
    w = RunWriter(folder, {"config": {}})
    if snapshots:
        w.array(0, "snapshot.labels", g.integers(0, 3, 40))
        for s in (0, 5, 10):
            w.array(s, "snapshot.features", g.standard_normal((40, 6)).astype(np.float16))
            w.array(s, "snapshot.norm", g.uniform(1, 2, 40).astype(np.float32))
            w.array(s, "snapshot.cos_true", g.uniform(-1, 1, 40).astype(np.float32))
    w.close()
    return folder


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    good = _fake_run(tmp_path / "runs" / "good")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "latin1.yaml").write_bytes(b"lr: 0.1 # caf\xe9\n")
    (tmp_path / "conf.yaml").mkdir()
    tr = ["train", "--dataset", "gaussians", "--epochs", "1", "--no-progress", "--out", "t"]
    cases = [
        # seeds out of the config's range: refused before the data is generated
        (["compare", "--seeds", "-1", "--runs-dir", "c"], "--seeds must be >= 0, got -1"),
        (["compare", "--seeds", str(2**32), "--runs-dir", "c"], "--seeds must be < 2**32"),
        (["study", "--preset", "gaussians", "--seeds", str(2**32), "--out", "s"],
         "--seeds must be < 2**32"),
        # a figure size export would refuse only after the training
        (["study", "--preset", "gaussians", "--width", "50", "--out", "s"],
         "--width must be between 100 and 5000"),
        (["sweep", "--lrs", "1e-3", "--dataset", "gaussians", "--scale", "20", "--out", "w"],
         "--scale must be between 0.25 and 8"),
        (["figures", str(good), "--width", "99999", "--out", "f"], "--width must be between"),
        # figures: nothing is written for input refused
        (["figures", "nonexistent", "--out", "f"], "nonexistent does not exist"),
        (["figures", str(good), "--only", "nope", "--out", "f"], "unknown figure 'nope'"),
        (["figures", str(good), "--only", "", "--out", "f"], "--only must name at least one"),
        (["project", str(good), "--method", ""], "--method must name at least one"),
        # an empty string is an error, not the default
        (["compare", "--name", "", "--runs-dir", "c"], "--name ''"),
        (["compare", "--runs-dir", ""], "--runs-dir is empty"),
        (["demo", "--runs-dir", "", "--no-dashboard"], "--runs-dir is empty"),
        (["runs", ""], "the runs folder is empty"),
        (["objectives", ""], "unknown objective ''"),
        ([*tr, "--config", ""], "config file"),
        # a run name that leaves --runs-dir
        (["compare", "--name", "../escape", "--runs-dir", "c"], "inside --runs-dir"),
        (["compare", "--name", str(tmp_path / "abs"), "--runs-dir", "c"], "inside --runs-dir"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    results = _many([args for args, _ in cases], tmp_path)
    failures = [f"{' '.join(args)}: exit {rc}, stderr {err[-400:]!r}"
                for (args, msg), (rc, err) in zip(cases, results, strict=True)
                if not (rc == 2 and len(err.strip().splitlines()) == 1 and msg in err)]
    assert not failures, "\n".join(failures)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no data cache


def test_project_skips_an_unreadable_store_and_a_run_without_snapshots(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs / "a")
    _fake_run(runs / "nosnap", snapshots=False)
    (runs / "broken").mkdir()
    (runs / "broken" / "run.sqlite").write_bytes(b"not a database" * 100)
    r = subprocess.run([sys.executable, "-m", "geomviz", "project", str(runs), "--method",
                        "pca,polar"], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    warnings = [line for line in r.stderr.splitlines() if "warning: skipping" in line]
    assert len(warnings) == 2 and "broken" in warnings[0] and "nosnap" in warnings[1]
    assert "cached 2 projection(s)" in r.stdout
    assert len(list((runs / ".projections").glob("*.npz"))) == 2
