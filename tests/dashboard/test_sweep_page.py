"""The sweep page: the grid as a table, loss-vs-LR curves with one point per run, and a
click that opens the run's compare page against CE at the same rate."""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qs, urlparse

from geomviz.store import RunWriter
from geomviz.study.sweep import MANIFEST, Cell, run_name

CELLS = [Cell(o, lr, False, s) for o in ("ce", "tfsd") for lr in (1e-3, 1e-1) for s in (0, 1)]


def _sweep(root):
    runs = root / "mysweep" / "runs"
    for c in CELLS:
        diverged = c.objective == "tfsd" and c.lr == 1e-1 and c.seed == 1
        w = RunWriter(runs / run_name(c), {
            "objective": c.objective, "dataset": "synonyms", "seed": c.seed,
            "class_names": [f"t{i}" for i in range(256)],
            "final": {"test": {"nll": 2.0 + c.lr + 0.1 * c.seed}}})
        w.scalars(10, {"loss": 3.0, "health.max_logit": 4.0, "health.attn_logit.max": 2.0})
        if c.objective == "ce" and c.lr == 1e-1:
            w.scalars(7, {"health.spike": 2.5, "health.spike.loss": 6.0}, split="spike")
        w.close("diverged" if diverged else "finished")
    (runs / MANIFEST).write_text(json.dumps({"runs": {
        run_name(c): {"objective": c.objective, "lr": c.lr, "qk": c.qk, "seed": c.seed}
        for c in CELLS}}))
    return runs


def test_sweep_page_lists_the_grid_and_a_click_opens_compare_against_ce(tmp_path):
    from geomviz.dashboard import create_app

    _sweep(tmp_path)
    app = create_app(tmp_path)
    from geomviz.dashboard.pages import sweep

    assert sweep.find_sweeps(tmp_path) == ["mysweep/runs"]
    with app.server.test_request_context():
        page = sweep.layout()
        text = str(page)
        assert "sweep-table" in text and "Sweep mysweep/runs" in text
        table = page.children[3].children
        rows = table.children[1].children
        assert len(rows) == len(CELLS)
        graph = page.children[2].figure
        points = [t for t in graph.data if t.customdata is not None
                  and isinstance(t.customdata[0][0], str)]
        assert len(points) == len(CELLS)
        diverged = next(t for t in points if t.name == "tfsd-lr0.1-qkoff-s1")
        assert diverged.marker.symbol == "x" and diverged.y[0] == math.log(256)
        click = {"points": [{"customdata": ["mysweep/runs/tfsd-lr0.1-qkoff-s0"]}]}
        href = sweep.open_compare(click)
        q = parse_qs(urlparse(href).query)
        assert urlparse(href).path == "/compare"
        assert q == {"a": ["mysweep/runs/ce-lr0.1-qkoff-s0"],
                     "b": ["mysweep/runs/tfsd-lr0.1-qkoff-s0"]}
        # CE itself, a mean point, garbage and a path outside: no navigation
        for bad in ({"points": [{"customdata": ["mysweep/runs/ce-lr0.1-qkoff-s0"]}]},
                    {"points": [{"customdata": [2]}]}, None, {"points": []},
                    {"points": [{"customdata": ["../../etc"]}]}):
            assert sweep.open_compare(bad) is sweep.no_update
    client = app.server.test_client()
    assert client.get("/sweep?s=mysweep/runs").status_code == 200


def test_no_sweep_is_an_explanatory_page(tmp_path):
    from geomviz.dashboard import create_app

    app = create_app(tmp_path)
    from geomviz.dashboard.pages import sweep

    with app.server.test_request_context():
        page = sweep.layout()
    assert page.id == "sweep-empty" and "geomviz sweep" in str(page)


def test_runs_outside_the_runs_folder_are_refused_unread_and_a_bad_rate_is_a_message(
        tmp_path_factory, capsys):
    from geomviz.dashboard import create_app

    root = tmp_path_factory.mktemp("served")
    outside = tmp_path_factory.mktemp("elsewhere")
    runs = _sweep(root)
    store = outside / "store"
    store.mkdir()
    (store / "run.sqlite").write_bytes(b"not a store: reading it would warn")
    (runs / "tfsd-lr0.3-qkoff-s0").symlink_to(store, target_is_directory=True)
    manifest = json.loads((runs / MANIFEST).read_text())
    manifest["runs"]["tfsd-lr0.3-qkoff-s0"] = {"objective": "tfsd", "lr": 0.3, "qk": False,
                                                "seed": 0}
    manifest["runs"][str(store)] = {"objective": "ce", "lr": 0.3, "qk": False, "seed": 0}
    (runs / MANIFEST).write_text(json.dumps(manifest))
    app = create_app(root)
    from geomviz.dashboard.pages import sweep

    client = app.server.test_client()
    assert client.get("/sweep?s=mysweep/runs").status_code == 200
    with app.server.test_request_context():
        page = sweep.layout()
    text = str(page)
    assert "2 run(s) of this sweep lie outside" in text and "tfsd-lr0.3-qkoff-s0" in text
    assert len(page.children[3].children.children[1].children) == len(CELLS)
    assert "skipping" not in capsys.readouterr().out  # the outside store was never opened

    manifest["runs"]["ce-lr0.001-qkoff-s0"]["lr"] = float("nan")  # json writes NaN
    (runs / MANIFEST).write_text(json.dumps(manifest))
    assert client.get("/sweep?s=mysweep/runs").status_code == 200
    with app.server.test_request_context():
        page = sweep.layout()  # issue 25 row 6: one warning; the good runs stay visible
    assert getattr(page, "id", None) != "sweep-error"
    assert len(page.children[3].children.children[1].children) == len(CELLS) - 1
    assert "1 bad run entry left out" in capsys.readouterr().err


def test_sweep_page_is_in_the_navigation_fills_the_width_and_labels_its_rates(tmp_path):
    """Issue 24, defect 10: the navigation links /sweep; the plot follows the page width
    (it was fixed at 800 px); the rate axis carries labelled ticks of its own (plotly's log
    axis drew a stray minor "9"); the sweep links sit inside the page margin (CSS)."""
    from pathlib import Path

    from geomviz.dashboard import create_app

    _sweep(tmp_path)
    app = create_app(tmp_path)
    assert "/sweep" in str(app.layout.children[0])  # the header's navigation
    from geomviz.dashboard.pages import sweep

    with app.server.test_request_context():
        page = sweep.layout()
    graph = page.children[2].figure
    assert graph.layout.width is None and graph.layout.autosize is not False
    for name in ("xaxis", "xaxis2"):
        axis = graph.layout[name] if name in graph.layout else None
        if axis is None or axis.type != "log":
            continue
        assert len(axis.tickvals) >= 3 and len(axis.ticktext) == len(axis.tickvals)
        assert all(t in ("0.001", "0.01", "0.1") or "×" in t or t.startswith("0.")
                   for t in axis.ticktext), axis.ticktext
    css = (Path(__file__).resolve().parents[2] / "assets" / "geomviz.css").read_text()
    assert "#sweep-list" in css
