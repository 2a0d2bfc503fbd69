"""The dashboard in a real browser (Debian's Chromium via Playwright): load the compare page,
move the slider, switch projection, hover-link the two sides, take a screenshot."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from geomviz.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install "
                                                          "chromium); .ci/run installs it")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("dash")
    root = tmp_path_factory.mktemp("runs")
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(cache))
    assert main(["compare", "--objectives", "ce,tfsd", "--seeds", "0", "--epochs", "2",
                 "--ood-classes", "8,9", "--name", "cmp", "--runs-dir", str(root),
                 "--snapshots", "6", "--snapshot-size", "200", "--snapshot-ood", "40",
                 "--no-progress"]) == 0
    from werkzeug.serving import make_server

    from geomviz.dashboard import create_app

    srv = make_server("127.0.0.1", 0, create_app(root).server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}", root
    srv.shutdown()
    mp.undo()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh profile per session
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM,
                                                   headless=True, args=FLAGS,
                                                   viewport={"width": 1400, "height": 1000})
        yield ctx
        ctx.close()


GD = "document.querySelector('#compare-{side}-graph .js-plotly-plot')"


def _data(page, side, expr):
    """Evaluate ``expr`` with ``gd`` the plot and ``d`` its decoded traces (typed arrays)."""
    return page.evaluate(f"() => {{ const gd = {GD.format(side=side)}; "
                         f"const d = gd._fullData.map(t => ({{x: Array.from(t.x || []), "
                         f"y: Array.from(t.y || []), customdata: Array.from(t.customdata || [])"
                         f"}})); return {expr}; }}")


def _open_compare(browser, url):
    """The CE-vs-TFSD compare page, once both manifolds are drawn."""
    page = browser.new_page()
    page.goto(f"{url}/compare?a=cmp/ce-s0&b=cmp/tfsd-s0")
    for side in ("left", "right"):
        page.wait_for_function(f"() => {{ const gd = {GD.format(side=side)}; "
                               "return gd && gd._fullData && gd._fullData.length > 2; }",
                               timeout=60_000)
    return page


def test_compare_page_slider_projection_hover(server, browser, tmp_path):
    url, _ = server
    page = _open_compare(browser, url)
    x_before = _data(page, "left", "d[0].x.slice(0, 5)")
    title = _data(page, "left", "gd.layout.title.text")
    # move the shared slider one step back: both manifolds get new x/y
    page.focus("#compare-step [role=slider]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => {GD.format(side='left')}.layout.title.text !== "
                           f"{title!r}", timeout=30_000)
    assert _data(page, "left", "d[0].x.slice(0, 5)") != x_before
    # switch to the polar view: x becomes the radius ‖x‖ >= 0
    page.get_by_text("polar (‖x‖, θ_y)").click()
    page.wait_for_function(f"() => Math.min(...Array.from({GD.format(side='left')}"
                           "._fullData[0].x)) >= 0", timeout=30_000)
    # hover a point on the left: the same probe example is ringed on the right
    cd = _data(page, "left", "d[0].customdata[0]")
    page.evaluate(f"() => {{ const gd = {GD.format(side='left')}; const t = gd._fullData[0]; "
                  "gd.emit('plotly_hover', {points: [{curveNumber: 0, pointNumber: 0, "
                  "customdata: t.customdata[0], x: t.x[0], y: t.y[0]}]}); }")
    page.wait_for_function(f"() => {{ const d = {GD.format(side='right')}._fullData; "
                           "return Array.from(d[d.length - 1].x || []).length === 1; }",
                           timeout=30_000)
    assert _data(page, "right", "d[d.length - 1].customdata[0]") == cd
    shot = tmp_path / "compare.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_runs_page_and_refused_paths(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#runs-table")
    text = page.inner_text("#runs-table")
    assert "cmp/ce-s0" in text and "finished" in text
    page.goto(f"{url}/compare?a=../../etc&b=cmp/tfsd-s0")
    page.wait_for_selector("#compare-error")
    assert "outside the runs folder" in page.inner_text("#compare-error")


def test_ood_panel_and_seed_groups(server, browser):
    url, _ = server
    page = _open_compare(browser, url)
    page.wait_for_selector("#compare-left-ood .ood-metrics", timeout=60_000)
    assert "auroc" in page.inner_text("#compare-left-ood")
    page.get_by_text("min_distance").click()  # linear heads have no distance score
    page.wait_for_function("() => document.querySelector('#compare-left-ood').innerText"
                           ".includes('no min_distance')", timeout=30_000)
    assert page.locator("#compare-right-ood .ood-metrics").count() == 1  # TFSD has it
    names = page.evaluate("() => document.querySelector('#compare-right-margins "
                          ".js-plotly-plot')._fullData.map(t => t.name)")
    assert "anchor_gap p50" in names and "nearest_negative p95" in names


def test_live_polling_is_off_for_finished_runs(server):
    _, root = server
    from geomviz.dashboard import create_app

    app = create_app(root)
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        page = compare.layout(a="cmp/ce-s0", b="cmp/tfsd-s0")

    def find(node, wanted):
        if getattr(node, "id", None) == wanted:
            return node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list) else [children]:
            if child is not None and not isinstance(child, str):
                hit = find(child, wanted)
                if hit is not None:
                    return hit
        return None

    assert find(page, "compare-live").disabled is True


def test_aligned_umap_is_computed_in_the_background(server, browser):
    pytest.importorskip("umap")
    url, _ = server
    page = _open_compare(browser, url)
    pca_x = _data(page, "left", "d[0].x.slice(0, 5)")
    page.get_by_text("AlignedUMAP").click()
    page.wait_for_function("() => document.querySelector('#compare-message').innerText"
                           ".includes('background')", timeout=30_000)
    # PCA stays on screen meanwhile; when the job is done the UMAP embedding replaces it
    page.wait_for_function("() => document.querySelector('#compare-message').innerText === ''",
                           timeout=400_000)
    page.wait_for_function(
        f"() => JSON.stringify(Array.from({GD.format(side='left')}._fullData[0].x).slice(0, 5))"
        f" !== {json.dumps(json.dumps(pca_x))}", timeout=60_000)


def test_download_figures_gives_the_cli_files(server, browser, tmp_path):
    import zipfile

    from geomviz.study.figureset import FIGURES

    url, _ = server
    page = _open_compare(browser, url)
    with page.expect_download(timeout=120_000) as info:
        page.click("#compare-download-button")
    path = tmp_path / "figures.zip"
    info.value.save_as(path)
    names = set(zipfile.ZipFile(path).namelist())
    drawn = set(FIGURES) - {"target_vs_bayes"}  # mnist1d runs: no known posterior
    assert {f"{n}.{e}" for n in drawn for e in ("png", "svg", "html")} <= names
    assert "plotly.min.js" in names and not any(n.startswith("target_vs_bayes") for n in names)
    assert "target_vs_bayes" in page.inner_text("#compare-message")
    page.close()
