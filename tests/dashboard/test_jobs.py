"""Background projection jobs: AlignedUMAP never starts unasked (the page shows the estimate
and a start button first), a job can be cancelled (its process is gone, nothing half-written
is left), a job nobody polls cancels itself, switching view cancels an unkept job, and the
worker process never outlives the server. The long job is a slow fake where only the
lifecycle is tested."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from geomviz.dashboard import jobs as J

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has ended; only its reaping is left


def _sleepy(root, group, method) -> None:
    """The slow fake of a projection (runs in the worker process)."""
    time.sleep(120)


def _half_write(root, group, method) -> None:
    """The real job up to the cache write, which stops half-way (runs in the worker): the
    projection is computed instantly, and the file write hangs after a few bytes."""
    import geomviz.projection as P

    P._compute = _zeros

    def stuck(f, **arrays) -> None:
        f.write(b"PK\x03\x04 half a file")
        f.flush()
        time.sleep(120)

    P.np.savez = stuck
    J._confined_project(root, group, method)


def _zeros(method, snaps, params) -> list[np.ndarray]:
    """An instant stand-in for the projection's computation."""
    return [np.zeros((len(s.steps), len(s.labels), 2), np.float32) for s in snaps]


def _instant(root, group, method) -> None:
    """The real job with an instant computation (runs in the worker)."""
    import geomviz.projection as P

    P._compute = _zeros
    J._confined_project(root, group, method)


def _wait(cond, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while not cond() and time.time() < deadline:
        time.sleep(0.1)
    return cond()


T, P = 4, 60  # snapshot steps and points of each test run


def _make_run(folder: Path, seed: int) -> None:
    """A small finished run written straight into a store (no training)."""
    from geomviz.store import RunWriter

    g = np.random.default_rng(seed)
    w = RunWriter(folder, {"objective": ("ce", "tfsd")[seed], "probes": {"metric": "dot"}})
    labels = g.integers(0, 4, P)
    w.array(0, "snapshot.labels", labels)
    for t in range(T):
        w.array(10 * t, "snapshot.features", g.standard_normal((P, 8)).astype(np.float16))
        w.array(10 * t, "snapshot.norm", g.uniform(1, 2, P).astype(np.float32))
        w.array(10 * t, "snapshot.cos_true", g.uniform(-1, 1, P).astype(np.float32))
        w.scalars(10 * t, {"loss": 1.0 / (1 + t), "acc": t / T})
        w.flush()
    w.close()


@contextlib.contextmanager
def quiet_app(root: Path):
    """Two small finished runs under ``root/w`` and the app serving them; the page's own
    start of the fast view (a real UMAP in a child process, started by the prefetch timer)
    is switched off: it is not under test here."""
    from geomviz.dashboard import create_app

    for seed, name in enumerate(("ce-s0", "tfsd-s0")):
        _make_run(root / "w" / name, seed)
    app = create_app(root)
    from geomviz.dashboard.pages import compare_extras  # registered by the app

    mp = pytest.MonkeyPatch()
    mp.setattr(compare_extras, "start_job", lambda *a, **k: None)
    try:
        yield app
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    with quiet_app(root) as app:
        yield app, root
    for key in list(app.server.extensions.get("geomviz_jobs", {})):
        J.cancel_job(app.server, [Path(f) for f in key[1]], key[0], "test over")


def _folders(root) -> list[Path]:
    from geomviz.dashboard.data import resolve_run

    return [resolve_run(root, r) for r in ("w/ce-s0", "w/tfsd-s0")]


def _values(app) -> dict:
    from geomviz.dashboard.drive import layout_values
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        values = layout_values(compare.layout(a="w/ce-s0", b="w/tfsd-s0"))
    values["compare-projection.value"] = "aligned_umap"
    return values


def _post(app, output: str, values: dict, changed: str) -> dict:
    from geomviz.dashboard.drive import callback_body

    body = callback_body(app, output, values, [changed])
    r = app.server.test_client().post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.get_data()[:300]
    return r.get_json()["response"]


def _job(app, root):
    return J.job_status(app.server, _folders(root), "aligned_umap")


def test_choosing_alignedumap_shows_the_estimate_and_starts_nothing(app_runs):
    app, root = app_runs
    values = _values(app)
    shown = _post(app, "compare-left-graph.figure", values, "compare-projection.value")
    assert "not computed" in shown["compare-message"]["children"]
    assert _job(app, root) is None  # the old page started the 4-17 min job right here
    line = _post(app, "compare-job-text.children", values, "compare-projection.value")
    text = line["compare-job-text"]["children"]
    assert f"on this machine (2 runs × {T} steps × {P} points, n_epochs 100" in text, text
    assert "min" in text or "under a minute" in text
    assert line["compare-job-confirm"]["style"] == {} and "start" in \
        line["compare-job-confirm"]["children"]
    assert line["compare-job-cancel"]["style"] == {"display": "none"}
    assert _job(app, root) is None
    with pytest.raises(J.NeedsConfirm):  # nor can any other caller start it unconfirmed
        J.start_job(app.server, root, _folders(root), "aligned_umap")


def test_start_click_starts_it_and_cancel_kills_its_process(app_runs):
    app, root = app_runs
    values = {**_values(app), "compare-job-confirm.n_clicks": 1}
    line = _post(app, "compare-job-text.children", values, "compare-job-confirm.n_clicks")
    status = _job(app, root)
    assert status is not None and status["state"] == "running" and _alive(status["pid"])
    assert status["lease"] == J.LEASE_S and status["estimate"] > 0
    assert "being computed" in line["compare-job-text"]["children"]
    assert line["compare-job-cancel"]["style"] == {} and \
        line["compare-jobs"]["disabled"] is False  # the poll runs (and renews the lease)
    values["compare-job-cancel.n_clicks"] = 1
    line = _post(app, "compare-job-text.children", values, "compare-job-cancel.n_clicks")
    assert status["state"] == "cancelled" and not _alive(status["pid"])
    assert "cancelled (you cancelled it)" in line["compare-job-text"]["children"]
    assert line["compare-job-confirm"]["style"] == {}  # and it can be started again


def test_cancel_mid_write_leaves_no_cache_and_no_temporary(app_runs):
    from geomviz.projection import CACHE_DIR, project

    app, root = app_runs
    folders = _folders(root)[:1]
    status = J.start_job(app.server, root, folders, "aligned_umap", confirmed=True,
                         work=_half_write)
    cache = Path(root) / CACHE_DIR
    assert _wait(lambda: list(cache.glob("aligned_umap-*.tmp.npz")), 60), "no write began"
    J.cancel_job(app.server, folders, "aligned_umap")
    assert status["state"] == "cancelled" and not _alive(status["pid"])
    assert not list(cache.glob("aligned_umap-*")), list(cache.iterdir())
    with pytest.raises(LookupError):
        project(folders, "aligned_umap", cache_root=root, cached_only=True, **J.SLOW[
            "aligned_umap"])


def test_a_lease_nobody_renews_cancels_the_job(app_runs):
    app, root = app_runs
    kept, lapsed = _folders(root)[:1], _folders(root)[1:]
    a = J.start_job(app.server, root, kept, "aligned_umap", confirmed=True, lease=4,
                    work=_sleepy)
    b = J.start_job(app.server, root, lapsed, "aligned_umap", confirmed=True, lease=1.5,
                    work=_sleepy)
    # a page polls the first job only: for longer than its lease, and until the second lapses
    t0, deadline = time.time(), time.time() + 30
    while (b["state"] == "running" or time.time() - t0 < 6) and time.time() < deadline:
        J.renew(app.server, kept, "aligned_umap")
        time.sleep(0.3)
    assert a["state"] == "running" and _alive(a["pid"])
    assert b["state"] == "cancelled" and "no page asked" in b["reason"]
    assert not _alive(b["pid"])
    assert _wait(lambda: a["state"] == "cancelled", 20)  # the page closes: polls stop
    assert not _alive(a["pid"])


@pytest.mark.parametrize("keep", [False, True])
def test_switching_view_cancels_the_job_unless_kept(app_runs, keep):
    app, root = app_runs
    values = {**_values(app), "compare-projection.value": "pca",
              "compare-job-keep.value": ["keep"] if keep else []}
    status = J.start_job(app.server, root, _folders(root), "aligned_umap", confirmed=True,
                         lease=60, keep=keep, work=_sleepy, holder=values["compare-page.data"])
    line = _post(app, "compare-job-text.children", values, "compare-projection.value")
    if keep:
        assert status["state"] == "running" and _alive(status["pid"])
        assert "kept" in line["compare-job-text"]["children"]
        assert line["compare-jobs"]["disabled"] is False  # still polled: its lease renewed
        shown = _post(app, "compare-left-graph.figure", values, "compare-projection.value")
        assert "compare-jobs" not in shown  # the PCA redraw leaves the poll alone (it raced)
        J.cancel_job(app.server, _folders(root), "aligned_umap")
    else:
        assert status["state"] == "cancelled" and "switched to pca" in status["reason"]
    assert not _alive(status["pid"])


# ------------------------------------------------- two pages (tabs) showing the same runs
def test_a_finished_job_is_drawn_and_a_cached_run_is_not_estimated(app_runs):
    from geomviz.projection import CACHE_DIR

    app, root = app_runs
    status = J.start_job(app.server, root, _folders(root), "aligned_umap", confirmed=True,
                         lease=60, work=_instant)
    assert _wait(lambda: status["state"] != "running", 60) and status["state"] == "done", status
    values = {**_values(app), "compare-umap-ready.data": 3}
    line = _post(app, "compare-job-text.children", values, "compare-jobs.n_intervals")
    assert line["compare-umap-ready"]["data"] == 4  # the manifolds redraw from the cache
    shown = _post(app, "compare-left-graph.figure", values, "compare-umap-ready.data")
    assert shown["compare-message"]["children"] == ""
    assert shown["compare-left-graph"]["figure"]["layout"]["xaxis"]["title"]["text"] \
        .startswith("UMAP")
    for f in (Path(root) / CACHE_DIR).glob("aligned_umap-*.npz"):
        f.unlink()  # one run's cache goes: only that run is left to compute
        break
    app.server.extensions.pop("geomviz_cache", None)  # the page's memory of the data too
    line = _post(app, "compare-job-text.children", values, "compare-projection.value")
    assert f"(1 run × {T} steps × {P} points" in line["compare-job-text"]["children"]


PARENT = """
import sys, time
from pathlib import Path
from geomviz.dashboard.jobs import start_job
from tests.dashboard.test_jobs import _sleepy

class App:
    extensions = {}

status = start_job(App(), ".", [Path("nowhere")], "fast_umap", work=_sleepy)
print(status["pid"], flush=True)
time.sleep(120)
"""


def test_a_killed_server_takes_its_projection_worker_with_it():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                       os.environ.get("PYTHONPATH", "")]))
    parent = subprocess.Popen([sys.executable, "-c", PARENT], env=env, stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        worker = int(parent.stdout.readline())
        assert _wait(lambda: _alive(worker), 5)
    finally:
        parent.send_signal(signal.SIGKILL)  # no clean shutdown: nobody says stop
        parent.wait()
    ended = _wait(lambda: not _alive(worker), 20)
    if not ended:
        os.kill(worker, signal.SIGKILL)
    assert ended, "the worker outlived its server"
