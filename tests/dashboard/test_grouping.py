"""Issue 24, defect 2: runs are grouped only when their configs are equal except for the
seed, on the runs page and on the seed-group compare page; a sweep's runs form one group
per (objective, rate, qk) cell."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import set_meta_raw

pytest.importorskip("dash")


def _row(run, objective, seed, acc, **config):
    return {"run": run, "objective": objective, "dataset": "d", "status": "finished",
            "seed": seed, "acc": acc, "auroc": None, "warning": "",
            "config": {"objective": objective, "dataset": "d", "seed": seed, "out": run,
                       **config}}


def test_learning_rates_are_two_groups_never_two_seeds():
    from geomviz.dashboard.data import seed_groups

    rows = [_row("s/ce-lr0.001-s0", "ce", 0, 0.5, lr=0.001),
            _row("s/ce-lr0.01-s0", "ce", 0, 0.7, lr=0.01)]
    groups = seed_groups(rows)
    assert [g["n"] for g in groups] == [1, 1]
    assert sorted(g["label"] for g in groups) == ["ce lr 0.001", "ce lr 0.01"]


def test_a_sweep_forms_one_group_per_objective_rate_and_qk_cell():
    from geomviz.dashboard.data import seed_groups

    rows = [_row(f"sw/{o}-lr{lr}-qk{int(qk)}-s{s}", o, s, 0.5 + s / 10, lr=lr,
                 qk_layernorm=qk)
            for o in ("ce", "tfsd") for lr in (0.001, 0.01) for qk in (False, True)
            for s in (0, 1, 2)]
    groups = seed_groups(rows)
    assert len(groups) == 8 and all(g["n"] == 3 for g in groups)
    for g in groups:  # every member is of the cell the label names, and only seeds differ
        cells = {(r["objective"], r["config"]["lr"], r["config"]["qk_layernorm"])
                 for r in rows if r["run"] in g["members"]}
        assert len(cells) == 1
        assert g["acc"][0] == pytest.approx(0.6)
    assert len({g["group"] for g in groups}) == 8
    assert "ce lr 0.01 qk-norm on" in {g["label"] for g in groups}


def test_a_groups_label_names_what_it_learns_not_how_it_ran():
    """Two groups that differ by epochs, whose runs also differ by device (a run-only key,
    left out of the grouping): the labels say "epochs", never "device" (they read
    "ce device auto" against "ce device cpu" for groups of mixed devices)."""
    from geomviz.dashboard.data import seed_groups

    rows = [_row("m/ce-s0", "ce", 0, 0.5, epochs=5, device="auto"),
            _row("m/ce-s1", "ce", 1, 0.6, epochs=5, device="cpu"),
            _row("m/short-ce-s0", "ce", 0, 0.4, epochs=2, device="cpu")]
    groups = seed_groups(rows)
    assert sorted((g["label"], g["n"]) for g in groups) == [("ce epochs 2", 1),
                                                             ("ce epochs 5", 2)]


@pytest.fixture(scope="module")
def lr_runs(tmp_path_factory):
    """One tiny CE run copied into four: rates 0.001 and 0.01, seeds 0 and 1 each."""
    from geomviz.cli import main

    src = tmp_path_factory.mktemp("src")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        assert main(["train", "--objective", "ce", "--epochs", "1", "--out",
                     str(src / "r"), "--snapshots", "2", "--snapshot-size", "50",
                     "--no-progress"]) == 0
    finally:
        mp.undo()
    root = tmp_path_factory.mktemp("runs")
    from geomviz.store import open_run

    with open_run(src / "r") as run:
        config = dict(run.meta["config"])
    for lr in (0.001, 0.01):
        for seed in (0, 1):
            dst = root / "lr" / f"ce-lr{lr}-s{seed}"
            shutil.copytree(src / "r", dst)
            set_meta_raw(dst, "seed", str(seed))
            set_meta_raw(dst, "config", json.dumps({**config, "lr": lr, "seed": seed}))
    return root


def test_runs_page_and_group_compare_page_keep_rates_apart(lr_runs):
    from geomviz.dashboard import create_app

    app = create_app(lr_runs)  # pages register themselves with the app it creates
    from geomviz.dashboard.pages import compare, runs

    with app.server.test_request_context():
        page = str(runs.layout())
        sides = compare._sides(lr_runs, None, None, "lr/ce lr 0.001", "lr/ce lr 0.01")
    assert "lr/ce lr 0.001" in page and "lr/ce lr 0.01" in page
    assert "learning rate" in page  # the runs table's column, as `geomviz runs` has it
    assert [s["runs"] for s in sides] == [["lr/ce-lr0.001-s0", "lr/ce-lr0.001-s1"],
                                          ["lr/ce-lr0.01-s0", "lr/ce-lr0.01-s1"]]
    assert all("2 seeds" in s["label"] for s in sides)


def test_a_mismatched_pair_is_warned_and_gets_no_joint_projection(lr_runs, tmp_path):
    """Issue 24, defect 9: runs of different datasets or feature sizes get a one-line
    warning, and no joint PCA of unrelated features (each run its own basis)."""
    import sqlite3

    import numpy as np

    from geomviz.dashboard.data import manifold_data, pair_check

    root = tmp_path / "runs"
    src = lr_runs / "lr" / "ce-lr0.001-s0"
    shutil.copytree(src, root / "a")
    shutil.copytree(src, root / "b")
    set_meta_raw(root / "b", "dataset", json.dumps("tokens"))
    con = sqlite3.connect(root / "b" / "run.sqlite")  # b's features: half as wide
    rows = con.execute("SELECT rowid, dtype, shape, data FROM arrays "
                       "WHERE name = 'snapshot.features'").fetchall()
    for rowid, dtype, shape, data in rows:
        arr = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape))
        half = np.ascontiguousarray(arr[:, : arr.shape[1] // 2])
        con.execute("UPDATE arrays SET shape = ?, data = ? WHERE rowid = ?",
                    (json.dumps(list(half.shape)), half.tobytes(), rowid))
    con.commit()
    con.close()
    warning, joint = pair_check([root / "a", root / "b"])
    assert not joint and "\n" not in warning
    assert "datasets differ" in warning and "feature sizes differ" in warning
    assert pair_check([root / "a", root / "a"]) == ("", True)
    data = manifold_data(root, [root / "a", root / "b"], "pca")  # a joint PCA would fail
    assert data["joint"] is False and data["warning"] == warning
    assert all(r["xy"].shape[-1] == 2 for r in data["runs"])
    from geomviz.dashboard import create_app

    app = create_app(root)
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        page = str(compare.layout(a="a", b="b"))
    assert "Mismatched pair: datasets differ" in page and "Cannot compare" not in page


def test_legends_name_the_objective_and_what_tells_the_sides_apart(lr_runs):
    """Issue 24, defect 10: legends and panel titles read "ce lr 0.001", never a full run
    id; the column header keeps the id."""
    from geomviz.dashboard import create_app

    app = create_app(lr_runs)
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        pair = compare._sides(lr_runs, "lr/ce-lr0.001-s0", "lr/ce-lr0.01-s0", None, None)
        seeds = compare._sides(lr_runs, "lr/ce-lr0.01-s0", "lr/ce-lr0.01-s1", None, None)
    assert [s["label"] for s in pair] == ["ce lr 0.001", "ce lr 0.01"]
    assert [s["title"] for s in pair] == ["lr/ce-lr0.001-s0", "lr/ce-lr0.01-s0"]
    assert [s["label"] for s in seeds] == ["ce seed 0", "ce seed 1"]
