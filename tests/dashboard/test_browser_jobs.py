"""AlignedUMAP's confirm and cancel in a real browser (Debian's Chromium via Playwright):
choosing it shows the estimate and a start button and starts nothing; start runs the job
in a child process; cancel kills that process and says so."""

from __future__ import annotations

import time

import pytest

from tests.dashboard.test_browser import CHROMIUM, FLAGS, GD
from tests.dashboard.test_jobs import P, T, _alive, quiet_app
from tests.helpers import serving

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install "
                                                          "chromium); .ci/run installs it")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("runs")
    with quiet_app(root) as app, serving(app.server) as url:
        yield url, app


def test_alignedumap_waits_for_start_and_cancel_kills_it(served, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    url, app = served
    jobs = app.server.extensions.setdefault("geomviz_jobs", {})
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM, headless=True,
            args=FLAGS, viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.goto(f"{url}/compare?a=w/ce-s0&b=w/tfsd-s0")
        page.wait_for_function(f"() => {{ const gd = {GD.format(side='left')}; "
                               "return gd && gd._fullData && gd._fullData.length > 0; }",
                               timeout=60_000)
        page.get_by_text("AlignedUMAP", exact=True).click()
        page.wait_for_function("() => document.querySelector('#compare-job-text').innerText"
                               ".includes('on this machine')", timeout=30_000)
        text = page.inner_text("#compare-job-text")
        assert f"2 runs × {T} steps × {P} points" in text, text
        assert page.is_visible("#compare-job-confirm") and not page.is_visible(
            "#compare-job-cancel")
        time.sleep(1.0)  # a poll or a late callback would have started it by now
        assert not [k for k in jobs if k[0] == "aligned_umap"]
        page.click("#compare-job-confirm")
        page.wait_for_selector("#compare-job-cancel", state="visible", timeout=30_000)
        (status,) = [s for k, s in jobs.items() if k[0] == "aligned_umap"]
        assert status["state"] == "running" and _alive(status["pid"])
        page.click("#compare-job-cancel")
        page.wait_for_function("() => document.querySelector('#compare-job-text').innerText"
                               ".includes('cancelled')", timeout=30_000)
        assert status["state"] == "cancelled" and not _alive(status["pid"])
        assert page.is_visible("#compare-job-confirm")  # it can be started again
        ctx.close()
