"""The Lightning callback: a finished first-class run, sanity check and fast_dev_run write
nothing, resume from a Lightning checkpoint with no row twice, the same callback twice is
refused, DDP on 2 CPU processes writes one store from rank 0, a missing extra is one line."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from geomviz.store import open_run  # noqa: E402
from tests.integrations.helpers import blobs  # noqa: E402


def _fit(out, epochs=1, every=4, ckpt=None, callbacks=(), trainer_kw=None, **net):
    from geomviz.integrations.lightning import GeomvizCallback
    from tests.integrations.lit_helpers import Net, loaders, trainer

    train, val = loaders()
    xt, yt = blobs(32, seed=2)
    cb = GeomvizCallback(out, head="objective.head", objective=net.get("objective", "ce"),
                         every=every, probe_set=(xt, yt))
    t = trainer([cb, *callbacks], max_epochs=epochs, **(trainer_kw or {}))
    t.fit(Net(**net), train, val, ckpt_path=ckpt)
    return t


def test_a_lightning_run_is_recorded_and_the_sanity_check_writes_nothing(tmp_path):
    _fit(tmp_path / "r", epochs=2)
    with open_run(tmp_path / "r") as run:
        assert run.status == "finished" and run.meta["recorded_by"] == "lightning"
        assert run.meta["config"]["lr"] == 0.1 and run.meta["objective"] == "ce"
        assert run.scalars("loss")["step"].tolist() == [4, 8, 12, 16]
        assert len(run.scalars("penultimate.norm.p50", "train")["step"]) == 4
        assert run.scalars("acc", "test")["step"].tolist() == [8, 16]  # no sanity-check row
        assert run.meta["final"]["test"]["acc"] > 0
        assert run.array_steps("snapshot.features")[-1] == 16


def test_fast_dev_run_records_nothing(tmp_path):
    from geomviz.integrations.lightning import GeomvizCallback
    from tests.integrations.lit_helpers import Net, loaders, trainer

    train, val = loaders()
    trainer([GeomvizCallback(tmp_path / "r", head="objective.head")],
            fast_dev_run=2).fit(Net(), train, val)
    assert not (tmp_path / "r").exists()


def test_the_same_callback_twice_is_refused_before_anything_is_written(tmp_path):
    from geomviz.integrations.lightning import GeomvizCallback
    from tests.integrations.lit_helpers import Net, loaders, trainer

    cb = GeomvizCallback(tmp_path / "r", head="objective.head")
    train, _ = loaders()
    with pytest.raises(RuntimeError, match="more than one stateful callback of type "
                                           "`GeomvizCallback`"):
        trainer([cb, cb])  # Lightning's own check, at Trainer(): one state key per run
    t = trainer([cb])
    t.callbacks.append(GeomvizCallback(tmp_path / "r", head="objective.head"))
    with pytest.raises(ValueError, match="added to the Trainer twice"):
        t.fit(Net(), train)  # appended later: refused at setup
    assert not (tmp_path / "r").exists()


def test_resume_from_a_lightning_checkpoint_continues_the_run_with_no_row_twice(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    ck = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=6, save_top_k=-1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path / "r", epochs=2, callbacks=[ck], crash_at=10)
    with open_run(tmp_path / "r") as run:
        assert run.status == "crashed" and run.scalars("loss")["step"].tolist() == [4, 8]
    ckpt = sorted((tmp_path / "ck").glob("*step=6*.ckpt"))[0]
    _fit(tmp_path / "r", epochs=2, ckpt=str(ckpt))
    con = sqlite3.connect(tmp_path / "r" / "run.sqlite")
    assert con.execute("SELECT step, split, name FROM scalars GROUP BY 1, 2, 3 "
                       "HAVING COUNT(*) > 1").fetchall() == []
    assert con.execute("SELECT step, name FROM arrays GROUP BY 1, 2 "
                       "HAVING COUNT(*) > 1").fetchall() == []
    with open_run(tmp_path / "r") as run:
        assert run.status == "finished"
        assert run.scalars("loss")["step"].tolist() == [4, 8, 12, 16]
        assert run.scalars("acc", "test")["step"].tolist() == [8, 16]


DDP_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.integrations.test_lightning import _fit
_fit({out!r}, epochs=1, every=2, trainer_kw={{"strategy": "ddp", "devices": 2}})
"""


def test_ddp_on_two_cpu_processes_writes_one_store_from_rank_0(tmp_path):
    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(root=str(root), out=str(tmp_path / "runs" / "r")))
    env = {**os.environ, "PYTHONPATH": str(root)}
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    stores = list((tmp_path / "runs").rglob("run.sqlite"))
    assert stores == [tmp_path / "runs" / "r" / "run.sqlite"]
    with open_run(tmp_path / "runs" / "r") as run:
        assert run.status == "finished" and run.meta["hardware"]["world_size"] == 2
        # 128 samples, batch 16, 2 ranks: 4 steps, a row every 2
        assert run.scalars("loss")["step"].tolist() == [2, 4]
        assert run.scalars("penultimate.norm.p50", "train")["step"].tolist() == [2, 4]
        hist = run.histograms("penultimate.norm", split="train")
        assert hist.counts.sum(1).tolist() == [32, 32]  # both ranks' batches of 16, reduced


def test_a_missing_lightning_is_one_line_naming_the_extra(monkeypatch):
    import importlib

    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch.callbacks", None)
    monkeypatch.delitem(sys.modules, "geomviz.integrations.lightning", raising=False)
    with pytest.raises(ImportError) as e:
        importlib.import_module("geomviz.integrations.lightning")
    assert str(e.value) == ('geomviz.integrations.lightning needs Lightning: '
                            'pip install "geomviz[lightning]"')
