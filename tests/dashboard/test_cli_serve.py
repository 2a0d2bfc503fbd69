"""Issue 24, defect 10: `geomviz demo --help` describes every flag with its default, and
`demo --no-dashboard` says how to open the dashboard on the runs afterwards."""

from __future__ import annotations

import re

import pytest

from geomviz.cli import main


def test_demo_help_describes_every_flag_and_its_default(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    options = text.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", options)[1:]
    flags = [entry.split()[0].rstrip(",") for entry in entries]
    assert {"--runs-dir", "--epochs", "--dashboard", "--host", "--port"} <= set(flags)
    for entry in entries:
        if entry.startswith("-h"):
            continue
        words = " ".join(entry.split())
        assert "default" in words, words  # a description that names the default


def test_demo_without_dashboard_says_how_to_open_it(tmp_path, capsys, monkeypatch):
    import geomviz.cli_serve as serve

    monkeypatch.setattr(serve, "_compare", lambda *a, **k: 0)  # the training is tested elsewhere
    assert main(["demo", "--runs-dir", str(tmp_path), "--no-dashboard"]) == 0
    out = capsys.readouterr().out
    root = next(line for line in out.splitlines() if "geomviz dashboard" in line)
    assert re.search(r"geomviz dashboard \S*demo-\d{8}-\d{6}", root)
    assert "/compare?a=ce-s0&b=tfsd-s0" in out
