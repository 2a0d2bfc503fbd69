"""Static and HTML export: real files of the right size, one browser, a clear error without one."""

from __future__ import annotations

import struct

import pytest

from geomviz.cli import main
from geomviz.study.export import ExportError, browser_path, export, parse_formats
from geomviz.study.figureset import FIGURES, LM_FIGURES, NOISE_FIGURES
from tests.conftest import CHROMIUM

needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install "
                                                             "chromium); .ci/run installs it")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_size(path) -> tuple[float, float]:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return float(root.get("width")), float(root.get("height"))


@needs_browser
def test_every_figure_exported_to_png_and_svg_at_size(tiny_study):
    from geomviz.study.figureset import build_figures, find_runs

    out, _ = tiny_study
    figs = build_figures(find_runs([out / "runs"]))
    # gaussians: no tokens, no label noise
    assert set(figs.figures) == set(FIGURES) - set(LM_FIGURES) - set(NOISE_FIGURES)
    assert set(figs.skipped) == set(LM_FIGURES) | set(NOISE_FIGURES)
    for name, fig in figs.figures.items():
        png, svg = out / "figures" / f"{name}.png", out / "figures" / f"{name}.svg"
        assert 10_000 < png.stat().st_size < 5_000_000, name
        assert 5_000 < svg.stat().st_size < 5_000_000, name
        assert png_size(png) == (1600, 2 * fig.layout.height), name  # 800 px at scale 2
        assert svg_size(svg) == (800, fig.layout.height), name


def test_html_is_offline_and_shares_one_plotly_js(tiny_study):
    out, _ = tiny_study
    pages = sorted((out / "figures").glob("*.html"))
    assert {p.stem for p in pages} == set(FIGURES) - set(LM_FIGURES) - set(NOISE_FIGURES)
    for page in pages:
        text = page.read_text()
        assert 'src="plotly.min.js"' in text and "cdn.plot.ly" not in text
    assert (out / "figures" / "plotly.min.js").stat().st_size > 1_000_000


@needs_browser
def test_pdf_and_width_scale(tmp_path):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 1]))
    fig.update_layout(width=800, height=400)
    res = export({"f": fig}, tmp_path, ["pdf", "png"], width=400, scale=1)
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert png_size(tmp_path / "f.png") == (400, 200)  # the shape is kept
    assert res.static_seconds > 0 and len(res.files) == 2


def test_missing_browser_names_the_fix_and_html_still_works(tiny_study, tmp_path, monkeypatch,
                                                             capsys):
    out, _ = tiny_study
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    assert browser_path() is None
    dest = tmp_path / "figs"
    code = main(["figures", str(out / "runs"), "--out", str(dest), "--format", "html,png",
                 "--only", "gradient_split,summary_table"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "apt-get install chromium" in err and "BROWSER_PATH" in err and "html" in err
    assert sorted(p.name for p in dest.glob("*.html")) == ["gradient_split.html",
                                                           "summary_table.html"]
    assert not list(dest.glob("*.png"))


def test_bad_formats_and_sizes():
    assert parse_formats("PNG, .svg,png") == ["png", "svg"]
    with pytest.raises(ExportError, match="unknown format 'eps'"):
        parse_formats("png,eps")
    with pytest.raises(ExportError, match="width"):
        export({}, "/tmp", ["html"], width=10)
