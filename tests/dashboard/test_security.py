"""Issue 25's security rows: the dashboard reads and writes nothing outside its runs folder
(links out are warning rows, never opened; a read-only open creates no file), an empty runs
path is refused, and crafted callback requests are answered with a note or a 4xx, never a
500. Row 11: a FIFO named run.sqlite is skipped with a warning instead of blocking."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from geomviz.store import RunWriter, list_runs, open_run

pytest.importorskip("dash")

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]))


def _outside(tmp_path: Path) -> Path:
    """A finished store outside the runs folder, with a tell-tale objective name."""
    RunWriter(tmp_path / "elsewhere", {"objective": "secret-objective"}).close()
    return tmp_path / "elsewhere"


def _page(app, path: str, search: str = ""):
    """What the browser gets for ``path``: the pages callback, through the real server."""
    from geomviz.dashboard.drive import callback_body

    body = callback_body(app, "_pages_content.children",
                         {"_pages_location.pathname": path, "_pages_location.search": search},
                         ["_pages_location.pathname"])
    return app.server.test_client().post("/_dash-update-component", json=body)


def test_a_store_linked_from_outside_is_a_warning_row_and_is_never_opened(tmp_path):
    from geomviz.dashboard import create_app
    from geomviz.dashboard.data import run_table
    from geomviz.dashboard.drive import callback_body

    outside = _outside(tmp_path)
    before = sorted(os.listdir(outside))
    root = tmp_path / "R"
    RunWriter(root / "good", {"objective": "ce"}).close()
    (root / "x").mkdir()
    (root / "x" / "run.sqlite").symlink_to(outside / "run.sqlite")
    (root / "inside").mkdir()  # a link that stays inside the folder may be followed
    (root / "inside" / "run.sqlite").symlink_to(root / "good" / "run.sqlite")
    rows = {r["run"]: r for r in run_table(root)}
    assert rows["x"]["status"] == "unreadable" and "outside" in rows["x"]["warning"]
    assert rows["inside"]["objective"] == "ce" and rows["good"]["objective"] == "ce"
    app = create_app(root)
    r = _page(app, "/")  # the page load, and its poll
    assert r.status_code == 200 and "outside the runs folder" in r.get_data(as_text=True)
    poll = callback_body(app, "runs-table-box.children", {"runs-interval.n_intervals": 1},
                         ["runs-interval.n_intervals"])
    r2 = app.server.test_client().post("/_dash-update-component", json=poll)
    for resp in (r, r2):
        assert resp.status_code == 200 and "secret-objective" not in resp.get_data(as_text=True)
    r3 = _page(app, "/compare", "?a=x&b=good")
    assert r3.status_code == 200 and "outside the runs folder" in r3.get_data(as_text=True)
    assert sorted(os.listdir(outside)) == before  # no -wal, no -shm beside it


def test_sweep_manifests_and_runs_linked_from_outside_are_named_and_not_read(tmp_path):
    from geomviz.dashboard import create_app
    from geomviz.study.sweep import MANIFEST

    outside = _outside(tmp_path)
    before = sorted(os.listdir(outside))
    root = tmp_path / "R"
    sweep = root / "s"
    RunWriter(sweep / "ce-lr0.1-qkoff-s0", {"objective": "ce", "final": {"test": {"nll": 1.0}},
                                            "class_names": ["a", "b"]}).close()
    (sweep / "tfsd-lr0.1-qkoff-s0").mkdir()
    (sweep / "tfsd-lr0.1-qkoff-s0" / "run.sqlite").symlink_to(outside / "run.sqlite")
    (sweep / MANIFEST).write_text(json.dumps({"runs": {
        n: {"objective": n.split("-")[0], "lr": 0.1, "qk": False, "seed": 0}
        for n in ("ce-lr0.1-qkoff-s0", "tfsd-lr0.1-qkoff-s0")}}))
    (tmp_path / "other").mkdir()  # a manifest linked in from outside
    (tmp_path / "other" / MANIFEST).write_text((sweep / MANIFEST).read_text())
    (root / "t").mkdir()
    (root / "t" / MANIFEST).symlink_to(tmp_path / "other" / MANIFEST)
    app = create_app(root)
    from geomviz.dashboard.pages import sweep as page

    assert page.find_sweeps(root) == ["s"]
    r = _page(app, "/sweep", "?s=s")
    text = r.get_data(as_text=True).replace("\\u002f", "/")  # the JSON escapes slashes
    assert r.status_code == 200, text[-2000:]
    assert "tfsd-lr0.1-qkoff-s0" in text and "not shown" in text and "t/sweep.json" in text
    assert "secret-objective" not in text
    assert sorted(os.listdir(outside)) == before


def test_a_projection_cache_linked_out_of_the_runs_folder_is_refused(tmp_path):
    from geomviz.dashboard.data import PathError, check_cache

    root = tmp_path / "R"
    root.mkdir()
    check_cache(root)  # none yet: fine
    (tmp_path / "cache").mkdir()
    (root / ".projections").symlink_to(tmp_path / "cache")
    with pytest.raises(PathError, match="link out of the runs folder"):
        check_cache(root)
    (root / ".projections").unlink()
    (root / ".projections").mkdir()
    (root / ".projections" / "pca-x.npz").symlink_to(tmp_path / "cache" / "secret.npz")
    with pytest.raises(PathError, match="pca-x.npz"):
        check_cache(root)


def test_assets_served_only_from_inside_the_assets_folder(tmp_path):
    from geomviz.dashboard import create_app

    assets = REPO / "assets"
    if not assets.is_dir():
        pytest.skip("no assets folder in this checkout")
    app = create_app(tmp_path)
    client = app.server.test_client()
    name = next(p.name for p in assets.iterdir() if p.is_file())
    assert client.get(f"/assets/{name}").status_code == 200
    link = assets / "zz-test-link.txt"
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    link.symlink_to(secret)
    try:
        r = client.get(f"/assets/{link.name}")
        assert r.status_code == 404 and b"secret" not in r.get_data()
    finally:
        link.unlink()


# ----------------------------------------------------------------------- read-only opens
def test_reading_a_finished_store_creates_no_file(tmp_path):
    w = RunWriter(tmp_path / "run", {"objective": "ce"})
    w.scalars(1, {"loss": 0.5})
    w.close()
    before = sorted(os.listdir(tmp_path / "run"))
    with open_run(tmp_path / "run") as run:
        assert run.scalars("loss")["value"].tolist() == [0.5]
        assert run.meta["objective"] == "ce"
    assert sorted(os.listdir(tmp_path / "run")) == before


def test_reading_in_a_folder_that_cannot_be_written_creates_no_file(tmp_path):
    """On a read-only folder (chmod; for root, whom modes do not stop, chattr +i)."""
    from tests.test_store import _unwritable

    w = RunWriter(tmp_path / "ro", {"objective": "ce"})
    w.scalars(1, {"loss": 0.5})
    w.close()
    before = sorted(os.listdir(tmp_path / "ro"))
    with _unwritable(tmp_path / "ro"):
        with open_run(tmp_path / "ro") as run:
            assert run.scalars("loss")["value"].tolist() == [0.5]
    assert sorted(os.listdir(tmp_path / "ro")) == before


def test_a_writer_that_starts_after_an_immutable_open_is_read_through_its_log(tmp_path):
    """Immutable is only used while no writer has the store open; a resume that begins
    while a reader holds the store makes the reader read through the new log."""
    w = RunWriter(tmp_path, {"objective": "ce"})
    w.scalars(1, {"loss": 0.5})
    w.close()
    with open_run(tmp_path) as run:
        assert run._immutable
        assert run.scalars("loss")["value"].tolist() == [0.5]
        w = RunWriter(tmp_path, {"objective": "ce"}, resume=True, drop_after_step=1)
        try:
            w.scalars(2, {"loss": 0.25})
            w.flush()
            assert run.scalars("loss")["value"].tolist() == [0.5, 0.25]
            assert run.meta["status"] == "running" and not run._immutable
        finally:
            w.close()


# ----------------------------------------------------------------------- empty runs path
def test_an_empty_runs_path_is_one_line_and_exit_2(tmp_path):
    from geomviz.dashboard import create_app

    RunWriter(tmp_path / "here", {}).close()  # the current folder holds runs: never served
    with pytest.raises(ValueError, match="empty"):
        create_app("")
    with socket.socket() as sock:  # a free port, so only the runs path can be refused
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    for argv in (["-m", "geomviz", "dashboard", "", "--port", port],
                 [str(REPO / "app.py"), "--runs", "", "--port", port]):
        try:  # in a child: the old behaviour served the current folder until killed
            r = subprocess.run([sys.executable, *argv], env=_env(), capture_output=True,
                               text=True, timeout=120, cwd=tmp_path)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{argv[:2]} with an empty runs path served the current folder")
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(err) == 1 and "empty" in err[0], (argv, r.stderr)


# ----------------------------------------------------------------------- row 11: FIFOs
def test_a_fifo_named_run_sqlite_is_skipped_with_a_warning(tmp_path, capsys):
    root = tmp_path / "R"
    RunWriter(root / "good", {"objective": "ce"}).close()
    (root / "pipe").mkdir()
    os.mkfifo(root / "pipe" / "run.sqlite")
    (root / "linked").mkdir()  # a link to a FIFO is no regular file either
    (root / "linked" / "run.sqlite").symlink_to(root / "pipe" / "run.sqlite")
    assert list_runs(root) == [root / "good"]
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 2 and "not a regular file" in err
    from geomviz.dashboard.data import run_table

    rows = {r["run"]: r for r in run_table(root)}
    assert rows["pipe"]["status"] == "unreadable" and "regular file" in rows["pipe"]["warning"]
    from geomviz.store import StoreError

    with pytest.raises(StoreError, match="not a regular file"):
        open_run(root / "pipe")
    for argv in (["runs", str(root)], ["project", str(root), "--method", "pca"]):
        try:  # each used to block forever in the open of the FIFO
            r = subprocess.run([sys.executable, "-m", "geomviz", *argv], env=_env(),
                               capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"geomviz {argv[0]} blocked on a FIFO named run.sqlite")
        assert "not a regular file" in r.stderr, (argv, r.stderr)
        if argv[0] == "runs":
            assert r.returncode == 0 and "good" in r.stdout


# ----------------------------------------------------------------------- crafted callbacks
@pytest.fixture(scope="module")
def app_runs(tmp_path_factory):
    """Two tiny finished MNIST-1D runs (CE, TFSD) and the app serving them."""
    from geomviz.cli import main
    from geomviz.dashboard import create_app

    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        assert main(["compare", "--objectives", "ce,tfsd", "--seeds", "0", "--epochs", "1",
                     "--ood-classes", "8,9", "--name", "w", "--runs-dir", str(root),
                     "--snapshots", "3", "--snapshot-size", "100", "--snapshot-ood", "20",
                     "--no-progress"]) == 0
    finally:
        mp.undo()
    return create_app(root), root


def _values(app):
    from geomviz.dashboard.drive import layout_values
    from geomviz.dashboard.pages import compare

    with app.server.test_request_context():
        values = layout_values(compare.layout(a="w/ce-s0", b="w/tfsd-s0"))
    values.update({f"{k}": 1 for k in ("compare-download-button.n_clicks",
                                       "compare-live.n_intervals", "compare-jobs.n_intervals",
                                       "compare-ticker.n_intervals", "runs-interval.n_intervals",
                                       "compare-play.n_clicks")})
    values["compare-projection.value"] = "pca"
    return values


def _post(app, output, values, changed=None):
    from geomviz.dashboard.drive import callback_body

    body = callback_body(app, output, values, changed or [])
    body["changedPropIds"] = changed or [f"{body['inputs'][0]['id']}."
                                         f"{body['inputs'][0]['property']}"]
    return app.server.test_client().post("/_dash-update-component", json=body)


def _note(resp) -> str:
    data = resp.get_json() or {}
    return str((data.get("sideUpdate") or {}).get("app-note", {}).get("children", ""))


ISSUE_PAYLOADS = [  # (output, {input: value}, a phrase of the note)
    ("compare-left-graph.figure", {"compare-runs.data": ["../../etc", "w/ce-s0"]},
     "outside the runs folder"),
    ("compare-left-graph.figure", {"compare-runs.data": ["nope", "w/ce-s0"]}, "no run"),
    ("compare-left-ood.children", {"compare-runs.data": None}, "not a list"),
    ("compare-left-ood.children", {"compare-runs.data": []}, "not a list"),
    ("compare-ticker.disabled", {"compare-play.n_clicks": None}, ""),
    ("compare-ticker.disabled", {"compare-play.n_clicks": "x"}, "not a count"),
    ("compare-panels.children", {"compare-steps.data": None}, "snapshot steps"),
    ("compare-panels.children", {"compare-steps.data": []}, "snapshot steps"),
    ("compare-step.value", {"compare-steps.data": []}, "snapshot steps"),
    ("compare-download.data", {"compare-download-figure.value": "../../x"}, "figure"),
    ("compare-download.data", {"compare-download-format.value": ["../x"]}, "formats"),
    ("compare-marks.data", {"compare-runs.data": ["../../etc", "w/ce-s0"]},
     "outside the runs folder"),
    ("compare-marks.data", {"compare-steps.data": "x"}, "snapshot steps"),
    ("compare-left-graph.figure", {"compare-shown.data": {"a": 1}}, ""),
    ("compare-steps.data", {"compare-sides.data": [{"runs": "x"}, 1]}, "compared sides"),
    ("compare-left-graph.figure", {"compare-projection.value": "../../x"}, "projection"),
]


@pytest.mark.parametrize("output,junk,phrase", ISSUE_PAYLOADS)
def test_the_issues_crafted_callbacks_answer_with_a_note_never_a_500(app_runs, output, junk,
                                                                      phrase, caplog):
    app, _ = app_runs
    values = {**_values(app), **junk}
    r = _post(app, output, values)
    assert r.status_code in (200, 204), (r.status_code, r.get_data()[:300])
    assert phrase in _note(r), _note(r)
    assert not [x for x in caplog.records if x.levelname == "ERROR"]  # validated, not crashed


JUNK = [None, "", [], {}, "junk", -1, 1e308, ["../../x", "w/ce-s0"], "x" * 5000, True,
        [None, None], {"points": "x"}, [[1]]]


def test_every_callback_input_replaced_by_junk_is_never_a_500(app_runs, caplog):
    """Each input and state of every page callback, one at a time, set to each junk value:
    200 (the note says why nothing changed) or 204, and no callback fails unvalidated."""
    from geomviz.dashboard.drive import callback_body

    app, _ = app_runs
    values = _values(app)
    client = app.server.test_client()
    sent = 0
    for key in list(app.callback_map):
        first = key[2:-2].split("...")[0].split("@")[0] if key.startswith("..") else key
        if first.startswith(("{", "_pages")) or "callback" not in app.callback_map[key]:
            continue  # pattern ids, Dash's own, and clientside callbacks (no server code)
        body = callback_body(app, first, values, [])
        for field in ("inputs", "state"):
            for i in range(len(body[field])):
                for junk in JUNK:
                    b = json.loads(json.dumps(body))
                    b[field][i]["value"] = junk
                    b["changedPropIds"] = [f"{b['inputs'][0]['id']}."
                                           f"{b['inputs'][0]['property']}"]
                    r = client.post("/_dash-update-component", json=b)
                    sent += 1
                    assert r.status_code in (200, 204), (first, b[field][i]["id"], junk,
                                                         r.status_code)
    assert sent > 500
    assert not [x for x in caplog.records if x.levelname == "ERROR"], caplog.records[0].msg


def test_malformed_callback_requests_are_4xx_and_a_10_mb_body_is_413(app_runs):
    from geomviz.dashboard.drive import callback_body

    app, _ = app_runs
    client = app.server.test_client()
    good = callback_body(app, "compare-ticker.disabled", {"compare-play.n_clicks": 1},
                         ["compare-play.n_clicks"])
    assert client.post("/_dash-update-component", json=good).status_code == 200
    values = _values(app)
    live = callback_body(app, "compare-steps.data", values, ["compare-live.n_intervals"])
    key = live["output"]  # as the browser sends it: an allow_duplicate output keeps its @hash
    dup = next(i for i, o in enumerate(key[2:-2].split("...")) if "@" in o)
    live["outputs"][dup]["property"] = key[2:-2].split("...")[dup].rsplit(".", 1)[1]
    assert "@" in live["outputs"][dup]["property"]
    assert client.post("/_dash-update-component", json=live).status_code in (200, 204)
    for body in (None, [], "x", {"output": "nope"}, {**good, "output": "../../x"},
                 {**good, "inputs": []}, {**good, "inputs": "x"}, {**good, "outputs": None},
                 {**good, "changedPropIds": 5}, {**good, "state": None},
                 {**good, "inputs": [{"id": "other", "property": "n_clicks", "value": 1}]}):
        r = client.post("/_dash-update-component", json=body)
        assert r.status_code == 400 and "error" in r.get_json(), body
    pages = callback_body(app, "_pages_content.children",
                          {"_pages_location.pathname": "", "_pages_location.search": 5}, [])
    assert client.post("/_dash-update-component", json=pages).status_code == 400
    r = client.post("/_dash-update-component", data=b"{" * 10_000_000,
                    content_type="application/json")
    assert r.status_code == 413
    assert client.post("/_dash-update-component", data=b"not json",
                       content_type="application/json").status_code == 400
