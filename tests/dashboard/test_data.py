"""Dashboard data access: path safety and corrupt stores."""

from __future__ import annotations

import pytest

from geomviz.dashboard.data import PathError, resolve_run, run_table
from geomviz.store import RunWriter
from tests.helpers import set_meta_raw


def test_run_ids_must_resolve_inside_the_runs_folder(tmp_path):
    root = tmp_path / "runs"
    RunWriter(root / "a", {"objective": "ce"}).close()
    (tmp_path / "outside").mkdir()
    RunWriter(tmp_path / "outside", {}).close()
    assert resolve_run(root, "a") == (root / "a").resolve()
    for bad in ("../outside", "/etc", str(tmp_path / "outside"), "a/../../outside", "", None,
                "missing"):
        with pytest.raises(PathError):
            resolve_run(root, bad)
    link = root / "sneaky"
    link.symlink_to(tmp_path / "outside")
    with pytest.raises(PathError, match="outside"):
        resolve_run(root, "sneaky")


def test_a_corrupt_store_is_a_warning_row(tmp_path):
    RunWriter(tmp_path / "good", {"objective": "tfsd", "dataset": "mnist1d"}).close("finished")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.sqlite").write_bytes(b"\x00garbage" * 500)
    rows = {r["run"]: r for r in run_table(tmp_path)}
    assert rows["good"]["status"] == "finished" and rows["good"]["objective"] == "tfsd"
    assert rows["bad"]["status"] == "unreadable" and rows["bad"]["warning"]


def test_empty_folder_is_an_explanatory_page_and_missing_folder_an_error(tmp_path):
    from geomviz.dashboard import create_app

    app = create_app(tmp_path)  # pages register themselves with the app it creates
    from geomviz.dashboard.pages import runs

    with app.server.test_request_context():
        page = runs.layout()
    assert page.id == "runs-empty" and "No runs yet" in str(page)
    with pytest.raises(ValueError, match="does not exist"):
        create_app(tmp_path / "nowhere")


def test_seed_groups_mean_and_sd():
    from geomviz.dashboard.data import seed_groups

    rows = [{"run": f"s/{o}-s{i}", "objective": o, "dataset": "d", "status": "finished",
             "acc": a, "auroc": None, "warning": ""}
            for o, accs in (("ce", (0.5, 0.7)), ("tfsd", (0.6,))) for i, a in enumerate(accs)]
    groups = {g["group"]: g for g in seed_groups(rows)}
    assert groups["s/ce"]["n"] == 2 and groups["s/ce"]["acc"][0] == pytest.approx(0.6)
    assert groups["s/ce"]["acc"][1] == pytest.approx(0.1414213, rel=1e-5)
    assert groups["s/tfsd"]["acc"] == (0.6, 0.0, 1) and groups["s/ce"]["auroc"] is None


def test_correctness_colouring_is_a_discrete_legend_from_the_margin():
    import numpy as np

    from geomviz.dashboard.views import manifold_figure

    run = {"xy": np.zeros((1, 4, 2)), "labels": np.array([0, 1, 1, 0]), "name": "r",
           "extra": {"margin": np.array([[0.5, -1.0, 2.0, -0.1]])}}
    fig, reason = manifold_figure(run, 0, "correct", 0, None, None, "pca")
    assert reason is None
    wrong, right = fig.data[0], fig.data[1]
    assert (wrong.name, right.name) == ("wrong", "correct")
    assert [c[0] for c in wrong.customdata] == [1, 3]
    assert [c[0] for c in right.customdata] == [0, 2]
    assert not any(getattr(t.marker, "showscale", False) for t in fig.data)




def test_malformed_meta_is_one_warning_row_and_the_others_are_listed(tmp_path):
    from geomviz.dashboard import create_app

    for name in ("good", "nojson", "nostatus"):
        RunWriter(tmp_path / name, {"objective": "ce", "dataset": "mnist1d"}).close("finished")
    set_meta_raw(tmp_path / "nojson", "objective", "{not json")
    set_meta_raw(tmp_path / "nostatus", "status", None)
    rows = {r["run"]: r for r in run_table(tmp_path)}
    assert rows["good"]["status"] == "finished"
    for bad in ("nojson", "nostatus"):
        assert rows[bad]["status"] == "unreadable" and rows[bad]["warning"], bad
    app = create_app(tmp_path)
    from geomviz.dashboard.pages import runs

    with app.server.test_request_context():
        page = str(runs.layout())
    assert "good" in page and "nojson" in page and "unreadable" in page


def test_bad_stores_and_absurd_ids_are_messages_not_errors(tmp_path):
    from geomviz.dashboard import create_app

    root = tmp_path / "runs"
    RunWriter(root / "good", {"objective": "ce"}).close()
    (root / "bad").mkdir()
    (root / "bad" / "run.sqlite").write_bytes(b"\x00garbage" * 500)
    RunWriter(tmp_path / "outside", {}).close()
    (root / "linked").mkdir()
    (root / "linked" / "run.sqlite").symlink_to(tmp_path / "outside" / "run.sqlite")
    with pytest.raises(PathError, match="outside the runs folder"):
        resolve_run(root, "linked")
    with pytest.raises(PathError, match="too long"):
        resolve_run(root, "x" * 5000)
    with pytest.raises(PathError):
        resolve_run(root, "a/" * 200 + "b" * 300)  # long but under the limit: OS refuses
    app = create_app(root)
    from geomviz.dashboard.pages import compare

    client = app.server.test_client()
    for a in ("bad", "x" * 5000, "linked"):
        with app.server.test_request_context():
            page = compare.layout(a=a, b="good")
        assert page.children[0].children == "Cannot compare", a
        text = page.children[1].children
        assert text and "\n" not in text and len(text) <= 300, text
        assert client.get(f"/compare?a={a}&b=good").status_code == 200
