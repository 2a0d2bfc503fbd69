"""`geomviz sweep` end to end on a 2 × 2 grid (seconds): a diverging run is counted, not a
crash; a rerun reuses every run; the report and figures are built; bad input is one line."""

import json
import math
from pathlib import Path

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
    for bad in ("", " , ", "1e-3,x", "0", "-1", "inf", "nan", "1e-3,1e-3", "1e39", "1e-3,1e300",
                "1e-300"):  # the last three: outside float32, as train's --lr (issue 25 row 7)
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
    (["--lrs", "0,1e-3"], "must be > 0"),
    (["--lrs=-1e-3"], "must be > 0"),
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


# --- a sweep that is refused, or a new grid in an old folder, never loses the old one ---

def _copy(swept, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(swept[0], out, symlinks=True)
    return out, (out / "runs" / MANIFEST).read_text()


def _unchanged(out, before, extra=()):
    assert (out / "runs" / MANIFEST).read_text() == before
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == sorted([*json.loads(before)["runs"], MANIFEST, *extra])


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_refused_device_leaves_the_existing_sweep_alone(swept, tmp_path, capsys):
    out, before = _copy(swept, tmp_path)
    code = main(["sweep", "--dataset", "gaussians", "--epochs", "1", "--seeds", "7",
                 "--objectives", "ce", "--lrs", "0.5", "--out", str(out), "--device", "cuda"])
    err = capsys.readouterr()
    assert code == 2 and "CUDA is not available" in err.err and "==" not in err.out
    _unchanged(out, before)


@pytest.mark.parametrize("kind", ["missing", "dir", "short"])
def test_bad_text_data_leaves_the_existing_sweep_alone(swept, tmp_path, capsys, kind):
    out, before = _copy(swept, tmp_path)
    path = tmp_path / "data.txt"
    if kind == "dir":
        path.mkdir()
    elif kind == "short":
        path.write_text("too short")
    text = {k: v for k, v in TINY.items() if k not in ("train_tokens", "test_tokens")}
    base, _ = sweep_config(None, {**text, "dataset": "text", "data_path": str(path)})
    with pytest.raises(Exception) as e:
        train_sweep(base, ["ce"], [0.5], [7], [False], out / "runs")
    assert type(e.value).__name__ in ("ConfigError", "DataError", "StoreError")
    _unchanged(out, before)
    code = main(["sweep", "--dataset", "text", "--data-path", str(path), "--seeds", "7",
                 "--objectives", "ce", "--lrs", "0.5", "--out", str(out), "--epochs", "1"])
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    _unchanged(out, before)


def test_an_image_dataset_without_its_folder_is_refused_before_any_work(swept, tmp_path):
    out, before = _copy(swept, tmp_path)
    base, _ = sweep_config(None, {"dataset": "cifar10", "epochs": 1})
    with pytest.raises(ConfigError, match="needs --data-dir"):
        train_sweep(base, ["ce"], [0.5], [7], [False], out / "runs")
    _unchanged(out, before)


def test_a_new_grid_of_the_same_config_is_merged_and_reported_as_the_union(swept, tmp_path):
    out, before = _copy(swept, tmp_path)
    base, _ = sweep_config(None, TINY)
    res = run_sweep(base, ["ce"], [3e-2], [0], [False], out, ("html",), command="merge")
    manifest = json.loads((out / "runs" / MANIFEST).read_text())
    assert set(json.loads(before)["runs"]) < set(manifest["runs"])
    assert "ce-lr0.03-qkoff-s0" in manifest["runs"] and manifest["lrs"] == [1e-2, 3e-2, HUGE]
    assert len(res["results"]) == 5 and len(res["grid"].earlier) == 4
    text = (out / "report.md").read_text()
    assert "covers their union, 4 of the 5 runs" in text and "lr 0.03" in text


def test_a_new_grid_of_another_config_is_refused_before_any_work(swept, tmp_path):
    out, before = _copy(swept, tmp_path)
    m = json.loads(before)
    del m["config"]  # a manifest from before it recorded one: its runs' config decides
    before = json.dumps(m)
    (out / "runs" / MANIFEST).write_text(before)
    code = main(["sweep", "--dataset", "synonyms", "--train-tokens", "2048", "--epochs", "1",
                 "--objectives", "ce", "--lrs", "3e-2", "--seeds", "0", "--out", str(out)])
    assert code == 2
    base, _ = sweep_config(None, {**TINY, "epochs": 2})
    with pytest.raises(ConfigError, match="another config .*epochs"):
        train_sweep(base, ["ce"], [3e-2], [0], [False], out / "runs")
    _unchanged(out, before)


def test_rates_whose_run_names_coincide_are_refused(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["sweep", "--dataset", "gaussians", "--lrs", "1e-3,1.000001e-3",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "same run name" in err[0] and not out.exists()


def test_a_run_killed_before_its_first_checkpoint_is_restarted(tmp_path, monkeypatch,
                                                               capsys):
    import dataclasses
    import os
    import subprocess
    import sys

    from geomviz.store import RunLock, StoreError
    from geomviz.study.sweep import check_grid

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    base, _ = sweep_config(None, TINY)
    _, cfgs = check_grid(base, ["ce"], [1e-2], [0], [False], tmp_path / "runs")
    run = cfgs[0].out
    code = ("import os, signal, sys; from geomviz.store import RunWriter; "
            "import json; w = RunWriter(sys.argv[1], json.loads(sys.argv[2])); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    meta = json.dumps({"config": dataclasses.asdict(cfgs[0]), "objective": "ce"})
    import geomviz

    env = {**os.environ, "PYTHONPATH": str(Path(geomviz.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code, run, meta], env=env, check=False)
    assert open_run(run).meta["status"] in ("running", "crashed")  # fresh heartbeat: running
    lock = RunLock(run)  # a live writer: never touched
    with pytest.raises(StoreError, match="still being written"):
        train_sweep(base, ["ce"], [1e-2], [0], [False], tmp_path / "runs")
    lock.release()
    grid = train_sweep(base, ["ce"], [1e-2], [0], [False], tmp_path / "runs")
    assert "(restarted: its writer died" in capsys.readouterr().out
    assert [p.name for p in grid.trained] == ["ce-lr0.01-qkoff-s0"]
    assert open_run(run).meta["status"] == "finished"


def test_list_items_are_never_empty_and_repeats_name_the_value():
    from geomviz.study.sweep import parse_items

    assert parse_items("0, 1", "--seeds", int) == [0, 1]
    for bad, msg in (("0,,1", "empty item"), ("ce,", "empty item"), ("", "at least one"),
                     ("a", "cannot parse"), ("1,1", "twice")):
        with pytest.raises(ConfigError, match=msg):
            parse_items(bad, "--seeds", int if bad != "ce," else str)
    with pytest.raises(ConfigError, match="'on' is listed twice"):
        parse_onoff("on,on")


def test_the_gpu_preset_warns_on_a_cpu(capsys):
    from geomviz.study.sweep import gpu_warning

    base, _ = sweep_config("lm-spikes-gpu", {"device": "cpu"})
    assert capsys.readouterr().err == ""  # the command prints it, once every flag is checked
    assert "sized for a GPU" in gpu_warning("lm-spikes-gpu", base)
    assert gpu_warning("lm-spikes", sweep_config("lm-spikes", {"device": "cpu"})[0]) is None


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_bad_flag_on_the_gpu_preset_is_its_one_line(tmp_path, capsys):
    """Issue 25 row 10: the GPU warning came before the error (2 lines)."""
    assert main(["sweep", "--preset", "lm-spikes-gpu", "--lrs", "x",
                 "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'x' is not a number" in err[0], err


# --- issue 25 rows 4, 5, 6 and 9: nothing written is lost, nothing refused is left behind ---

def test_a_second_grid_into_a_folder_being_written_is_refused(tmp_path, capsys):
    """Row 4: two different sweeps into one --out both exited 0 and sweep.json kept only
    the last writer's runs; the grid folder is now locked for the whole command."""
    from geomviz.study.gridfolder import GridLock

    out = tmp_path / "sweep"
    out.mkdir()
    lock = GridLock(out)  # another grid, alive
    try:
        code = main([*GAUSS, "--lrs", "0.5", "--out", str(out)])
    finally:
        lock.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "being written by another geomviz grid" in err[0]
    assert [p.name for p in out.iterdir()] == ["grid.lock"]


GAUSS = ["sweep", "--dataset", "gaussians", "--objectives", "ce", "--seeds", "0", "--epochs",
         "1", "--format", "html", "--no-progress"]


@pytest.mark.parametrize("command", ["sweep", "study"])
def test_a_users_own_report_and_figures_are_never_overwritten(tmp_path, capsys, command):
    """Row 5: sweep and study overwrote a user's report.md and figures/* in --out."""
    out = tmp_path / "mine"
    (out / "figures").mkdir(parents=True)
    (out / "report.md").write_text("my notes")
    (out / "figures" / "lr_sensitivity.html").write_text("my figure")
    args = (["sweep", "--dataset", "gaussians", "--lrs", "0.5", "--objectives", "ce"]
            if command == "sweep" else ["study", "--preset", "gaussians", "--objectives",
                                        "ce"])
    code = main([*args, "--seeds", "0", "--epochs", "1", "--out", str(out), "--format",
                 "html", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds files no geomviz grid wrote" in err[0], err
    assert (out / "report.md").read_text() == "my notes"
    assert (out / "figures" / "lr_sensitivity.html").read_text() == "my figure"
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.md"]


def test_the_grid_reruns_over_its_own_files_and_refuses_a_users(tmp_path, capsys):
    """What the grid wrote is recorded as its own: a rerun rewrites it (and a second grid
    of the same config merges in); a file a user adds later is refused."""
    from geomviz.study.gridfolder import OWNED

    out = tmp_path / "sweep"
    assert main([*GAUSS, "--lrs", "0.5", "--out", str(out)]) == 0
    owned = json.loads((out / OWNED).read_text())["files"]
    assert "report.md" in owned and "figures/lr_sensitivity.html" in owned
    assert main([*GAUSS, "--lrs", "0.5,0.1", "--out", str(out)]) == 0
    assert "1 reused" in capsys.readouterr().out
    (out / "figures" / "extra.png").write_bytes(b"mine")
    assert main([*GAUSS, "--lrs", "0.5", "--out", str(out)]) == 2
    assert "'figures/extra.png'" in capsys.readouterr().err


def test_a_bad_manifest_entry_is_one_warning_and_the_good_runs_stay(swept, tmp_path, capsys):
    """Row 6: an entry with "lr": NaN was kept on rerun and hid the whole sweep."""
    from geomviz.study.sweep_results import collect_root

    out, before = _copy(swept, tmp_path)
    m = json.loads(before)
    m["runs"]["ce-lr0.01-qkoff-s0"]["lr"] = float("nan")
    m["runs"]["junk"] = {"objective": "ce", "lr": 0.1, "qk": False, "seed": "zero"}
    (out / "runs" / MANIFEST).write_text(json.dumps(m))
    results = collect_root(out / "runs")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 bad run entries left out" in err[0] and "lr nan" in err[0]
    assert sorted(r.folder.name for r in results) == [
        "ce-lr1e+30-qkoff-s0", "tfsd-lr0.01-qkoff-s0", "tfsd-lr1e+30-qkoff-s0"]
    base, _ = sweep_config(None, TINY)
    grid = train_sweep(base, ["tfsd"], [1e-2], [0], [False], out / "runs")  # a rerun
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    kept = json.loads((out / "runs" / MANIFEST).read_text())["runs"]
    assert "junk" not in kept and kept["tfsd-lr0.01-qkoff-s0"]["lr"] == 1e-2
    assert all(v["lr"] == v["lr"] for v in kept.values()) and grid.reused


@pytest.mark.parametrize("command", ["sweep", "study"])
def test_a_data_error_at_load_time_leaves_no_folder(tmp_path, capsys, command):
    """Row 9: a too-short corpus, found when the data loads, left an empty --out."""
    text = tmp_path / "short.txt"
    text.write_text("too short")
    out = tmp_path / "new" / "out"
    args = (["sweep", "--dataset", "text", "--lrs", "0.5", "--objectives", "ce"]
            if command == "sweep" else ["study", "--preset", "lm-text", "--objectives", "ce"])
    code = main([*args, "--data-path", str(text), "--seeds", "0", "--epochs", "1",
                 "--out", str(out), "--format", "html"])
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_one_epoch_is_singular_in_the_report(swept):
    """Issue 24 row 10: the report said "1 epochs"."""
    text = (swept[0] / "report.md").read_text()
    assert "1 epoch of 1024 training tokens" in text and "1 epochs" not in text
