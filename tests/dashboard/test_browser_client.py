"""The compare page's browser-side slider work (``pages/compare_client``): the snap equals its
Python reference on random cases, and on a mismatched pair every time panel's marker follows
its side's own step as the slider moves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geomviz.dashboard.views import nearest_step, next_step
from tests.dashboard.test_browser import CHROMIUM, GD, browser  # noqa: F401 - the fixture
from tests.dashboard.test_steps import _make_run
from tests.helpers import serving

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install "
                                                          "chromium); .ci/run installs it")


def _cases(n: int = 400) -> list[tuple]:
    """(value, direction, steps): on and between snapshots, outside them, ties included."""
    g = np.random.default_rng(0)
    out = []
    for _ in range(n):
        steps = sorted({int(s) for s in g.integers(0, 500, g.integers(1, 12))})
        value = float(g.integers(-20, 520)) if g.random() < 0.6 else (
            float(g.choice(steps)) if g.random() < 0.5 else float(g.integers(0, 1000)) / 2)
        out.append((value, int(g.choice([-1, 1])), steps))
    return out


def test_the_browsers_snap_and_keys_equal_their_python_references(browser):  # noqa: F811
    from geomviz.dashboard.pages.compare_client import NEAREST_JS, NEXT_JS

    page = browser.new_page()
    cases = _cases()
    got = page.evaluate(f"""(cases) => {{ const nearest = {NEAREST_JS}; const next = {NEXT_JS};
        return cases.map(c => [nearest(c[0], c[2]), next(c[0], c[1], c[2])]); }}""", cases)
    page.close()
    for (value, direction, steps), (near, after) in zip(cases, got, strict=True):
        assert near == nearest_step(value, steps), (value, steps)
        assert after == next_step(value, direction, steps), (value, direction, steps)


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory):
    """A 140-step run beside a 500-step one, served."""
    pytest.importorskip("dash")
    from geomviz.dashboard import create_app

    root = tmp_path_factory.mktemp("runs")
    _make_run(root / "short", 0, [0, 20, 40, 70, 140], 140)
    _make_run(root / "long", 1, list(range(0, 501, 50)), 500)
    with serving(create_app(root).server) as url:
        yield url


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


def _shown(page) -> int:
    return int(page.evaluate(f"() => {GD.format(side='right')}.layout.title.text")
               .rsplit("step ", 1)[1])


def test_a_slow_drag_never_bounces_and_quick_keys_each_move_a_snapshot(browser,  # noqa: F811
                                                                       mismatched):
    """Dragging left 2 px at a time: the step shown only ever goes down (the written-back
    snapshot and the pointer fought: 450, 500, 450, 500...), and the release lands the thumb
    on the snapshot shown; two arrow presses in a row move two snapshots."""
    page = browser.new_page()
    page.goto(f"{mismatched}/compare?a=short&b=long")
    page.wait_for_function(f"() => {GD.format(side='right')} && "
                           f"{GD.format(side='right')}._fullData", timeout=60_000)
    thumb = page.locator("#compare-step [role=slider]")
    box = thumb.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    seen = []
    for _ in range(40):
        x -= 4
        page.mouse.move(x, y)
        page.wait_for_timeout(60)
        seen.append(_shown(page))
    page.mouse.up()
    assert seen == sorted(seen, reverse=True) and seen[-1] < 500, seen
    page.wait_for_function("() => document.querySelector('#compare-step [role=slider]')"
                           f".getAttribute('aria-valuenow') === String({_shown(page)})",
                           timeout=30_000)
    assert _shown(page) % 50 == 0  # a snapshot of the long run
    page.keyboard.press("End")
    page.wait_for_function(f"() => {GD.format(side='right')}.layout.title.text"
                           ".endsWith('step 500')", timeout=30_000)
    thumb.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => {GD.format(side='right')}.layout.title.text"
                           ".endsWith('step 400')", timeout=30_000)
    page.wait_for_timeout(500)
    assert _shown(page) == 400
    page.close()


def test_a_typed_step_lands_on_the_nearest_snapshot(browser, mismatched):  # noqa: F811
    """A number typed into the slider's box: once the box is left (Dash's slider keeps the
    typed text while it has the focus, and an out-of-range one until then), both the
    manifolds and the box are at the nearest snapshot (the old snap went down: 237 to 200)."""
    page = browser.new_page()
    page.goto(f"{mismatched}/compare?a=short&b=long")
    page.wait_for_function(f"() => {GD.format(side='right')} && "
                           f"{GD.format(side='right')}._fullData", timeout=60_000)
    box = page.locator("#compare-step input")
    if not box.count():
        pytest.skip("this Dash's slider has no number box")
    for typed, lands in (("237", 250), ("999", 500), ("-3", 0)):
        box.first.fill(typed)
        box.first.press("Enter")
        box.first.press("Tab")
        page.wait_for_function(f"() => {GD.format(side='right')}.layout.title.text"
                               f".endsWith('step {lands}')", timeout=30_000)
        page.wait_for_function(f"() => document.querySelector('#compare-step input').value "
                               f"=== '{lands}'", timeout=30_000)
    page.close()
