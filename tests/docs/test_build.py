"""`mkdocs build --strict` passes (after tests/docs/screenshots.py has made the dashboard
screenshots the guide shows), and fails on what it must catch: a broken link, a page missing
from the navigation, an API reference to a name that does not exist, a missing include."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.snippets import ROOT

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "-f", str(root / "mkdocs.yml"), "-d", str(site)], cwd=root,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.mark.skipif(CHROMIUM is None, reason="the dashboard guide's screenshots need Chromium "
                                             "(apt-get install chromium); .ci/run installs it")
def test_the_site_builds_strictly_with_fresh_screenshots(tmp_path):
    pytest.importorskip("playwright")
    res = subprocess.run([sys.executable, str(ROOT / "tests/docs/screenshots.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("runs", "compare", "groups"):
        assert (ROOT / "docs/generated" / f"{name}.png").stat().st_size > 10_000
    res = _build(ROOT, tmp_path / "site")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    api = (tmp_path / "site/reference/api/index.html").read_text()
    assert "create_objective" in api and "apply_tfsd" in api  # mkdocstrings rendered it
    # the built site fetches nothing at run time: no Google Fonts, no CDN
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, page


@pytest.fixture
def copy(tmp_path):
    """The docs and config in a scratch folder, screenshots stood in for by empty files."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", root)
    shutil.copytree(ROOT / "docs", root / "docs", ignore=shutil.ignore_patterns("generated"))
    for name in ("geomviz", "examples"):  # the API's source, the included examples
        (root / name).symlink_to(ROOT / name)
    (root / "docs/generated").mkdir()
    for name in ("runs", "compare", "groups"):
        (root / "docs/generated" / f"{name}.png").write_bytes(b"")
    return root


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_scratch_copy_builds_as_it_is(copy, tmp_path):
    res = _build(copy, tmp_path / "site")
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("breakage", ["link", "anchor", "page", "api", "include",
                                      "screenshot"])
def test_the_strict_build_fails_on(copy, tmp_path, breakage):
    if breakage == "link":
        _append(copy / "docs/index.md", "\n[gone](reference/nope.md)\n")
    elif breakage == "anchor":
        _append(copy / "docs/index.md", "\n[gone](reference/probes.md#no-such-section)\n")
    elif breakage == "page":
        (copy / "docs/orphan.md").write_text("# Not in the navigation\n")
    elif breakage == "api":
        _append(copy / "docs/reference/api.md", "\n::: geomviz.no_such_function\n")
    elif breakage == "include":
        _append(copy / "docs/index.md", '\n```python\n--8<-- "examples/nope.py"\n```\n')
    else:
        (copy / "docs/generated/compare.png").unlink()
    assert _build(copy, tmp_path / "site").returncode != 0
