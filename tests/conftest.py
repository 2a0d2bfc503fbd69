"""Hypothesis profile shared by the suite (deterministic, no deadline)."""

from hypothesis import settings

settings.register_profile("default", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("default")


import shutil  # noqa: E402

import pytest  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """`geomviz study` on the gaussians preset: every study objective, seeds 0 and 1, one
    epoch, every figure exported to PNG and SVG (HTML only without a browser)."""
    from geomviz.cli import main

    out = tmp_path_factory.mktemp("study")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    formats = "png,svg,html" if CHROMIUM else "html"
    argv = ["study", "--preset", "gaussians", "--seeds", "0,1", "--epochs", "1",
            "--out", str(out), "--format", formats, "--no-progress"]
    assert main(argv) == 0
    yield out, argv
    mp.undo()
