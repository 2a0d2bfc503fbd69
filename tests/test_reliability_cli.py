"""Issue 12 from the command line: every user error of its list is one line on stderr and
exit status 2, without a traceback, and one unreadable store hides no other run (in
`geomviz runs`, `geomviz figures` and the study grid)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from geomviz.store import STORE_FILE, open_run
from geomviz.training.config import resolve_config
from geomviz.training.train import CHECKPOINT, train
from tests.helpers import cli_many, set_meta_raw

ROOT = Path(__file__).resolve().parents[1]
TINY = {"dataset": "gaussians", "epochs": 1, "snapshots": 0, "progress": False}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A finished tiny run, its damaged copies, and the files the bad inputs point at."""
    root = tmp_path_factory.mktemp("rel")
    cache = root / "cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(cache))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny run: threads only contend with the other processes
    try:
        good = train(resolve_config(TINY, {"out": str(root / "runs" / "good")}))
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    (root / "afile").write_text("not a folder")
    for name, content in (("garbage", b"garbage" * 1000), ("truncated", None)):
        (root / name).mkdir()
        data = (good / STORE_FILE).read_bytes()[:4096] if content is None else content
        (root / name / STORE_FILE).write_bytes(data)
    shutil.copytree(good, root / "badckpt")
    ckpt = root / "badckpt" / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    for name, key, value in (("nostatus", "status", None), ("notjson", "final", "{oops")):
        shutil.copytree(good, root / "runs" / name)
        set_meta_raw(root / "runs" / name, key, value)
    configs = {"hidden": "hidden: abc\n", "kw": "objective_kw: [1, 2]\n",
               "ood": "ood_classes: 8\n", "probes": "probes: nah\n"}
    for name, text in configs.items():
        (root / f"{name}.yaml").write_text(text)
    env = dict(os.environ, GEOMVIZ_CACHE=str(cache), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return root, good, env




def _cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geomviz", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)




def _cases(root: Path, good: Path) -> list[tuple[list[str], str]]:
    tr = ["train", "--dataset", "gaussians", "--epochs", "1", "--no-progress"]
    runs = str(root / "runs")
    cases = [
        # 6. paths: --out a file, under a file, /proc/x; figures --out a file
        ([*tr, "--out", str(root / "afile")], "is a file, not a folder"),
        ([*tr, "--out", str(root / "afile" / "run")], "which is a file"),
        ([*tr, "--out", ""], "out is empty"),
        ([*tr, "--data-path", str(root / "afile"), "--out", str(root / "dp")],
         "--data-path applies to --dataset text only"),
        (["figures", runs, "--out", str(root / "afile")], "is a file, not a folder"),
        (["runs", str(root / "afile")], "is not a folder"),
        # 6. YAML values of the wrong type
        ([*tr, "--config", str(root / "hidden.yaml")], "config key hidden"),
        ([*tr, "--config", str(root / "kw.yaml")], "config key objective_kw"),
        ([*tr, "--config", str(root / "ood.yaml")], "config key ood_classes"),
        # 6. --resume on a truncated or garbage store, or a truncated checkpoint
        ([*tr, "--resume", "--out", str(root / "garbage")], "not a readable geomviz run store"),
        ([*tr, "--resume", "--out", str(root / "truncated")], "not a readable geomviz run"),
        ([*tr, "--resume", "--snapshots", "0", "--out", str(root / "badckpt")],
         "cannot be read"),
        # 6. a port out of range
        (["dashboard", runs, "--port", "70000"], "70000 is out of range (1..65535)"),
        # 7. bad values accepted or caught late
        ([*tr, "--config", str(root / "probes.yaml")], "config key probes: cannot use 'nah'"),
        ([*tr, "--eval-batch-size", "0"], "eval_batch_size must be >= 1"),
        (["figures", runs, "--steps", "0"], "--steps: 0 must be >= 1"),
        (["figures", runs, "--steps", "-3"], "--steps: -3 must be >= 1"),
        (["figures", runs, "--max-points", "0"], "--max-points: 0 must be >= 1"),
        (["figures", runs, "--score", "bogus"], "invalid choice: 'bogus'"),
        (["study", "--preset", "gaussians", "--width", "0", "--out", str(root / "st")],
         "--width: 0 must be >= 1"),
        (["study", "--preset", "gaussians", "--seeds", "0,0", "--out", str(root / "st")],
         "--seeds lists 0 twice"),
        (["compare", "--seeds", "1,1", "--runs-dir", str(root / "cmp")], "lists 1 twice"),
        ([*tr, "--seed", "1" * 20], "seed must be in [0, 2**32)"),
        # 3. --resume with another meaning, or fewer epochs; 2. a run that already exists
        ([*tr, "--resume", "--snapshots", "0", "--batch-size", "64", "--objective", "tfsd",
          "--out", str(good)], "objective: 'ce' -> 'tfsd'; batch_size: 128 -> 64"),
        ([*tr[:-3], "--epochs", "0", "--resume", "--out", str(good)], "epochs must be >= 1"),
        ([*tr, "--snapshots", "0", "--out", str(good)], "already exists"),
        # the language-model fields
        *[([*tr, f"--{flag}", "0"], f"{flag.replace('-', '_')} must be >= 1")
          for flag in ("vocab-size", "train-tokens", "test-tokens", "concepts",
                       "max-synonyms", "block-size")],
        ([*tr, "--tokenizer", "words"], "tokenizer must be one of bpe, bytes"),
        # issue 25 row 10: a figure name is checked before the stores (runs/ holds two bad
        # ones, each a warning line), and the byte tokenizer's size is not a choice
        (["figures", runs, "--only", "junk", "--out", str(root / "fo")],
         "unknown figure 'junk'"),
        (["train", "--dataset", "text", "--data-path", str(root / "afile"), "--tokenizer",
          "bytes", "--vocab-size", "100", "--out", str(root / "tb")],
         "the byte tokenizer has 256 tokens"),
        # issue 25 row 7: rates float32 cannot hold, and data sizes that cannot fit in memory
        ([*tr, "--lr", "1e39", "--out", str(root / "r7a")], "lr 1e+39 is not a finite float32"),
        ([*tr, "--lr", "1e300", "--out", str(root / "r7b")], "lr 1e+300 is not a finite"),
        ([*tr, "--lr", "1e-300", "--out", str(root / "r7d")], "below float32's smallest normal"),
        (["compare", "--objectives", "ce", "--dataset", "gaussians", "--lr", "1e39",
          "--runs-dir", str(root / "r7c")], "lr 1e+39 is not a finite float32"),
        (["sweep", "--dataset", "gaussians", "--lrs", "1e-300,1e300", "--out", str(root / "r7s")],
         "--lrs 1e-300 is below float32's smallest normal"),
        *[(["train", "--dataset", "synonyms", *size, "--out", str(root / "r7m")],
           "memory (estimated before allocating") for size in (
            ["--train-tokens", "1e15"], ["--test-tokens", "1000000000000000"],
            ["--vocab-size", "1000000", "--concepts", "250000", "--order", "1"])],
        (["train", "--dataset", "synonyms", "--vocab-size", "1000000", "--concepts", "250000",
          "--out", str(root / "r7m")], "order 2 allows at most 256 concepts"),
        (["compare", "--dataset", "synonyms", "--train-tokens", "1e15", "--runs-dir",
          str(root / "r7c")], "memory (estimated before allocating"),
    ]
    if sys.platform.startswith("linux"):
        cases.append(([*tr, "--out", "/proc/geomviz-x"], "cannot create it"))
    if os.geteuid() != 0:  # root writes anywhere
        locked = root / "locked"
        locked.mkdir(exist_ok=True)
        locked.chmod(0o500)
        cases.append(([*tr, "--out", str(locked / "run")], "is not writable"))
    return cases


def _check(args, message, rc, stderr) -> str | None:
    lines = stderr.strip().splitlines()
    if rc == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in stderr:
        return None
    return f"{' '.join(args[:9])}: exit {rc}, stderr {stderr[-500:]!r}"


def test_every_user_error_of_the_issue_is_one_line_and_exit_2(world):
    root, good, env = world
    cases = _cases(root, good)
    results = cli_many([args for args, _ in cases], env, root)
    failures = [f for (args, msg), (rc, err) in zip(cases, results, strict=True)
                if (f := _check(args, msg, rc, err))]
    assert not failures, "\n".join(failures)
    # the refused resumes left the good run as it was
    with open_run(good) as run:
        assert run.meta["status"] == "finished" and run.meta["config"]["batch_size"] == 128


def test_python_m_geomviz_exits_2_with_one_line(world):
    """The same through ``python -m geomviz`` itself: a flag, a config value, a path and a
    damaged store, each a process of its own."""
    root, _, env = world
    cases = [c for c in _cases(root, world[1]) if c[1] in (
        "70000 is out of range (1..65535)", "config key probes: cannot use 'nah'",
        "which is a file", "not a readable geomviz run store")]
    assert len(cases) == 4
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _cli(c[0], env, root), cases))
    failures = [f for (args, msg), r in zip(cases, results, strict=True)
                if (f := _check(args, msg, r.returncode, r.stderr))]
    assert not failures, "\n".join(failures)


def test_a_bad_store_is_one_row_or_warning_and_the_others_are_listed(world):
    root, _, env = world
    runs = root / "runs"
    r = _cli(["runs", str(runs)], env, root)
    assert r.returncode == 0, r.stderr
    rows = {Path(line.split()[0]).name: line for line in r.stdout.splitlines()[1:]}
    assert "finished" in rows["good"]
    assert r.stdout.split()[:5] == ["run", "objective", "dataset", "seed", "lr"]
    assert rows["good"].split()[0] == "good"  # relative to the folder asked for, never cut
    assert "unreadable" in rows["nostatus"] and "status is 'missing'" in rows["nostatus"]
    assert "unreadable" in rows["notjson"] and "'final' is not JSON" in rows["notjson"]
    out = root / "figs"
    r = _cli(["figures", str(runs), "--only", "summary_table", "--format", "html",
              "--out", str(out)], env, root)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("geomviz: warning")]
    assert len(warnings) == 2 and all("skipping" in w for w in warnings)
    assert (out / "summary_table.html").exists() and "from 1 runs" in r.stdout


def test_study_grid_skips_an_unreadable_store_with_a_warning(tmp_path, monkeypatch, capsys):
    from geomviz.study.runner import train_grid

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "runs"
    (root / "ce-s0").mkdir(parents=True)
    (root / "ce-s0" / STORE_FILE).write_bytes(b"garbage" * 100)
    grid = train_grid(resolve_config(TINY), ["ce"], [0, 1], root, reuse=True)
    assert grid.runs == [root / "ce-s1"] and grid.trained == [root / "ce-s1"]
    err = capsys.readouterr().err
    assert "warning: skipping" in err and "ce-s0" in err
    assert (root / "ce-s0" / STORE_FILE).read_bytes() == b"garbage" * 100  # never overwritten
    assert open_run(root / "ce-s1").meta["status"] == "finished"


def test_build_figures_leaves_out_a_bad_store_given_directly(world, capsys):
    from geomviz.study.figureset import build_figures

    root, good, _ = world
    figs = build_figures([root / "runs" / "nostatus", good, root / "garbage"],
                         ["summary_table"])
    assert [r["folder"] for r in figs.records] == [str(good)]
    assert "summary_table" in figs.figures
    err = capsys.readouterr().err
    assert err.count("geomviz: warning: skipping") == 2 and "nostatus" in err


def test_dashboard_that_cannot_listen_is_one_line_before_any_work(tmp_path, capsys):
    import socket

    from geomviz.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", str(tmp_path), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert "cannot serve on 127.0.0.1" in err and len(err.strip().splitlines()) == 1
        # the demo refuses before it trains anything
        assert main(["demo", "--runs-dir", str(tmp_path / "r"), "--port", str(port)]) == 2
        assert not (tmp_path / "r").exists()


def test_a_run_refused_for_its_data_leaves_no_folder(tmp_path, capsys):
    from geomviz.cli import main

    out = tmp_path / "a" / "b"
    for bad in (["--dataset", "mnist1d", "--ood-classes", "10"],
                ["--dataset", "gaussians", "--ood-dataset", "svhn"]):
        assert main(["train", *bad, "--epochs", "1", "--out", str(out)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert not (tmp_path / "a").exists()


def test_the_dashboard_prints_no_line_per_request(tmp_path):
    """Live pages poll every few seconds: Werkzeug's access log buried the terminal."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "geomviz", "dashboard", str(tmp_path),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and status is None and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    status = r.status
            except OSError:
                time.sleep(0.2)
        assert status == 200, proc.stderr.read() if proc.poll() is not None else "no answer"
        for _ in range(3):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=5).read()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "GET /" not in err and "GET /" not in out, err[-500:]
    assert f"http://127.0.0.1:{port}/" in out
