"""Dashboard screenshots for the docs, made as the browser tests make theirs: a tiny CE vs
TFSD comparison (2 seeds, 2 epochs), the real app on a local port, Playwright driving
Debian's Chromium (never a downloaded browser).

    python tests/docs/screenshots.py                 # docs/generated/{runs,compare,groups}.png
    python tests/docs/screenshots.py --readme docs/assets/compare.png   # + the README image

docs/generated/ is git-ignored: tests/docs/test_build.py runs this before the strict build.
The README image is the one committed picture (kept under 150 KB); remake it with the
second command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "docs" / "generated"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GD = "document.querySelector('#compare-{side}-graph .js-plotly-plot')"
README_BYTES = 150_000


def _runs(root: Path) -> None:
    """The comparison the screenshots show (seconds on a CPU)."""
    from geomviz.cli import main

    argv = ["compare", "--objectives", "ce,tfsd", "--seeds", "0,1", "--epochs", "2",
            "--ood-classes", "8,9", "--name", "cmp", "--runs-dir", str(root),
            "--snapshots", "6", "--snapshot-size", "200", "--snapshot-ood", "40",
            "--no-progress"]
    if main(argv) != 0:
        raise SystemExit("screenshots: training the tiny comparison failed")


def _drawn(page) -> None:
    """Wait until both manifolds of a compare page are drawn."""
    for side in ("left", "right"):
        page.wait_for_function(f"() => {{ const gd = {GD.format(side=side)}; "
                               "return gd && gd._fullData && gd._fullData.length > 2; }",
                               timeout=60_000)
    page.wait_for_timeout(1500)  # the time panels finish after the manifolds


def _small_png(src: Path, dest: Path) -> None:
    """The README picture: the compare page's top, scaled and palette-quantised."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    img = img.crop((0, 0, img.width, min(img.height, int(img.width * 0.62))))
    for width in (1000, 900, 800, 700):
        small = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        small.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)
        if dest.stat().st_size <= README_BYTES:
            return
    raise SystemExit(f"screenshots: {dest} is over {README_BYTES} bytes")


def make(out: Path = GENERATED, readme: Path | None = None) -> list[Path]:
    """Write the screenshots into ``out`` (and the README image to ``readme``); their paths."""
    if CHROMIUM is None:
        raise SystemExit("screenshots: needs Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from tests.helpers import serving

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "runs", Path(tmp) / "cache"
        os.environ["GEOMVIZ_CACHE"] = str(cache)
        _runs(root)
        from geomviz.dashboard import create_app

        shots = []
        with serving(create_app(root).server) as url:
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    str(Path(tmp) / "profile"), executable_path=CHROMIUM, headless=True,
                    args=FLAGS, viewport={"width": 1400, "height": 1000})
                page = ctx.new_page()
                page.set_viewport_size({"width": 1000, "height": 600})  # a narrow table
                page.goto(url)
                page.wait_for_selector("#runs-groups a", timeout=60_000)
                shots.append(out / "runs.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                page.set_viewport_size({"width": 1400, "height": 1000})
                page.goto(f"{url}/compare?a=cmp/ce-s0&b=cmp/tfsd-s0")
                _drawn(page)
                shots.append(out / "compare.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                page.goto(f"{url}/compare?ga=cmp/ce&gb=cmp/tfsd")
                _drawn(page)
                shots.append(out / "groups.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                ctx.close()
    if readme is not None:
        _small_png(out / "compare.png", readme)
        shots.append(readme)
    return shots


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=GENERATED)
    ap.add_argument("--readme", type=Path, default=None,
                    help="also write the README's small compare-page picture here")
    args = ap.parse_args()
    for path in make(args.out, args.readme):
        print(path)
