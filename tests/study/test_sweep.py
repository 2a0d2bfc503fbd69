"""`geomviz sweep` end to end on a 2 × 2 grid (seconds): a diverging run is counted, not a
crash; a rerun reuses every run; the report and figures are built; bad input is one line."""

import json
import math

import pytest

from geomviz.cli import main
from geomviz.store import open_run
from geomviz.study.sweep import MANIFEST, parse_lrs, parse_onoff, sweep_config, train_sweep
from geomviz.study.sweep_report import run_sweep
from geomviz.training.config import ConfigError

TINY = {"dataset": "synonyms", "train_tokens": 1024, "test_tokens": 256, "seq_len": 16,
        "block_size": 16, "feature_dim": 16, "epochs": 1, "batch_size": 8, "flush_every": 4,
        "snapshots": 0, "progress": False, "warmup_epochs": 0.0}
HUGE = 1e30  # AdamW moves every weight by about lr: the loss overflows within steps


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("sweep")
    base, _ = sweep_config(None, TINY)
    res = run_sweep(base, ["ce", "tfsd"], [1e-2, HUGE], [0], [False], out, ("html",),
                    command="geomviz sweep (test)")
    yield out, base, res
    mp.undo()


def test_a_diverging_run_is_kept_and_counted_not_a_crash(swept):
    out, _, res = swept
    grid = res["grid"]
    assert len(grid.trained) == 4 and len(grid.cells) == 4
    div = {p.name for p in grid.diverged}
    assert "ce-lr1e+30-qkoff-s0" in div
    for p in grid.diverged:
        assert open_run(p).meta["status"] == "diverged"
    ce = next(s for s in res["summaries"] if s.objective == "ce")
    assert ce.diverged >= 1 and ce.largest_stable == 1e-2
    r = next(r for r in res["results"] if r.folder.name == "ce-lr1e+30-qkoff-s0")
    assert r.capped == pytest.approx(math.log(256))  # counted as the initial loss
    manifest = json.loads((out / "runs" / MANIFEST).read_text())
    assert manifest["lrs"] == [1e-2, HUGE] and len(manifest["runs"]) == 4


def test_a_rerun_reuses_every_run_diverged_included(swept):
    out, base, _ = swept
    again = train_sweep(base, ["ce", "tfsd"], [1e-2, HUGE], [0], [False], out / "runs")
    assert again.trained == [] and len(again.reused) == 4 and again.diverged == []


def test_report_and_figures_are_written(swept):
    out, _, res = swept
    text = (out / "report.md").read_text()
    assert "| ce | " in text and "| tfsd | " in text and "lr 0.01" in text
    assert "largest stable lr" in text and "(1 div.)" in text
    assert "one seed: Δ" in text  # a verdict with its (here absent) interval
    assert (out / "figures" / "lr_sensitivity.html").exists()
    assert (out / "figures" / "instability.html").exists()
    assert "figures/instability.html" in text


def test_parse_lrs_and_onoff():
    assert parse_lrs("1e-3, 3e-3") == [1e-3, 3e-3]
    for bad in ("", " , ", "1e-3,x", "0", "-1", "inf", "nan", "1e-3,1e-3"):
        with pytest.raises(ConfigError):
            parse_lrs(bad)
    assert parse_onoff("on,off") == [True, False]
    for bad in ("", "maybe", "on,on"):
        with pytest.raises(ConfigError):
            parse_onoff(bad)


@pytest.mark.parametrize("args,message", [
    (["--lrs", ""], "--lrs must list at least one"),
    (["--lrs", ","], "--lrs must list at least one"),
    (["--lrs", "1e-3,fast"], "'fast' is not a number"),
    (["--lrs", "0,1e-3"], "finite number > 0"),
    (["--lrs=-1e-3"], "finite number > 0"),
    (["--lrs", "1e-3,1e-3"], "listed twice"),
    (["--lrs", "1e-3", "--seeds", ""], "--seeds must name at least one"),
    (["--lrs", "1e-3", "--seeds", "a"], "cannot parse the list"),
    (["--lrs", "1e-3", "--objectives", "cee"], "unknown objective 'cee'"),
    (["--lrs", "1e-3", "--qk-layernorm", "sometimes"], "--qk-layernorm takes on, off"),
    (["--lrs", "1e-3", "--qk-layernorm", "on"], "needs the gpt model"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--lrs", "1e-3", "--epochs", "0"], "must be >= 1"),
    (["--lrs", "1e-3", "--format", "gif"], "unknown format"),
    ([], "--lrs must list at least one"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    out = tmp_path / "never"
    try:
        code = main(["sweep", *args, "--out", str(out)])
    except SystemExit as e:  # argparse's own range checks exit by themselves
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()  # caught before any work
