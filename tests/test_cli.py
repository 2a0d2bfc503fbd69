"""The geomviz command: listing objectives, one-line errors, demo, `python -m geomviz`."""

from __future__ import annotations

import subprocess
import sys

from geomviz.cli import main


def test_objectives_lists_every_registered_objective(capsys):
    from geomviz.objectives import list_objectives

    assert main(["objectives"]) == 0
    out = capsys.readouterr().out
    for name in list_objectives():
        assert name in out
    assert "KL(softmax(z|z_y:=0) || softmax(z))" in out


def test_unknown_objective_is_one_line_no_traceback():
    r = subprocess.run([sys.executable, "-m", "geomviz", "objectives", "nope"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown objective 'nope'" in r.stderr
    assert "Traceback" not in r.stderr


def test_demo_trains_ce_and_tfsd_and_says_where(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--runs-dir", str(tmp_path), "--epochs", "1", "--no-dashboard"]) == 0
    out = capsys.readouterr().out
    demo = next(tmp_path.glob("demo-*"))
    assert sorted(p.name for p in demo.iterdir() if not p.name.startswith(".")) == \
        ["ce-s0", "tfsd-s0"]
    assert str(demo) in out
