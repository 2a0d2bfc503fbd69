"""Background projection jobs: AlignedUMAP never starts unasked (the page shows the estimate
and a start button first), a job can be cancelled (its process is gone, nothing half-written
is left), a job nobody polls cancels itself, switching view cancels an unkept job, and the
worker process never outlives the server. The long job is a slow fake where only the
lifecycle is tested."""

from __future__ import annotations

import functools
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


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory):
    """Two small finished runs and the app serving them; the page's own start of the fast
    view (a real UMAP in a child process) is switched off: it is not under test here."""
    from geomviz.dashboard import create_app

    root = tmp_path_factory.mktemp("runs")
    for seed, name in enumerate(("ce-s0", "tfsd-s0")):
        _make_run(root / "w" / name, seed)
    app = create_app(root)
    from geomviz.dashboard.pages import compare_extras  # registered by the app

    mp = pytest.MonkeyPatch()
    # the fast view (started by the page's prefetch timer) is not under test
    mp.setattr(compare_extras, "start_job", lambda *a, **k: None)
    yield app, root
    mp.undo()
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
@pytest.fixture
def jobs_ended(app_runs):
    """The app and runs; whatever the test leaves running is cancelled after it (a failed
    test's sleeping job would otherwise be the next test's job on the same runs)."""
    yield app_runs
    app, _ = app_runs
    for key in list(app.server.extensions.get("geomviz_jobs", {})):
        J.cancel_job(app.server, [Path(f) for f in key[1]], key[0], "test over")


@pytest.fixture
def sleepy_start(jobs_ended, monkeypatch):
    """The page's Start click starts the slow fake instead of a real AlignedUMAP."""
    from geomviz.dashboard.pages import compare_jobs

    monkeypatch.setattr(compare_jobs, "start_job", functools.partial(J.start_job, work=_sleepy))
    return compare_jobs


def _line(app, values: dict, changed: str) -> str:
    """The page's job line after ``changed`` (the callback also acts: start, cancel, ...)."""
    return _post(app, "compare-job-text.children", values, changed)["compare-job-text"][
        "children"]


def _two_started(app, keep_a: bool = False) -> tuple[dict, dict]:
    """Two open pages on the same runs, both of which pressed Start: one job, two holders."""
    a, b = _values(app), _values(app)
    assert a["compare-page.data"] != b["compare-page.data"]  # two pages, two tokens
    a.update({"compare-job-confirm.n_clicks": 1, "compare-job-keep.value": ["keep"] * keep_a})
    b.update({"compare-job-confirm.n_clicks": 1, "compare-job-keep.value": []})
    assert "being computed" in _line(app, a, "compare-job-confirm.n_clicks")
    assert "being computed" in _line(app, b, "compare-job-confirm.n_clicks")
    return a, b


@pytest.mark.parametrize("leave", ["switch", "cancel"])
def test_one_page_leaving_leaves_the_job_to_the_other_and_the_last_kills_it(
        app_runs, sleepy_start, leave):
    app, root = app_runs
    a, b = _two_started(app)
    status = _job(app, root)
    pid = status["pid"]
    assert status["state"] == "running" and _alive(pid)

    def leaving(values: dict) -> str:
        if leave == "switch":
            values["compare-projection.value"] = "pca"
            return _line(app, values, "compare-projection.value")
        values["compare-job-cancel.n_clicks"] = 1
        return _line(app, values, "compare-job-cancel.n_clicks")

    text = leaving(b)  # page B leaves: page A still waits for it
    assert _job(app, root) is status and status["state"] == "running" and _alive(pid)
    assert "kept" not in text  # B holds nothing now: nothing is kept for it
    if leave == "cancel":
        assert "cancelled here; still computed for another open page" in text, text
    assert "being computed" in _line(app, a, "compare-jobs.n_intervals")  # A's poll
    assert status["state"] == "running" and _alive(pid)
    leaving(a)  # the last page leaves: the job is gone
    assert status["state"] == "cancelled" and not _alive(pid)
    assert ("switched to pca" if leave == "switch" else "you cancelled it") in status["reason"]


def test_keep_is_each_pages_own(app_runs, sleepy_start):
    app, root = app_runs
    a, b = _two_started(app, keep_a=True)  # A ticked keep, B did not
    status = _job(app, root)
    b["compare-projection.value"] = "pca"  # B's switch drops B's hold only (A's keep is A's)
    assert "kept" not in _line(app, b, "compare-projection.value")
    assert status["state"] == "running" and _alive(status["pid"])
    assert J.holding(app.server, _folders(root), "aligned_umap", b["compare-page.data"]) is None
    b["compare-job-keep.value"] = ["keep"]  # ticking keep afterwards holds nothing for B
    assert "kept" not in _line(app, b, "compare-job-keep.value")
    a["compare-projection.value"] = "pca"  # A's switch: A keeps it
    assert "kept while you look at another view" in _line(app, a, "compare-projection.value")
    assert status["state"] == "running" and _alive(status["pid"])
    a["compare-job-keep.value"] = []  # A unticks keep on another view: its hold goes, the last
    _line(app, a, "compare-job-keep.value")
    assert status["state"] == "cancelled" and not _alive(status["pid"])


def test_a_page_that_never_held_the_job_neither_keeps_it_alive_nor_sees_it_kept(
        app_runs, sleepy_start, monkeypatch):
    app, root = app_runs
    monkeypatch.setattr(sleepy_start, "LEASE_S", 5.0)
    b, c = _values(app), _values(app)
    b.update({"compare-job-confirm.n_clicks": 1, "compare-job-keep.value": ["keep"]})
    _line(app, b, "compare-job-confirm.n_clicks")  # B starts (and keeps) it, then B's tab
    # is closed: only B asked for it, so C's polls must not keep it alive
    status = _job(app, root)
    assert status["state"] == "running"
    c.update({"compare-projection.value": "pca", "compare-job-keep.value": ["keep"]})
    deadline = time.time() + 60  # C, on PCA with keep ticked, goes on polling
    while status["state"] == "running" and time.time() < deadline:
        assert "kept" not in _line(app, c, "compare-jobs.n_intervals")
        time.sleep(0.3)
    assert status["state"] == "cancelled" and "no page asked for it for 5 s" in status["reason"]
    assert not _alive(status["pid"])


def test_two_holders_one_lapsing_the_other_renewing_and_the_last_lapse_cancels(jobs_ended):
    app, root = jobs_ended
    folders = _folders(root)[:1]
    a = J.start_job(app.server, root, folders, "aligned_umap", confirmed=True, lease=8,
                    keep=True, work=_sleepy, holder="aaaa0000")
    b = J.start_job(app.server, root, folders, "aligned_umap", confirmed=True, lease=1.5,
                    work=_sleepy, holder="bbbb0000")
    assert a is b and set(a["holders"]) == {"aaaa0000", "bbbb0000"}  # joined, not restarted
    assert a["keep"] is True and J.holding(app.server, folders, "aligned_umap", "bbbb0000")[
        "keep"] is False  # keep is each holder's; the job's reads "any holder keeps"
    J.renew(app.server, folders, "aligned_umap", "bbbb0000", keep=True)
    J.renew(app.server, folders, "aligned_umap", "aaaa0000", keep=False)
    assert [J.holding(app.server, folders, "aligned_umap", h)["keep"]
            for h in ("aaaa0000", "bbbb0000")] == [False, True]
    deadline = time.time() + 30  # only A polls: B's hold lapses, the job runs on for A
    while J.holding(app.server, folders, "aligned_umap", "bbbb0000") is not None \
            and time.time() < deadline:
        J.renew(app.server, folders, "aligned_umap", "aaaa0000")
        time.sleep(0.3)
    assert J.holding(app.server, folders, "aligned_umap", "bbbb0000") is None
    assert a["state"] == "running" and _alive(a["pid"])
    assert set(a["holders"]) == {"aaaa0000"} and a["keep"] is False
    assert _wait(lambda: a["state"] == "cancelled", 30)  # A's page closes: polls stop
    assert "no page asked for it for 8 s" in a["reason"] and not _alive(a["pid"])


def test_release_drops_one_holder_and_cancel_job_kills_whoever_holds(jobs_ended):
    app, root = jobs_ended
    folders = _folders(root)[1:]
    s = J.start_job(app.server, root, folders, "aligned_umap", confirmed=True, lease=60,
                    work=_sleepy, holder="aaaa0000")
    J.start_job(app.server, root, folders, "aligned_umap", confirmed=True, lease=60,
                work=_sleepy, holder="bbbb0000")
    J.release(app.server, folders, "aligned_umap", "cccc0000", "never held")  # no-op
    J.release(app.server, folders, "aligned_umap", "aaaa0000", "A left")
    assert s["state"] == "running" and _alive(s["pid"]) and set(s["holders"]) == {"bbbb0000"}
    J.start_job(app.server, root, folders, "aligned_umap", confirmed=True, lease=60,
                work=_sleepy, holder="aaaa0000")  # A comes back: the same job, held again
    J.cancel_job(app.server, folders, "aligned_umap", "server stops")
    assert s["state"] == "cancelled" and s["reason"] == "server stops" and not _alive(s["pid"])


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
