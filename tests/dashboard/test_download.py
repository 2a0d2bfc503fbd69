"""The dashboard's figure download: the files `geomviz figures` writes, zipped."""

from __future__ import annotations

import io
import zipfile

from geomviz.dashboard.download import figure_zip


def test_zip_without_a_browser_holds_html_and_says_why(tiny_study, tmp_path, monkeypatch):
    out, _ = tiny_study
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "missing"))
    folders = [out / "runs" / "ce-s0", out / "runs" / "tfsd-s0"]
    data, message = figure_zip(out / "runs", folders, ["ood", "norm_growth"], ["png", "svg"])
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == ["norm_growth.html", "ood.html", "plotly.min.js"]
    assert "apt-get install chromium" in message and "HTML" in message
