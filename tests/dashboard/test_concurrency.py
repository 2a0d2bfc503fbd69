"""Concurrent requests on a live, training run: threads on the real app (HTTP, threaded
server) and on the projection cache all succeed with identical results, and no temporary
file is left behind (the cache writes unique temporaries and renames them atomically)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from geomviz.store import open_run
from tests.helpers import serving

REPO = Path(__file__).resolve().parents[2]
N = 8


def _steps(folder: Path) -> list[int]:
    try:
        with open_run(folder) as run:
            return run.array_steps("snapshot.features")
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return []


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]),
        "GEOMVIZ_CACHE": str(tmp_path_factory.mktemp("cache"))}
    proc = subprocess.Popen([sys.executable, "-m", "geomviz", "train", "--objective", "tfsd",
                             "--epochs", "400", "--snapshots", "4", "--snapshot-size", "300",
                             "--out", str(root / "live"), "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while len(_steps(root / "live")) < 2 and time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.3)
    assert len(_steps(root / "live")) >= 2, "no snapshots within 90 s"
    yield root
    proc.terminate()
    proc.wait(timeout=30)


def _burst(fn, tries: int = 3, folder: Path | None = None):
    """Run ``fn`` in N threads released at once; retry when a new snapshot landed mid-burst
    (the runs's data changed, so different answers would be right)."""
    for _ in range(tries):
        before = _steps(folder)
        barrier = threading.Barrier(N)

        def go(_i, barrier=barrier):
            barrier.wait()
            return fn()

        with ThreadPoolExecutor(N) as pool:
            results = list(pool.map(go, range(N)))  # any exception fails the test here
        if _steps(folder) == before:
            return results
    pytest.skip("snapshots kept landing during every burst")


def test_eight_threads_compute_one_projection_of_a_live_run(live_run):
    from geomviz.projection import CACHE_DIR, project

    folder = live_run / "live"
    assert open_run(folder).meta["status"] == "running"
    for rnd in range(6):  # several cold rounds: a race on the temporary shows within a few
        cache = live_run / f"cache-direct-{rnd}"
        results = _burst(lambda c=cache: project([folder], "pca", cache_root=c)[0],
                         folder=folder)
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])
        files = sorted(p.name for p in (cache / CACHE_DIR).iterdir())
        assert len(files) >= 1 and not [f for f in files if ".tmp" in f], files


def test_eight_threads_on_the_real_app(live_run):
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import callback_body, layout_values

    app = create_app(live_run)
    from geomviz.dashboard.pages import compare  # registers with the app just created
    with serving(app.server) as url:
        with app.server.test_request_context():
            values = layout_values(compare.layout(a="live", b="live"))
        assert "compare-runs.data" in values, "the page did not load: " + str(values)[:300]
        body = json.dumps(callback_body(app, "compare-left-graph.figure", values,
                                        ["compare-projection.value"])).encode()

        def post():
            app.server.extensions.pop("geomviz_cache", None)  # every request starts cold
            req = urllib.request.Request(f"{url}/_dash-update-component", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                assert r.status == 200
                return json.loads(r.read())["response"]["compare-left-graph"]["figure"]

        results = _burst(post, folder=live_run / "live")
        assert all(r == results[0] for r in results[1:])
        assert results[0]["data"][0]["x"]
        leftovers = [p for p in (live_run / ".projections").iterdir() if ".tmp" in p.name]
        assert leftovers == []


def test_the_app_is_set_up_before_its_first_request(tmp_path, monkeypatch):
    """Dash's one-time setup ran unguarded inside the first requests, so a burst of them at
    start could race in it (a 500: 'dictionary changed size during iteration'). create_app
    runs it once, so no request does."""
    import dash._validate

    from geomviz.dashboard import create_app

    app = create_app(tmp_path)

    def setup_again(*_a, **_k):
        raise AssertionError("Dash's first-request setup ran inside a request")

    monkeypatch.setattr(dash._validate, "validate_background_callbacks", setup_again)
    app.server.testing = True  # let an exception in a request propagate here
    codes = []

    def first_request(_i):
        codes.append(app.server.test_client().get("/_dash-dependencies").status_code)

    with ThreadPoolExecutor(N) as pool:
        list(pool.map(first_request, range(N)))
    assert codes == [200] * N
