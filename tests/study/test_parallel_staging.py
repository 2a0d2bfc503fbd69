"""``--local-dir``: a run written on a worker's disk reaches the shared runs folder whole
and readable (one file, no WAL), and an interrupted one resumes from what was published.
Two tmp folders stand in for the worker's disk and the shared folder."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from geomviz.grid.job import Job, run_job
from geomviz.store import open_run
from geomviz.study.runner import _plan
from geomviz.study.sweep import check_grid, sweep_config
from tests.study.test_parallel import run_values
from tests.study.test_sweep import TINY


@pytest.fixture
def cfgs(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    base, _ = sweep_config(None, {**TINY, "epochs": 2})
    return check_grid(base, ["ce", "tfsd"], [1e-2], [0], [False], tmp_path / "shared")[1]


def _job(cfg, resume=False) -> Job:
    return Job(dataclasses.asdict(cfg), resume, "test")


def test_a_staged_run_is_published_whole_and_the_local_copy_removed(cfgs, tmp_path):
    local, shared = tmp_path / "worker-disk", tmp_path / "shared"
    out = run_job(_job(cfgs[0]), local_dir=str(local))
    assert out.status == "finished", out.message
    run = shared / "ce-lr0.01-qkoff-s0"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "run.sqlite"]
    con = sqlite3.connect(run / "run.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # no WAL on NFS
    con.close()
    with open_run(run) as r:
        assert r.meta["status"] == "finished" and r.meta["epochs_done"] == 2
        assert "published" in r.meta
    assert not any(p.is_file() for p in local.rglob("*"))  # nothing left on the worker
    assert not list(shared.glob(".incoming-*")) and not list(shared.glob(".replaced-*"))


def test_an_interrupted_staged_run_resumes_from_what_was_published(cfgs, tmp_path,
                                                                   monkeypatch):
    import shutil

    from geomviz.training import train as train_mod

    local, shared = tmp_path / "worker-disk", tmp_path / "shared"
    ref = run_job(_job(cfgs[1]), local_dir=None)  # the same run, uninterrupted, unstaged
    assert ref.status == "finished"
    reference = run_values(shared / "tfsd-lr0.01-qkoff-s0")
    shutil.rmtree(shared / "tfsd-lr0.01-qkoff-s0")

    save = train_mod._save_checkpoint

    def save_then_stop(*a, **k):  # the node is lost right after the first checkpoint
        save(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_job(_job(cfgs[1]), local_dir=str(local))
    monkeypatch.setattr(train_mod, "_save_checkpoint", save)
    run = shared / "tfsd-lr0.01-qkoff-s0"
    with open_run(run) as r:  # published as it ended: crashed, with its checkpoint
        assert r.meta["status"] == "crashed" and (run / "checkpoint.pt").is_file()
    shutil.rmtree(local)  # the worker's disk is gone with its node
    assert _plan(cfgs[1]) == "resume"  # what the next call decides, from the shared copy
    out = run_job(_job(cfgs[1], resume=True), local_dir=str(local))
    assert out.status == "finished", out.message
    with open_run(run) as r:
        assert r.meta["status"] == "finished" and len(r.meta["resumes"]) == 1
    got = run_values(run)
    assert got.keys() == reference.keys()
    for k in got:  # resumed exactly (NaN rows as NaN)
        assert json.dumps(got[k], default=repr) == json.dumps(reference[k], default=repr), k
