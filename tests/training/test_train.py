"""Training through the real CLI: read-back and recomputation, crash safety, divergence,
resume, comparisons and 2-process DDP (gloo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from geomviz.data import load_dataset
from geomviz.metrics import confidence_scores, ood_metrics
from geomviz.models import Classifier, build_backbone
from geomviz.objectives import create_objective
from geomviz.store import open_run
from geomviz.training.config import resolve_config
from geomviz.training.evaluate import evaluate
from geomviz.training.train import CHECKPOINT, train


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    e = dict(os.environ, GEOMVIZ_CACHE=str(cache), PYTHONUNBUFFERED="1")
    os.environ["GEOMVIZ_CACHE"] = str(cache)
    return e


def cli(args, env, check=True, **kw):
    r = subprocess.run([sys.executable, "-m", "geomviz", *args], env=env, capture_output=True,
                       text=True, timeout=600, **kw)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def _model_from_checkpoint(folder, meta):
    cfg = resolve_config(meta["config"])
    b = load_dataset(cfg.dataset, ood_classes=tuple(cfg.ood_classes))
    m = Classifier(build_backbone(cfg.model, b.input_shape, cfg.feature_dim, tuple(cfg.hidden)),
                   create_objective(cfg.objective, cfg.feature_dim, b.num_classes,
                                    **cfg.objective_kw))
    m.load_state_dict(torch.load(folder / CHECKPOINT, weights_only=False)["model"])
    return m.eval(), b


def test_cli_train_reads_back_and_matches_recomputation(tmp_path, env):
    out = tmp_path / "run"
    cli(["train", "--objective", "tfsd", "--epochs", "2", "--out", str(out), "--no-progress",
         "--ood-classes", "8,9", "--objective-arg", "scale=0.5", "--flush-every", "10"], env)
    run = open_run(out)
    meta = run.meta
    assert meta["status"] == "finished" and meta["objective"] == "tfsd"
    assert meta["config"]["objective_kw"] == {"scale": 0.5} and meta["config"]["epochs"] == 2
    assert meta["versions"]["torch"] and meta["hardware"]["device"] == "cpu"
    loss = run.scalars("loss", split="train")
    steps_per_epoch = meta["steps_per_epoch"]
    assert loss["step"][-1] == 2 * steps_per_epoch and (loss["value"] > 0).all()
    assert len(run.scalars("acc", split="test")["value"]) == 2
    # recompute the last evaluation from the checkpoint, independently of the trainer
    model, b = _model_from_checkpoint(out, meta)
    with torch.no_grad():
        z = model(b.x_test)
        z_ood = model(b.x_ood)
    acc = float((z.argmax(1) == b.y_test).double().mean())
    assert run.scalars("acc", split="test")["value"][-1] == pytest.approx(acc, abs=1e-12)
    nll = float(torch.nn.functional.cross_entropy(z.double(), b.y_test))
    assert run.scalars("nll", split="test")["value"][-1] == pytest.approx(nll, rel=1e-5)
    auroc = ood_metrics(confidence_scores(z)["msp"], confidence_scores(z_ood)["msp"])["auroc"]
    assert run.scalars("msp.auroc", split="ood")["value"][-1] == pytest.approx(auroc, abs=1e-6)
    assert meta["final"]["test"]["acc"] == pytest.approx(acc, abs=1e-12)
    assert "min_distance.auroc" in run.scalar_names() and "nc1" in run.scalar_names()
    listing = cli(["runs", str(tmp_path)], env).stdout
    assert "tfsd" in listing and "finished" in listing


def test_kill_9_keeps_everything_flushed_and_reads_as_crashed(tmp_path, env):
    out = tmp_path / "victim"
    proc = subprocess.Popen([sys.executable, "-m", "geomviz", "train", "--epochs", "500",
                             "--out", str(out), "--flush-every", "5", "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (out / "run.sqlite").exists():
                with open_run(out) as r:
                    if len(r.scalars("loss", split="train")["step"]) >= 8:
                        break
            time.sleep(0.2)
        else:
            pytest.fail("the training subprocess never flushed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(1.0)
    run = open_run(out, stale_after=0.5)
    assert run.status == "crashed"
    names = ("loss", "acc", "grad_norm", "lr")
    series = [run.scalars(n, split="train")["step"].tolist() for n in names]
    assert len(series[0]) >= 8 and all(s == series[0] for s in series)  # whole flushes only
    steps_per_epoch = run.meta["steps_per_epoch"]
    assert all(s % 5 == 0 or s % steps_per_epoch == 0 for s in series[0])


def test_non_finite_loss_stops_the_run_as_diverged(tmp_path, env):
    out = tmp_path / "boom"
    r = cli(["train", "--objective", "tfsd", "--objective-arg", "scale=1e38", "--epochs", "2",
             "--out", str(out), "--no-progress"], env, check=False)
    assert r.returncode == 3 and "diverged" in r.stderr and "Traceback" not in r.stderr
    meta = open_run(out).meta
    assert meta["status"] == "diverged" and "non-finite" in meta["message"]


@pytest.mark.parametrize("args,message", [
    (["train", "--objective", "cee"], "unknown objective 'cee'"),
    (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["train", "--dataset", "cifar10"], "needs --data-dir"),
    (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent"],
     "--data-dir /nonexistent is not a folder"),
    (["train", "--epochs", "0"], "epochs must be >= 1"),
    (["train", "--objective-arg", "temperature=2"], "does not take temperature"),
    (["train", "--resume", "--out", "/tmp/geomviz-nothing-here"], "no checkpoint.pt in"),
    (["runs", "/nonexistent/runs"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, env, tmp_path):
    r = cli([*args, "--no-progress"] if args[0] == "train" else args, env, check=False,
            cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and r.stderr.strip().count("\n") == 0
    assert "Traceback" not in r.stderr


def test_bad_config_file(tmp_path, env):
    f = tmp_path / "c.yaml"
    f.write_text("epochz: 3\n")
    r = cli(["train", "--config", str(f)], env, check=False)
    assert r.returncode == 2 and "unknown config key(s) in config file: epochz" in r.stderr


def test_resume_continues_to_the_same_result(tmp_path, env, monkeypatch):
    base = {"epochs": 3, "flush_every": 10, "progress": False}
    ref = open_run(train(resolve_config(base, {"out": str(tmp_path / "ref")}))).meta
    import geomviz.training.train as T

    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # dies in epoch 3, after epoch 2's checkpoint
            raise KeyboardInterrupt
        return evaluate(*a, **k)

    monkeypatch.setattr(T, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(resolve_config(base, {"out": str(tmp_path / "cut")}))
    assert open_run(tmp_path / "cut").status == "crashed"
    monkeypatch.setattr(T, "evaluate", evaluate)
    train(resolve_config(base, {"out": str(tmp_path / "cut"), "resume": True}))
    run = open_run(tmp_path / "cut")
    assert run.status == "finished"
    assert run.meta["final"]["test"] == pytest.approx(ref["final"]["test"], abs=1e-9)
    assert run.scalars("acc", split="test")["epoch"].tolist() == [0, 1, 2]


def test_compare_same_init_and_batches(tmp_path, env):
    cli(["compare", "--objectives", "ce,tfsd", "--seeds", "0,1", "--epochs", "1",
         "--runs-dir", str(tmp_path), "--name", "cmp", "--no-progress"], env)
    folders = sorted(p.name for p in (tmp_path / "cmp").iterdir())
    assert folders == ["ce-s0", "ce-s1", "tfsd-s0", "tfsd-s1"]
    metas = {f: open_run(tmp_path / "cmp" / f).meta for f in folders}
    assert all(m["status"] == "finished" for m in metas.values())
    assert metas["tfsd-s1"]["seed"] == 1 and metas["ce-s0"]["objective"] == "ce"


def test_ddp_two_cpu_processes_write_one_coherent_run(tmp_path, env):
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "geomviz", "train", "--epochs", "2",
                        "--out", str(out), "--no-progress", "--flush-every", "5"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = open_run(out)
    meta = run.meta
    assert meta["status"] == "finished" and meta["hardware"]["world_size"] == 2
    assert meta["steps_per_epoch"] == 16  # 4000 examples / 2 ranks / batch 128
    steps = run.scalars("loss", split="train")["step"].tolist()
    assert steps == sorted(set(steps)) and steps[-1] == 32  # one writer, no duplicate rows
    assert len(run.scalars("acc", split="test")["value"]) == 2


def test_runs_listing_survives_a_corrupt_store(tmp_path, env):
    cli(["train", "--epochs", "1", "--out", str(tmp_path / "good"), "--no-progress",
         "--snapshots", "0"], env)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.sqlite").write_bytes(b"garbage" * 1000)
    r = cli(["runs", str(tmp_path)], env)
    assert "unreadable" in r.stdout and "finished" in r.stdout
