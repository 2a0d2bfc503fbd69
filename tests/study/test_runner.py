"""`geomviz study`: presets, the grid, reuse of finished runs, refusal to overwrite."""

from __future__ import annotations

import dataclasses

import pytest

from geomviz.cli import main
from geomviz.store import open_run
from geomviz.study.runner import _cifar_ood, preset_config
from geomviz.training.config import ConfigError
from tests.data.test_load import _cifar10, _cifar100, _svhn


def test_rerun_reuses_finished_runs_and_refuses_a_changed_config(tiny_study, capsys):
    out, argv = tiny_study
    before = {p: p.stat().st_mtime for p in (out / "runs").rglob("run.sqlite")}
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "0 runs trained" in printed and "12 reused" in printed
    assert before == {p: p.stat().st_mtime for p in (out / "runs").rglob("run.sqlite")}
    changed = [a if a != "1" else "2" for a in argv]  # --epochs 2
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "different config (epochs)" in err and len(err.strip().splitlines()) == 1


def test_presets_and_bad_input(tmp_path, capsys):
    cfg = preset_config("mnist1d", {"epochs": 3})
    assert cfg.ood_classes == [8, 9] and cfg.epochs == 3
    assert preset_config("gaussians").dataset == "gaussians"
    with pytest.raises(ConfigError, match="unknown preset 'imagenet'"):
        preset_config("imagenet")
    assert main(["study", "--preset", "gaussians", "--objectives", "ce,nope", "--seeds", "0",
                 "--out", str(tmp_path / "s")]) == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "s" / "runs").exists() or not any((tmp_path / "s" / "runs").iterdir())


def test_cifar10_preset_finds_svhn_and_cifar100(tmp_path):
    assert _cifar_ood(None, None) == {}
    _cifar100(tmp_path)
    assert _cifar_ood(str(tmp_path), None) == {"cifar100": str(tmp_path)}
    cfg = preset_config("cifar10", {"data_dir": str(tmp_path)})
    assert (cfg.ood_dataset, cfg.near_ood_dataset) == ("cifar100", None)
    svhn = _svhn(tmp_path)
    cfg = preset_config("cifar10", {"data_dir": str(tmp_path)})
    assert (cfg.ood_dataset, cfg.ood_dir) == ("svhn", str(svhn))  # far-OOD first
    assert (cfg.near_ood_dataset, cfg.model) == ("cifar100", "resnet")
    assert dataclasses.asdict(cfg)["optimizer"] == "sgd"


def test_cifar10_study_scores_both_ood_sets(tmp_path, monkeypatch):
    """The cifar10 preset end to end on tiny files in the real formats (CPU, 1 epoch)."""
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    _cifar10(tmp_path, n=24)
    _cifar100(tmp_path, n_test=16)
    _svhn(tmp_path, n_test=16)
    out = tmp_path / "study"
    assert main(["study", "--preset", "cifar10", "--data-dir", str(tmp_path), "--seeds", "0",
                 "--objectives", "ce,tfsd", "--epochs", "1", "--out", str(out),
                 "--format", "html", "--no-progress"]) == 0
    with open_run(out / "runs" / "tfsd-s0") as run:
        meta = run.meta
    assert meta["ood_name"] == "svhn" and meta["near_ood_name"] == "cifar100"
    assert {"msp.auroc", "min_distance.auroc"} <= set(meta["final"]["ood_near"])
    text = (out / "report.md").read_text()
    assert "OOD: svhn; second OOD set: cifar100" in text
    assert "AUROC (2nd OOD set)" in text and "OOD AUROC by score, second OOD set" in text


def test_lm_presets_and_their_plans(tmp_path, capsys):
    from geomviz.study.runner import LM_OBJECTIVES, preset_plan

    cfg = preset_config("lm-synonyms")
    assert (cfg.dataset, cfg.model) == ("synonyms", "gpt")
    assert preset_plan("lm-synonyms").objectives == LM_OBJECTIVES == (
        "ce", "metric_ce", "tfsd", "label_smoothing", "ce_zloss")
    assert preset_plan("lm-synonyms").seeds == (0, 1, 2)
    with pytest.raises(ConfigError, match="needs --data-path"):
        preset_config("lm-text")
    text = tmp_path / "t.txt"
    text.write_text("a tiny corpus " * 200)
    assert preset_config("lm-text", {"data_path": str(text)}).data_path == str(text)
    assert main(["study", "--preset", "lm-text", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "needs --data-path" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()  # refused before the output folder was made


def test_a_preset_with_parts_trains_each_and_writes_one_report(tmp_path, monkeypatch):
    """Two settings of the gaussians preset: one grid each, one claims table over both."""
    from geomviz.study import runner

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    parts = (("gaussians, slow", {"epochs": 1, "lr": 1e-3, "snapshots": 3}),
             ("gaussians, fast", {"epochs": 1, "lr": 3e-3, "snapshots": 3}))
    monkeypatch.setitem(runner.PRESET_PLANS, "gaussians",
                        runner.Plan(objectives=("ce", "tfsd"), seeds=(0, 1), parts=parts))
    out = tmp_path / "study"
    assert main(["study", "--preset", "gaussians", "--out", str(out), "--format", "html",
                 "--no-progress"]) == 0
    for sub in ("gaussians_slow", "gaussians_fast"):
        assert sorted(p.name for p in (out / "runs" / sub).glob("[!.]*")) == [
            "ce-s0", "ce-s1", "tfsd-s0", "tfsd-s1"]
        assert (out / "figures" / sub / "norm_growth.html").exists()
    with open_run(out / "runs" / "gaussians_fast" / "tfsd-s1") as run:
        assert run.meta["config"]["lr"] == 3e-3
    text = (out / "report.md").read_text()
    assert text.count("## Claims") == 1 and text.index("## Claims") < text.index(
        "## gaussians, slow") < text.index("## gaussians, fast")
    assert "| C1: CE explodes the feature norm (radial explosion) | gaussians, slow:" in text
    assert "| C1: CE explodes the feature norm (radial explosion) | gaussians, fast:" in text
    assert "(figures/gaussians_fast/norm_growth.html)" in text
    assert "### Results (mean ± sd over seeds)" in text


@pytest.mark.parametrize("argv, says", [
    (["--preset", "noise", "--seeds="], "--seeds must name at least one"),
    (["--preset", "noise", "--objectives="], "--objectives must name at least one"),
    (["--preset", "hierarchy", "--objectives", "bogus"], "unknown objective 'bogus'"),
    (["--preset", "lm-text", "--data-path", "/nonexist"], "--data-path /nonexist is not a file"),
    (["--preset", "mnist1d", "--seeds", "-1"], "--seeds must be >= 0"),
    (["--preset", "mnist1d", "--seeds", "0,,1"], "has an empty item"),
])
def test_bad_study_input_is_one_line_before_any_folder(tmp_path, capsys, argv, says):
    out = tmp_path / "s"
    assert main(["study", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["study", "--preset", "mnist1d", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err


def test_runs_from_before_a_field_existed_are_reused_and_dead_runs_restart(tmp_path,
                                                                            monkeypatch):
    import json

    from geomviz.study.runner import _plan, train_grid
    from tests.helpers import set_meta_raw

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    base = preset_config("gaussians", {"epochs": 1, "snapshots": 0, "progress": False})
    grid = train_grid(base, ["ce"], [0], tmp_path / "runs")
    run = grid.runs[0]
    with open_run(run) as r:
        meta = r.meta
    # a run stored before label_noise and class_groups were config fields
    old = {k: v for k, v in meta["config"].items() if k not in ("label_noise", "class_groups")}
    set_meta_raw(run, "config", json.dumps(old))
    cfg = dataclasses.replace(base, objective="ce", seed=0, out=str(run))
    assert _plan(cfg) == "reuse"
    # killed before its first checkpoint: restarted in place, not refused
    set_meta_raw(run, "status", json.dumps("running"))
    (run / "checkpoint.pt").unlink()
    assert _plan(cfg) == "resume"
    again = train_grid(base, ["ce"], [0], tmp_path / "runs", reuse=True)
    assert again.trained == [run]
    with open_run(run) as r:
        assert r.meta["status"] == "finished"


@pytest.mark.parametrize("args, message", [
    (["--preset", "cifar10"], "needs --data-dir"),
    (["--preset", "cifar10", "--data-dir", "nowhere"], "--data-dir nowhere is not a folder"),
    (["--preset", "cifar10", "--data-dir", ".", "--ood-dir",
      "nowhere"], "--ood-dir nowhere is not a folder"),
    (["--preset", "cifar10", "--data-dir", ".", "--ood-dir", "."], "holds no SVHN"),
    pytest.param(["--preset", "gaussians", "--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(),
                                          reason="needs a machine without CUDA")),
])
def test_study_refuses_missing_data_or_device_before_its_folder(tmp_path, capsys, args,
                                                                message):
    """The checks sweep made before any work (device, data folders) hold for study too: it
    made the output folder, and printed '== ce seed 0', before the one-line error."""
    code = main(["study", *args, "--out", str(tmp_path / "s")])
    out = capsys.readouterr()
    assert code == 2 and message in out.err and len(out.err.strip().splitlines()) == 1
    assert "==" not in out.out and not (tmp_path / "s").exists()
