"""The dashboard in a real browser (Debian's Chromium via Playwright): load the compare page,
move the slider, switch projection, hover-link the two sides; shared ranges, titled axes and
no overlapping text at 1280 and 1920 px; the seed-group page; a screenshot."""

from __future__ import annotations

import shutil

import pytest

from geomviz.cli import main
from tests.helpers import serving

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
    assert main(["compare", "--objectives", "ce,tfsd", "--seeds", "0,1", "--epochs", "2",
                 "--ood-classes", "8,9", "--name", "cmp", "--runs-dir", str(root),
                 "--snapshots", "6", "--snapshot-size", "200", "--snapshot-ood", "40",
                 "--no-progress"]) == 0
    from geomviz.dashboard import create_app

    with serving(create_app(root).server) as url:
        yield url, root
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


def _steps(root, run="cmp/ce-s0"):
    from geomviz.store import open_run

    with open_run(root / run) as r:
        return r.array_steps("snapshot.features")


def test_compare_page_slider_projection_hover(server, browser, tmp_path):
    url, root = server
    steps = _steps(root)
    page = _open_compare(browser, url)
    box = page.locator("#compare-step input")
    assert box.count() == 0 or box.first.input_value() == str(steps[-1])  # a step, not index
    x_before = _data(page, "left", "d[0].x.slice(0, 5)")
    title = _data(page, "left", "gd.layout.title.text")
    assert title.endswith(f"step {steps[-1]}")
    # move the shared slider one step back: both manifolds get new x/y
    page.focus("#compare-step [role=slider]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => {GD.format(side='left')}.layout.title.text !== "
                           f"{title!r}", timeout=30_000)
    assert _data(page, "left", "gd.layout.title.text").endswith(f"step {steps[-2]}")
    if box.count():
        assert box.first.input_value() == str(steps[-2])
    assert _data(page, "left", "d[0].x.slice(0, 5)") != x_before
    labels = page.locator("#compare-step").inner_text()
    assert str(steps[-1]) in labels  # the marks are steps too
    # switch to the polar view: x becomes the radius ‖x‖ >= 0
    page.get_by_text("polar (‖x‖, θ_y)").click()
    page.wait_for_function(f"() => Math.min(...Array.from({GD.format(side='left')}"
                           "._fullData[0].x)) >= 0", timeout=30_000)
    # hover a point on the left: the same probe example is ringed on the right
    cd = _data(page, "left", "d[0].customdata[0][0]")
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
    page.close()


PLOTS = "Array.from(document.querySelectorAll('.js-plotly-plot'))"
RANGES = ("(gd) => ({x: gd._fullLayout.xaxis.range, y: gd._fullLayout.yaxis.range})")


def _panel_ranges(page):
    """``{panel: {side: {x, y}}}`` of every time panel on the page."""
    return page.evaluate(f"""() => {{ const out = {{}};
        for (const el of document.querySelectorAll('[id^="{{"]')) {{
            const id = JSON.parse(el.id); const gd = el.querySelector('.js-plotly-plot');
            if (!gd || !gd._fullLayout) continue;
            (out[id.panel] = out[id.panel] || {{}})[id.side] = ({RANGES})(gd); }}
        return out; }}""")


def _untitled_axes(page):
    return page.evaluate(f"""() => {{ const bad = [];
        for (const gd of {PLOTS}) {{ const L = gd._fullLayout; if (!L) continue;
            for (const k of Object.keys(L)) {{
                if (!/^[xy]axis[0-9]*$/.test(k) || !L[k].visible) continue;
                const t = L[k].title && L[k].title.text;
                if (!t || !String(t).trim()) bad.push((gd.parentElement.id || '?') + ':' + k);
            }} }}
        return bad; }}""")


def _overlaps(page):
    """Pairs of text boxes (titles, axis titles, legends, colour bars, notes) that overlap
    inside one plot, and controls cut off at the left edge."""
    return page.evaluate(f"""() => {{ const bad = [];
        const sel = '.gtitle, .g-xtitle, .g-ytitle, .g-y2title, .legend, .colorbar, ' +
                    '.annotation';
        for (const gd of {PLOTS}) {{
            const boxes = Array.from(gd.querySelectorAll(sel)).map(e => [e.getAttribute(
                'class'), e.getBoundingClientRect()]).filter(([, r]) => r.width > 0 &&
                r.height > 0);
            for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {{
                const [na, a] = boxes[i], [nb, b] = boxes[j];
                const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
                const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
                if (w > 2 && h > 2) bad.push((gd.parentElement.id || '?') + ': ' + na + ' / ' + nb);
            }} }}
        for (const e of document.querySelectorAll('.controls label, .radios label, .note'))
            if (e.getBoundingClientRect().left < 0) bad.push('cut off: ' + e.innerText);
        return bad; }}""")


def _unequal_areas(page):
    """Pairs (the two manifolds, each side-by-side time panel) whose plot areas (the main
    drag rectangle) differ in width or height by more than a pixel."""
    return page.evaluate("""() => { const area = el => { const r = el && el.querySelector(
            '.nsewdrag[data-subplot="xy"]'); if (!r) return null;
            const b = r.getBoundingClientRect(); return [b.width, b.height]; };
        const pairs = {manifold: {left: area(document.querySelector('#compare-left-graph')),
                                  right: area(document.querySelector('#compare-right-graph'))}};
        for (const el of document.querySelectorAll('[id^="{"]')) {
            const id = JSON.parse(el.id); if (id.side === 'AB') continue;
            (pairs[id.panel] = pairs[id.panel] || {})[id.side] = area(el); }
        const bad = [];
        for (const [k, p] of Object.entries(pairs)) {
            if (!p.left || !p.right) { bad.push(k + ': missing'); continue; }
            if (Math.abs(p.left[0] - p.right[0]) > 1 || Math.abs(p.left[1] - p.right[1]) > 1)
                bad.push(k + ': ' + p.left + ' vs ' + p.right); }
        return bad; }""")


def test_shared_ranges_titles_and_no_overlaps(server, browser):
    url, _ = server
    page = _open_compare(browser, url)
    page.wait_for_selector('[id^="{"] .js-plotly-plot', timeout=30_000)
    # manifolds: one x/y range for both sides; a continuous colouring: one colour range
    left, right = (page.evaluate(f"() => ({RANGES})({GD.format(side=s)})")
                   for s in ("left", "right"))
    assert left == right
    page.click("#compare-color")
    page.get_by_text("target entropy H(p) (nats)").click()
    # trace 0 is the OOD crosses, drawn first (under the rest); trace 1 the coloured points
    page.wait_for_function(f"() => {GD.format(side='right')}._fullData[1].marker.cmin === 0",
                           timeout=30_000)
    cl, cr = (_data(page, s, "[gd._fullData[1].marker.cmin, gd._fullData[1].marker.cmax]")
              for s in ("left", "right"))
    assert cl == cr and cl[0] == 0 and cl[1] > 0  # CE's zero entropy is not "-0.5…0.5"
    # overlay (default): A and B on one axis per panel, in their objective colours
    overlay = _panel_ranges(page)
    assert overlay and all(set(v) == {"AB"} for v in overlay.values())
    # side by side: each pair shares its x and y ranges
    page.get_by_text("overlay time series").click()
    page.wait_for_function("() => Array.from(document.querySelectorAll('[id^=\"{\"]'))"
                           ".some(e => JSON.parse(e.id).side === 'left' && "
                           "e.querySelector('.js-plotly-plot'))", timeout=30_000)
    page.wait_for_timeout(1500)
    pairs = _panel_ranges(page)
    assert {"norm", "radial", "entropy", "loss"} <= set(pairs)
    for panel, sides in pairs.items():
        assert set(sides) == {"left", "right"}, panel
        assert sides["left"] == sides["right"], panel
    for width in (1280, 1920):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(1200)  # plotly relayouts on resize
        assert _untitled_axes(page) == [], width
        assert _overlaps(page) == [], width
    # a colour bar on one side only (CE has a true logit, TFSD an anchor gap): the paired
    # plot areas stay equal, as do those of every side-by-side time panel
    for coloring in ("true logit z_y (logit units)", "anchor gap s·‖x − c_y‖² (logit units)"):
        page.click("#compare-color")
        page.get_by_text(coloring).click()
        page.wait_for_timeout(1500)
        for width, height in ((1280, 800), (1920, 1080)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(1200)
            assert _unequal_areas(page) == [], (coloring, width)
            assert _overlaps(page) == [], (coloring, width)
    page.get_by_text("overlay time series").click()
    page.wait_for_timeout(1500)
    for width in (1280, 1920):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(1200)
        assert _untitled_axes(page) == [], width
        assert _overlaps(page) == [], width
    page.close()


def test_seed_group_page(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#runs-groups a")
    href = page.locator("#runs-groups a").first.get_attribute("href")
    assert "ga=" in href and "gb=" in href
    page.goto(f"{url}/compare?ga=cmp/ce&gb=cmp/tfsd")
    for side in ("left", "right"):
        page.wait_for_function(f"() => {{ const gd = {GD.format(side=side)}; "
                               "return gd && gd._fullData && gd._fullData.length > 2; }",
                               timeout=60_000)
    page.wait_for_selector('[id^="{"] .js-plotly-plot', timeout=30_000)
    bands = page.evaluate(f"() => {PLOTS}.map(gd => (gd._fullData || []).filter("
                          "t => t.fill === 'toself').length)")
    assert sum(bands) >= 4  # mean and min-max band for both groups on several panels
    assert "2 seeds" in page.inner_text("body")
    page.click("#compare-left-seed")
    page.get_by_text("cmp/ce-s1").last.click()
    page.wait_for_function(f"() => {GD.format(side='left')}.layout.title.text"
                           ".startsWith('cmp/ce-s1')", timeout=30_000)
    page.close()


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
                           ".includes('only Euclidean')", timeout=30_000)
    assert page.locator("#compare-right-ood .ood-metrics").count() == 1  # TFSD has it
    page.wait_for_selector('[id*="anchor_gap"] .js-plotly-plot', timeout=30_000)
    names = page.evaluate("() => document.querySelector('[id*=\"anchor_gap\"] "
                          ".js-plotly-plot')._fullData.map(t => t.name)")
    assert any("anchor_gap p50" in n for n in names)
    assert any("nearest_negative p95" in n for n in names)
    page.close()


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


def test_fast_aligned_view_is_computed_in_the_background(server, browser):
    pytest.importorskip("umap")
    url, _ = server
    page = _open_compare(browser, url)
    pca_x = _data(page, "left", "d[0].x.slice(0, 5)")
    # the page started the fast view in the background when it loaded; until it is done
    # the message says so and PCA stays on screen, then the UMAP embedding replaces it
    page.get_by_text("aligned UMAP (fast)").click()
    page.wait_for_timeout(500)
    message = page.inner_text("#compare-message")
    assert message == "" or "background" in message, message
    page.wait_for_function("() => document.querySelector('#compare-message').innerText === ''",
                           timeout=180_000)
    for side in ("left", "right"):
        page.wait_for_function(f"() => {GD.format(side=side)}.layout.xaxis.title.text"
                               ".startsWith('UMAP 1')", timeout=60_000)
    assert _data(page, "left", "d[0].x.slice(0, 5)") != pca_x
    left, right = (page.evaluate(f"() => ({RANGES})({GD.format(side=s)})")
                   for s in ("left", "right"))
    assert left == right  # one scale for both runs' embeddings
    page.close()


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
    from geomviz.study.figureset import LM_FIGURES, NOISE_FIGURES

    # mnist1d: no posterior, no tokens, no label noise
    drawn = set(FIGURES) - {"target_vs_bayes", *LM_FIGURES, *NOISE_FIGURES}
    assert {f"{n}.{e}" for n in drawn for e in ("png", "svg", "html")} <= names
    assert "plotly.min.js" in names and not any(n.startswith("target_vs_bayes") for n in names)
    assert "target_vs_bayes" in page.inner_text("#compare-message")
    page.close()


@pytest.fixture(scope="module")
def lm_server(tmp_path_factory):
    """The dashboard over the tiny synonym-language runs (CE and TFSD)."""
    pytest.importorskip("dash")
    from geomviz.dashboard import create_app
    from tests.lm_runs import lm_runs

    root = lm_runs(tmp_path_factory)
    with serving(create_app(root).server) as url:
        yield url, root


CV = "document.querySelector('#compare-{side}-classes .js-plotly-plot')"


def test_lm_hover_shows_tokens_and_class_vectors_follow_the_slider(lm_server, browser):
    url, root = lm_server
    steps = _steps(root, "lm/ce-s0")
    page = browser.new_page()
    page.goto(f"{url}/compare?a=lm/ce-s0&b=lm/tfsd-s0")
    for sel in (GD, CV):  # points (one trace: 96 synonym sets), OOD if any, selection ring
        for side in ("left", "right"):
            page.wait_for_function(f"() => {{ const gd = {sel.format(side=side)}; "
                                   "return gd && gd._fullData && gd._fullData.length >= 2; }",
                                   timeout=60_000)
    # hover the first point of the left manifold with the mouse: the label shows tokens
    pos = page.evaluate(f"""() => {{ const gd = {GD.format(side='left')};
        const t = gd._fullData.findIndex(d => d.name !== 'OOD' && (d.x || []).length > 0);
        const L = gd._fullLayout, r = gd.getBoundingClientRect(), d = gd._fullData[t];
        return [r.left + L._size.l + L.xaxis.l2p(d.x[0]),
                r.top + L._size.t + L.yaxis.l2p(d.y[0])]; }}""")
    page.mouse.move(pos[0] + 3, pos[1] + 3)
    page.mouse.move(pos[0], pos[1])
    page.wait_for_function(f"() => {GD.format(side='left')}.querySelector('.hoverlayer')"
                           ".textContent.includes('→')", timeout=30_000)
    hover = page.evaluate(f"() => {GD.format(side='left')}.querySelector('.hoverlayer')"
                          ".textContent")
    assert "tokens" in hover and "c" in hover.split("→")[1], hover
    # the class-vector manifold: both sides on one scale, moving with the step slider
    ranges = [page.evaluate(f"() => ({RANGES})({CV.format(side=s)})") for s in ("left", "right")]
    assert ranges[0] == ranges[1]
    title = page.evaluate(f"() => {CV.format(side='left')}.layout.title.text")
    assert title.endswith(f"class vectors · step {steps[-1]}")
    xs = page.evaluate(f"() => {CV.format(side='left')}._fullData.map(t => Array.from(t.x || []))")
    page.focus("#compare-step [role=slider]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => {CV.format(side='left')}.layout.title.text.endsWith("
                           f"'step {steps[-2]}')", timeout=30_000)
    page.wait_for_timeout(300)
    moved = page.evaluate(f"() => {CV.format(side='left')}._fullData.map("
                          "t => Array.from(t.x || []))")
    assert sum(map(len, moved)) == sum(map(len, xs)) and moved != xs
    # the token time panels, overlaid and side by side: titled, nothing overlapping
    page.wait_for_selector('[id*="synonym_entropy"] .js-plotly-plot', timeout=30_000)
    for overlaid in (True, False):
        if not overlaid:
            page.get_by_text("overlay time series").click()
            page.wait_for_function("() => Array.from(document.querySelectorAll('[id^=\"{\"]'))"
                                   ".some(e => JSON.parse(e.id).side === 'left' && "
                                   "e.querySelector('.js-plotly-plot'))", timeout=30_000)
        for width in (1280, 1920):
            page.set_viewport_size({"width": width, "height": 1000})
            page.wait_for_timeout(1200)
            assert _untitled_axes(page) == [], (overlaid, width)
            assert _overlaps(page) == [], (overlaid, width)
    panels = _panel_ranges(page)
    assert {"truth_kl", "synonym_entropy", "single_entropy", "tearing"} <= set(panels)
    for panel in ("truth_kl", "synonym_entropy", "tearing"):
        assert panels[panel]["left"] == panels[panel]["right"], panel
    # 96 synonym sets: pick one, it is drawn on top and named in the legend on both
    # manifolds and the class vectors, the OOD crosses stay under the rest
    import re

    page.set_viewport_size({"width": 1400, "height": 1000})
    page.click("#compare-color")
    page.get_by_text("synonym set / concept of the target token").click()
    page.wait_for_selector("#compare-focus", state="visible", timeout=30_000)
    page.click("#compare-focus")
    page.get_by_text(re.compile(r"^set \d+: ")).first.click()
    for sel in (GD, CV):
        page.wait_for_function(f"() => {sel.format(side='right')}._fullData.some("
                               "t => /^set \\d+$/.test(t.name) && t.showlegend)",
                               timeout=30_000)
    names = page.evaluate(f"() => {GD.format(side='left')}._fullData.map(t => t.name)")
    assert names[0] == "OOD" and re.fullmatch(r"set \d+", names[-2]), names
    page.close()
