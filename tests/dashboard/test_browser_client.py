"""The compare page's browser-side slider work (``pages/compare_client``): the snap equals its
Python reference on random cases, and on a mismatched pair every time panel's marker follows
its side's own step as the slider moves."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from geomviz.dashboard.views import snap_step
from tests.dashboard.test_browser import CHROMIUM, GD, browser  # noqa: F401 - the fixture
from tests.dashboard.test_steps import _make_run

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install "
                                                          "chromium); .ci/run installs it")


def _cases(n: int = 400) -> list[tuple]:
    """(value, shown, steps): on and between snapshots, outside them, and a missing shown."""
    g = np.random.default_rng(0)
    out = []
    for _ in range(n):
        steps = sorted({int(s) for s in g.integers(0, 500, g.integers(1, 12))})
        value = int(g.integers(-20, 520)) if g.random() < 0.7 else int(g.choice(steps))
        shown = None if g.random() < 0.1 else int(g.choice(steps))
        out.append((value, shown, steps))
    return out


def test_the_browsers_snap_equals_its_python_reference(browser):  # noqa: F811
    from geomviz.dashboard.pages.compare_client import SNAP_JS

    page = browser.new_page()
    cases = _cases()
    got = page.evaluate(f"""(cases) => {{ window.dash_clientside = {{no_update: "NU"}};
        const snap = {SNAP_JS}; return cases.map(c => snap(c[0], c[1], c[2])); }}""", cases)
    page.close()
    for (value, shown, steps), (shown_out, value_out) in zip(cases, got, strict=True):
        step = snap_step(value, steps[-1] if shown is None else shown, steps)
        assert shown_out == ("NU" if step == shown else step), (value, shown, steps)
        assert value_out == ("NU" if step == value else step), (value, shown, steps)


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory):
    """A 140-step run beside a 500-step one, served."""
    pytest.importorskip("dash")
    from werkzeug.serving import make_server

    from geomviz.dashboard import create_app

    root = tmp_path_factory.mktemp("runs")
    _make_run(root / "short", 0, [0, 20, 40, 70, 140], 140)
    _make_run(root / "long", 1, list(range(0, 501, 50)), 500)
    srv = make_server("127.0.0.1", 0, create_app(root).server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


MARKERS = """() => { const out = {};
    for (const el of document.querySelectorAll('#compare-panels [id^="{"]')) {
        const id = JSON.parse(el.id); const gd = el.querySelector('.js-plotly-plot');
        if (!gd || !gd.layout || !gd.layout.shapes) continue;
        out[id.panel + '/' + id.side] = gd.layout.shapes.map(s => s.x0); }
    return out; }"""


@pytest.mark.parametrize("overlay", [True, False])
def test_the_markers_follow_each_sides_own_step_in_the_browser(browser, mismatched,  # noqa: F811
                                                               overlay):
    page = browser.new_page()
    page.goto(f"{mismatched}/compare?a=short&b=long")
    page.wait_for_function(f"() => {GD.format(side='left')} && "
                           f"{GD.format(side='left')}._fullData", timeout=60_000)
    page.wait_for_function(f"() => Object.keys(({MARKERS})()).length > 2", timeout=60_000)
    if not overlay:  # side by side: a pair of panels per row, each with its side's marker
        page.get_by_text("overlay time series").click()
        page.wait_for_function(f"() => {{ const k = Object.keys(({MARKERS})()); return "
                               "k.length > 2 && !k.some(x => x.endsWith('/AB')); }",
                               timeout=60_000)

    def wait_for(left: int, right: int) -> dict:
        want = {"AB": [left, right], "left": [left], "right": [right]}
        check = f"""() => {{ const m = ({MARKERS})(); const want = {json.dumps(want)};
            return Object.keys(m).length > 2 && Object.entries(m).every(([k, xs]) =>
                want[k.split('/')[1]].every((x, i) => xs[i] === x)); }}"""
        page.wait_for_function(check, timeout=30_000)
        return page.evaluate(MARKERS)

    marks = wait_for(140, 500)
    assert any(k.endswith("/AB") for k in marks) == overlay
    page.focus("#compare-step [role=slider]")
    for step in (450, 400, 350, 300, 250):  # arrow keys: one snapshot of the long run each
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(f"() => {GD.format(side='right')}.layout.title.text"
                               f".endsWith('step {step}')", timeout=30_000)
    wait_for(70, 250)  # half way: step 70 of the short run
    page.close()
