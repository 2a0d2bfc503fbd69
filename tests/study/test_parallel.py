"""Grids on ``--workers N`` processes: bit-identical to serial runs at the same torch thread
count, Ctrl-C and ``kill -9`` cost no run (they resume), a run that raises is counted with
its reason and the grid goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from geomviz.grid import Execution
from geomviz.store import RunLock, open_run
from geomviz.study.sweep import sweep_config, train_sweep
from tests.study.test_sweep import TINY

_TIMING = ("samples_per_s", "tokens_per_s")


def run_values(folder: Path) -> dict:
    """Every stored scalar (timings aside) and array of a run, for exact comparison."""
    with open_run(folder) as run:
        out = {}
        for name in run.scalar_names():
            if name not in _TIMING:
                d = run.scalars(name)
                out[name] = (d["step"].tolist(), list(d["split"]), d["value"].tolist())
        for name in run.array_names():
            out[f"array:{name}"] = {s: a.tobytes() for s, a in run.arrays(name).items()}
        out["final"] = run.meta["final"]
    return out


def assert_identical(a: Path, b: Path) -> None:
    va, vb = run_values(a), run_values(b)
    assert va.keys() == vb.keys()
    for k in va:  # exact: floats by their repr, arrays by their bytes
        assert json.dumps(va[k], default=repr) == json.dumps(vb[k], default=repr), k


@pytest.fixture(scope="module")
def serial_1thread(tmp_path_factory):
    """The tiny grid trained serially in this process with one torch thread."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    root = tmp_path_factory.mktemp("serial") / "runs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base, _ = sweep_config(None, TINY)
        grid = train_sweep(base, ["ce", "tfsd"], [1e-2], [0, 1], [False], root)
    finally:
        torch.set_num_threads(threads)
    yield base, grid
    mp.undo()


def test_workers_give_runs_bit_identical_to_serial_ones(serial_1thread, tmp_path):
    """2 workers on 2 cores: 1 torch thread each, as the serial grid had."""
    base, serial = serial_1thread
    grid = train_sweep(base, ["ce", "tfsd"], [1e-2], [0, 1], [False], tmp_path / "runs",
                       Execution(workers=2))
    assert [p.name for p in grid.trained] == [p.name for p in serial.trained]
    assert len(grid.trained) == 4 and not grid.failed
    for a, b in zip(serial.trained, grid.trained, strict=True):
        assert_identical(a, b)


_SCRIPT = """
import json, signal, sys
# Ctrl-C as from a terminal: a shell that starts pytest in the background (`cmd &`, as a
# CI wrapper may) passes SIGINT down ignored, and Python then never raises
# KeyboardInterrupt; the grid ran to its end and this test failed on a clean clone
signal.signal(signal.SIGINT, signal.default_int_handler)
from geomviz.grid import Execution
from geomviz.study.sweep import sweep_config
from geomviz.study.sweep_report import run_sweep
cfg, lrs, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
base, _ = sweep_config(None, cfg)
grid = run_sweep(base, ["ce", "tfsd"], lrs, [0], [False], out, ("html",), command="test",
                 execution=Execution(workers=2))["grid"]
print("failed:", len(grid.failed), "reused:", len(grid.reused), flush=True)
"""


def _grid(tmp_path: Path, out: Path, epochs: int, lrs: list[float]) -> subprocess.Popen:
    """The tiny sweep on 2 workers in a process of its own (as the CLI runs it; the CLI
    has no flags for the tiny sizes)."""
    import geomviz

    env = {**os.environ, "PYTHONPATH": str(Path(geomviz.__file__).parents[1]),
           "GEOMVIZ_CACHE": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, json.dumps({**TINY,
                             "epochs": epochs}), json.dumps(lrs), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the grid never got there")
        time.sleep(0.1)


def _epochs_done(run: Path) -> int:
    try:
        with open_run(run) as r:
            return int(r.meta.get("epochs_done") or 0)
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def _writer_pid(run: Path) -> int | None:
    try:
        return int((run / "run.lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def test_ctrl_c_stops_every_worker_and_the_next_call_resumes(tmp_path):
    out = tmp_path / "sweep"
    runs = [out / "runs" / f"{o}-lr0.01-qkoff-s0" for o in ("ce", "tfsd")]
    # 120 epochs of ~60 ms each on an idle core: the interrupt lands mid-run (12 epochs
    # could end before the poll saw the first one, and the test then found nothing to stop)
    epochs = 120
    proc = _grid(tmp_path, out, epochs, [1e-2])
    _wait_for(lambda: all(_epochs_done(r) >= 1 for r in runs))
    assert proc.poll() is None, "the grid ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    for r in runs:
        RunLock(r).release()  # no writer left alive
        with open_run(r) as run:
            assert run.meta["status"] == "crashed" and run.meta["epochs_done"] < epochs
    proc = _grid(tmp_path, out, epochs, [1e-2])
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert stdout.count("(resumed): started") == 2 and "failed: 0" in stdout
    for r in runs:
        with open_run(r) as run:
            assert run.meta["status"] == "finished" and len(run.meta["resumes"]) == 1


def test_a_killed_worker_costs_only_its_run_which_resumes(tmp_path):
    out = tmp_path / "sweep"
    victim = out / "runs" / "ce-lr0.01-qkoff-s0"
    epochs = 60  # ~60 ms each on an idle core: the kill lands mid-run (as in the test above)
    proc = _grid(tmp_path, out, epochs, [1e-2, 3e-2])
    _wait_for(lambda: _epochs_done(victim) >= 1 and _writer_pid(victim) is not None)
    assert _epochs_done(victim) < epochs, "the run ended before it could be killed"
    os.kill(_writer_pid(victim), signal.SIGKILL)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "failed: 1" in stdout, err
    with open_run(victim) as run:  # at once, not after the heartbeat went stale
        assert run.meta["status"] == "crashed" and "SIGKILL" in run.meta["message"]
    for r in (out / "runs").glob("*-s0"):
        if r != victim:
            with open_run(r) as run:
                assert run.meta["status"] == "finished"
    report = (out / "report.md").read_text()
    assert "1 more raised" in report and "`runs/ce-lr0.01-qkoff-s0`: worker process killed " \
        "by SIGKILL" in report
    proc = _grid(tmp_path, out, epochs, [1e-2, 3e-2])
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "== ce-lr0.01-qkoff-s0 (resumed): started" in stdout and "reused: 3" in stdout
    with open_run(victim) as run:
        assert run.meta["status"] == "finished"


def test_a_run_that_raises_is_counted_with_its_reason_and_the_grid_goes_on(
        serial_1thread, tmp_path, capsys):
    import shutil

    from geomviz.study.sweep_report import run_sweep
    from tests.helpers import set_meta_raw

    base, serial = serial_1thread
    out = tmp_path / "sweep"
    shutil.copytree(serial.root, out / "runs")
    broken = out / "runs" / "tfsd-lr0.01-qkoff-s1"
    set_meta_raw(broken, "status", json.dumps("crashed"))  # resumed from its checkpoint...
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")  # ...which cannot be read
    res = run_sweep(base, ["ce", "tfsd"], [1e-2, 3e-2], [0, 1], [False], out, ("html",),
                    command="test", execution=Execution(workers=2))
    grid = res["grid"]
    assert list(grid.failed) == [broken] and "StoreError" in grid.failed[broken]
    assert len(grid.trained) == 4 and len(grid.reused) == 3  # the new rate trained
    assert broken not in {r.folder for r in res["results"]}  # not counted as a result
    text = (out / "report.md").read_text()
    assert "7 runs:" in text and "1 more raised" in text
    assert "`runs/tfsd-lr0.01-qkoff-s1`: StoreError:" in text


def test_compare_and_study_grids_run_on_workers(tmp_path, monkeypatch, capsys):
    """`compare --workers 2` (study's grid code, train_grid): every run on a worker."""
    from geomviz.cli import main

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    assert main(["compare", "--dataset", "gaussians", "--epochs", "1", "--snapshots", "0",
                 "--objectives", "ce,tfsd", "--seeds", "0", "--runs-dir", str(tmp_path),
                 "--name", "c", "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "== ce seed 0: started" in out and "tfsd seed 0: finished" in out
    for o in ("ce", "tfsd"):
        with open_run(tmp_path / "c" / f"{o}-s0") as run:
            assert run.meta["status"] == "finished"
