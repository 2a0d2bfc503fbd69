"""--resume and the one-writer lock: the pure checks (config diff, checkpoint loading,
output folder), then real processes: kill -9 in the first epoch, a restart from scratch,
a second writer refused while the first lives, kill -9 after a checkpoint, and a resume
that ends where an uninterrupted run ends."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from geomviz.store import RunWriter, StoreError, open_run
from geomviz.training.config import ConfigError, TrainConfig, resolve_config
from geomviz.training.resume import (
    EXTEND_ONLY,
    MAY_CHANGE,
    check_out,
    config_diff,
    load_checkpoint,
    make_folder,
)
from geomviz.training.train import CHECKPOINT, train

ROOT = Path(__file__).resolve().parents[2]


def test_config_diff_names_each_field_that_may_not_change():
    stored = dataclasses.asdict(TrainConfig())
    same = {**stored, **{k: "changed" for k in MAY_CHANGE}}
    assert config_diff(stored, same) == []
    assert config_diff(stored, {**stored, "epochs": stored["epochs"] + 5}) == []  # extending
    shorter = config_diff(stored, {**stored, "epochs": 1})
    assert shorter == [f"epochs: {stored['epochs']} -> 1 (may only be extended)"]
    changed = {**stored, "batch_size": 64, "objective_kw": {"scale": 0.5}, "hidden": [8],
               "vocab_size": 512, "fused": "on", "lr": 0.5, "seed": 3}
    diff = config_diff(stored, changed)
    assert diff == ["objective_kw: {} -> {'scale': 0.5}", "vocab_size: None -> 512",
                    "fused: 'auto' -> 'on'", "hidden: [256, 256] -> [8]",
                    "batch_size: 128 -> 64", "lr: 0.001 -> 0.5", "seed: 0 -> 3"]
    # every field the run's meaning depends on is checked: all but MAY_CHANGE
    checked = set(stored) - set(MAY_CHANGE)
    assert {"objective", "objective_kw", "model", "hidden", "width", "feature_dim", "dataset",
            "data_path", "tokenizer", "vocab_size", "seq_len", "train_tokens", "test_tokens",
            "concepts", "max_synonyms", "order", "emission", "gpt_size", "block_size",
            "qk_layernorm", "tie_embeddings", "fused", "batch_size", "seed", "optimizer",
            "lr", "warmup_epochs", "weight_decay", "momentum", "grad_clip"} <= checked
    assert set(EXTEND_ONLY) <= checked
    # a run from before a field existed compares as that field's default
    old = {k: v for k, v in stored.items() if k != "concepts"}
    assert config_diff(old, stored) == []
    assert config_diff(old, {**stored, "concepts": 7}) == ["concepts: 96 -> 7"]


def test_unreadable_checkpoints_are_one_line(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": {}, "opt": {}, "sched": {}, "epoch": 0, "step": 5}, good)
    assert load_checkpoint(good)["step"] == 5
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00garbage" * 50)
    foreign = tmp_path / "foreign.pt"
    torch.save([1, 2, 3], foreign)
    for path, msg in ((truncated, "cannot be read"), (garbage, "cannot be read"),
                      (foreign, "not a geomviz checkpoint")):
        with pytest.raises(StoreError, match=msg) as e:
            load_checkpoint(path)
        assert "\n" not in str(e.value)


def test_output_folder_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        make_folder(tmp_path / "file")
    with pytest.raises(ConfigError, match="which is a file"):
        make_folder(tmp_path / "file" / "below")
    assert make_folder(tmp_path / "a" / "b").is_dir()
    RunWriter(tmp_path / "run", {"config": {}}).close()
    with pytest.raises(ConfigError, match="already exists"):
        check_out(TrainConfig(out=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="no checkpoint.pt"):
        check_out(TrainConfig(out=str(tmp_path / "empty"), resume=True))
    check_out(TrainConfig(out=str(tmp_path / "run"), resume=True))  # same config: fine
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.md").write_text("x")  # --out / wrote run.sqlite into /
    with pytest.raises(ConfigError, match=r"holding other files \('notes.md', 1 in all\)"):
        check_out(TrainConfig(out=str(tmp_path / "project")))
    (tmp_path / "left").mkdir()
    (tmp_path / "left" / "run.lock").write_text("")  # a writer killed before its store
    check_out(TrainConfig(out=str(tmp_path / "left")))
    with pytest.raises(ConfigError, match=r"batch_size: 128 -> 7"):
        RunWriter(tmp_path / "run2", {"config": dataclasses.asdict(TrainConfig())}).close()
        check_out(TrainConfig(out=str(tmp_path / "run2"), resume=True, batch_size=7))


# ----------------------------------------------------------------------------- processes
ARGS = ["--dataset", "gaussians", "--epochs", "3", "--batch-size", "8", "--flush-every", "10",
        "--snapshots", "0", "--no-progress"]


def _env(tmp_path):
    # one thread each: spinning OpenMP threads of processes sharing 2 cores cost up to 8x
    return dict(os.environ, GEOMVIZ_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1",
                OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _start(out, env, *extra):
    return subprocess.Popen([sys.executable, "-m", "geomviz", "train", *ARGS, "--out", str(out),
                             *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(cond, proc, what, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}: "
                        f"{proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def _flushed(out):
    def cond():
        if not (out / "run.sqlite").exists():
            return False
        try:
            with open_run(out) as r:
                return len(r.scalars("loss", split="train")["step"]) >= 2
        except StoreError:  # the store is being created
            return False
    return cond


def test_kill_restart_second_writer_kill_resume_matches_uninterrupted(tmp_path, monkeypatch):
    env, out = _env(tmp_path), tmp_path / "run"
    # 1. kill -9 in epoch 0, before any checkpoint
    first = _start(out, env)
    try:
        _wait_for(_flushed(out), first, "the first flushes")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert not (out / CHECKPOINT).exists(), "killed too late: epoch 0 had ended"
    # 2. --resume with no checkpoint restarts from scratch (the lock died with the process)
    second = _start(out, env, "--resume")
    try:
        _wait_for(lambda: (out / CHECKPOINT).exists(), second, "the first checkpoint")
        second.send_signal(signal.SIGSTOP)  # alive, holding the lock
        # 3. a second writer is refused with one line naming the holder
        r = subprocess.run([sys.executable, "-m", "geomviz", "train", *ARGS, "--out", str(out),
                            "--resume"], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr[-2000:]
        assert f"pid {second.pid}" in r.stderr and r.stderr.strip().count("\n") == 0
        assert "Traceback" not in r.stderr
    finally:
        # 4. kill -9 after a checkpoint
        second.send_signal(signal.SIGKILL)
        second.wait()
    # 5. --resume continues from the checkpoint to the end
    r = subprocess.run([sys.executable, "-m", "geomviz", "train", *ARGS, "--out", str(out),
                        "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    monkeypatch.setenv("GEOMVIZ_CACHE", env["GEOMVIZ_CACHE"])
    cfg = resolve_config({}, {"dataset": "gaussians", "epochs": 3, "batch_size": 8,
                              "flush_every": 10, "snapshots": 0, "progress": False,
                              "out": str(tmp_path / "ref")})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses: the same reductions, bit for bit
    try:
        ref_folder = train(cfg)
    finally:
        torch.set_num_threads(threads)
    with open_run(ref_folder) as ref_run, open_run(out) as run:
        ref, meta = ref_run.meta, run.meta
        assert meta["status"] == "finished"
        assert meta["final"]["test"] == pytest.approx(ref["final"]["test"], abs=1e-9)
        assert meta["final"]["ood"] == pytest.approx(ref["final"]["ood"], abs=1e-9)
        steps = run.scalars("loss", split="train")["step"].tolist()
        assert steps == ref_run.scalars("loss", split="train")["step"].tolist()
        assert steps == sorted(set(steps))  # no row written twice
        assert run.scalars("acc", split="test")["epoch"].tolist() == [0, 1, 2]
        assert run.scalars("loss", split="train")["value"] == pytest.approx(
            ref_run.scalars("loss", split="train")["value"], abs=1e-6)
        # every probe series too: decomp.* (the change since the previous flush) and the
        # spike rules' histories continue across the resume (the first decomp.* row after
        # it was missing, and the spike history restarted)
        names = ref_run.scalar_names()
        assert run.scalar_names() == names and "decomp.total" in names
        for name in names:
            if name.endswith("_per_s"):  # wall-clock rates
                continue
            a, b = run.scalars(name), ref_run.scalars(name)
            assert a["step"].tolist() == b["step"].tolist(), name
            assert a["split"].tolist() == b["split"].tolist(), name
            np.testing.assert_allclose(a["value"], b["value"], rtol=1e-6, atol=1e-9,
                                       err_msg=name)


def test_trying_a_folder_removes_only_the_folders_it_made(tmp_path):
    """``keep=False`` with ``..`` in the path: it removes what it created and never an
    existing folder (here the empty ``keep`` the path walks through)."""
    (tmp_path / "keep").mkdir()
    path = tmp_path / "keep" / "new" / ".." / ".." / "made"
    make_folder(path, keep=False)
    assert (tmp_path / "keep").is_dir() and not (tmp_path / "keep" / "new").exists()
    assert not (tmp_path / "made").exists()


def test_resuming_with_other_code_warns_and_keeps_the_code_it_was_trained_with(
        tmp_path, monkeypatch, capsys):
    """The commit and library versions of the part before a resume are kept in
    ``meta['resumes']`` (``git``/``versions`` become the resuming process's); a change is one
    warning line."""
    from geomviz.training.provenance import git_commit
    from tests.helpers import set_meta_raw

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    base = {"dataset": "gaussians", "epochs": 1, "snapshots": 0, "progress": False,
            "probes": False, "out": str(tmp_path / "run")}
    out = train(resolve_config(base))
    old_git = {"commit": "0123456789abcdef", "dirty": False}
    set_meta_raw(out, "git", json.dumps(old_git))
    with open_run(out) as run:
        versions = {**run.meta["versions"], "torch": "1.0"}
    set_meta_raw(out, "versions", json.dumps(versions))
    capsys.readouterr()
    train(resolve_config({**base, "epochs": 2, "resume": True}))
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and "other code than it was trained with" in err[0]
    assert f"torch 1.0 -> {torch.__version__}" in err[0]
    assert ("commit 0123456789 -> " in err[0]) == bool((meta_git := git_commit()) and
                                                       meta_git["commit"])
    with open_run(out) as run:
        meta = run.meta
    steps = meta["steps_per_epoch"]
    assert meta["resumes"] == [{"step": steps, "git": old_git, "versions": versions}]
    assert meta["versions"]["torch"] == torch.__version__ and meta["status"] == "finished"


def test_a_checkpoint_saved_by_another_run_is_refused_naming_the_difference(
        tmp_path, monkeypatch):
    """The store's config matches, but the checkpoint beside it was copied from a run of
    another seed: resuming would continue that run's weights under this run's name."""
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    base = {"dataset": "gaussians", "epochs": 1, "snapshots": 0, "progress": False,
            "probes": False}
    mine = train(resolve_config({**base, "out": str(tmp_path / "mine")}))
    other = train(resolve_config({**base, "seed": 1, "out": str(tmp_path / "other")}))
    (mine / CHECKPOINT).write_bytes((other / CHECKPOINT).read_bytes())
    with pytest.raises(ConfigError, match=r"checkpoint.pt was saved by another run "
                       r"\(seed: 1 -> 0\)"):
        train(resolve_config({**base, "epochs": 2, "resume": True, "out": str(mine)}))
    with open_run(mine) as run:  # left as it was
        assert run.meta["status"] == "finished" and run.meta["config"]["epochs"] == 1


def test_a_checkpoint_reaches_the_disk_before_it_replaces_the_last(tmp_path, monkeypatch):
    """The file is fsynced before the rename and the folder after it (a power cut after a
    bare rename can leave an empty checkpoint.pt in place of a good one)."""
    from geomviz.training import train as T

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(a, b):
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(T.os, "fsync", fsync)
    monkeypatch.setattr(T.os, "replace", replace)
    path = tmp_path / CHECKPOINT
    T._save_checkpoint(path, step=3, weights=torch.arange(4.0))
    assert events[:2] == ["fsync-file", "replace"]
    if sys.platform.startswith("linux"):
        assert events[2:] == ["fsync-dir"]
    assert torch.load(path)["step"] == 3 and not path.with_suffix(".tmp").exists()
