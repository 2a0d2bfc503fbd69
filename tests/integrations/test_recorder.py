"""The plain-loop recorder: a first-class run (runs, compare page, figures, project read it
as a trainer run), its metadata, bad input refused before anything is written, the
no-head-call warning, crashes, resume without duplicate rows, no host sync in a step."""

from __future__ import annotations

import json
import sqlite3
import warnings

import pytest
import torch

import geomviz
from geomviz.store import open_run
from tests.helpers import spy_host_syncs
from tests.integrations.helpers import D_IN, blobs, mlp, record


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name in ("ce", "tfsd"):
        record(root / "mine" / name, name)
    return root


def test_the_run_holds_what_a_trainer_run_holds(pair):
    with open_run(pair / "mine" / "tfsd") as run:
        meta = run.meta
        assert meta["status"] == "finished" and meta["objective"] == "tfsd"
        assert meta["config"] == {"lr": 0.1, "seed": 0}
        assert {"versions", "git", "hardware", "user_git", "probes"} <= set(meta)
        assert meta["probes"]["metric"] == "euclidean"
        assert meta["final"]["test"]["acc"] > 0.5 and "msp.auroc" in meta["final"]["ood"]
        loss = run.scalars("loss", split="train")
        assert loss["step"].tolist() == [5, 10, 15, 20]
        assert len(run.scalars("penultimate.norm.p50", split="train")["step"]) == 4
        assert len(run.scalars("grad.radial_fraction", split="train")["step"]) == 4
        assert len(run.scalars("penultimate.norm.p50", split="test")["step"]) == 1
        steps = run.array_steps("snapshot.features")
        assert steps[0] == 0 and steps[-1] == 20 and len(steps) > 3
        assert run.arrays("snapshot.features")[20].shape == (64 + 16, 16)
        assert run.arrays("snapshot.is_ood")[0].sum() == 16


def test_geomviz_runs_lists_both_as_finished(pair, capsys):
    from geomviz.cli import main

    assert main(["runs", str(pair)]) == 0
    rows = [r.split() for r in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[0], r[1], r[5]) for r in rows] == [("mine/ce", "ce", "finished"),
                                                  ("mine/tfsd", "tfsd", "finished")]


def test_the_compare_page_of_the_pair_answers_with_non_empty_figures(pair):
    pytest.importorskip("dash")
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import callback_body, layout_values

    app = create_app(pair)
    from geomviz.dashboard.pages import compare

    client = app.server.test_client()
    assert client.get("/compare?a=mine/ce&b=mine/tfsd").status_code == 200
    with app.server.test_request_context():
        page = compare.layout(a="mine/ce", b="mine/tfsd")
    assert "Cannot compare" not in str(page)
    values = layout_values(page)

    def post(output, changed):
        r = client.post("/_dash-update-component",
                        json=callback_body(app, output, values, changed))
        assert r.status_code == 200, r.data[:300]
        return r.get_json()["response"]

    panels = json.dumps(post("compare-panels.children", ["compare-options.value"]))
    for key in ("loss", "radial", "decomp"):
        assert f'"panel": "{key}"' in panels, key
    assert '"y": [' in panels or '"bdata"' in panels
    out = post("compare-left-graph.figure", ["compare-runs.data"])
    for side in ("compare-left-graph", "compare-right-graph"):
        traces = out[side]["figure"]["data"]
        assert traces and any(t.get("x") for t in traces), side


def test_figures_and_projections_are_drawn_from_the_pair(pair, tmp_path):
    from geomviz.cli import main

    assert main(["figures", str(pair), "--out", str(tmp_path / "figs"), "--format", "html",
                 "--only", "norm_growth,manifold_grid,gradient_split,ood"]) == 0
    assert len(list((tmp_path / "figs").glob("*.html"))) == 4
    assert main(["project", str(pair), "--method", "pca"]) == 0


@pytest.mark.parametrize("case", ["head_name", "head_size", "probe_labels", "probe_head",
                                  "config", "file"])
def test_bad_input_is_one_value_error_and_nothing_is_written(tmp_path, case):
    from geomviz.objectives import create_objective

    out = tmp_path / "run"
    model = mlp(create_objective("ce", 16, 4))
    x, y = blobs(8)
    kw = {"head": "2"}
    if case == "head_name":
        kw["head"] = "fc"
        match = "no submodule 'fc'.*nn.Linear modules and geomviz heads are: 0, 2"
    elif case == "head_size":
        kw["num_classes"] = 10
        match = "head outputs 4 scores but the model has 10 classes"
    elif case == "probe_labels":
        kw["probe_set"] = (x,)
        match = "probe set has no labels"
    elif case == "probe_head":
        kw.update(head=torch.nn.Linear(16, 4), probe_set=(x, y))  # not in the forward path
        match = "head was not called when the model ran on the probe set"
    elif case == "config":
        record(out, steps=5, config={"lr": 0.1})
        before = (out / "run.sqlite").stat().st_mtime_ns, len(open_run(out).scalar_names())
        kw["config"] = {"lr": 0.2}
        match = r"holds a run with another config \(lr: 0.1 -> 0.2\)"
    else:
        out.write_text("x")
        match = "is a file"
    with pytest.raises(ValueError, match=match):
        geomviz.Recorder(out, model, **kw)
    if case == "config":
        assert ((out / "run.sqlite").stat().st_mtime_ns, len(open_run(out).scalar_names())) \
            == before
        with open_run(out) as run:
            assert run.meta["config"] == {"lr": 0.1}
    elif case != "file":
        assert not out.exists()


def test_a_head_never_called_is_one_warning(tmp_path):
    from geomviz.objectives import create_objective

    objective = create_objective("ce", 16, 4)
    model = mlp(objective)
    x, y = blobs(32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with geomviz.Recorder(tmp_path / "r", model, head="2", every=2) as rec:
            for step in range(1, 7):
                rec.before_step(step, y)
                loss = model[0](x).pow(2).mean()  # the head is never called
                loss.backward()
                rec.log(step, loss=loss)
    msgs = [str(w.message) for w in caught if "geomviz" in str(w.message)]
    assert len(msgs) == 1 and "was not called in step 2" in msgs[0]


def test_an_exception_in_the_block_ends_the_run_crashed(tmp_path):
    from geomviz.objectives import create_objective

    model = mlp(create_objective("ce", 16, 4))
    with pytest.raises(RuntimeError), geomviz.Recorder(tmp_path / "r", model, head="2"):
        raise RuntimeError("out of memory")
    with open_run(tmp_path / "r") as run:
        assert run.status == "crashed" and "out of memory" in run.meta["message"]


def test_resume_continues_the_run_and_writes_no_row_twice(tmp_path):
    out = tmp_path / "r"
    record(out, steps=20)
    with pytest.raises(ValueError, match="already"):
        record(out, steps=20)
    record(out, steps=20, resume_from=10)  # the user's checkpoint was at step 10
    con = sqlite3.connect(out / "run.sqlite")
    dup = con.execute("SELECT step, split, name, COUNT(*) FROM scalars GROUP BY 1, 2, 3 "
                      "HAVING COUNT(*) > 1").fetchall()
    dup += con.execute("SELECT step, name, COUNT(*) FROM arrays GROUP BY 1, 2 "
                       "HAVING COUNT(*) > 1").fetchall()
    assert dup == []
    with open_run(out) as run:
        assert run.status == "finished" and run.scalars("loss")["step"].tolist() == [5, 10,
                                                                                      15, 20]


def test_a_training_step_between_rows_does_not_sync_with_the_host(tmp_path, monkeypatch):
    from geomviz.objectives import create_objective

    objective = create_objective("tfsd", 16, 4, validate=False)
    model = mlp(objective)
    x, y = blobs(32)
    with geomviz.Recorder(tmp_path / "r", model, head="2", every=4) as rec:
        calls = spy_host_syncs(monkeypatch)
        for step in (1, 2, 3):
            rec.before_step(step, y)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = objective.loss(model(x), y)
            loss.backward()
            rec.log(step, loss=loss, lr=0.1)
        assert calls == []
        monkeypatch.undo()
    with open_run(tmp_path / "r") as run:  # the rest was written at close
        assert run.scalars("loss")["step"].tolist() == [3]


def test_the_recorder_is_exported_without_framework_imports():
    import subprocess
    import sys

    code = ("import sys, geomviz; assert geomviz.Recorder; "
            "print([m for m in sys.modules if m.split('.')[0] in ('lightning', "
            "'pytorch_lightning', 'transformers')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    assert D_IN == 8


def test_a_compiled_model_records_what_the_eager_one_does(tmp_path):
    from geomviz.objectives import create_objective

    def run(out, compile_: bool):
        torch.manual_seed(1)  # the head's initial vectors
        objective = create_objective("tfsd", 16, 4, validate=False)
        model = mlp(objective)
        step_model = torch.compile(model, backend="aot_eager") if compile_ else model
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = blobs(64)
        with geomviz.Recorder(out, model, head="2", objective=objective, every=2) as rec:
            for step in range(1, 5):
                rec.before_step(step, y)
                loss = objective.loss(step_model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log(step, loss=loss)
        with open_run(out) as r:
            return {n: r.scalars(n, "train")["value"] for n in
                    ("loss", "penultimate.norm.p50", "grad.radial_fraction")}

    torch._dynamo.reset()
    eager, compiled = run(tmp_path / "e", False), run(tmp_path / "c", True)
    for name, values in eager.items():
        assert len(values) == 2, name
        torch.testing.assert_close(compiled[name], values, rtol=1e-4, atol=1e-6)


KILLED = """
import os, sys, torch
sys.path.insert(0, {root!r})
import geomviz
from tests.integrations.helpers import mlp
from geomviz.objectives import create_objective
rec = geomviz.Recorder({out!r}, mlp(create_objective("ce", 16, 4)), head="2", heartbeat_s=0.1)
rec.log(1, loss=torch.tensor(1.0), lr=0.1)
rec.flush(1)
os.kill(os.getpid(), 9)
"""


def test_a_killed_process_leaves_a_run_that_reads_as_crashed(tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "r"
    res = subprocess.run([sys.executable, "-c", KILLED.format(root=str(root), out=str(out))],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == -9, res.stderr[-2000:]
    time.sleep(0.5)
    with open_run(out, stale_after=0.4) as run:
        assert run.status == "crashed" and run.scalars("loss")["step"].tolist() == [1]


def test_labels_by_the_default_rule_or_the_users_and_test_data_from_a_callable(tmp_path):
    from geomviz.integrations.batches import default_labels
    from geomviz.objectives import create_objective

    x, y = blobs(32)
    assert default_labels((x, y)) is y and default_labels({"x": x, "labels": y}) is y
    with pytest.raises(ValueError, match="cannot find the labels"):
        default_labels({"x": x})
    objective = create_objective("ce", 16, 4)
    model = mlp(objective)
    with geomviz.Recorder(tmp_path / "r", model, head="2", every=1,
                          labels=lambda b: b["answer"], inputs=lambda b: b["x"]) as rec:
        batch = {"x": x, "answer": y}
        rec.before_step(1, batch)
        objective.loss(model(x), y).backward()
        rec.log(1)
        res = rec.evaluate(1, test=lambda: [batch])
    assert set(res["test"]) == {"acc", "nll", "ece"}
    with open_run(tmp_path / "r") as run:
        hist = run.histograms("penultimate.norm", split="train")
        assert hist.counts.sum() == 32 and run.meta["final"]["test"] == res["test"]
