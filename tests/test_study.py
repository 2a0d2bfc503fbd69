"""`geomviz study`: presets, the grid, reuse of finished runs, refusal to overwrite."""

from __future__ import annotations

import dataclasses

import pytest

from geomviz.cli import main
from geomviz.config import ConfigError
from geomviz.study import _cifar_ood, preset_config


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


def test_cifar10_preset_picks_svhn_then_cifar100(tmp_path):
    assert _cifar_ood(None, None) == (None, None)
    (tmp_path / "cifar-100-python").mkdir()
    for name in ("test", "meta"):
        (tmp_path / "cifar-100-python" / name).write_bytes(b"")
    assert _cifar_ood(str(tmp_path), None) == ("cifar100", str(tmp_path))
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"")
    assert _cifar_ood(str(tmp_path), None) == ("svhn", str(tmp_path / "svhn"))
    cfg = preset_config("cifar10", {"data_dir": str(tmp_path)})
    assert (cfg.ood_dataset, cfg.model) == ("svhn", "resnet")
    assert dataclasses.asdict(cfg)["optimizer"] == "sgd"
