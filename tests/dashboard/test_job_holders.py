"""Two pages on the same runs share one background job (issue 24): each page holds it with
its own lease and keep flag (its ``compare-page`` token), one page leaving drops only its
hold, and the job is killed when no page holds it."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

from geomviz.dashboard import jobs as J
from tests.dashboard.test_jobs import (
    _alive,
    _folders,
    _job,
    _post,
    _sleepy,
    _values,
    _wait,
    app_runs,  # noqa: F401 - the fixture
)


@pytest.fixture
def jobs_ended(app_runs):  # noqa: F811
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
        app_runs, sleepy_start, leave):  # noqa: F811
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


def test_keep_is_each_pages_own(app_runs, sleepy_start):  # noqa: F811
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
        app_runs, sleepy_start, monkeypatch):  # noqa: F811
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
